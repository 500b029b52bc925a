package probes

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agaobs/agaobs/internal/testutil"
)

func TestParseMapsLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Mapping
		wantOK  bool
		wantErr bool
	}{
		{
			name:   "executable",
			line:   "55d0c8a00000-55d0c8a21000 r-xp 0001f000 fd:01 1234567                    /usr/bin/python3.11",
			want:   Mapping{0x55d0c8a00000, 0x55d0c8a21000, 0x1f000, "r-xp", "fd:01", 1234567, "/usr/bin/python3.11", false},
			wantOK: true,
		},
		{
			name:   "deleted",
			line:   "7f1c2a000000-7f1c2a001000 r-xp 00001000 fd:01 42                         /tmp/libold.so (deleted)",
			want:   Mapping{0x7f1c2a000000, 0x7f1c2a001000, 0x1000, "r-xp", "fd:01", 42, "/tmp/libold.so", true},
			wantOK: true,
		},
		{
			name:   "spaces in path",
			line:   "7f1c2a000000-7f1c2a001000 r--p 00000000 00:2f 7  /opt/my app/lib  x.so",
			want:   Mapping{0x7f1c2a000000, 0x7f1c2a001000, 0, "r--p", "00:2f", 7, "/opt/my app/lib  x.so", false},
			wantOK: true,
		},
		{
			name:   "spaces and deleted",
			line:   "1000-2000 r-xp 00000000 08:02 9 /a b/c (deleted)",
			want:   Mapping{0x1000, 0x2000, 0, "r-xp", "08:02", 9, "/a b/c", true},
			wantOK: true,
		},
		{
			name:   "deleted-like name",
			line:   "1000-2000 r-xp 00000000 08:02 9 /tmp/x(deleted)",
			want:   Mapping{0x1000, 0x2000, 0, "r-xp", "08:02", 9, "/tmp/x(deleted)", false},
			wantOK: true,
		},
		{
			name:   "memfd",
			line:   "7f0000000000-7f0000100000 rw-s 00000000 00:01 2049                       /memfd:ring (deleted)",
			want:   Mapping{0x7f0000000000, 0x7f0000100000, 0, "rw-s", "00:01", 2049, "/memfd:ring", true},
			wantOK: true,
		},
		{name: "anonymous", line: "7ffd1c0e1000-7ffd1c102000 rw-p 00000000 00:00 0"},
		{name: "anonymous padded", line: "7ffd1c0e1000-7ffd1c102000 rw-p 00000000 00:00 0   "},
		{name: "heap", line: "55d0c9b4e000-55d0c9b6f000 rw-p 00000000 00:00 0                          [heap]"},
		{name: "stack", line: "7ffd1c0e1000-7ffd1c102000 rw-p 00000000 00:00 0                          [stack]"},
		{name: "vdso", line: "7ffd1c1f4000-7ffd1c1f6000 r-xp 00000000 00:00 0                          [vdso]"},
		{name: "vsyscall", line: "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]"},
		{name: "named anonymous", line: "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 [anon:go heap]"},
		{name: "garbage", line: "garbage", wantErr: true},
		{name: "too few fields", line: "1000-2000 r--p 00000000", wantErr: true},
		{name: "bad address", line: "zz-2000 r--p 00000000 08:02 9 /x", wantErr: true},
		{name: "no range", line: "1000 r--p 00000000 08:02 9 /x", wantErr: true},
		{name: "bad offset", line: "1000-2000 r--p 0x0g 08:02 9 /x", wantErr: true},
		{name: "bad inode", line: "1000-2000 r--p 00000000 08:02 -9 /x", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := parseMapsLine(tc.line)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestParseMaps(t *testing.T) {
	text := "1000-2000 r--p 00000000 08:02 9 /lib/a.so\n" +
		"2000-3000 rw-p 00000000 00:00 0 \n" +
		"\n" +
		"3000-4000 r-xp 00001000 08:02 9 /lib/a.so\n"
	got, err := parseMaps([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Start != 0x1000 || got[1].Start != 0x3000 {
		t.Errorf("got %+v", got)
	}
	_, err = parseMaps([]byte(text + "bad line\n"))
	if err == nil || !strings.Contains(err.Error(), "line 5") {
		t.Errorf("err = %v, want one naming line 5", err)
	}
}

func TestLibraries(t *testing.T) {
	m := func(start uint64, perms, path string, inode uint64) Mapping {
		return Mapping{Start: start, End: start + 0x1000, Perms: perms, Dev: "08:02", Inode: inode, Path: path}
	}
	maps := []Mapping{
		m(0x1000, "r--p", "/usr/bin/python3.11", 1),
		m(0x2000, "r-xp", "/usr/bin/python3.11", 1),
		m(0x3000, "r--p", "/usr/lib/libcudart.so.12.4.127", 2),
		m(0x4000, "r-xp", "/usr/lib/libcudart.so.12.4.127", 2),
		m(0x5000, "r--p", "/usr/lib/libcudart.so.12.4.127", 2),
		m(0x6000, "r--p", "/usr/lib/libc.so.6", 3),
		m(0x7000, "r-xp", "/usr/lib/libc.so.6", 3),
		m(0x8000, "r--p", "/usr/lib/libpython3.11.so.1.0", 4),
		m(0x9000, "r--p", "/usr/lib/libcudart.so.12.4.127", 5), // replaced on disk, loaded again
		m(0xa000, "r-xp", "/usr/lib/libcudart.so.12.4.127", 5),
		m(0xb000, "r--p", "/data/libcuda.so.1", 6), // no executable mapping
	}
	tests := []struct {
		name      string
		patterns  []string
		wantStart []uint64
	}{
		{"none", nil, nil},
		{"no match", []string{"libfoo*"}, nil},
		{"prefers executable", []string{"libc.so*"}, []uint64{0x7000}},
		{"dedupe by path and inode", []string{"libcudart.so*"}, []uint64{0x4000, 0xa000}},
		{"first appearance order", []string{"libc.so*", "libcuda*"}, []uint64{0x4000, 0x7000, 0xa000, 0xb000}},
		{"base name only", []string{"/usr/lib/libc.so*", "python3*"}, []uint64{0x2000}},
		{"python", []string{"libpython3*.so*"}, []uint64{0x8000}},
		{"bad pattern", []string{"[", "libc.so.6"}, []uint64{0x7000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Libraries(maps, tc.patterns...)
			var starts []uint64
			for _, g := range got {
				starts = append(starts, g.Start)
			}
			if !equalUints(starts, tc.wantStart) {
				t.Errorf("starts %#x, want %#x", starts, tc.wantStart)
			}
		})
	}
}

func equalUints(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// selfLibc returns the test process's libc mapping. A cgo-free test binary
// is linked statically and maps no libc (plain `go test`; -race links
// libc), so the test is skipped there.
func selfLibc(t *testing.T) Mapping {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dynamic := false
	for _, p := range f.Progs {
		dynamic = dynamic || p.Type == elf.PT_INTERP
	}
	if !dynamic {
		t.Skip("test binary is statically linked: no libc mapped (run with -race or cgo)")
	}
	maps, err := ProcessMappings("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	libs := Libraries(maps, "libc.so*")
	if len(libs) != 1 {
		t.Fatalf("Libraries(libc.so*) = %+v, want one", libs)
	}
	return libs[0]
}

func TestProcessMappingsSelf(t *testing.T) {
	maps, err := ProcessMappings("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exeIno := inode(t, exe)
	found := false
	for _, m := range maps {
		if !strings.HasPrefix(m.Path, "/") {
			t.Errorf("mapping without a file: %+v", m)
		}
		found = found || (m.Inode == exeIno && filepath.Base(m.Path) == filepath.Base(exe))
	}
	if !found {
		t.Errorf("test binary %s (inode %d) not among %+v", exe, exeIno, maps)
	}

	t.Run("libc", func(t *testing.T) {
		libc := selfLibc(t)
		if !executable(libc) {
			t.Errorf("libc mapping %+v is not the executable one", libc)
		}
	})

	t.Run("no such process", func(t *testing.T) {
		if _, err := ProcessMappings(t.TempDir(), 1); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want ErrNotExist", err)
		}
	})
}

func TestOpenPathSelfLibc(t *testing.T) {
	libc := selfLibc(t)
	p, err := OpenPath("/proc", os.Getpid(), libc)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/proc/" + strconv.Itoa(os.Getpid()) + "/root/"; !strings.HasPrefix(p, want) {
		t.Errorf("OpenPath = %s, want it under %s", p, want)
	}
	if got := inode(t, p); got != libc.Inode {
		t.Errorf("%s has inode %d, want %d", p, got, libc.Inode)
	}
}

// fakeProc lays out <root>/<pid>/{root,map_files} for one library whose
// real file is lib; root/usr/lib/libx.so is what the test puts there.
type fakeProc struct {
	procRoot, lib string
	m             Mapping
}

func newFakeProc(t *testing.T) fakeProc {
	t.Helper()
	dir := t.TempDir()
	lib := filepath.Join(dir, "libx.so")
	if err := os.WriteFile(lib, []byte("lib"), 0o644); err != nil {
		t.Fatal(err)
	}
	procRoot := filepath.Join(dir, "proc")
	for _, d := range []string{"123/root/usr/lib", "123/map_files"} {
		if err := os.MkdirAll(filepath.Join(procRoot, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := Mapping{Start: 0x7f0000001000, End: 0x7f000000a000, Perms: "r-xp", Inode: inode(t, lib), Path: "/usr/lib/libx.so"}
	return fakeProc{procRoot: procRoot, lib: lib, m: m}
}

func TestOpenPathFake(t *testing.T) {
	const pid = 123
	tests := []struct {
		name    string
		root    string // what root/usr/lib/libx.so is: "link" (same inode), "other", ""
		mapFile bool   // map_files/<range> exists (a hard link to lib)
		deleted bool
		want    string // relative to procRoot; "" for an error
	}{
		{"root", "link", true, false, "123/root/usr/lib/libx.so"},
		{"root without map_files", "link", false, false, "123/root/usr/lib/libx.so"},
		{"replaced on disk", "other", true, false, "123/map_files/7f0000001000-7f000000a000"},
		{"deleted", "", true, true, "123/map_files/7f0000001000-7f000000a000"},
		{"neither", "other", false, false, ""},
		{"nothing", "", false, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fp := newFakeProc(t)
			inRoot := filepath.Join(fp.procRoot, "123/root/usr/lib/libx.so")
			switch tc.root {
			case "link":
				if err := os.Link(fp.lib, inRoot); err != nil {
					t.Fatal(err)
				}
			case "other":
				if err := os.WriteFile(inRoot, []byte("other"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.mapFile {
				if err := os.Link(fp.lib, filepath.Join(fp.procRoot, "123/map_files/7f0000001000-7f000000a000")); err != nil {
					t.Fatal(err)
				}
			}
			m := fp.m
			m.Deleted = tc.deleted
			got, err := OpenPath(fp.procRoot, pid, m)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("OpenPath = %s, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(fp.procRoot, tc.want); got != want {
				t.Errorf("OpenPath = %s, want %s", got, want)
			}
		})
	}
}

// TestOpenPathDeletedMapFiles maps a file, deletes it, and reads it back
// through map_files, which needs root (CAP_SYS_ADMIN or
// CAP_CHECKPOINT_RESTORE).
func TestOpenPathDeletedMapFiles(t *testing.T) {
	testutil.RequireRoot(t)
	content := bytes.Repeat([]byte("agaobs map_files\n"), 1000)
	p := filepath.Join(t.TempDir(), "libdeleted.so")
	if err := os.WriteFile(p, content, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, len(content), unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
	if errors.Is(err, unix.EPERM) {
		// A noexec temp directory: a read-only mapping is as good here.
		mem, err = unix.Mmap(int(f.Fd()), 0, len(content), unix.PROT_READ, unix.MAP_PRIVATE)
	}
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	defer func() {
		if err := unix.Munmap(mem); err != nil {
			t.Error(err)
		}
	}()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}

	maps, err := ProcessMappings("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	libs := Libraries(maps, "libdeleted.so")
	if len(libs) != 1 || !libs[0].Deleted || libs[0].Path != p {
		t.Fatalf("Libraries(libdeleted.so) = %+v, want one deleted mapping of %s", libs, p)
	}
	got, err := OpenPath("/proc", os.Getpid(), libs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "/map_files/") {
		t.Errorf("OpenPath = %s, want a map_files path", got)
	}
	data, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, content) {
		t.Errorf("read %d bytes through %s, want the %d written", len(data), got, len(content))
	}
}

func TestExePathSelf(t *testing.T) {
	got, err := ExePath("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/proc/" + strconv.Itoa(os.Getpid()) + "/root/"; !strings.HasPrefix(got, want) {
		t.Errorf("ExePath = %s, want it under %s", got, want)
	}
	if inode(t, got) != inode(t, exe) {
		t.Errorf("ExePath = %s, not the inode of %s", got, exe)
	}
}

func TestExePathFake(t *testing.T) {
	tests := []struct {
		name    string
		target  string // exe's link target inside dir; "" for no exe
		root    string // "host" (root links to /) or "other" (a different tree)
		wantExe bool   // else the root path
		wantErr bool
	}{
		{name: "root", target: "bin/prog", root: "host"},
		{name: "other root", target: "bin/prog", root: "other", wantExe: true},
		{name: "deleted", target: "bin/prog (deleted)", root: "host", wantExe: true},
		{name: "no exe", root: "host", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pidDir := filepath.Join(dir, "proc", "7")
			for _, d := range []string{pidDir, filepath.Join(dir, "bin"), filepath.Join(dir, "other", dir, "bin")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// In the other tree the same path is a different file.
			if err := os.WriteFile(filepath.Join(dir, "other", dir, "bin", "prog"), nil, 0o755); err != nil {
				t.Fatal(err)
			}
			rootTarget := "/"
			if tc.root == "other" {
				rootTarget = filepath.Join(dir, "other")
			}
			if err := os.Symlink(rootTarget, filepath.Join(pidDir, "root")); err != nil {
				t.Fatal(err)
			}
			if tc.target != "" {
				target := filepath.Join(dir, tc.target)
				if err := os.WriteFile(target, []byte("prog"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(pidDir, "exe")); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ExePath(filepath.Join(dir, "proc"), 7)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ExePath = %q, %v; wantErr %v", got, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			want := filepath.Join(pidDir, "root", dir, "bin", "prog")
			if tc.wantExe {
				want = filepath.Join(pidDir, "exe")
			}
			if got != want {
				t.Errorf("ExePath = %s, want %s", got, want)
			}
		})
	}
}
