package rings

import (
	"errors"
	"fmt"
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

// startTime returns the start time (clock ticks) of a host pid.
func (r *procResolver) startTime(hostPID int) (uint64, error) {
	p, err := r.fs.Proc(hostPID)
	if err != nil {
		return 0, errNoProcess
	}
	st, err := p.Stat()
	if err != nil {
		return 0, errNoProcess
	}
	return st.Starttime, nil
}

// alive reports whether hostPID is still the process started at start. A
// zombie (killed, not yet reaped by its parent) is dead: it will never
// write again.
func (r *procResolver) alive(hostPID int, start uint64) bool {
	p, err := r.fs.Proc(hostPID)
	if err != nil {
		return false
	}
	st, err := p.Stat()
	return err == nil && st.Starttime == start && st.State != "Z" && st.State != "X"
}

// resolve finds the host process of a ring: the process whose innermost
// NSpid is pid inside pid namespace pidns (or pid itself when the namespace
// is ours or unknown) and whose start time matches.
func (r *procResolver) resolve(pid uint32, pidns, start uint64) (procIdentity, error) {
	check := func(hostPID int) (procIdentity, bool) {
		if !r.alive(hostPID, start) {
			return procIdentity{}, false
		}
		p, err := r.fs.Proc(hostPID)
		if err != nil {
			return procIdentity{}, false
		}
		st, err := p.NewStatus()
		if err != nil {
			return procIdentity{}, false
		}
		if n := len(st.NSpids); n > 0 && st.NSpids[n-1] != uint64(pid) {
			return procIdentity{}, false
		}
		return procIdentity{HostPID: hostPID, RealUID: uint32(st.UIDs[0])}, true
	}
	if pidns == 0 || pidns == r.selfNS {
		if id, ok := check(int(pid)); ok {
			return id, nil
		}
		return procIdentity{}, errNoProcess
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
		return procIdentity{}, fmt.Errorf("scan %s: %w", r.root, err)
	}
	for _, p := range procs {
		if ns, err := r.pidNS(p.PID); err != nil || ns != pidns {
			continue
		}
		if id, ok := check(p.PID); ok {
			r.nsCache[key] = p.PID
			return id, nil
		}
	}
	return procIdentity{}, errNoProcess
}
