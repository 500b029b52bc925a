package probes

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefinedSymbolsFixture(t *testing.T) {
	// .symver in the fixture needs the version node to exist.
	vmap := filepath.Join(t.TempDir(), "cudart.map")
	if err := os.WriteFile(vmap, []byte("libcudart.so.12 { global: *; };\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	builds := []struct {
		name  string
		flags []string
	}{
		{"shared", []string{"-fPIC", "-shared", "-Wl,-soname,libcudart.so.12"}},
		{"exe", []string{"-fno-pie", "-no-pie", "-DFIXTURE_EXE"}},
	}
	want := map[string]bool{
		"cudaStreamSynchronize": true,
		"cuGraphLaunch":         true,
		"cudaLaunchKernel":      true,  // STT_GNU_IFUNC
		"cudaEventSynchronize":  true,  // .symtab: "cudaEventSynchronize@@libcudart.so.12"
		"puts":                  false, // undefined (in the exe with its PLT address as value)
		"cudaDataNotFunc":       false, // an object
		"cudaNoSuchSymbol":      false,
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			flags := append([]string{"-Wl,--version-script=" + vmap}, b.flags...)
			bin := buildC(t, "elfsym_fixture.c", "elfsym_"+b.name, flags...)
			got, err := DefinedSymbols(bin, names...)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("got %d names, want %d: %v", len(got), len(want), got)
			}
			for n, w := range want {
				if v, ok := got[n]; !ok || v != w {
					t.Errorf("%s: got %v (present %v), want %v", n, v, ok, w)
				}
			}
		})
	}
}

func TestDefinedSymbolsLibc(t *testing.T) {
	libc := selfLibc(t)
	p, err := OpenPath("/proc", os.Getpid(), libc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DefinedSymbols(p, "malloc", "agaobs_not_in_libc")
	if err != nil {
		t.Fatal(err)
	}
	if !got["malloc"] || got["agaobs_not_in_libc"] {
		t.Errorf("DefinedSymbols(%s) = %v, want malloc only", p, got)
	}
}

func TestDefinedSymbolsErrors(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(notELF, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{notELF, filepath.Join(t.TempDir(), "missing")} {
		if _, err := DefinedSymbols(p, "malloc"); err == nil {
			t.Errorf("DefinedSymbols(%s) succeeded", p)
		}
	}
}

func TestBareName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"cudaStreamSynchronize", "cudaStreamSynchronize"},
		{"cudaStreamSynchronize@@libcudart.so.12", "cudaStreamSynchronize"},
		{"memcpy@GLIBC_2.2.5", "memcpy"},
		{"@odd", "@odd"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := bareName(tc.in); got != tc.want {
			t.Errorf("bareName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
