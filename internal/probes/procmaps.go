package probes

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Mapping is one file-backed mapping of a process (/proc/<pid>/maps).
type Mapping struct {
	Start, End, Offset uint64
	Perms              string // e.g. "r-xp"
	Dev                string // "fd:01"
	Inode              uint64
	Path               string // as shown in maps (inside the process's mount namespace)
	Deleted            bool   // the " (deleted)" suffix was present (stripped from Path)
}

// deletedSuffix is what the kernel appends to the path of an unlinked file.
const deletedSuffix = " (deleted)"

// ProcessMappings reads <procRoot>/<pid>/maps and returns the file-backed
// mappings (skips anonymous, [heap], [stack], [vdso], etc.).
func ProcessMappings(procRoot string, pid int) ([]Mapping, error) {
	p := filepath.Join(procRoot, strconv.Itoa(pid), "maps")
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read maps: %w", err)
	}
	maps, err := parseMaps(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	return maps, nil
}

// parseMaps parses the text of a maps file, keeping file-backed mappings.
func parseMaps(data []byte) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	// A line holds a path of up to PATH_MAX bytes plus the fixed fields.
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		m, ok, err := parseMapsLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// parseMapsLine parses one maps line. ok is false for mappings without a
// file (anonymous, [heap], [stack], [vdso], [anon:name], ...).
func parseMapsLine(line string) (m Mapping, ok bool, err error) {
	// Five space-separated fields, then padding and the path, which may
	// itself contain spaces.
	var f [5]string
	rest := line
	for i := range f {
		rest = strings.TrimLeft(rest, " ")
		var found bool
		f[i], rest, found = strings.Cut(rest, " ")
		if f[i] == "" || (!found && i < len(f)-1) {
			return Mapping{}, false, fmt.Errorf("too few fields in %q", line)
		}
	}
	start, end, found := strings.Cut(f[0], "-")
	if !found {
		return Mapping{}, false, fmt.Errorf("bad address range %q", f[0])
	}
	if m.Start, err = strconv.ParseUint(start, 16, 64); err != nil {
		return Mapping{}, false, fmt.Errorf("bad start address: %w", err)
	}
	if m.End, err = strconv.ParseUint(end, 16, 64); err != nil {
		return Mapping{}, false, fmt.Errorf("bad end address: %w", err)
	}
	if m.Offset, err = strconv.ParseUint(f[2], 16, 64); err != nil {
		return Mapping{}, false, fmt.Errorf("bad offset: %w", err)
	}
	if m.Inode, err = strconv.ParseUint(f[4], 10, 64); err != nil {
		return Mapping{}, false, fmt.Errorf("bad inode: %w", err)
	}
	m.Perms, m.Dev = f[1], f[3]
	m.Path = strings.TrimLeft(rest, " ")
	// Only absolute paths name files; the rest are pseudo-paths or empty.
	if !strings.HasPrefix(m.Path, "/") {
		return Mapping{}, false, nil
	}
	if p, cut := strings.CutSuffix(m.Path, deletedSuffix); cut {
		m.Path, m.Deleted = p, true
	}
	return m, true, nil
}

// Libraries returns one mapping per distinct file (Path+Inode) whose base
// name matches any of the glob patterns (path.Match on the base name, e.g.
// "libcudart.so*", "libpython3*.so*"), preferring the executable (x)
// mapping; order of first appearance. Malformed patterns match nothing.
func Libraries(maps []Mapping, patterns ...string) []Mapping {
	type key struct {
		path  string
		inode uint64
	}
	var out []Mapping
	idx := map[key]int{}
	for _, m := range maps {
		if !matchAny(path.Base(m.Path), patterns) {
			continue
		}
		k := key{m.Path, m.Inode}
		i, seen := idx[k]
		switch {
		case !seen:
			idx[k] = len(out)
			out = append(out, m)
		case !executable(out[i]) && executable(m):
			out[i] = m
		}
	}
	return out
}

func matchAny(name string, patterns []string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

func executable(m Mapping) bool { return len(m.Perms) > 2 && m.Perms[2] == 'x' }

// OpenPath returns a path through which the agent (in the host mount
// namespace) can open the mapping's file: <procRoot>/<pid>/root<Path> when
// that exists and has the same inode; otherwise
// <procRoot>/<pid>/map_files/<start>-<end> (hex, as the kernel names them;
// used for deleted files or when root is not usable). Returns an error when
// neither works.
func OpenPath(procRoot string, pid int, m Mapping) (string, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	viaRoot := filepath.Join(dir, "root", m.Path)
	errRoot := sameInode(viaRoot, m.Inode)
	if errRoot == nil {
		return viaRoot, nil
	}
	// map_files needs CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE) but still
	// reaches files that were deleted or live in another mount namespace.
	viaMapFiles := filepath.Join(dir, "map_files", fmt.Sprintf("%x-%x", m.Start, m.End))
	errMapFiles := sameInode(viaMapFiles, m.Inode)
	if errMapFiles == nil {
		return viaMapFiles, nil
	}
	return "", fmt.Errorf("no usable path to %s of pid %d: %w", m.Path, pid, errors.Join(errRoot, errMapFiles))
}

// ExePath is OpenPath for the process's main executable: it prefers
// <procRoot>/<pid>/root + readlink(exe) when the inode matches, else
// <procRoot>/<pid>/exe itself.
func ExePath(procRoot string, pid int) (string, error) {
	exe := filepath.Join(procRoot, strconv.Itoa(pid), "exe")
	ino, err := inodeOf(exe)
	if err != nil {
		return "", fmt.Errorf("executable of pid %d: %w", pid, err)
	}
	if target, err := os.Readlink(exe); err == nil && strings.HasPrefix(target, "/") {
		target = strings.TrimSuffix(target, deletedSuffix)
		viaRoot := filepath.Join(procRoot, strconv.Itoa(pid), "root", target)
		if sameInode(viaRoot, ino) == nil {
			return viaRoot, nil
		}
	}
	return exe, nil
}

// sameInode checks that p exists and is the file with inode ino. Only the
// inode is compared: overlayfs reports a different device than the maps
// line for the same file.
func sameInode(p string, ino uint64) error {
	got, err := inodeOf(p)
	if err != nil {
		return err
	}
	if got != ino {
		return fmt.Errorf("%s: inode %d, want %d", p, got, ino)
	}
	return nil
}

func inodeOf(p string) (uint64, error) {
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no inode in stat", p)
	}
	return sys.Ino, nil
}
