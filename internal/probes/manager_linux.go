//go:build linux

package probes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// platform holds the loaded collection and the per-producer links.
type platform struct {
	coll    *ebpf.Collection
	sched   []link.Link
	targets map[string]*target // by producer name
	free    []uint32           // released slots, reused first
	next    uint32
}

// target is one instrumented producer process.
type target struct {
	producer string
	pid      int
	slot     uint32
	links    map[string][]link.Link // by probe name
	done     map[string]bool        // probe:file already attached (or judged)
	noted    map[string]bool        // probe:reason already counted for this process
	scanned  time.Time
}

// Start checks the privilege, loads the programs and attaches the
// scheduler probes. Without privilege or kernel support it reports eBPF
// unavailable and returns nil, unless Require is set.
func (m *Manager) Start() error {
	if err := m.checkPrivilege(); err != nil {
		return m.unavailable(err)
	}
	spec, err := loadProbes()
	if err != nil {
		return m.unavailable(fmt.Errorf("BPF object: %w", err))
	}
	offcpu, runq := m.opts.Probes["offcpu"], m.opts.Probes["runqueue"]
	if err := spec.Variables["want_offcpu"].Set(offcpu); err != nil {
		return m.unavailable(err)
	}
	if err := spec.Variables["want_runqueue"].Set(runq); err != nil {
		return m.unavailable(err)
	}
	delete(spec.Programs, "selftest")
	coll, btf, err := loadSched(spec, offcpu || runq)
	if err != nil {
		return m.unavailable(fmt.Errorf("load BPF programs: %w", err))
	}
	m.plat = platform{coll: coll, targets: map[string]*target{}}
	m.mu.Lock()
	m.available, m.rd = true, &collReader{coll: coll}
	m.mu.Unlock()
	if offcpu || runq {
		if err := m.attachSched(btf); err != nil {
			for _, p := range []string{"offcpu", "runqueue"} {
				if m.opts.Probes[p] {
					m.countError(p, classify(err))
				}
			}
			m.log.Warn("eBPF scheduler probes not attached", "err", err, "reason", classify(err))
			if m.opts.Require && fatal(classify(err)) {
				return fmt.Errorf("bpf_require: scheduler probes: %w", err)
			}
		}
	}
	m.log.Info("eBPF probes loaded", "tp_btf", btf, "probes", strings.Join(enabledNames(m.opts.Probes), ","))
	return nil
}

func enabledNames(p map[string]bool) []string {
	var out []string
	for _, n := range Names() {
		if p[n] {
			out = append(out, n)
		}
	}
	return out
}

// checkPrivilege removes the memlock limit (kernels before 5.11) and
// creates a one-entry map: the cheapest question whether bpf() works.
func (m *Manager) checkPrivilege() error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	mp, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return err
	}
	return mp.Close()
}

// unavailable records why eBPF is off and logs the one line naming the
// capabilities; fatal only under bpf_require.
func (m *Manager) unavailable(err error) error {
	reason := classify(err)
	if reason == ReasonOther {
		reason = "unknown"
	}
	m.mu.Lock()
	m.available, m.reason, m.detail = false, reason, err.Error()
	m.mu.Unlock()
	if reason == ReasonNotPermitted {
		m.log.Warn("eBPF unavailable: not permitted; "+capsHint, "err", err)
	} else {
		m.log.Warn("eBPF unavailable", "reason", reason, "err", err)
	}
	if m.opts.Require {
		return fmt.Errorf("bpf_require: eBPF unavailable (%s): %w", reason, err)
	}
	return nil
}

// loadSched loads the collection with the BTF-typed scheduler programs,
// falling back to the raw_tp twins when the kernel refuses them; without
// scheduler probes it loads neither.
func loadSched(spec *ebpf.CollectionSpec, sched bool) (*ebpf.Collection, bool, error) {
	btfProgs := []string{"switch_btf", "wakeup_btf", "wakeup_new_btf"}
	rawProgs := []string{"switch_raw", "wakeup_raw", "wakeup_new_raw"}
	without := func(drop ...[]string) *ebpf.CollectionSpec {
		s := spec.Copy()
		for _, names := range drop {
			for _, n := range names {
				delete(s.Programs, n)
			}
		}
		return s
	}
	if !sched {
		c, err := ebpf.NewCollection(without(btfProgs, rawProgs))
		return c, false, err
	}
	c, errBTF := ebpf.NewCollection(without(rawProgs))
	if errBTF == nil {
		return c, true, nil
	}
	c, err := ebpf.NewCollection(without(btfProgs))
	if err != nil {
		return nil, false, errors.Join(errBTF, err)
	}
	return c, false, nil
}

func (m *Manager) attachSched(btf bool) error {
	type att struct{ prog, tp string }
	progs := []att{{"switch", "sched_switch"}, {"wakeup", "sched_wakeup"}, {"wakeup_new", "sched_wakeup_new"}}
	for _, a := range progs {
		var l link.Link
		var err error
		if btf {
			l, err = link.AttachTracing(link.TracingOptions{Program: m.plat.coll.Programs[a.prog+"_btf"], AttachType: ebpf.AttachTraceRawTp})
		} else {
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.tp, Program: m.plat.coll.Programs[a.prog+"_raw"]})
		}
		if err != nil {
			for _, done := range m.plat.sched {
				done.Close()
			}
			m.plat.sched = nil
			return fmt.Errorf("attach %s: %w", a.tp, err)
		}
		m.plat.sched = append(m.plat.sched, l)
	}
	return nil
}

// Run keeps the instrumented set equal to the live producers (checked
// every second, so a new producer is instrumented within ~2 s of its ring
// appearing), rescans their libraries every Rescan, and closes every link
// when ctx ends. Under bpf_require a not-permitted or not-supported attach
// failure ends Run with an error.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	loaded := m.available
	m.mu.Unlock()
	if !loaded {
		<-ctx.Done()
		return nil
	}
	defer m.close()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := m.sync(time.Now()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Sync runs one reconciliation now (tests).
func (m *Manager) Sync() error { return m.sync(time.Now()) }

func (m *Manager) sync(now time.Time) error {
	want := map[string]Target{}
	for _, t := range m.opts.Targets() {
		if t.Producer != "" && t.HostPID > 0 {
			want[t.Producer] = t
		}
	}
	for name, t := range m.plat.targets {
		if w, ok := want[name]; !ok || w.HostPID != t.pid {
			m.drop(t)
		}
	}
	var fatalErr error
	for _, name := range sortedKeys(want) {
		t := m.plat.targets[name]
		if t == nil {
			t = m.add(want[name])
		}
		if t.scanned.IsZero() || now.Sub(t.scanned) >= m.opts.Rescan {
			t.scanned = now
			if err := m.scan(t); err != nil && fatalErr == nil {
				fatalErr = err
			}
		}
	}
	m.updateAttached()
	return fatalErr
}

func (m *Manager) add(tg Target) *target {
	var slot uint32
	if n := len(m.plat.free); n > 0 {
		slot, m.plat.free = m.plat.free[n-1], m.plat.free[:n-1]
	} else {
		m.plat.next++
		slot = m.plat.next
	}
	t := &target{producer: tg.Producer, pid: tg.HostPID, slot: slot, links: map[string][]link.Link{},
		done: map[string]bool{}, noted: map[string]bool{}}
	m.plat.targets[tg.Producer] = t
	m.mu.Lock()
	m.slots[slot] = tg.Producer
	m.mu.Unlock()
	if len(m.plat.sched) > 0 {
		pid, s := uint32(tg.HostPID), slot
		if err := m.plat.coll.Maps["tgids"].Put(&pid, &s); err != nil {
			m.log.Warn("eBPF: cannot track producer threads", "producer", tg.Producer, "err", err)
		}
	}
	m.log.Info("eBPF: instrumenting producer", "producer", tg.Producer, "host_pid", tg.HostPID, "slot", slot)
	return t
}

// drop detaches a producer that went away and forgets its histograms.
func (m *Manager) drop(t *target) {
	for _, ls := range t.links {
		for _, l := range ls {
			l.Close()
		}
	}
	pid := uint32(t.pid)
	_ = m.plat.coll.Maps["tgids"].Delete(&pid)
	deleteSlot(m.plat.coll.Maps["hists"], t.slot)
	deleteSlot(m.plat.coll.Maps["counts"], t.slot)
	delete(m.plat.targets, t.producer)
	m.plat.free = append(m.plat.free, t.slot)
	m.mu.Lock()
	delete(m.slots, t.slot)
	m.mu.Unlock()
}

func deleteSlot(mp *ebpf.Map, slot uint32) {
	var k probesHistKey
	var keys []probesHistKey
	it := mp.Iterate()
	var v []byte
	for it.Next(&k, &v) {
		if k.Slot == slot {
			keys = append(keys, k)
		}
	}
	for i := range keys {
		_ = mp.Delete(&keys[i])
	}
}

func (m *Manager) updateAttached() {
	for _, name := range Names() {
		if !m.opts.Probes[name] {
			continue
		}
		n := 0
		for _, t := range m.plat.targets {
			p, _ := probeByName(name)
			if p.Sched && len(m.plat.sched) > 0 || len(t.links[name]) > 0 {
				n++
			}
		}
		m.setAttached(name, n)
	}
}

func probeByName(name string) (Probe, bool) {
	for _, p := range All() {
		if p.Name == name {
			return p, true
		}
	}
	return Probe{}, false
}

func (m *Manager) close() {
	for _, t := range m.plat.targets {
		for _, ls := range t.links {
			for _, l := range ls {
				l.Close()
			}
		}
	}
	for _, l := range m.plat.sched {
		l.Close()
	}
	m.plat.sched = nil
	m.mu.Lock()
	m.rd = nil
	m.mu.Unlock()
	if m.plat.coll != nil {
		m.plat.coll.Close()
	}
}

// classify maps an error to a failure reason.
func classify(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, os.ErrPermission), errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return ReasonNotPermitted
	case errors.Is(err, ebpf.ErrNotSupported), strings.Contains(err.Error(), "tracefs"):
		return ReasonNotSupported
	case errors.Is(err, link.ErrNoSymbol):
		return ReasonSymbolMissing
	}
	return ReasonOther
}

func fatal(reason string) bool { return reason == ReasonNotPermitted || reason == ReasonNotSupported }

// collReader reads the loaded maps.
type collReader struct{ coll *ebpf.Collection }

func (r *collReader) hists() ([]HistEntry, error) {
	var out []HistEntry
	var k probesHistKey
	var v probesHist
	it := r.coll.Maps["hists"].Iterate()
	for it.Next(&k, &v) {
		out = append(out, HistEntry{Slot: k.Slot, Probe: ID(k.Probe), Sub: k.Sub, Buckets: v.Buckets, Count: v.Count, SumNs: v.SumNs})
	}
	return out, it.Err()
}

func (r *collReader) counts() ([]CountEntry, error) {
	var out []CountEntry
	var k probesHistKey
	var v uint64
	it := r.coll.Maps["counts"].Iterate()
	for it.Next(&k, &v) {
		out = append(out, CountEntry{Slot: k.Slot, Probe: ID(k.Probe), Sub: k.Sub, Count: v})
	}
	return out, it.Err()
}
