package probes

import (
	"log/slog"
	"sync"
	"time"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Target is a producer process to instrument.
type Target struct {
	Producer string
	HostPID  int
}

// Options configure a Manager.
type Options struct {
	// Probes says which probes run (Enabled applied to bpf_probes).
	Probes map[string]bool
	// Require makes a not-permitted or not-supported failure of an
	// enabled probe fatal (bpf_require).
	Require bool
	// Rescan is how often producers' memory maps are read again for
	// libraries loaded later (bpf_rescan_interval, default 10s).
	Rescan time.Duration
	// Targets lists the live producers (from the ring table).
	Targets func() []Target
	// ProcRoot is procfs (default /proc).
	ProcRoot string
	// Native adds native (schema 0) buckets to the histograms.
	Native bool
	Logger *slog.Logger
}

// Failure reasons (agaobs_bpf_probe_errors_total{reason}).
const (
	ReasonNotPermitted  = "not_permitted"
	ReasonNotSupported  = "not_supported"
	ReasonSymbolMissing = "symbol_missing"
	ReasonNoTarget      = "no_target"
	ReasonOther         = "other"
)

// capsHint names what eBPF needs, for the one log line and health.
const capsHint = "run as root, or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (uprobes need CAP_SYS_ADMIN) plus CAP_SYS_PTRACE to read the producers' /proc/<pid>/root"

// Manager owns the BPF objects, the links per producer and the metrics.
// The platform-specific part (loading, attaching) lives in
// manager_linux.go; elsewhere eBPF is reported not supported.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	available bool
	reason    string // why unavailable
	detail    string // the error behind reason
	slots     map[uint32]string
	status    map[string]*ProbeStatus
	rd        mapReader

	plat platform
}

// New returns a Manager; nothing is loaded until Start.
func New(opts Options) *Manager {
	if opts.Rescan <= 0 {
		opts.Rescan = 10 * time.Second
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Targets == nil {
		opts.Targets = func() []Target { return nil }
	}
	m := &Manager{opts: opts, log: opts.Logger, slots: map[uint32]string{}, status: map[string]*ProbeStatus{}}
	for _, name := range Names() {
		m.status[name] = &ProbeStatus{Enabled: opts.Probes[name], Errors: map[string]uint64{}}
	}
	return m
}

// Collector exports the probes' histograms and counters and the eBPF
// self-metrics.
func (m *Manager) Collector() selfmetrics.Collector { return newCollector(m, m.opts.Native) }

func (m *Manager) state() (bool, string, map[uint32]string, map[string]ProbeStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	slots := make(map[uint32]string, len(m.slots))
	for k, v := range m.slots {
		slots[k] = v
	}
	probes := make(map[string]ProbeStatus, len(m.status))
	for k, v := range m.status {
		st := *v
		st.Errors = make(map[string]uint64, len(v.Errors))
		for r, n := range v.Errors {
			st.Errors[r] = n
		}
		probes[k] = st
	}
	return m.available, m.reason, slots, probes
}

func (m *Manager) reader() mapReader {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rd
}

// countError records a failure of a probe.
func (m *Manager) countError(probe, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.status[probe]; st != nil {
		st.Errors[reason]++
	}
}

// setAttached records how many producers a probe is attached to.
func (m *Manager) setAttached(probe string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.status[probe]; st != nil {
		st.Attached = n
	}
}

// Health is the bpf health component's view.
type Health struct {
	Status string // healthy, degraded
	Reason string
	Fields map[string]any
}

// Health summarises eBPF for the health endpoint: degraded when eBPF is
// unavailable or an enabled probe cannot attach for want of privilege or
// kernel support (eBPF enriches; it never makes the node unhealthy).
func (m *Manager) Health() Health {
	available, reason, _, probes := m.state()
	h := Health{Status: "healthy", Fields: map[string]any{"available": available}}
	per := map[string]any{}
	for _, name := range sortedKeys(probes) {
		st := probes[name]
		if !st.Enabled {
			continue
		}
		entry := map[string]any{"attached": st.Attached}
		if len(st.Errors) > 0 {
			entry["errors"] = st.Errors
		}
		per[name] = entry
		if available && (st.Errors[ReasonNotPermitted] > 0 || st.Errors[ReasonNotSupported] > 0) && h.Status == "healthy" {
			h.Status, h.Reason = "degraded", name+" cannot attach: "+firstReason(st.Errors)
		}
	}
	h.Fields["probes"] = per
	if !available {
		m.mu.Lock()
		detail := m.detail
		m.mu.Unlock()
		h.Status, h.Reason = "degraded", "eBPF unavailable: "+reason
		if reason == ReasonNotPermitted {
			h.Reason += " (" + capsHint + ")"
		}
		if detail != "" {
			h.Fields["error"] = detail
		}
	}
	return h
}

func firstReason(errs map[string]uint64) string {
	for _, r := range []string{ReasonNotPermitted, ReasonNotSupported} {
		if errs[r] > 0 {
			return r
		}
	}
	return ""
}
