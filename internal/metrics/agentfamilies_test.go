package metrics_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/alerting"
	"github.com/agaobs/agaobs/internal/alerting/notify"
	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/health"
	"github.com/agaobs/agaobs/internal/metrics"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// The collectors of other packages that label series by producer (alert
// engine, audit trail, health) get a producer name that is not UTF-8 and an
// operation that is not either: the registry neither panics (const metrics
// panic on invalid UTF-8) nor drops series, and the exposition parses in
// every format.
func TestHostileLabelsAgentCollectors(t *testing.T) {
	const name = "w\xff\n\"\\"
	p := pipeline.NewProducer(name, "k", 1, 1, "r\xfe", pipeline.Identity{Producer: name})
	ctx := context.Background()
	now := time.Now()
	self := selfmetrics.NewSet()

	cfg := config.Default()
	cfg.AlertUseDefaultRules = false
	r := config.AlertRule{}
	r.SetDefaults()
	r.Name, r.Metric, r.Threshold, r.Message = "fires", "forward_rate", -1, "{producer}"
	cfg.AlertRules = []config.AlertRule{r}
	cfg.SLOs = []config.SLO{{Name: "avail", Objective: 0.99, Period: config.Duration(24 * time.Hour), SLI: config.SLI{Type: "availability"}}}
	n, err := notify.New(notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := alerting.New(alerting.Options{Config: cfg, Notifier: n, Snapshot: func() *pipeline.Snapshot {
		return &pipeline.Snapshot{Producers: []pipeline.ProducerStatus{{Name: name,
			Rings: []pipeline.RingStatus{{Class: pipeline.ClassHot, State: pipeline.RingStateLive, Consumed: 5}}}}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alerts.Write(ctx, []pipeline.Event{{Kind: pipeline.KindForward, Producer: p, RecvNs: now.UnixNano()}}); err != nil {
		t.Fatal(err)
	}
	alerts.Eval(now)
	self.Add("alerting", alerts.Collector("aga"))
	self.Add("notify", n.Collector())

	w := audit.NewWriter(audit.WriterOptions{Store: audit.NewMemory()})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(runCtx) }()
	ts := now.UnixNano()
	if err := w.Write(ctx, []pipeline.Event{{Kind: pipeline.KindAudit, Producer: p, TimeNs: ts, RecvNs: ts,
		Audit: &pipeline.Audit{Operation: "op\xff", Details: []byte(`{}`), Success: true, Raw: []byte(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	self.Add("audit", w.Collector())

	h := health.New(health.Options{Sources: []health.Source{health.SourceFunc(func(time.Time) map[string]health.Component {
		return map[string]health.Component{name + "/gate_system": {Status: health.Degraded}}
	})}})
	h.Evaluate(now)
	self.Add("health", h.Collector())
	reg := metrics.NewRegistry(map[string]string{"site": "lab"}, nil, self)

	var errLog logBuffer
	text, mfs := metrics.CheckExposition(t, reg.Handler(slog.New(slog.NewTextHandler(&errLog, nil))))
	if errLog.n > 0 {
		t.Errorf("the handler logged errors (series dropped):\n%s", errLog.b)
	}
	for _, fam := range []string{"aga_alerts", "agaobs_producer_available", "agaobs_audit_records_total", "agaobs_health_status"} {
		if mfs[fam] == nil {
			t.Errorf("no %s", fam)
		}
	}
	if got := metrics.PromtoolCheck(t, text); len(got) > 0 {
		t.Errorf("promtool check metrics: %q", got)
	}
}

type logBuffer struct {
	b []byte
	n int
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.b, l.n = append(l.b, p...), l.n+1
	return len(p), nil
}
