package rings

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

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
	f    *os.File
	wake signal
	wg   sync.WaitGroup
}

func startReader(f *os.File, wake signal, onData func([]byte)) *reader {
	r := &reader{f: f, wake: wake}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if onData != nil {
					onData(buf[:n])
				}
				wake.notify()
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *reader) Close() error {
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
