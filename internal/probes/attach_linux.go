//go:build linux

package probes

import (
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// candidate is a file of a producer process a probe may hook.
type candidate struct {
	open string // path the agent opens (through /proc/<pid>/root or map_files)
	key  string // identity for de-duplication: device, inode
}

// scan attaches every enabled uprobe probe to what the producer has
// mapped now. Files already handled are skipped, so a rescan only adds
// libraries loaded since (dlopen of libcudart after start). It returns an
// error only for a failure bpf_require makes fatal.
func (m *Manager) scan(t *target) error {
	maps, err := ProcessMappings(m.opts.ProcRoot, t.pid)
	if err != nil {
		return nil // the process is gone; the next sync drops it
	}
	var fatalErr error
	for _, p := range All() {
		if p.Sched || !m.opts.Probes[p.Name] {
			continue
		}
		cands := m.candidates(t, p, maps)
		if len(cands) == 0 {
			m.noteOnce(t, p.Name, ReasonNoTarget)
			continue
		}
		found := false
		for _, c := range cands {
			ok, err := m.attachFile(t, p, c)
			found = found || ok
			if err != nil {
				reason := classify(err)
				m.countError(p.Name, reason)
				m.log.Warn("eBPF probe not attached", "probe", p.Name, "producer", t.producer, "file", c.open, "reason", reason, "err", err)
				if m.opts.Require && fatal(reason) && fatalErr == nil {
					fatalErr = fmt.Errorf("bpf_require: probe %s: %w", p.Name, err)
				}
			}
		}
		if !found && len(t.links[p.Name]) == 0 {
			m.noteOnce(t, p.Name, ReasonSymbolMissing)
		}
	}
	return fatalErr
}

// noteOnce counts a reason once per producer process and probe: "no
// library to hook" is a state, not an event to count every rescan.
func (m *Manager) noteOnce(t *target, probe, reason string) {
	k := probe + ":" + reason
	if t.noted[k] {
		return
	}
	t.noted[k] = true
	m.countError(probe, reason)
}

// candidates lists the files a probe may hook in this process: its
// libraries by name, plus the executable for CPython probes (Debian's
// python3.11 links libpython statically).
func (m *Manager) candidates(t *target, p Probe, maps []Mapping) []candidate {
	var out []candidate
	if p.ID == IDPythonGC || p.ID == IDGILWait {
		if exe, err := ExePath(m.opts.ProcRoot, t.pid); err == nil {
			out = append(out, candidate{open: exe, key: "exe:" + exe})
		}
	}
	for _, mp := range Libraries(maps, p.Libs...) {
		path, err := OpenPath(m.opts.ProcRoot, t.pid, mp)
		if err != nil {
			continue
		}
		out = append(out, candidate{open: path, key: fmt.Sprintf("%s:%d", mp.Dev, mp.Inode)})
	}
	return out
}

// attachFile hooks one file for one probe once. ok reports whether the
// file has what the probe needs.
func (m *Manager) attachFile(t *target, p Probe, c candidate) (ok bool, err error) {
	doneKey := p.Name + "|" + c.key
	if t.done[doneKey] {
		return true, nil
	}
	ex, err := link.OpenExecutable(c.open)
	if err != nil {
		return false, err
	}
	progs := m.plat.coll.Programs
	var links []link.Link
	attach := func(prog *ebpf.Program, sym string, ret bool, opts link.UprobeOptions) error {
		opts.PID = t.pid
		var l link.Link
		var err error
		if ret {
			l, err = ex.Uretprobe(sym, prog, &opts)
		} else {
			l, err = ex.Uprobe(sym, prog, &opts)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", filepath.Base(c.open), sym, err)
		}
		links = append(links, l)
		return nil
	}
	rollback := func() {
		for _, l := range links {
			l.Close()
		}
		links = nil
	}
	switch {
	case p.USDT != nil:
		notes, err := ReadUSDT(c.open)
		if err != nil {
			return false, err
		}
		start, ok1 := FindUSDT(notes, p.USDT.Provider, p.USDT.Start)
		done, ok2 := FindUSDT(notes, p.USDT.Provider, p.USDT.Done)
		if !ok1 || !ok2 {
			t.done[doneKey] = true // no notes in this file: nothing to retry
			return false, nil
		}
		cookie := Cookie(t.slot, p.ID, 0)
		if err := attach(progs["call_enter"], "", false, link.UprobeOptions{Address: start.Location, RefCtrOffset: start.Semaphore, Cookie: cookie}); err != nil {
			return true, err
		}
		if err := attach(progs["call_exit"], "", false, link.UprobeOptions{Address: done.Location, RefCtrOffset: done.Semaphore, Cookie: cookie}); err != nil {
			rollback()
			return true, err
		}
	default:
		names := make([]string, 0, 2*len(p.Calls))
		for _, call := range p.Calls {
			names = append(names, call.Symbol)
			if call.Exit != "" {
				names = append(names, call.Exit)
			}
		}
		have, err := DefinedSymbols(c.open, names...)
		if err != nil {
			return false, err
		}
		for _, call := range p.Calls {
			if !have[call.Symbol] || call.Exit != "" && !have[call.Exit] {
				continue
			}
			ok = true
			cookie := Cookie(t.slot, p.ID, call.Sub)
			opts := link.UprobeOptions{Cookie: cookie}
			switch {
			case p.Count:
				err = attach(progs["call_count"], call.Symbol, false, opts)
			case call.Exit != "": // a begin/end marker pair
				if err = attach(progs["call_enter"], call.Symbol, false, opts); err == nil {
					err = attach(progs["call_exit"], call.Exit, false, opts)
				}
			default: // entry and return of one function
				if err = attach(progs["call_enter"], call.Symbol, false, opts); err == nil {
					err = attach(progs["call_exit"], call.Symbol, true, opts)
				}
			}
			if err != nil {
				// A half-attached pair would time nothing: roll the file back.
				rollback()
				return true, err
			}
		}
		if !ok {
			t.done[doneKey] = true
			return false, nil
		}
	}
	t.links[p.Name] = append(t.links[p.Name], links...)
	t.done[doneKey] = true
	return true, nil
}
