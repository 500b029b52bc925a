package agent

import (
	"cmp"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/health"
	"github.com/agaobs/agaobs/internal/live"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// newLive builds the live view (/ui/ on the admin listener) and its
// sources. Without an admin listener there is nobody to show it to, so
// it keeps no history either.
func (a *Agent) newLive(cfg config.Config) {
	if cfg.AdminListenAddress == "" {
		return
	}
	// GPU and eBPF families for the live view only: asking the whole
	// registry every second would render every AGA series.
	set := selfmetrics.NewSet()
	if a.gpu != nil {
		set.Add("gpu", a.gpu.Metrics())
	}
	if a.probes != nil {
		set.Add("probes", a.probes.Collector())
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(set); err != nil {
		a.log.Warn("live view: GPU and eBPF metrics unavailable", "err", err)
		reg = nil
	}
	src := live.Sources{
		Producers: a.liveProducers,
		Health:    a.liveHealth,
		Alerts:    a.liveAlerts,
		Audit:     (&liveAudit{a: a}).section,
		Sinks:     a.liveSinks,
	}
	if reg != nil {
		src.Gather = func() ([]*dto.MetricFamily, error) { return reg.Gather() }
	}
	a.live = live.New(live.Options{Node: NodeName(cfg), Version: a.opts.Version, Started: time.Now(),
		MaxLayers: min(cfg.PrometheusMaxLayersPerProducer, live.MaxLayers), MaxViewers: cfg.UIMaxViewers,
		Sources: src, Logger: a.log.With("component", "live")})
	a.addSink(a.live, sinkLinger)
}

func (a *Agent) liveProducers() []live.ProducerRow {
	snap := a.consumer.Snapshot()
	rows := make([]live.ProducerRow, 0, len(snap.Producers))
	for i := range snap.Producers {
		p := &snap.Producers[i]
		r := live.ProducerRow{Name: p.Name, State: p.State().String(), Rings: len(p.Rings), PID: p.LiveHostPID(),
			Dropped: p.Drops().Dropped}
		for _, rs := range p.Rings {
			r.Fill = math.Max(r.Fill, rs.Fill)
			if r.PID == 0 {
				r.PID = rs.HostPID
			}
		}
		if age, ok := p.HeartbeatAge(); ok {
			r.HeartbeatAgeS = math.Round(age*10) / 10
		}
		if mem := a.gpuMemory(p.LiveHostPID()); mem != nil {
			var n uint64
			for _, b := range mem {
				n += b
			}
			r.GPUMemBytes = &n
		}
		rows = append(rows, r)
	}
	return rows
}

func (a *Agent) liveHealth() live.HealthSummary {
	st, comps, ok := a.health.Last()
	out := live.HealthSummary{Status: "unknown", Failing: []live.Check{}}
	if !ok {
		return out
	}
	out.Status = string(st)
	for name, c := range comps {
		if c.Status == health.Healthy || c.Status == health.Disabled {
			continue
		}
		msg := ""
		for _, k := range []string{"reason", "error", "message"} {
			if v, ok := c.Fields[k]; ok {
				msg = fmt.Sprint(v)
				break
			}
		}
		out.Failing = append(out.Failing, live.Check{Name: name, Status: string(c.Status), Message: msg})
	}
	sort.Slice(out.Failing, func(i, j int) bool { return out.Failing[i].Name < out.Failing[j].Name })
	return out
}

func (a *Agent) liveAlerts() live.Alerts {
	out := live.Alerts{Active: []live.AlertRow{}, SLO: []live.SLORow{}}
	if a.alerts == nil {
		return out
	}
	active, _ := a.alerts.Alerts("", 1, 0)
	for _, v := range active {
		if v.State != "pending" && v.State != "firing" {
			continue
		}
		since := v.ActiveAt
		if v.FiredAt != nil {
			since = v.FiredAt
		}
		out.Active = append(out.Active, live.AlertRow{Rule: v.RuleName, Producer: v.Producer, State: v.State,
			Severity: v.Severity, Metric: v.Metric, Value: live.Num(v.Value), Threshold: live.Num(v.Threshold), Message: v.Message, Since: since})
	}
	for _, b := range a.alerts.SLOBudgets() {
		out.SLO = append(out.SLO, live.SLORow{Name: b.SLO, Producer: b.Producer, Objective: b.Objective,
			BudgetRemaining: live.Num(b.Remaining)})
	}
	return out
}

func (a *Agent) liveSinks() live.Sinks {
	stats := a.disp.Stats()
	out := live.Sinks{Sinks: make([]live.SinkRow, 0, len(stats))}
	for _, s := range stats {
		out.Sinks = append(out.Sinks, live.SinkRow{Name: s.Name, QueueLen: s.Depth, QueueCap: s.Capacity,
			Dropped: s.Dropped, Errors: s.Errors})
	}
	lat := a.counter.Latency()
	out.EventToSinkP99S = live.Num(lat.Quantile(0.99).Seconds())
	return out
}

// liveAudit reads the audit section. The tail comes from the writer's
// newest stored records (no store read per frame: a file-backend query
// scans every file under the store's lock); before the writer has stored
// anything, it is read once from a bbolt or memory store.
type liveAudit struct {
	a      *Agent
	once   sync.Once
	seeded []live.AuditRecord
}

func (l *liveAudit) section() live.Audit {
	a := l.a
	h, _ := a.auditStore.Head()
	writable, _, pending := a.audit.Status()
	out := live.Audit{Head: h.String(), Writable: writable, Pending: pending, Tail: []live.AuditRecord{}}
	if st := a.AuditVerifyStatus(); st.Done {
		out.Verify = &live.Verify{OK: st.OK, At: st.At.UTC(), Records: st.Records, Error: st.Error}
	}
	recent := a.audit.Recent()
	if len(recent) == 0 {
		l.once.Do(func() { l.seeded = l.seed(h.Size) })
		out.Tail = append(out.Tail, l.seeded...)
		return out
	}
	for _, r := range recent {
		out.Tail = append(out.Tail, live.AuditRecord{Seq: r.Seq, Time: r.Time.UTC(), Operation: cmp.Or(r.Operation, r.Kind),
			Producer: r.Producer, Success: r.Success, Hash: r.Hash})
	}
	return out
}

func (l *liveAudit) seed(size uint64) []live.AuditRecord {
	a := l.a
	if b := a.Config().AuditStorageBackend; b != "bbolt" && b != "memory" {
		return nil
	}
	f := audit.Filter{Limit: audit.RecentRecords}
	if size > audit.RecentRecords {
		f.After = size - audit.RecentRecords
	}
	recs, err := a.auditStore.Query(f)
	if err != nil {
		a.log.Warn("live view: reading the audit tail", "err", err)
		return nil
	}
	out := make([]live.AuditRecord, 0, len(recs))
	for i := len(recs) - 1; i >= 0; i-- { // newest first
		r := &recs[i]
		out = append(out, live.AuditRecord{Seq: r.Seq, Time: r.Time.UTC(), Operation: cmp.Or(r.Operation, r.Kind),
			Producer: r.Producer, Success: r.Success, Hash: r.Hash})
	}
	return out
}
