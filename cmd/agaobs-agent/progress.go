package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// progressInterval is the least time between two progress lines.
const progressInterval = 250 * time.Millisecond

// progress renders a long command's progress (records, or bytes, done of
// total, and their rate per second) on one line of w, rewritten in place with \r at most
// every progressInterval. It prints nothing unless tty: piped or
// redirected output stays clean. Not safe for concurrent use.
type progress struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	what  string // "verified", "exported"
	unit  string // "records" (the default), "bytes"
	start time.Time
	last  time.Time
	shown bool // a line is on screen (Done ends it)
	done  int
	total int
}

func newProgress(w io.Writer, tty bool, now func() time.Time, what string) *progress {
	if now == nil {
		now = time.Now
	}
	t := now()
	return &progress{w: w, tty: tty, now: now, what: what, unit: "records", start: t, last: t}
}

// stderrProgress is a progress on stderr when it is a terminal.
func stderrProgress(stderr io.Writer, what string) *progress {
	return newProgress(stderr, isTerminal(stderr), nil, what)
}

// isTerminal says whether w is a terminal (the TCGETS ioctl, as
// golang.org/x/term's IsTerminal does; a character-device check alone
// would take /dev/null for one).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Update records done of total (0: unknown) and redraws the line if the
// last one is older than progressInterval. It has the audit.ProgressFunc
// signature.
func (p *progress) Update(done, total int) {
	if p == nil {
		return
	}
	p.done, p.total = done, total
	if !p.tty {
		return
	}
	if t := p.now(); t.Sub(p.last) >= progressInterval {
		p.last = t
		p.draw(t)
	}
}

// Done clears the progress line, if one was drawn, so that the command's
// own output starts on a clean line.
func (p *progress) Done() {
	if p == nil || !p.tty || !p.shown {
		return
	}
	fmt.Fprint(p.w, "\r\033[K")
	p.shown = false
}

func (p *progress) draw(t time.Time) {
	rate := 0.0
	if s := t.Sub(p.start).Seconds(); s > 0 {
		rate = float64(p.done) / s
	}
	line := fmt.Sprintf("%s %d", p.what, p.done)
	if p.total > 0 {
		line += fmt.Sprintf("/%d %s (%.0f%%)", p.total, p.unit, 100*float64(p.done)/float64(p.total))
	} else {
		line += " " + p.unit
	}
	line += fmt.Sprintf(", %.0f %s/s", rate, p.unit)
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.shown = true
}
