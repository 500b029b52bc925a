package probes

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agaobs/agaobs/internal/testutil"
)

// buildC compiles testdata/src with gcc into t.TempDir() and returns the
// output's path.
func buildC(t *testing.T, src, out string, flags ...string) string {
	t.Helper()
	gcc := testutil.RequireTool(t, "gcc")
	dst := filepath.Join(t.TempDir(), out)
	args := append([]string{"-O1", "-Wall", "-Werror"}, flags...)
	args = append(args, "-o", dst, filepath.Join("testdata", src))
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return dst
}

// symbolFileOffset finds a symbol in .symtab and converts its value to a
// file offset through its section header, a route independent of the
// PT_LOAD conversion the code under test uses.
func symbolFileOffset(t *testing.T, f *elf.File, name string) uint64 {
	t.Helper()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatalf("symbols: %v", err)
	}
	for _, s := range syms {
		if s.Name != name {
			continue
		}
		if int(s.Section) <= 0 || int(s.Section) >= len(f.Sections) {
			t.Fatalf("symbol %s in section %v", name, s.Section)
		}
		sec := f.Sections[s.Section]
		return sec.Offset + (s.Value - sec.Addr)
	}
	t.Fatalf("symbol %s not found", name)
	return 0
}

func TestReadUSDTFixture(t *testing.T) {
	builds := []struct {
		name  string
		flags []string
	}{
		{"pie", []string{"-fPIE", "-pie"}},
		{"nopie", []string{"-fno-pie", "-no-pie"}},
		{"shared", []string{"-fPIC", "-shared", "-DFIXTURE_LIB"}},
	}
	want := []struct {
		name, args string
		sema       string // semaphore symbol, "" for none
	}{
		{"with_sem", "-4@%edi 8@%rsi", "fixture_with_sem_semaphore"},
		{"no_sem", "8@%rax", ""},
		{"prelinked", "", "fixture_prelinked_semaphore"},
	}
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			bin := buildC(t, "usdt_fixture.c", "fixture_"+b.name, b.flags...)
			probes, err := ReadUSDT(bin)
			if err != nil {
				t.Fatalf("ReadUSDT: %v", err)
			}
			if len(probes) != len(want) {
				t.Fatalf("got %d probes, want %d: %+v", len(probes), len(want), probes)
			}
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			raw, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range want {
				p, ok := FindUSDT(probes, "fixture", w.name)
				if !ok {
					t.Errorf("probe fixture:%s missing from %+v", w.name, probes)
					continue
				}
				if p.Args != w.args {
					t.Errorf("%s: Args %q, want %q", w.name, p.Args, w.args)
				}
				if loc := symbolFileOffset(t, f, "usdt_site_"+w.name); p.Location != loc {
					t.Errorf("%s: Location %#x, want %#x", w.name, p.Location, loc)
				}
				if p.Location >= uint64(len(raw)) || raw[p.Location] != 0x90 {
					t.Errorf("%s: no nop at file offset %#x", w.name, p.Location)
				}
				var sema uint64
				if w.sema != "" {
					sema = symbolFileOffset(t, f, w.sema)
				}
				if p.Semaphore != sema {
					t.Errorf("%s: Semaphore %#x, want %#x", w.name, p.Semaphore, sema)
				}
			}
		})
	}
}

// TestReadUSDTPython checks Debian's python3.11, which is built with
// --with-dtrace; an extra check where that build is installed.
func TestReadUSDTPython(t *testing.T) {
	const python = "/usr/bin/python3.11"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s: %v", python, err)
	}
	probes, err := ReadUSDT(python)
	if err != nil {
		t.Fatalf("ReadUSDT: %v", err)
	}
	f, err := elf.Open(python)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Section headers give the file ranges independently of PT_LOAD.
	within := func(off uint64, section string) bool {
		s := f.Section(section)
		return s != nil && off >= s.Offset && off < s.Offset+s.Size
	}
	// All of Debian's python probes have semaphores.
	for _, name := range []string{"gc__start", "gc__done", "function__entry"} {
		p, ok := FindUSDT(probes, "python", name)
		if !ok {
			t.Errorf("python:%s not found", name)
			continue
		}
		if !within(p.Location, ".text") {
			t.Errorf("python:%s: Location %#x not in .text", name, p.Location)
		}
		if !within(p.Semaphore, ".probes") {
			t.Errorf("python:%s: Semaphore %#x not in .probes", name, p.Semaphore)
		}
	}
}

func TestReadUSDTNoNotes(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	probes, err := ReadUSDT(exe)
	if err != nil || probes != nil {
		t.Fatalf("ReadUSDT(test binary) = %v, %v; want nil, nil", probes, err)
	}
	notELF := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(notELF, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadUSDT(notELF); err == nil {
		t.Fatal("ReadUSDT(non-ELF) succeeded")
	}
}

// note builds one ELF note in little-endian order.
func note(name string, typ uint32, desc []byte) []byte {
	le := binary.LittleEndian
	nameb := append([]byte(name), 0)
	b := le.AppendUint32(nil, uint32(len(nameb)))
	b = le.AppendUint32(b, uint32(len(desc)))
	b = le.AppendUint32(b, typ)
	b = append(b, nameb...)
	b = append(b, make([]byte, int(align4(uint64(len(b))))-len(b))...)
	b = append(b, desc...)
	return append(b, make([]byte, int(align4(uint64(len(b))))-len(b))...)
}

func sdtDesc(pc, base, sema uint64, strs string) []byte {
	le := binary.LittleEndian
	b := le.AppendUint64(nil, pc)
	b = le.AppendUint64(b, base)
	b = le.AppendUint64(b, sema)
	return append(b, strs...)
}

func TestParseSDTNotes(t *testing.T) {
	good := note("stapsdt", 3, sdtDesc(0x1000, 0x2000, 0x3000, "prov\x00name\x00args x\x00"))
	tests := []struct {
		name    string
		data    []byte
		want    []sdtNote
		wantErr bool
	}{
		{"empty", nil, nil, false},
		{"one", good, []sdtNote{{0x1000, 0x2000, 0x3000, "prov", "name", "args x"}}, false},
		{
			"other notes skipped",
			append(append(note("GNU", 3, []byte{1, 2, 3, 4}), note("stapsdt", 4, []byte{0})...), good...),
			[]sdtNote{{0x1000, 0x2000, 0x3000, "prov", "name", "args x"}},
			false,
		},
		{"empty args", note("stapsdt", 3, sdtDesc(1, 2, 0, "p\x00n\x00\x00")), []sdtNote{{1, 2, 0, "p", "n", ""}}, false},
		{"truncated header", good[:8], nil, true},
		{"truncated desc", good[:len(good)-8], nil, true},
		{"short desc", note("stapsdt", 3, make([]byte, 20)), nil, true},
		{"unterminated", note("stapsdt", 3, sdtDesc(1, 2, 0, "p\x00n\x00args")), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSDTNotes(tc.data, binary.LittleEndian, 8)
			checkNotes(t, got, err, tc.want, tc.wantErr)
		})
	}
	t.Run("32-bit", func(t *testing.T) {
		elf32 := note("stapsdt", 3, []byte("\x10\x00\x00\x00\x20\x00\x00\x00\x00\x00\x00\x00p\x00n\x00a\x00"))
		got, err := parseSDTNotes(elf32, binary.LittleEndian, 4)
		checkNotes(t, got, err, []sdtNote{{0x10, 0x20, 0, "p", "n", "a"}}, false)
	})
}

func checkNotes(t *testing.T, got []sdtNote, err error, want []sdtNote, wantErr bool) {
	t.Helper()
	if (err != nil) != wantErr {
		t.Fatalf("err = %v, wantErr %v", err, wantErr)
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("note %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFileOffset(t *testing.T) {
	progs := []*elf.Prog{
		{ProgHeader: elf.ProgHeader{Type: elf.PT_PHDR, Vaddr: 0x400040, Off: 0x40, Memsz: 0x100}},
		{ProgHeader: elf.ProgHeader{Type: elf.PT_LOAD, Vaddr: 0x400000, Off: 0, Memsz: 0x1000}},
		{ProgHeader: elf.ProgHeader{Type: elf.PT_LOAD, Vaddr: 0x401000, Off: 0x1000, Memsz: 0x500}},
		{ProgHeader: elf.ProgHeader{Type: elf.PT_LOAD, Vaddr: 0x403e38, Off: 0x2e38, Memsz: 0x1e0}},
	}
	tests := []struct {
		addr, want uint64
		wantErr    bool
	}{
		{0x400050, 0x50, false},
		{0x401010, 0x1010, false},
		{0x403f00, 0x2f00, false},
		{0x401500, 0, true}, // just past the text segment
		{0x10, 0, true},
	}
	for _, tc := range tests {
		got, err := fileOffset(progs, tc.addr)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("fileOffset(%#x) = %#x, %v; want %#x, err %v", tc.addr, got, err, tc.want, tc.wantErr)
		}
	}
}
