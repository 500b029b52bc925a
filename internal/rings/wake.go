package rings

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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

// reader turns a file that producers can write (the doorbell FIFO, the
// ring directory's inotify queue) into wake-ups on its own goroutine. It
// does not use the Go netpoller: with the descriptor registered there, a
// user writing the FIFO in a loop wakes the scheduler on every write,
// whether or not anybody reads (a flood kept the agent near a full core).
// Instead the goroutine polls the descriptor itself, only when it has a
// token to spend, so writes between two tokens cost the agent nothing.
type reader struct {
	fd    int
	stop  int // eventfd that Close signals, polled beside fd
	wake  signal
	done  chan struct{}
	wg    sync.WaitGroup
	wakes atomic.Uint64 // wake-ups sent (tests check the rate limit)
}

// startReader wakes the consumer when fd (non-blocking) has data, no
// faster than lim allows: a flood of pokes costs one wake-up per token,
// not one per byte. Each wake-up drains what is queued (a backlog of
// thousands of inotify events is one wake-up, not one per buffer),
// stopping at the first short read; with settle > 0 it first lets that much
// time pass, so a burst of events (a producer creating its two rings) is one
// wake-up. The reader owns fd and closes it.
func startReader(fd int, wake signal, onData func([]byte), lim *rate.Limiter, settle time.Duration) (*reader, error) {
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	r := &reader{fd: fd, stop: stop, wake: wake, done: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer unix.Close(fd)
		defer unix.Close(stop)
		buf := make([]byte, 16<<10)
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
		for {
			// Blocks until data or Close: an idle reader costs no wake-up.
			_, err := unix.Poll(pfd, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || pfd[1].Revents != 0 || pfd[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
				return
			}
			if settle > 0 {
				t.Reset(settle)
				select {
				case <-t.C:
				case <-r.done:
					return
				}
			}
			got := false
			for {
				n, err := unix.Read(fd, buf)
				if n > 0 {
					got = true
					if onData != nil {
						onData(buf[:n])
					}
				}
				if err == unix.EINTR {
					continue
				}
				// Drained as of this read, or an error: a writer that
				// keeps the file busy must not keep us reading.
				if err != nil || n < len(buf) {
					break
				}
			}
			if !got {
				continue
			}
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
	}()
	return r, nil
}

// Close stops the reader and closes its file.
func (r *reader) Close() error {
	close(r.done)
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; any non-zero value wakes poll
	_, err := unix.Write(r.stop, one[:])
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
