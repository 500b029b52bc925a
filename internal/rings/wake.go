package rings

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/agaobs/agaobs/internal/shm"
)

// signal is a coalescing wake-up: many sends, one pending receive.
type signal chan struct{}

func newSignal() signal { return make(signal, 1) }

func (s signal) notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// reader turns a file that producers can write (the doorbell FIFO, the
// ring directory's inotify queue) into wake-ups of the consumer.
//
// It waits in the Go netpoller, so a wake-up costs the thread that already
// sleeps there and no other: a goroutine blocked in poll(2) holds a thread of
// its own, and handing its result to the consumer took about four thread
// wake-ups (measured: 12 context switches per doorbell at 20 events/s,
// polls included). The file itself is not registered with the netpoller:
// a pipe wakes an epoll waiter on every write, so a user writing the FIFO in
// a loop would wake the scheduler on every write, whether or not anybody
// reads (a flood kept the agent near a full core). It sits one-shot in an
// epoll set of its own, and that set is what the netpoller watches: after one
// report the file is disabled until the reader re-arms it, which it does only
// after it has drained the file and spent a token. Writes between two tokens
// cost the agent nothing.
//
// Every system call on the way is raw (non-blocking): the runtime wakes its
// monitor thread on the first ordinary system call after an idle spell, and
// that thread then polls every 20 µs for a while.
type reader struct {
	fd    int
	ep    *os.File // the one-shot epoll set holding fd, in the netpoller
	wake  signal
	done  chan struct{}
	wg    sync.WaitGroup
	wakes atomic.Uint64 // wake-ups sent (tests check the rate limit)
}

// readerEvents are fd's events in the reader's epoll set: level-triggered
// (what is left unread reports again when re-armed), one report per arming.
const readerEvents = unix.EPOLLIN | unix.EPOLLONESHOT

// startReader wakes the consumer when fd (non-blocking) has data, no
// faster than lim allows: a flood of pokes costs one wake-up per token,
// not one per byte. Each wake-up drains what is queued (a backlog of
// thousands of inotify events is one wake-up, not one per buffer),
// stopping at the first short read; with settle > 0 it first lets that much
// time pass, so a burst of events (a producer creating its two rings) is one
// wake-up. The reader owns fd and closes it.
func startReader(fd int, wake signal, onData func([]byte), lim *rate.Limiter, settle time.Duration) (*reader, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	ev := unix.EpollEvent{Events: readerEvents, Fd: int32(fd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(fd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with the netpoller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(fd)
		return nil, fmt.Errorf("epoll set: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "agaobs-reader-epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		unix.Close(fd)
		return nil, fmt.Errorf("epoll set: %w", err)
	}
	r := &reader{fd: fd, ep: ep, wake: wake, done: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer unix.Close(fd)
		buf := make([]byte, 16<<10)
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		// pause waits d; false once Close was called.
		pause := func(d time.Duration) bool {
			t.Reset(d)
			select {
			case <-t.C:
				return true
			case <-r.done:
				return false
			}
		}
		var got [1]unix.EpollEvent
		for {
			// Parks until fd reports through the set, or Close.
			var bad bool
			err := rc.Read(func(epfd uintptr) bool {
				n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, epfd, uintptr(unsafe.Pointer(&got[0])), 1, 0, 0, 0)
				switch {
				case errno == unix.EINTR:
					return false
				case errno != 0:
					bad = true
					return true
				case n == 0:
					return false // nothing yet: wait for the set to report
				}
				bad = got[0].Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0
				return true
			})
			if err != nil || bad {
				return // closed, or an error that would repeat
			}
			if settle > 0 && !pause(settle) {
				return
			}
			gotData := false
			for {
				n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
				if errno == 0 && n > 0 {
					gotData = true
					if onData != nil {
						onData(buf[:n])
					}
				}
				if errno == unix.EINTR {
					continue
				}
				if errno == 0 && n == 0 || errno != 0 && errno != unix.EAGAIN {
					// End of file or an error: it would report again at
					// once, and the reader would spin. The consumer still
					// wakes for housekeeping and on its timer.
					return
				}
				// Drained as of this read: a writer that keeps the file
				// busy must not keep us reading.
				if errno != 0 || int(n) < len(buf) {
					break
				}
			}
			if gotData {
				if d := lim.Reserve().Delay(); d > 0 && !pause(d) {
					return
				}
				wake.notify()
				r.wakes.Add(1)
			}
			// Re-arm: what arrived since the drain reports at once.
			// Through rc, which holds the set open: after Close its
			// number may belong to another file.
			var errno syscall.Errno
			if err := rc.Control(func(epfd uintptr) {
				ev := unix.EpollEvent{Events: readerEvents, Fd: int32(fd)}
				_, _, errno = unix.RawSyscall6(unix.SYS_EPOLL_CTL, epfd, unix.EPOLL_CTL_MOD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
			}); err != nil || errno != 0 {
				return
			}
		}
	}()
	return r, nil
}

// Close stops the reader and closes its file.
func (r *reader) Close() error {
	close(r.done)
	err := r.ep.Close() // ends a parked wait with os.ErrClosed
	r.wg.Wait()
	if err != nil {
		return fmt.Errorf("stop reader: %w", err)
	}
	return nil
}

// openDoorbell creates (if needed) and opens the doorbell FIFO of dir. It is
// opened read-write so it never reports EOF when producers close it, and
// non-blocking so a read drains it without waiting.
func openDoorbell(dir string, groupOnly bool) (int, error) {
	path := filepath.Join(dir, shm.DoorbellName)
	mode := uint32(0o622) // producers of any user poke it; only we read
	if groupOnly {
		mode = 0o620
	}
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		if err := unix.Mkfifo(path, mode); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("doorbell %s: %w", path, err)
		}
		if err := os.Chmod(path, os.FileMode(mode)); err != nil {
			return -1, fmt.Errorf("doorbell %s: %w", path, err)
		}
	case err != nil:
		return -1, fmt.Errorf("doorbell %s: %w", path, err)
	case st.Mode&unix.S_IFMT != unix.S_IFIFO:
		return -1, fmt.Errorf("doorbell %s: exists and is not a FIFO", path)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("doorbell %s: %w", path, err)
	}
	return fd, nil
}

// openWatch returns an inotify file watching dir for ring files appearing
// or disappearing. The read loop only needs to know that something changed.
func openWatch(dir string) (int, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("inotify: %w", err)
	}
	mask := uint32(unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF)
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	return fd, nil
}
