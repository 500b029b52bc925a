package rings

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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

// reader turns a pollable file into wake-ups on its own goroutine; Close
// unblocks the read and waits for the goroutine.
type reader struct {
	f     *os.File
	wake  signal
	done  chan struct{}
	wg    sync.WaitGroup
	wakes atomic.Uint64 // wake-ups sent (tests check the rate limit)
}

// startReader wakes the consumer when f has data, no faster than lim
// allows: the files are writable by producers, and a flood of pokes must
// cost one wake-up per token, not one per byte. Each wake-up first drains
// everything queued (a backlog of thousands of inotify events is one
// wake-up, not one per buffer).
func startReader(f *os.File, wake signal, onData func([]byte), lim *rate.Limiter) *reader {
	r := &reader{f: f, wake: wake, done: make(chan struct{})}
	rc, err := f.SyscallConn()
	if err != nil {
		close(r.done)
		return r
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 16<<10)
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		for {
			var got bool
			var rerr error
			err := rc.Read(func(fd uintptr) bool {
				for {
					n, err := unix.Read(int(fd), buf)
					switch {
					case n > 0:
						got = true
						if onData != nil {
							onData(buf[:n])
						}
					case err == unix.EINTR:
					case err == unix.EAGAIN:
						return got // nothing yet: let the poller wait
					case err != nil:
						rerr = err
						return true
					default:
						rerr = io.EOF
						return true
					}
				}
			})
			if got {
				if d := lim.Reserve().Delay(); d > 0 {
					t.Reset(d)
					select {
					case <-t.C:
					case <-r.done:
						return
					}
				}
				wake.notify()
				r.wakes.Add(1)
			}
			if err != nil || rerr != nil {
				return
			}
		}
	}()
	return r
}

func (r *reader) Close() error {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	err := r.f.Close()
	r.wg.Wait()
	return err
}

// openDoorbell creates (if needed) and opens the doorbell FIFO of dir. It is
// opened read-write so it never reports EOF when producers close it, and
// non-blocking so Go's poller waits on it without a thread.
func openDoorbell(dir string, groupOnly bool) (*os.File, error) {
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
			return nil, fmt.Errorf("doorbell %s: %w", path, err)
		}
		if err := os.Chmod(path, os.FileMode(mode)); err != nil {
			return nil, fmt.Errorf("doorbell %s: %w", path, err)
		}
	case err != nil:
		return nil, fmt.Errorf("doorbell %s: %w", path, err)
	case st.Mode&unix.S_IFMT != unix.S_IFIFO:
		return nil, fmt.Errorf("doorbell %s: exists and is not a FIFO", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("doorbell %s: %w", path, err)
	}
	return f, nil
}

// openWatch returns an inotify file watching dir for ring files appearing
// or disappearing. The read loop only needs to know that something changed.
func openWatch(dir string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	mask := uint32(unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF)
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), "inotify:"+dir), nil
}
