package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// execChannel runs ExecCommand once per alert.
type execChannel struct {
	d       *Dispatcher
	ch      *channel
	command string
}

// Environment variables set for the command, besides the agent's own.
const (
	EnvAlertName     = "AGAOBS_ALERT_NAME"
	EnvAlertStatus   = "AGAOBS_ALERT_STATUS"
	EnvAlertSeverity = "AGAOBS_ALERT_SEVERITY"
)

// execWaitDelay bounds how long Wait keeps reading output after the shell
// exits or is killed, in case a background child still holds the pipe.
const execWaitDelay = time.Second

func (e *execChannel) deliver(ctx context.Context, batch []Alert) {
	for _, a := range batch {
		stdin, err := referenceJSON(a, e.d.now())
		if err != nil {
			e.ch.counts.failed()
			e.ch.logger.Error("encode exec stdin", append(alertAttrs(a), "err", err)...)
			continue
		}
		e.d.retry(ctx, e.ch, func(ctx context.Context) error {
			return e.run(ctx, a, stdin)
		}, alertAttrs(a)...)
	}
}

// run runs the command once. The command gets its own process group, and
// the whole group is killed when ctx ends, so a shell pipeline or a child
// it started cannot outlive the attempt's timeout.
func (e *execChannel) run(ctx context.Context, a Alert, stdin []byte) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", e.command)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(),
		EnvAlertName+"="+a.Name,
		EnvAlertStatus+"="+a.Status,
		EnvAlertSeverity+"="+a.Severity,
	)
	out := &headBuffer{max: 512}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = execWaitDelay
	killProcessGroupOnCancel(cmd)
	err := cmd.Run()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("command killed: %w (output: %q)", ctx.Err(), out.String())
	case errors.Is(err, exec.ErrWaitDelay):
		// The shell exited 0; only a background child kept the output
		// pipe open. The notification itself succeeded.
		return nil
	}
	return fmt.Errorf("command: %w (output: %q)", err, out.String())
}

// headBuffer keeps the first max bytes written, for error messages, and
// accepts the rest so the command never blocks on a full pipe. os/exec
// calls Write from one goroutine at a time when Stdout and Stderr are the
// same writer.
type headBuffer struct {
	max int
	buf bytes.Buffer
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *headBuffer) String() string { return strings.TrimSpace(b.buf.String()) }
