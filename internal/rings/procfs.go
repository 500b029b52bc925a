package rings

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/prometheus/procfs"
)

// errNoProcess means the process a ring names is not running.
var errNoProcess = errors.New("producer process not running")

// procResolver maps a ring's (pid namespace, pid, start time) to a host
// process, reading procfs.
type procResolver struct {
	root    string
	fs      procfs.FS
	selfNS  uint64
	nsCache map[[2]uint64]int // (pidns, nspid) → host pid, verified again on use
}

func newProcResolver(root string) (*procResolver, error) {
	fs, err := procfs.NewFS(root)
	if err != nil {
		return nil, fmt.Errorf("procfs %s: %w", root, err)
	}
	r := &procResolver{root: root, fs: fs, nsCache: map[[2]uint64]int{}}
	r.selfNS, _ = r.pidNS(os.Getpid())
	if r.selfNS == 0 {
		// procfs mounted for another namespace (or none): fall back to our
		// own view of the namespace.
		if st, err := os.Stat("/proc/self/ns/pid"); err == nil {
			r.selfNS = st.Sys().(*syscall.Stat_t).Ino
		}
	}
	return r, nil
}

func (r *procResolver) pidNS(hostPID int) (uint64, error) {
	st, err := os.Stat(filepath.Join(r.root, strconv.Itoa(hostPID), "ns", "pid"))
	if err != nil {
		return 0, err
	}
	return st.Sys().(*syscall.Stat_t).Ino, nil
}

// procIdentity is what the agent learns about a producer process.
type procIdentity struct {
	HostPID int
	RealUID uint32
}

// liveness is what one check of a producer process found.
type liveness int

const (
	procAlive   liveness = iota
	procGone             // ENOENT/ESRCH, another process under the pid, or a zombie
	procUnknown          // any other error (EMFILE, ENOMEM, EACCES…): ask again later
)

// goneErr reports whether err from procfs means the process does not
// exist. Only these errors may end a producer: under fd exhaustion or
// memory pressure a live producer must not be declared dead, or its rings
// would be drained, forgotten and unlinked while it still writes.
func goneErr(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// check looks up hostPID and compares its start time. A zombie (killed,
// not yet reaped by its parent) is gone: it will never write again.
func (r *procResolver) check(hostPID int, start uint64) (liveness, error) {
	p, err := r.fs.Proc(hostPID)
	if err == nil {
		var st procfs.ProcStat
		if st, err = p.Stat(); err == nil {
			if st.Starttime != start || st.State == "Z" || st.State == "X" {
				return procGone, nil
			}
			return procAlive, nil
		}
	}
	if goneErr(err) {
		return procGone, nil
	}
	return procUnknown, fmt.Errorf("check pid %d: %w", hostPID, err)
}

// alive reports whether hostPID is certainly still the process started at
// start; an inconclusive check counts as not alive (callers that end
// producers use check instead).
func (r *procResolver) alive(hostPID int, start uint64) bool {
	l, _ := r.check(hostPID, start)
	return l == procAlive
}

// resolve finds the host process of a ring: the process whose innermost
// NSpid is pid inside pid namespace pidns (or pid itself when the namespace
// is ours or unknown) and whose start time matches.
func (r *procResolver) resolve(pid uint32, pidns, start uint64) (procIdentity, error) {
	// transient keeps the first inconclusive error: the ring is then
	// looked at again later rather than rejected as unverifiable.
	var transient error
	check := func(hostPID int) (procIdentity, bool) {
		l, err := r.check(hostPID, start)
		if l != procAlive {
			if transient == nil {
				transient = err
			}
			return procIdentity{}, false
		}
		p, err := r.fs.Proc(hostPID)
		if err != nil {
			if transient == nil && !goneErr(err) {
				transient = err
			}
			return procIdentity{}, false
		}
		st, err := p.NewStatus()
		if err != nil {
			if transient == nil && !goneErr(err) {
				transient = err
			}
			return procIdentity{}, false
		}
		if n := len(st.NSpids); n > 0 && st.NSpids[n-1] != uint64(pid) {
			return procIdentity{}, false
		}
		return procIdentity{HostPID: hostPID, RealUID: uint32(st.UIDs[0])}, true
	}
	notFound := func() (procIdentity, error) {
		if transient != nil {
			return procIdentity{}, &TransientError{Err: transient}
		}
		return procIdentity{}, errNoProcess
	}
	if pidns == 0 || pidns == r.selfNS {
		if id, ok := check(int(pid)); ok {
			return id, nil
		}
		return notFound()
	}
	key := [2]uint64{pidns, uint64(pid)}
	if hp, ok := r.nsCache[key]; ok {
		if ns, _ := r.pidNS(hp); ns == pidns {
			if id, ok := check(hp); ok {
				return id, nil
			}
		}
		delete(r.nsCache, key)
	}
	procs, err := r.fs.AllProcs()
	if err != nil {
		return procIdentity{}, &TransientError{Err: fmt.Errorf("scan %s: %w", r.root, err)}
	}
	for _, p := range procs {
		ns, err := r.pidNS(p.PID)
		if err != nil {
			if transient == nil && !goneErr(err) {
				transient = err
			}
			continue
		}
		if ns != pidns {
			continue
		}
		if id, ok := check(p.PID); ok {
			r.nsCache[key] = p.PID
			return id, nil
		}
	}
	return notFound()
}

// TransientError is a procfs or file error that says nothing about the
// producer (descriptor or memory exhaustion): the check is retried.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return "transient: " + e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// transientErr reports whether err is worth retrying rather than a verdict
// about the file or process: resource exhaustion and interrupted calls.
func transientErr(err error) bool {
	var te *TransientError
	return errors.As(err, &te) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR)
}
