package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/agaobs/agaobs/internal/config"
)

// wakeLoop is the `wake` subcommand: a Go process that does nothing but
// wake up every --interval on a timerfd read through the netpoller, as the
// agent's consumer polls. Its CPU is the floor under the agent's at a
// rate that keeps the consumer polling (the "wake" scenario). It runs with
// the agent's default GOMAXPROCS.
func wakeLoop(args []string) error {
	fs := pflag.NewFlagSet("wake", pflag.ContinueOnError)
	interval := fs.Duration("interval", time.Duration(config.Default().RingPollInterval), "time between wake-ups")
	dur := fs.Duration("duration", 10*time.Second, "how long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The agent's default, which it sets itself (agent_gomaxprocs).
	if n := config.Default().AgentGOMAXPROCS; n > 0 {
		runtime.GOMAXPROCS(n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	_, err := wakeFor(ctx, *interval, *dur)
	return err
}

// wakeFor wakes every interval for dur (or until ctx ends) and returns how
// many wake-ups it had.
func wakeFor(ctx context.Context, interval, dur time.Duration) (int, error) {
	if interval <= 0 {
		return 0, fmt.Errorf("interval must be > 0, got %v", interval)
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("timerfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "timerfd") // non-blocking: the netpoller waits
	defer f.Close()
	ts := unix.NsecToTimespec(interval.Nanoseconds())
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		return 0, fmt.Errorf("timerfd_settime: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("timerfd: %w", err)
	}
	// ctx ending stops the read; the goroutine ends with the call.
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		f.SetReadDeadline(time.Now())
	}()
	defer func() { cancel(); <-stopped }()
	deadline := time.Now().Add(dur)
	var buf [8]byte
	wakes := 0
	// As the consumer's poll clock reads it (internal/rings/polltimer.go):
	// one RawConn.Read for the loop's life and a raw read per expiry, so
	// no wake-up also wakes the runtime's monitor thread.
	err = rc.Read(func(fd uintptr) bool {
		_, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		switch errno {
		case 0:
			wakes++
		case unix.EAGAIN, unix.EINTR:
		default:
			return true
		}
		return !time.Now().Before(deadline)
	})
	if err != nil && ctx.Err() == nil {
		return wakes, fmt.Errorf("timerfd read: %w", err)
	}
	return wakes, nil
}

// runWakeFloor measures the `wake` subcommand over dur, after the same
// warm-up as an agent scenario, in the result's CPU and switch fields.
// make perf prints it beside the agent's CPU at 10 k events/s: the share
// of that CPU the poll clock's wake-ups alone cost on the machine.
func runWakeFloor(dur time.Duration) (result, error) {
	interval := time.Duration(config.Default().RingPollInterval)
	res := result{Name: fmt.Sprintf("a bare Go process waking every %v on a timerfd (the consumer's poll clock), nothing else", interval)}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	warm := 2 * time.Second
	c := exec.Command(self, "wake", "--interval", interval.String(), "--duration", (dur + 2*warm).String())
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		return res, err
	}
	defer func() { c.Process.Signal(syscall.SIGTERM); c.Wait() }()
	time.Sleep(warm)
	pid := c.Process.Pid
	cpu0, err := procCPU(pid)
	if err != nil {
		return res, err
	}
	sw0 := procSwitches(pid)
	t0 := time.Now()
	time.Sleep(dur)
	cpu1, err := procCPU(pid)
	if err != nil {
		return res, err
	}
	el := time.Since(t0)
	res.WindowSec = el.Seconds()
	res.CPUPct = 100 * (cpu1 - cpu0).Seconds() / el.Seconds()
	res.SwitchesPerSec = float64(procSwitches(pid)-sw0) / el.Seconds()
	return res, nil
}
