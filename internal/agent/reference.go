package agent

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/agaobs/agaobs/internal/alerting"
	"github.com/agaobs/agaobs/internal/alerting/notify"
	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/eventlog"
	"github.com/agaobs/agaobs/internal/health"
	"github.com/agaobs/agaobs/internal/metrics"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/web"
)

// MetricsReference renders the README's metrics reference: the AGA-domain
// families (both namings) and the agent's own agaobs_* families, as the
// agent registers them. A test keeps the README in sync with it.
func MetricsReference() string {
	var b strings.Builder
	b.WriteString("AGA-domain families (prefix `prometheus_prefix`, default `aga`; every series also carries `prometheus_labels`):\n\n")
	b.WriteString(metrics.ReferenceTable("aga"))
	b.WriteString("\nAgent self-metrics (always `agaobs_`; plus the standard `go_*` and `process_*` families; the `agaobs_gpu_*` families are listed in [docs/health.md](docs/health.md#gpu-metrics)) and alerting families (`<prefix>_alerts` and `<prefix>_slo_*` follow `prometheus_prefix`):\n\n")
	b.WriteString("| name | type | labels | meaning |\n|---|---|---|---|\n")
	reg := metrics.NewRegistry(nil, nil)
	reg.Self.Add("rings", metrics.NewRingsCollector(func() []rings.RingInfo {
		return []rings.RingInfo{{Producer: "p", Class: "hot", State: "live"}}
	}))
	reg.Self.Add("consumer", metrics.NewConsumerCollector(func() rings.Counters {
		return rings.Counters{Rejected: map[string]uint64{"not_a_ring": 0}}
	}))
	reg.MustRegister(web.ReferenceCollector("metrics"))
	reg.Self.Add("pipeline", metrics.NewPipelineCollector(func() []pipeline.SinkStats { return []pipeline.SinkStats{{Name: "metrics"}} }))
	if s, err := eventlog.New(eventlog.Options{Out: io.Discard}); err == nil {
		s.Register(reg)
	}
	registerAlertingReference(reg)
	registerAuditReference(reg)
	registerExporterReference(reg)
	h := health.New(health.Options{Sources: []health.Source{health.SourceFunc(func(time.Time) map[string]health.Component {
		return map[string]health.Component{"audit": {Status: health.Healthy}}
	})}})
	h.Evaluate(time.Now())
	reg.MustRegister(h.Collector())
	reg.Self.Add("producer_gpu", metrics.NewProducerGPUCollector(func() []rings.RingInfo {
		return []rings.RingInfo{{Producer: "p", Class: "hot", State: "live", HostPID: 1}}
	}, func(int) map[string]uint64 { return map[string]uint64{"GPU-0": 1} }))
	mfs, _ := reg.Gather()
	sort.Slice(mfs, func(i, j int) bool { return mfs[i].GetName() < mfs[j].GetName() })
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "agaobs_") && !strings.HasPrefix(mf.GetName(), "aga_") {
			continue
		}
		var labels []string
		if len(mf.Metric) > 0 {
			for _, l := range mf.Metric[0].Label {
				labels = append(labels, l.GetName())
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", mf.GetName(), strings.ToLower(mf.GetType().String()), strings.Join(labels, ", "), mf.GetHelp())
	}
	return b.String()
}

// registerExporterReference registers the exporter's own counters after a
// limited layer and a dropped non-finite value, so both families are listed.
func registerExporterReference(reg *metrics.Registry) {
	e := metrics.New(metrics.Options{MaxLayersPerProducer: 1})
	p := pipeline.NewProducer("p", "p", 1, 1, "r", shm.Identity{Producer: "p"})
	_ = e.Write(context.Background(), []pipeline.Event{
		{Kind: pipeline.KindForward, Producer: p, Forward: shm.Forward{Layer: 1}},
		{Kind: pipeline.KindForward, Producer: p, Forward: shm.Forward{Layer: 2}, Invalid: 1 << pipeline.InvalidGate}})
	reg.MustRegister(e.Collector())
}

// registerAuditReference registers an audit writer that has stored a
// record, so every audit family is listed.
func registerAuditReference(reg *metrics.Registry) {
	w := audit.NewWriter(audit.WriterOptions{Store: audit.NewMemory()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	prod := pipeline.NewProducer("p", "p", 1, 1, "r", shm.Identity{Producer: "p"})
	now := time.Now().UnixNano()
	_ = w.Write(ctx, []pipeline.Event{{Kind: pipeline.KindAudit, Producer: prod, TimeNs: now, RecvNs: now,
		Audit: &pipeline.Audit{Operation: "register", Details: []byte(`{}`), Success: true}}})
	cancel()
	<-done
	reg.MustRegister(w.Collector())
}

// registerAlertingReference registers an alert engine and a notifier that
// have produced every family once (a firing rule, a template failure, an
// SLO with data), so the reference lists their metrics.
func registerAlertingReference(reg *metrics.Registry) {
	cfg := config.Default()
	cfg.AlertUseDefaultRules = false
	r := config.AlertRule{}
	r.SetDefaults()
	r.Name, r.Metric, r.Threshold, r.Message = "ref", "forward_rate", -1, "{nope}"
	cfg.AlertRules = []config.AlertRule{r}
	cfg.SLOs = []config.SLO{{Name: "ref", Objective: 0.99, Period: config.Duration(24 * time.Hour), SLI: config.SLI{Type: "availability"}}}
	n, err := notify.New(notify.Options{})
	if err != nil {
		return
	}
	e, err := alerting.New(alerting.Options{Config: cfg, Notifier: n, Rings: func() []rings.RingInfo {
		return []rings.RingInfo{{Producer: "p", Class: "hot", State: "live"}}
	}})
	if err != nil {
		return
	}
	now := time.Now()
	p := pipeline.NewProducer("p", "p", 1, 1, "r", shm.Identity{Producer: "p"})
	_ = e.Write(context.Background(), []pipeline.Event{{Kind: pipeline.KindForward, Producer: p, RecvNs: now.UnixNano()}})
	e.Eval(now)
	reg.MustRegister(e.Collector("aga"), n.Collector())
}
