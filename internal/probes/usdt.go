package probes

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// USDTProbe is one SystemTap SDT probe from an ELF file's .note.stapsdt.
type USDTProbe struct {
	Provider, Name string
	Location       uint64 // FILE OFFSET of the probe site (for cilium/ebpf link.UprobeOptions.Address)
	Semaphore      uint64 // FILE OFFSET of its semaphore (for UprobeOptions.RefCtrOffset); 0 when it has none
	Args           string // the note's argument string, as written
}

const (
	sdtNoteSection = ".note.stapsdt"
	sdtBaseSection = ".stapsdt.base"
	sdtNoteName    = "stapsdt"
	sdtNoteType    = 3
)

// sdtNote is a note's descriptor as recorded, with virtual addresses.
type sdtNote struct {
	pc, base, sema       uint64
	provider, name, args string
}

// ReadUSDT parses every probe of path's .note.stapsdt (an executable or a
// shared library). It handles prelink adjustment (.stapsdt.base actual vs.
// recorded address) and converts virtual addresses to file offsets through
// the PT_LOAD program headers. A file without notes returns (nil, nil).
func ReadUSDT(path string) ([]USDTProbe, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("elf %s: %w", path, err)
	}
	defer f.Close()
	probes, err := readUSDT(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return probes, nil
}

// FindUSDT returns the probe provider:name or false.
func FindUSDT(probes []USDTProbe, provider, name string) (USDTProbe, bool) {
	for _, p := range probes {
		if p.Provider == provider && p.Name == name {
			return p, true
		}
	}
	return USDTProbe{}, false
}

func readUSDT(f *elf.File) ([]USDTProbe, error) {
	addrSize := 8
	if f.Class == elf.ELFCLASS32 {
		addrSize = 4
	}
	// Prelink moves the image after the notes were written; the notes keep
	// the link-time address of .stapsdt.base, the section its new one.
	var actualBase uint64
	if s := f.Section(sdtBaseSection); s != nil {
		actualBase = s.Addr
	}
	var probes []USDTProbe
	for _, s := range f.Sections {
		if s.Name != sdtNoteSection || s.Type != elf.SHT_NOTE {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", sdtNoteSection, err)
		}
		notes, err := parseSDTNotes(data, f.ByteOrder, addrSize)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", sdtNoteSection, err)
		}
		for _, n := range notes {
			p, err := n.probe(f.Progs, actualBase)
			if err != nil {
				return nil, fmt.Errorf("probe %s:%s: %w", n.provider, n.name, err)
			}
			probes = append(probes, p)
		}
	}
	return probes, nil
}

// probe converts the note's virtual addresses to file offsets.
func (n sdtNote) probe(progs []*elf.Prog, actualBase uint64) (USDTProbe, error) {
	pc, sema := n.pc, n.sema
	if actualBase != 0 && n.base != 0 {
		// Unsigned wrap-around makes this right whichever way it moved.
		pc += actualBase - n.base
		if sema != 0 {
			sema += actualBase - n.base
		}
	}
	p := USDTProbe{Provider: n.provider, Name: n.name, Args: n.args}
	var err error
	if p.Location, err = fileOffset(progs, pc); err != nil {
		return USDTProbe{}, fmt.Errorf("location: %w", err)
	}
	if sema != 0 {
		if p.Semaphore, err = fileOffset(progs, sema); err != nil {
			return USDTProbe{}, fmt.Errorf("semaphore: %w", err)
		}
	}
	return p, nil
}

// fileOffset maps a virtual address to its offset in the file through the
// PT_LOAD segment that contains it.
func fileOffset(progs []*elf.Prog, addr uint64) (uint64, error) {
	for _, p := range progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr-p.Vaddr < p.Memsz {
			return addr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("address %#x is in no PT_LOAD segment", addr)
}

// parseSDTNotes decodes the notes of a .note.stapsdt section: the standard
// note header (namesz, descsz, type, 4-byte aligned name and descriptor)
// whose descriptor is pc, base, semaphore, then "provider\0name\0args\0".
// Notes of another owner or type are skipped.
func parseSDTNotes(data []byte, bo binary.ByteOrder, addrSize int) ([]sdtNote, error) {
	var notes []sdtNote
	for off := 0; off < len(data); {
		if len(data)-off < 12 {
			return nil, fmt.Errorf("truncated note header at %#x", off)
		}
		namesz := uint64(bo.Uint32(data[off:]))
		descsz := uint64(bo.Uint32(data[off+4:]))
		typ := bo.Uint32(data[off+8:])
		nameOff := uint64(off) + 12
		descOff := nameOff + align4(namesz)
		end := descOff + align4(descsz)
		if end > uint64(len(data)) || descOff+descsz > uint64(len(data)) {
			return nil, fmt.Errorf("note at %#x overruns the section", off)
		}
		name := string(bytes.TrimRight(data[nameOff:nameOff+namesz], "\x00"))
		if name == sdtNoteName && typ == sdtNoteType {
			n, err := parseSDTDesc(data[descOff:descOff+descsz], bo, addrSize)
			if err != nil {
				return nil, fmt.Errorf("note at %#x: %w", off, err)
			}
			notes = append(notes, n)
		}
		off = int(end)
	}
	return notes, nil
}

func parseSDTDesc(desc []byte, bo binary.ByteOrder, addrSize int) (sdtNote, error) {
	if len(desc) < 3*addrSize {
		return sdtNote{}, fmt.Errorf("descriptor of %d bytes is too short", len(desc))
	}
	addr := func(i int) uint64 {
		b := desc[i*addrSize:]
		if addrSize == 4 {
			return uint64(bo.Uint32(b))
		}
		return bo.Uint64(b)
	}
	n := sdtNote{pc: addr(0), base: addr(1), sema: addr(2)}
	strs := desc[3*addrSize:]
	for _, dst := range []*string{&n.provider, &n.name, &n.args} {
		s, rest, ok := bytes.Cut(strs, []byte{0})
		if !ok {
			return sdtNote{}, fmt.Errorf("unterminated string in descriptor")
		}
		*dst, strs = string(s), rest
	}
	return n, nil
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }
