package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test advances by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressRenderer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tty   bool
		steps []time.Duration // clock advance before each Update(i+1, total)
		total int
		unit  string
		lines []string // what is drawn, in order
	}{
		{name: "not a tty: nothing", tty: false, total: 4,
			steps: []time.Duration{time.Second, time.Second, time.Second, time.Second}},
		{name: "tty: one line per interval", tty: true, total: 4,
			steps: []time.Duration{time.Second, time.Second, 0, time.Second},
			lines: []string{"verified 1/4 records (25%), 1 records/s", "verified 2/4 records (50%), 1 records/s",
				"verified 4/4 records (100%), 1 records/s"}},
		{name: "tty: rate limited", tty: true, total: 1000,
			steps: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 300 * time.Millisecond},
			lines: []string{"verified 4/1000 records (0%), 12 records/s"}},
		{name: "tty: bytes", tty: true, unit: "bytes", total: 4096,
			steps: []time.Duration{2 * time.Second},
			lines: []string{"verified 1/4096 bytes (0%), 0 bytes/s"}},
		{name: "tty: unknown total", tty: true, total: 0,
			steps: []time.Duration{2 * time.Second},
			lines: []string{"verified 1 records, 0 records/s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1000, 0)}
			var buf bytes.Buffer
			p := newProgress(&buf, tc.tty, clk.now, "verified")
			if tc.unit != "" {
				p.unit = tc.unit
			}
			for i, d := range tc.steps {
				clk.t = clk.t.Add(d)
				p.Update(i+1, tc.total)
			}
			p.Done()
			out := buf.String()
			if !tc.tty {
				if out != "" {
					t.Fatalf("wrote %q when not a tty", out)
				}
				return
			}
			if !strings.HasSuffix(out, "\r\033[K") {
				t.Fatalf("Done did not clear the line: %q", out)
			}
			var got []string
			for _, l := range strings.Split(out, "\r\033[K") {
				if l != "" {
					got = append(got, l)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.lines, "|") {
				t.Fatalf("lines\n got %q\nwant %q", got, tc.lines)
			}
			if strings.Contains(out, "\n") {
				t.Fatalf("progress must rewrite in place, not print lines: %q", out)
			}
		})
	}
}

func TestProgressNilAndNoLine(t *testing.T) {
	var p *progress
	p.Update(1, 2) // nil: no-op
	p.Done()
	var buf bytes.Buffer
	q := newProgress(&buf, true, nil, "exported")
	q.Done() // nothing drawn: nothing to clear
	if buf.Len() != 0 {
		t.Fatalf("wrote %q", buf.String())
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Fatal("a buffer is not a terminal")
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Fatal("/dev/null is a character device, not a terminal")
	}
	w, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if isTerminal(w) {
		t.Fatal("a regular file is not a terminal")
	}
}
