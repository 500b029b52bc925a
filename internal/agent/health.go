package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/gpu"
	"github.com/agaobs/agaobs/internal/health"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/probes"
	"github.com/agaobs/agaobs/internal/web"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
)

// Thresholds of the agent's own loops: a consumer pass happens at least
// every ring_idle_sleep (250 ms) even when idle, housekeeping every second.
const (
	consumerStuckLive  = 30 * time.Second // livez: the loop is deadlocked
	consumerStuckReady = 5 * time.Second  // readyz/pipeline: not keeping up
	auditLagDegraded   = 10 * time.Second // records waiting this long for a commit
)

// newGPU builds the GPU collector when gpu_enabled.
func (a *Agent) newGPU(cfg config.Config) {
	if !cfg.GPUEnabled {
		return
	}
	a.gpu = gpu.New(gpu.Options{Interval: time.Duration(cfg.GPUCollectInterval), PCIe: cfg.GPUPCIeEnabled,
		XIDWindow: time.Duration(cfg.GPUXIDWindow), ExpectedCount: cfg.GPUExpectedCount,
		Logger: a.log.With("component", "gpu")})
}

// gpuMemory returns a host pid's GPU memory per uuid (the producer
// enrichment); nil without a GPU collector.
func (a *Agent) gpuMemory(hostPID int) map[string]uint64 {
	if a.gpu == nil {
		return nil
	}
	procs := a.gpu.Processes()[uint32(hostPID)]
	if len(procs) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(procs))
	for _, p := range procs {
		out[p.UUID] += p.UsedBytes
	}
	return out
}

// gpuUUIDs lists the GPUs a host pid holds memory on, sorted.
func (a *Agent) gpuUUIDs(hostPID int) []string {
	m := a.gpuMemory(hostPID)
	out := make([]string, 0, len(m))
	for u := range m {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// newHealth builds the health checker: producer components from the
// pipeline and the ring table, agent components, liveness and readiness
// checks, and the listener.
func (a *Agent) newHealth(cfg config.Config) error {
	a.prodHealth = health.NewProducers(health.ProducerOptions{
		Snapshot:              func() *pipeline.Snapshot { return a.consumer.Snapshot() },
		KVUtilizationDegraded: cfg.HealthKVUtilizationDegraded,
		DropRateDegraded:      cfg.HealthDropRateDegraded,
		HeartbeatStale:        time.Duration(cfg.HealthHeartbeatStale * float64(time.Second)),
	})
	a.addSink(a.prodHealth, sinkLinger)
	a.health = health.New(health.Options{
		Path:         cfg.HealthPath,
		Sources:      []health.Source{a.prodHealth, health.SourceFunc(a.agentComponents)},
		Livez:        []health.Check{{Name: "consumer", Fn: a.checkConsumer(consumerStuckLive)}, {Name: "alerting", Fn: a.checkAlerting}},
		Readyz:       []health.Check{{Name: "config", Fn: func(context.Context) error { return nil }}, {Name: "ring_dir", Fn: a.checkRingDir}, {Name: "pipeline", Fn: a.checkConsumer(consumerStuckReady)}, {Name: "audit", Fn: a.checkAudit}},
		OnTransition: a.auditHealth,
		Logger:       a.log.With("component", "health"),
	})
	if !cfg.HealthEnabled {
		return nil
	}
	addr := net.JoinHostPort(cfg.HealthHost, strconv.Itoa(cfg.HealthPort))
	h := a.health.Handler()
	if cfg.HealthPath != "/" { // else "/" is the health endpoint itself
		var err error
		h, err = withLanding("agaobs-agent health", "Health and probes of the agaobs node agent", a.opts.Version, []toolkitweb.LandingLinks{
			{Address: cfg.HealthPath, Text: "Health", Description: "components and overall status (JSON)"},
			{Address: "/livez", Text: "Liveness", Description: "/livez?verbose lists the checks"},
			{Address: "/readyz", Text: "Readiness", Description: "/readyz?verbose lists the checks"},
		}, h)
		if err != nil {
			return err
		}
	}
	s, err := web.Listen("health", addr, h, cfg.HealthWebConfigFile, a.webOpts, a.log)
	if err != nil {
		return err
	}
	a.servers = append(a.servers, s)
	return nil
}

// agentComponents are the unprefixed components: gpu, bpf, audit,
// alerting, pipeline.
func (a *Agent) agentComponents(now time.Time) map[string]health.Component {
	out := map[string]health.Component{
		"bpf":      a.bpfComponent(),
		"gpu":      a.gpuComponent(now),
		"audit":    a.auditComponent(now),
		"alerting": a.alertingComponent(now),
		"pipeline": a.pipelineComponent(now),
	}
	return out
}

func (a *Agent) gpuComponent(now time.Time) health.Component {
	if a.gpu == nil {
		return health.Component{Status: health.Disabled, Fields: map[string]any{"reason": "gpu_enabled is false"}}
	}
	status := health.Healthy
	checks := map[string]any{}
	f := map[string]any{"checks": checks, "gpus": len(a.gpu.GPUs())}
	for _, c := range a.gpu.Checks(now) {
		entry := map[string]any{"status": c.Status}
		if c.Reason != "" {
			entry["reason"] = c.Reason
		}
		checks[c.Name] = entry
		if s := health.Status(c.Status); s.Rank() > status.Rank() {
			status = s
			f["reason"] = c.Name + ": " + c.Reason // the worst check, for one-line probes
		}
	}
	return health.Component{Status: status, Fields: f}
}

func (a *Agent) auditComponent(now time.Time) health.Component {
	ok, lastErr, pending := a.audit.Status()
	f := map[string]any{"writable": ok, "pending": pending, "backend": a.Config().AuditStorageBackend}
	if h, err := a.auditStore.Head(); err == nil {
		f["head_size"] = h.Size
	}
	lag := a.audit.Lag(now)
	f["lag_seconds"] = lag.Seconds()
	switch {
	case !ok:
		f["error"] = lastErr
		return health.Component{Status: health.Unhealthy, Fields: f}
	case lag > auditLagDegraded:
		f["reason"] = fmt.Sprintf("records wait %s for a commit", lag.Round(time.Second))
		return health.Component{Status: health.Degraded, Fields: f}
	}
	return health.Component{Status: health.Healthy, Fields: f}
}

func (a *Agent) alertingComponent(now time.Time) health.Component {
	if a.alerts == nil {
		return health.Component{Status: health.Disabled, Fields: map[string]any{"reason": "alert_enabled is false"}}
	}
	if err := a.alertLoopErr(now); err != nil {
		return health.Component{Status: health.Unhealthy, Fields: map[string]any{"error": err.Error()}}
	}
	return health.Component{Status: health.Healthy, Fields: map[string]any{"last_eval": a.alerts.LastEval().UTC().Format(time.RFC3339)}}
}

func (a *Agent) pipelineComponent(now time.Time) health.Component {
	f := map[string]any{}
	status := health.Healthy
	if age := now.Sub(a.consumer.LastPass()); age > consumerStuckReady {
		f["error"] = fmt.Sprintf("no consumer pass for %s", age.Round(time.Second))
		status = health.Unhealthy
	}
	dropping := []string{}
	for _, s := range a.disp.Stats() {
		if s.Dropped > 0 {
			dropping = append(dropping, s.Name)
		}
		if s.Capacity > 0 && s.Depth == s.Capacity && status == health.Healthy {
			status = health.Degraded
			f["reason"] = fmt.Sprintf("sink %s queue full", s.Name)
		}
	}
	f["sinks_that_dropped"] = dropping
	return health.Component{Status: status, Fields: f}
}

// alertLoopErr says whether the evaluation loop stopped ticking.
func (a *Agent) alertLoopErr(now time.Time) error {
	interval := time.Duration(a.Config().AlertEvalInterval)
	limit := max(10*time.Second, 5*interval)
	last := a.alerts.LastEval()
	if last.IsZero() {
		if now.Sub(a.started) > limit {
			return errors.New("the alert evaluation loop never ran")
		}
		return nil
	}
	if age := now.Sub(last); age > limit+time.Second { // LastEval has one-second resolution
		return fmt.Errorf("no alert evaluation for %s", age.Round(time.Second))
	}
	return nil
}

func (a *Agent) checkConsumer(limit time.Duration) func(context.Context) error {
	return func(context.Context) error {
		last := a.consumer.LastPass()
		if last.IsZero() || last.Unix() <= 0 {
			if time.Since(a.started) > limit {
				return errors.New("the ring consumer never completed a pass")
			}
			return nil
		}
		if age := time.Since(last); age > limit {
			return fmt.Errorf("no ring consumer pass for %s", age.Round(time.Millisecond))
		}
		return nil
	}
}

func (a *Agent) checkAlerting(context.Context) error {
	if a.alerts == nil {
		return nil
	}
	return a.alertLoopErr(time.Now())
}

// checkRingDir reports what the consumer's last scan of ring_dir saw:
// the directory the agent actually reads, without listing it again per
// probe (it may hold thousands of junk files).
func (a *Agent) checkRingDir(context.Context) error {
	if err := a.consumer.DirError(); err != nil {
		return fmt.Errorf("ring_dir %s: %w", a.Config().RingDir, err)
	}
	return nil
}

func (a *Agent) checkAudit(context.Context) error {
	if ok, lastErr, _ := a.audit.Status(); !ok {
		return fmt.Errorf("audit store not writable: %s", lastErr)
	}
	return nil
}

// auditHealth puts health changes on the audit trail: status changes, and
// components that appear or go away in a bad state (a healthy producer
// appearing is already recorded as producer_appeared).
func (a *Agent) auditHealth(t health.Transition) {
	if t.From == "" && t.To.Rank() == 0 || t.To == "" && t.From.Rank() == 0 {
		return
	}
	d := map[string]any{"component": t.Component, "from": string(t.From), "to": string(t.To)}
	if prod, _, ok := strings.Cut(t.Component, "/"); ok {
		d["producer"] = prod // the record's producer: audit query --producer finds it
	}
	for _, k := range []string{"reason", "error"} {
		if v, ok := t.Fields[k]; ok {
			d[k] = v
		}
	}
	a.disp.Publish(pipeline.Event{Kind: pipeline.KindAgent, TimeNs: t.At.UnixNano(),
		Lifecycle: &pipeline.Lifecycle{Type: pipeline.HealthTransition, Details: d}})
}

// newProbes loads the eBPF probes when bpf_enabled. Without privilege or
// kernel support they report eBPF unavailable and the agent carries on,
// unless bpf_require, which makes it an error naming the reason.
func (a *Agent) newProbes(cfg config.Config) error {
	if !cfg.BPFEnabled {
		return nil
	}
	a.probes = probes.New(probes.Options{Probes: probes.Enabled(cfg.BPFProbes), Require: cfg.BPFRequire,
		Rescan: time.Duration(cfg.BPFRescanInterval), Targets: a.probeTargets, Native: cfg.PrometheusNativeHistograms,
		Logger: a.log.With("component", "bpf")})
	return a.probes.Start()
}

// probeTargets are the live producers: their host pids.
func (a *Agent) probeTargets() []probes.Target {
	var out []probes.Target
	for _, p := range a.consumer.Snapshot().Producers {
		if pid := p.LiveHostPID(); pid > 0 {
			out = append(out, probes.Target{Producer: p.Name, HostPID: pid})
		}
	}
	return out
}

func (a *Agent) bpfComponent() health.Component {
	if a.probes == nil {
		return health.Component{Status: health.Disabled, Fields: map[string]any{"reason": "bpf_enabled is false"}}
	}
	h := a.probes.Health()
	f := h.Fields
	if h.Reason != "" {
		f["reason"] = h.Reason
	}
	return health.Component{Status: health.Status(h.Status), Fields: f}
}
