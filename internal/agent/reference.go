package agent

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/agaobs/agaobs/internal/alerting"
	"github.com/agaobs/agaobs/internal/alerting/notify"
	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/eventlog"
	"github.com/agaobs/agaobs/internal/gpu"
	"github.com/agaobs/agaobs/internal/health"
	"github.com/agaobs/agaobs/internal/metrics"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/probes"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
	"github.com/agaobs/agaobs/internal/web"
)

// referenceElsewhere are self-metrics families documented in their own
// tables (docs/health.md, docs/ebpf.md, docs/otlp.md, docs/live.md).
var referenceElsewhere = []string{"agaobs_gpu_", "agaobs_bpf_", "agaobs_otlp_", "agaobs_ui_"}

// MetricsReference renders the README's metrics reference: the AGA-domain
// families (both namings) and the agent's own families, listed from the
// descriptors of every source the agent can register, so a family needs
// no data to appear. A test keeps the README in sync with it.
func MetricsReference() string {
	var b strings.Builder
	b.WriteString("AGA-domain families (prefix `prometheus_prefix`, default `aga`; every series also carries `prometheus_labels`):\n\n")
	b.WriteString(schema.ReferenceTable("aga"))
	b.WriteString("\nAgent self-metrics (always `agaobs_`; plus the standard `go_*` and `process_*` families; the `agaobs_gpu_*` families are listed in [docs/health.md](docs/health.md#gpu-metrics), the `agaobs_bpf_*` ones in [docs/ebpf.md](docs/ebpf.md#metrics), the `agaobs_otlp_*` ones in [docs/otlp.md](docs/otlp.md), the `agaobs_ui_*` ones in [docs/live.md](docs/live.md#self-metrics)) and alerting families (`<prefix>_alerts` and `<prefix>_slo_*` follow `prometheus_prefix`):\n\n")
	b.WriteString("| name | type | labels | meaning |\n|---|---|---|---|\n")
	reg := metrics.NewRegistry(nil, metrics.New(metrics.Options{}), referenceSet())
	rows := map[string]string{}
	row := func(name, typ string, labels []string, help string) string {
		labels = slices.Sorted(slices.Values(labels))
		return fmt.Sprintf("| `%s` | %s | %s | %s |\n", name, typ, strings.Join(labels, ", "), help)
	}
	for _, f := range reg.Self.Families() {
		rows[f.Name] = row(f.Name, f.Type.String(), f.Labels, f.Help)
	}
	// The registry's own agaobs_* families beside the set (build info)
	// come from client_golang: they are listed from a scrape.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if _, ok := rows[mf.GetName()]; ok || !strings.HasPrefix(mf.GetName(), "agaobs_") || len(mf.Metric) == 0 {
			continue
		}
		var labels []string
		for _, l := range mf.Metric[0].Label {
			labels = append(labels, l.GetName())
		}
		rows[mf.GetName()] = row(mf.GetName(), strings.ToLower(mf.GetType().String()), labels, mf.GetHelp())
	}
	for _, name := range slices.Sorted(maps.Keys(rows)) {
		if slices.ContainsFunc(referenceElsewhere, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		b.WriteString(rows[name])
	}
	return b.String()
}

// referenceSet holds every self-metrics source of the agent, built over
// empty inputs (nothing runs, fires or is written): what New registers
// with every optional component on, the exporter's counters aside
// (NewRegistry adds them).
func referenceSet() *selfmetrics.Set {
	empty := func() *pipeline.Snapshot { return &pipeline.Snapshot{} }
	s := selfmetrics.NewSet()
	s.Add("rings", metrics.NewRingsCollector(empty))
	s.Add("consumer", metrics.NewConsumerCollector(func() pipeline.ConsumerCounters { return pipeline.ConsumerCounters{} }))
	s.Add("pipeline", metrics.NewPipelineCollector(func() []pipeline.SinkStats { return nil }))
	logSink, err := eventlog.New(eventlog.Options{Out: io.Discard})
	must(err)
	s.Add("eventlog", logSink.Collector())
	n, err := notify.New(notify.Options{})
	must(err)
	e, err := alerting.New(alerting.Options{Config: config.Default(), Notifier: n, Snapshot: empty})
	must(err)
	s.Add("alerting", e.Collector("aga"))
	s.Add("notify", n.Collector())
	s.Add("audit", audit.NewWriter(audit.WriterOptions{Store: audit.NewMemory()}).Collector())
	s.Add("audit_verify", audit.NewVerifier(audit.VerifierOptions{Store: audit.NewMemory()}).Collector())
	s.Add("health", health.New(health.Options{}).Collector())
	s.Add("web", web.Collector(func() []*web.Server { return nil }))
	s.Add("probes", probes.New(probes.Options{}).Collector())
	s.Add("gpu", gpu.New(gpu.Options{}).Metrics())
	s.Add("producer_gpu", metrics.NewProducerGPUCollector(empty, func(int) map[string]uint64 { return nil }))
	return s
}

// must panics on a reference component that cannot be built over empty
// inputs: a programming error the reference test reports.
func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("metrics reference: %v", err))
	}
}
