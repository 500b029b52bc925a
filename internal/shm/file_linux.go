//go:build linux

package shm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// DoorbellName is the agent's FIFO in the ring directory (format §5.3).
const DoorbellName = "agaobs.doorbell"

// ringFileName returns the conventional file name of a ring (format §1).
func ringFileName(pid uint32, pidns uint64, instance uint32, class Class) string {
	return fmt.Sprintf("agaobs-%d-%d-%d-%s.ring", pid, pidns, instance, class)
}

// IsRingFileName reports whether name is a ring file the agent should look
// at: not hidden and ending in ".ring".
func IsRingFileName(name string) bool {
	return !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".ring")
}

// EnsureDir creates the ring directory if it is missing (format §1): mode
// 1777 without a group, 2770 owned by gid when gid ≥ 0. With a group, an
// existing directory owned by this user is brought to that group and mode;
// otherwise an existing directory is left as its owner made it.
func EnsureDir(dir string, gid int) error {
	mode := os.FileMode(0o777) | os.ModeSticky
	if gid >= 0 {
		mode = os.FileMode(0o770) | os.ModeSetgid
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("ring dir %s: %w", dir, err)
	}
	created := true
	if err := os.Mkdir(dir, 0o700); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("ring dir %s: %w", dir, err)
		}
		created = false
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("ring dir %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("ring dir %s: not a directory", dir)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if int(sys.Uid) != os.Geteuid() || (!created && gid < 0) {
		return nil
	}
	if gid >= 0 && int(sys.Gid) != gid {
		if err := os.Chown(dir, -1, gid); err != nil {
			return fmt.Errorf("ring dir %s: set group %d: %w", dir, gid, err)
		}
	}
	if st.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid) != mode {
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("ring dir %s: chmod: %w", dir, err)
		}
	}
	return nil
}

// ProcessInfo returns this process's pid, pid-namespace inode and start time
// in clock ticks since boot, as a ring header records them.
func ProcessInfo() (pid uint32, pidns uint64, startTicks uint64, err error) {
	pid = uint32(os.Getpid())
	if st, e := os.Stat("/proc/self/ns/pid"); e == nil {
		pidns = st.Sys().(*syscall.Stat_t).Ino
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return pid, pidns, 0, fmt.Errorf("process start time: %w", err)
	}
	startTicks, err = ParseStatStartTime(b)
	return pid, pidns, startTicks, err
}

// ParseStatStartTime extracts field 22 (starttime) from /proc/<pid>/stat.
func ParseStatStartTime(b []byte) (uint64, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("stat: no command field")
	}
	f := strings.Fields(s[i+1:])
	// Fields after the command start at field 3 (state); starttime is 22.
	if len(f) < 20 {
		return 0, errors.New("stat: too few fields")
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: starttime: %w", err)
	}
	return v, nil
}

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// MonoNow returns CLOCK_MONOTONIC in ns, the clock of ring heartbeats.
func MonoNow() int64 { return monoNow() }

// CreateWriter creates a ring file in dir (format §1: temporary name,
// header with magic last, rename) and returns its writer. Missing process
// fields of opts are filled in from this process; a nil opts.Doorbell uses
// the directory's FIFO.
func CreateWriter(dir string, opts WriterOptions) (*Writer, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if opts.PID == 0 {
		pid, ns, start, err := ProcessInfo()
		if err != nil {
			return nil, fmt.Errorf("create ring: %w", err)
		}
		opts.PID, opts.PIDNSInode, opts.StartTimeTicks = pid, ns, start
	}
	if err := EnsureDir(dir, -1); err != nil {
		return nil, fmt.Errorf("create ring: %w", err)
	}
	if opts.Doorbell == nil {
		opts.Doorbell = NewFIFODoorbell(filepath.Join(dir, DoorbellName))
	}
	name := ringFileName(opts.PID, opts.PIDNSInode, opts.Instance, opts.Class)
	final := filepath.Join(dir, name)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+name+".tmp-"+hex.EncodeToString(rnd[:]))
	size := int64(HeaderSize + opts.Capacity)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create ring %s: %w", tmp, err)
	}
	fail := func(err error) (*Writer, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("create ring %s: %w", final, err)
	}
	// Group-writable only in a setgid (group-managed) directory, so the
	// agent's group can release space; otherwise owner-only.
	mode := os.FileMode(0o600)
	if st, err := os.Stat(dir); err == nil && st.Mode()&os.ModeSetgid != 0 {
		mode = 0o660
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if err := f.Truncate(size); err != nil {
		return fail(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("mmap: %w", err))
	}
	w, err := NewBufferWriter(mem, opts)
	if err != nil {
		unix.Munmap(mem)
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		unix.Munmap(mem)
		return fail(err)
	}
	f.Close()
	w.path = final
	w.release = func() error { return unix.Munmap(mem) }
	return w, nil
}

// Path returns the ring file path ("" for buffer writers).
func (w *Writer) Path() string { return w.path }

// FileInfo is what the agent needs to know about a ring file to accept it.
type FileInfo struct {
	Path  string
	UID   uint32
	GID   uint32
	Mode  os.FileMode
	Inode uint64
	Dev   uint64
	Size  int64
}

// StatRing lstats a ring file.
func StatRing(path string) (FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return FileInfo{}, fmt.Errorf("stat ring %s: %w", path, err)
	}
	return fileInfo(path, &st), nil
}

func fileInfo(path string, st *unix.Stat_t) FileInfo {
	return FileInfo{
		Path: path, UID: st.Uid, GID: st.Gid, Mode: os.FileMode(st.Mode & 0o7777),
		Inode: st.Ino, Dev: uint64(st.Dev), Size: st.Size,
	}
}

// errNotRegular is returned by OpenRing for symlinks and other non-regular
// files.
var errNotRegular = errors.New("not a regular file")

// OpenRing maps a ring file read-write (the consumer block must be
// writable), validates its header and restores the consumer state. The
// returned FileInfo describes the opened inode. The Ring keeps the file
// open until Close, so that SetConsumer can notice the producer shrinking
// it (one fstat a call).
func OpenRing(path string) (*Ring, FileInfo, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			err = errNotRegular
		}
		return nil, FileInfo{}, fmt.Errorf("open ring %s: %w", path, err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(fd)
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, FileInfo{}, fmt.Errorf("open ring %s: %w", path, err)
	}
	fi := fileInfo(path, &st)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fi, fmt.Errorf("open ring %s: %w", path, errNotRegular)
	}
	if st.Size < HeaderSize || st.Size > HeaderSize+(1<<40) {
		return nil, fi, fmt.Errorf("open ring %s: %w", path, &HeaderError{Reason: fmt.Sprintf("file size %d", st.Size)})
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fi, fmt.Errorf("open ring %s: mmap: %w", path, err)
	}
	r, err := NewRing(mem, func() error {
		unix.Close(fd)
		return unix.Munmap(mem)
	})
	if err != nil {
		unix.Munmap(mem)
		return nil, fi, fmt.Errorf("open ring %s: %w", path, err)
	}
	r.fileSize = func() (int64, error) {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return 0, err
		}
		return st.Size, nil
	}
	keep = true
	return r, fi, nil
}

// FIFODoorbell pokes the agent's FIFO (format §5.3). It opens the FIFO
// lazily and non-blocking; with no reader (no agent) it retries at most once
// a second. Poke never blocks.
type FIFODoorbell struct {
	path     string
	fd       int
	nextOpen int64
}

// NewFIFODoorbell returns a doorbell for the FIFO at path.
func NewFIFODoorbell(path string) *FIFODoorbell { return &FIFODoorbell{path: path, fd: -1} }

// Poke writes one byte to the FIFO, ignoring a full pipe.
func (d *FIFODoorbell) Poke() {
	if d.fd < 0 {
		now := monoNow()
		if now < d.nextOpen {
			return
		}
		fd, err := unix.Open(d.path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			d.nextOpen = now + 1e9
			return
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			unix.Close(fd)
			d.nextOpen = now + 1e9
			return
		}
		d.fd = fd
	}
	if _, err := unix.Write(d.fd, []byte{1}); err != nil && err != unix.EAGAIN {
		// The agent went away: reopen on a later poke.
		unix.Close(d.fd)
		d.fd = -1
	}
}

// Close closes the FIFO descriptor.
func (d *FIFODoorbell) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// Inspection is a read-only look at a ring, for tools that must not act as
// its consumer.
type Inspection struct {
	Header Header
	Stats  Stats
	File   FileInfo
}

// InspectRing maps a ring read-only and reads its header and counters; lost
// and corrupt come from the consumer's last commit.
func InspectRing(path string) (Inspection, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return Inspection{}, fmt.Errorf("inspect ring %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Inspection{}, fmt.Errorf("inspect ring %s: %w", path, err)
	}
	fi := fileInfo(path, &st)
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < HeaderSize || st.Size > HeaderSize+(1<<40) {
		return Inspection{File: fi}, fmt.Errorf("inspect ring %s: %w", path, &HeaderError{Reason: fmt.Sprintf("not a ring file (size %d)", st.Size)})
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return Inspection{File: fi}, fmt.Errorf("inspect ring %s: mmap: %w", path, err)
	}
	defer unix.Munmap(mem)
	in, err := inspectMem(mem, st.Size)
	in.File = fi
	if err != nil {
		var he *HeaderError
		if errors.As(err, &he) && he.Initialising {
			return in, err
		}
		return in, fmt.Errorf("inspect ring %s: %w", path, err)
	}
	return in, nil
}

// inspectMem reads the header and counters of a mapped ring. The producer
// may shrink the file meanwhile: a fault gives errTruncated.
func inspectMem(mem []byte, size int64) (Inspection, error) {
	var in Inspection
	var err error
	r := &Ring{mem: mem}
	ok := guardMem(mem, func() {
		if atomic.LoadUint64(r.u64(offMagic)) == 0 {
			err = &HeaderError{Reason: "magic not yet written (ring initialising)", Initialising: true}
			return
		}
		if in.Header, err = parseHeader(mem, size); err != nil {
			return
		}
		r.hdr = in.Header
		cp := r.slot(atomic.LoadUint64(r.u64(offCommitGen)) & 1)
		in.Stats = r.Stats()
		in.Stats.ReadPos, in.Stats.Lost, in.Stats.Corrupt = cp.End, cp.Lost, cp.Corrupt
	})
	if !ok || r.faulted.Load() {
		return Inspection{}, errTruncated
	}
	return in, err
}
