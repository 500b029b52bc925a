package probes

import (
	"debug/elf"
	"errors"
	"fmt"
	"strings"
)

// DefinedSymbols reports which of names are defined functions (STT_FUNC or
// STT_GNU_IFUNC, with a non-zero value, in .dynsym or .symtab) in the ELF at
// path. Versioned names like "cudaStreamSynchronize@@libcudart.so.12" count
// as the bare name. Every name is a key of the result.
func DefinedSymbols(path string, names ...string) (map[string]bool, error) {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = false
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("elf %s: %w", path, err)
	}
	defer f.Close()
	tables := []struct {
		name string
		read func() ([]elf.Symbol, error)
	}{
		{".dynsym", f.DynamicSymbols},
		{".symtab", f.Symbols},
	}
	for _, tab := range tables {
		syms, err := tab.read()
		if errors.Is(err, elf.ErrNoSymbols) {
			continue // stripped, or static: the other table may still have it
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", path, tab.name, err)
		}
		for _, s := range syms {
			if !definedFunc(s) {
				continue
			}
			if _, want := out[bareName(s.Name)]; want {
				out[bareName(s.Name)] = true
			}
		}
	}
	return out, nil
}

// definedFunc reports whether s is a function with code in this file. An
// executable's undefined function can carry its PLT address as value, so the
// section index is checked as well.
func definedFunc(s elf.Symbol) bool {
	t := elf.ST_TYPE(s.Info)
	return (t == elf.STT_FUNC || t == elf.STT_GNU_IFUNC) && s.Value != 0 && s.Section != elf.SHN_UNDEF
}

// bareName strips a symbol version ("name@VER" or "name@@VER"), which
// .symtab keeps in the name.
func bareName(name string) string {
	if i := strings.IndexByte(name, '@'); i > 0 {
		return name[:i]
	}
	return name
}
