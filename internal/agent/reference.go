package agent

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/agaobs/agaobs/internal/eventlog"
	"github.com/agaobs/agaobs/internal/metrics"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
)

// MetricsReference renders the README's metrics reference: the AGA-domain
// families (both namings) and the agent's own agaobs_* families, as the
// agent registers them. A test keeps the README in sync with it.
func MetricsReference() string {
	var b strings.Builder
	b.WriteString("AGA-domain families (prefix `prometheus_prefix`, default `aga`; every series also carries `prometheus_labels`):\n\n")
	b.WriteString(metrics.ReferenceTable("aga"))
	b.WriteString("\nAgent self-metrics (always `agaobs_`; plus the standard `go_*` and `process_*` families):\n\n")
	b.WriteString("| name | type | labels | meaning |\n|---|---|---|---|\n")
	reg := metrics.NewRegistry(nil, nil)
	reg.Self.Add("rings", metrics.NewRingsCollector(func() []rings.RingInfo {
		return []rings.RingInfo{{Producer: "p", Class: "hot", State: "live"}}
	}))
	reg.Self.Add("pipeline", metrics.NewPipelineCollector(func() []pipeline.SinkStats { return []pipeline.SinkStats{{Name: "metrics"}} }))
	if s, err := eventlog.New(eventlog.Options{Out: io.Discard}); err == nil {
		s.Register(reg)
	}
	mfs, _ := reg.Gather()
	sort.Slice(mfs, func(i, j int) bool { return mfs[i].GetName() < mfs[j].GetName() })
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "agaobs_") {
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
