package rings

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pollTimer is the consumer's poll clock: a timerfd read through the Go
// netpoller. A runtime timer would do, but the runtime sleeps in
// epoll_pwait with a millisecond timeout rounded down, so a 3 ms poll
// wakes the thread twice (after 2 ms, then again for the rest): measured
// at 10 k events/s, 637 sleeps a second on the agent's thread for 333
// polls. The timerfd fires to the nanosecond and the netpoller sleeps
// until it does: one wake-up per poll. While the consumer is busy the
// timer is periodic, so a poll costs no re-arming.
type pollTimer struct {
	f      *os.File
	c      signal
	mu     sync.Mutex // guards fd use against Close, and period
	fd     int
	done   bool
	period time.Duration // > 0: armed periodic at this interval
	wg     sync.WaitGroup
}

// newPollTimer starts the timer's reader goroutine; Close stops it.
func newPollTimer() (*pollTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	// A non-blocking descriptor makes os.NewFile register it with the
	// netpoller, so a blocked read parks the goroutine, not a thread.
	t := &pollTimer{f: os.NewFile(uintptr(fd), "agaobs-poll-timer"), c: newSignal(), fd: fd}
	rc, err := t.f.SyscallConn()
	if err != nil {
		t.f.Close()
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	t.wg.Add(1)
	go t.loop(rc)
	return t, nil
}

// loop is one RawRead for the timer's life: the callback reads each expiry
// and asks to wait again, so a tick costs one read and no EAGAIN read.
func (t *pollTimer) loop(rc syscall.RawConn) {
	defer t.wg.Done()
	var buf [8]byte // the expiration count; only its arrival matters
	_ = rc.Read(func(fd uintptr) bool {
		// A raw read: the runtime wakes its monitor thread on the first
		// ordinary syscall after an idle spell, and that thread then
		// polls every 20 µs for a while (measured: more wake-ups than the
		// millisecond rounding this type avoids). The descriptor is
		// non-blocking, so the call cannot block.
		_, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		switch errno {
		case 0:
			t.c.notify()
			return false // wait for the next expiry
		case unix.EAGAIN, unix.EINTR:
			return false
		default:
			// An error that would repeat: stop; the consumer still
			// wakes through its wake signal and its own deadline.
			return true
		}
	}) // returns at Close (os.ErrClosed)
}

// C receives once per expiry (coalesced).
func (t *pollTimer) C() <-chan struct{} { return t.c }

// Every makes the timer fire every d (at least 1 ns); re-arming only when
// the timer is not already periodic at d.
func (t *pollTimer) Every(d time.Duration) {
	d = max(d, time.Nanosecond)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.period == d {
		return
	}
	t.period = d
	t.settime(d, d)
}

// After makes the timer fire once, after d (at least 1 ns: a zero value
// would disarm it).
func (t *pollTimer) After(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.period = 0
	t.settime(max(d, time.Nanosecond), 0)
}

// Stop disarms the timer and drops an expiry not yet received. A tick
// already read by the loop may still arrive: one early pass, harmless.
func (t *pollTimer) Stop() {
	t.mu.Lock()
	t.period = 0
	t.settime(0, 0)
	t.mu.Unlock()
	select {
	case <-t.c:
	default:
	}
}

// settime arms the timerfd (t.mu held).
func (t *pollTimer) settime(first, every time.Duration) {
	if t.done {
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(first.Nanoseconds()), Interval: unix.NsecToTimespec(every.Nanoseconds())}
	// Raw for the reason loop's read is; timerfd_settime never blocks.
	_, _, _ = unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(t.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
}

// armed reports the time left before the timer fires (0: disarmed) and its
// interval (0: one-shot).
func (t *pollTimer) armed() (left, every time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return 0, 0
	}
	var cur unix.ItimerSpec
	if err := unix.TimerfdGettime(t.fd, &cur); err != nil {
		return 0, 0
	}
	return time.Duration(cur.Value.Nano()), time.Duration(cur.Interval.Nano())
}

// Close stops the reader goroutine and closes the descriptor.
func (t *pollTimer) Close() error {
	t.mu.Lock()
	t.done = true
	t.mu.Unlock()
	err := t.f.Close() // ends the RawRead with os.ErrClosed
	t.wg.Wait()
	return err
}

// sleepTimer is what the consumer waits on: the pollTimer, or a runtime
// timer where timerfd is unavailable.
type sleepTimer interface {
	C() <-chan struct{}
	Every(time.Duration) // fire every d from now, unless already doing so
	After(time.Duration) // fire once, d from now
	Stop()
	Close() error
}

// runtimeTimer adapts time.Timer to sleepTimer. Every re-arms at each call
// (the consumer calls it before each wait): a one-shot from now, as the
// consumer polled before it had the timerfd.
type runtimeTimer struct {
	t *time.Timer
	c signal
}

func newRuntimeTimer() *runtimeTimer {
	r := &runtimeTimer{c: newSignal()}
	r.t = time.AfterFunc(time.Hour, r.c.notify)
	r.t.Stop()
	return r
}

func (r *runtimeTimer) C() <-chan struct{}    { return r.c }
func (r *runtimeTimer) Every(d time.Duration) { r.Stop(); r.t.Reset(d) }
func (r *runtimeTimer) After(d time.Duration) { r.Stop(); r.t.Reset(d) }
func (r *runtimeTimer) Stop() {
	r.t.Stop()
	select {
	case <-r.c:
	default:
	}
}
func (r *runtimeTimer) Close() error { r.t.Stop(); return nil }
