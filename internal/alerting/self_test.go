package alerting

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/alerting/notify"
	"github.com/agaobs/agaobs/internal/alerting/promrules"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/testutil"
)

// firing returns the first firing notification of rule for producer.
func (r *recorder) firing(rule, producer string) (notify.Alert, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.got {
		if a.Name == rule && a.Producer == producer && a.Status == notify.StatusFiring {
			return a, true
		}
	}
	return notify.Alert{}, false
}

// A burn-rate alert reports the window pair that fired: its threshold,
// message and value are the pair's (the value the burn rate over the
// pair's long window). The engine used to report the first pair whichever
// fired: "burn rate 1.0x over 1d" with threshold 3 for the 3d/6h pair.
func TestSLOBurnAlertsReportTheFiringPair(t *testing.T) {
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	s := config.SLO{Name: "lat", Objective: 0.99, Period: config.Duration(30 * 24 * time.Hour), SLI: config.SLI{Type: "latency", ThresholdUs: 1000}}
	cfg.SLOs = []config.SLO{s}
	h := newHarness(t, cfg, nil, "tp0", "tp1")
	// Six hours, 20 forwards a minute. tp0: all good, then half bad from
	// 5h to 5h55m, good again for the last 5 minutes: the 5m window is
	// clean, so the critical alert fires on 6h/30m (6h: 550/7200 = 7.6 %,
	// 7.6x), and the warning on 1d/2h. tp1: 2 % bad all along: above 1x on
	// 3d and 6h, below 3x on 1d: the warning fires on 3d/6h.
	for m := 0; m < 360; m++ {
		at := base.Add(time.Duration(m) * time.Minute)
		var evs []pipeline.Event
		for i := 0; i < 20; i++ {
			l0, l1 := 200.0, 200.0
			if m >= 300 && m < 355 && i < 10 {
				l0 = 2000
			}
			if m%5 == 0 && i < 2 { // 2 of 100 per 5 minutes
				l1 = 2000
			}
			evs = append(evs, h.fwd("tp0", at, l0), h.fwd("tp1", at, l1))
		}
		h.write(evs...)
	}
	h.e.Eval(base.Add(6 * time.Hour))
	for _, tc := range []struct {
		rule, producer string
		pair           promrules.BurnPair
		value          [2]float64 // range
	}{
		{"slo_lat_burn_critical", "tp0", promrules.BurnAlerts()[0].Pairs[1], [2]float64{7.5, 7.7}},
		{"slo_lat_burn_warning", "tp0", promrules.BurnAlerts()[1].Pairs[0], [2]float64{7.5, 7.7}},
		{"slo_lat_burn_warning", "tp1", promrules.BurnAlerts()[1].Pairs[1], [2]float64{1.9, 2.1}},
	} {
		a, ok := h.rec.firing(tc.rule, tc.producer)
		if !ok {
			t.Errorf("%s %s did not fire", tc.rule, tc.producer)
			continue
		}
		want := strings.Replace(promrules.BurnMessage(s, tc.pair), "{value:.1f}", fmt.Sprintf("%.1f", a.Value), 1)
		if a.Threshold != tc.pair.Factor || a.Message != want || a.Annotations["summary"] != want ||
			a.Value < tc.value[0] || a.Value > tc.value[1] {
			t.Errorf("%s %s: threshold %v, value %v, message %q; want threshold %v, value in %v, message %q",
				tc.rule, tc.producer, a.Threshold, a.Value, a.Message, tc.pair.Factor, tc.value, want)
		}
		// The labels do not depend on the pair.
		if want := map[string]string{"alertname": tc.rule, "severity": a.Severity, "node": "node-1", "producer": tc.producer, "slo": "lat"}; !maps.Equal(a.Labels, want) {
			t.Errorf("%s %s labels %v, want %v", tc.rule, tc.producer, a.Labels, want)
		}
	}
	if _, ok := h.rec.firing("slo_lat_burn_critical", "tp1"); ok {
		t.Error("2 % errors paged")
	}
	// The API reports the pair's threshold too.
	active, _ := h.e.Alerts("", 0, 0)
	for _, v := range active {
		if v.RuleName == "slo_lat_burn_critical" && v.Producer == "tp0" && float64(v.Threshold) != 6 {
			t.Errorf("API threshold %v, want 6", v.Threshold)
		}
	}
}

// The engine raises the self alerts it sees: a producer that died (not
// one that closed) after a minute, the audit store refusing writes after
// two, events dropped at full sink queues for ten.
func TestSelfAlerts(t *testing.T) {
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	writable := true
	var dropped uint64
	h := newHarness(t, cfg, nil, "dies", "closes", "lives")
	h.e.opts.AuditWritable = func() bool { return writable }
	h.e.opts.SinkDropped = func() uint64 { return dropped }
	h.e.Reload(cfg) // compile the self rules with the hooks
	h.rings.set("dies", func(r *pipeline.RingStatus) { r.State = pipeline.RingStateDead })
	h.rings.set("closes", func(r *pipeline.RingStatus) { r.State = pipeline.RingStateClosed })
	type want struct {
		at     time.Duration
		rule   string
		target string
		state  string // "" = none
	}
	steps := []want{
		{30 * time.Second, promrules.AlertProducerDied, "dies", "pending"},
		{60 * time.Second, promrules.AlertProducerDied, "dies", "firing"},
		{60 * time.Second, promrules.AlertProducerDied, "closes", ""},
		{60 * time.Second, promrules.AlertProducerDied, "lives", ""},
		{60 * time.Second, promrules.AlertAuditStoreUnwritable, "", ""},
		{3 * time.Minute, promrules.AlertAuditStoreUnwritable, "", "pending"},
		{5 * time.Minute, promrules.AlertAuditStoreUnwritable, "", "firing"},
		{6 * time.Minute, promrules.AlertSinkDrops, "", "pending"},
		{16 * time.Minute, promrules.AlertSinkDrops, "", "firing"},
		{17 * time.Minute, promrules.AlertAuditStoreUnwritable, "", "resolved"},
		{23 * time.Minute, promrules.AlertSinkDrops, "", "resolved"}, // 5 minutes without drops
	}
	for s := time.Duration(0); s <= 23*time.Minute; s += time.Second {
		if s == 2*time.Minute+59*time.Second {
			writable = false
		}
		if s == 17*time.Minute {
			writable = true
		}
		if s >= 6*time.Minute && s < 17*time.Minute {
			dropped += 3
		}
		h.e.Eval(base.Add(s))
		for _, w := range steps {
			if w.at == s {
				if got := h.state(w.rule, w.target); got != w.state {
					t.Errorf("%v: %s %q is %q, want %q", s, w.rule, w.target, got, w.state)
				}
			}
		}
	}
	a, ok := h.rec.firing(promrules.AlertProducerDied, "dies")
	if !ok || a.Message != "Producer dies on node-1 died without closing its rings" || a.Severity != "warning" ||
		a.Annotations["runbook_url"] != promrules.DefaultRunbookBaseURL+"#agaobsproducerdied" ||
		!maps.Equal(a.Labels, map[string]string{"alertname": "AgaobsProducerDied", "severity": "warning", "node": "node-1", "producer": "dies"}) {
		t.Errorf("producer died: %+v", a)
	}
	if a, ok := h.rec.firing(promrules.AlertSinkDrops, ""); !ok || a.Message != "agaobs-agent on node-1 drops events at a full sink queue (3/s): metrics, logs or alerts miss events" {
		t.Errorf("sink drops: %+v", a)
	}
}

// A configured rule named like a self alert replaces it.
func TestSelfAlertReplacedByRule(t *testing.T) {
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	r := config.AlertRule{}
	r.SetDefaults()
	r.Name, r.Metric, r.Threshold = promrules.AlertProducerDied, "forward_rate", 1e9
	cfg.AlertRules = []config.AlertRule{r}
	h := newHarness(t, cfg, nil, "tp0")
	var n int
	for _, rv := range h.e.Rules() {
		if rv.Name == promrules.AlertProducerDied {
			n++
			if rv.Metric != "forward_rate" {
				t.Errorf("the built-in rule stayed: %+v", rv)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d rules named %s", n, promrules.AlertProducerDied)
	}
}

func TestCounterRate(t *testing.T) {
	c := &counterRate{window: 5 * time.Minute}
	for _, tc := range []struct {
		sec  int64
		v    uint64
		rate float64
		ok   bool
	}{
		{0, 10, 0, false},
		{0, 12, 0, false}, // one reading a second
		{10, 30, 2, true},
		{300, 30, 20.0 / 300, true},
		{310, 30, 0, true}, // the reading at 0 left the window
		{320, 5, 0, false}, // went back: start over
		{330, 15, 1, true},
	} {
		rate, ok := c.observe(tc.sec, tc.v)
		if rate != tc.rate || ok != tc.ok {
			t.Errorf("observe(%d, %d) = %v, %v; want %v, %v", tc.sec, tc.v, rate, ok, tc.rate, tc.ok)
		}
	}
}

// The alerts the engine raises and the same alerts Prometheus raises from
// `agaobs-agent rules` have the same labels (so Alertmanager, which
// deduplicates by label set, keeps one) and the same summary and
// runbook_url: the engine's notification is the expected alert of a
// promtool unit test of the generated file, over series as the agent
// exports them (node label, prometheus_labels) plus Prometheus's target
// labels.
func TestEngineAlertsMatchGeneratedRules(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool")
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	cfg.PrometheusLabels = map[string]string{"cluster": "c1"}
	cfg.SLOs = []config.SLO{{Name: "serving", Objective: 0.99, Period: config.Duration(30 * 24 * time.Hour), SLI: config.SLI{Type: "availability"}}}
	h := newHarness(t, cfg, nil, "tp0", "tp1")
	h.e.opts.AuditWritable = func() bool { return false }
	var dropped uint64
	h.e.opts.SinkDropped = func() uint64 { return dropped }
	h.e.Reload(cfg)
	h.rings.set("tp0", func(r *pipeline.RingStatus) { r.State = pipeline.RingStateDead })
	for s := time.Duration(0); s <= 70*time.Minute; s += time.Second {
		dropped += 2
		h.e.Eval(base.Add(s))
	}
	rules := []string{"slo_serving_burn_critical", "slo_serving_burn_warning", promrules.AlertProducerDied,
		promrules.AlertAuditStoreUnwritable, promrules.AlertSinkDrops}

	out, _, err := promrules.Generate(promrules.Options{SLOs: cfg.SLOs, NodeLabel: true, SeriesLabels: []string{"cluster"}})
	if err != nil {
		t.Fatal(err)
	}
	target := `cluster="c1",instance="node-1:9090",job="agaobs-agent",node="node-1"`
	series := fmt.Sprintf(`      - series: 'agaobs_producer_available{%[1]s,producer="tp0"}'
        values: '0x70'
      - series: 'agaobs_producer_available{%[1]s,producer="tp1"}'
        values: '1x70'
      - series: 'agaobs_producer_state{%[1]s,producer="tp0",state="dead"}'
        values: '1x70'
      - series: 'agaobs_producer_state{%[1]s,producer="tp1",state="dead"}'
        values: '0x70'
      - series: 'agaobs_audit_store_up{%[1]s}'
        values: '0x70'
      - series: 'agaobs_sink_dropped_total{%[1]s,sink="metrics"}'
        values: '0+120x70'
`, target)
	var tests strings.Builder
	for _, name := range rules {
		fmt.Fprintf(&tests, "      - eval_time: 70m\n        alertname: %s\n        exp_alerts:\n", name)
		h.rec.mu.Lock()
		var got []notify.Alert
		for _, a := range h.rec.got {
			if a.Name == name && a.Status == notify.StatusFiring {
				got = append(got, a)
			}
		}
		h.rec.mu.Unlock()
		if len(got) == 0 {
			t.Fatalf("%s: the engine did not fire", name)
		}
		a := got[len(got)-1] // the latest (re-)notification
		tests.WriteString("          - exp_labels:\n")
		for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
			if k != "alertname" {
				fmt.Fprintf(&tests, "              %s: %q\n", k, a.Labels[k])
			}
		}
		tests.WriteString("            exp_annotations:\n")
		fmt.Fprintf(&tests, "              summary: %q\n", a.Annotations["summary"])
		if u := a.Annotations["runbook_url"]; u != "" {
			fmt.Fprintf(&tests, "              runbook_url: %q\n", u)
		}
	}
	test := "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n" + series +
		"    alert_rule_test:\n" + tests.String()
	dir := t.TempDir()
	for name, body := range map[string]string{"rules.yml": string(out), "test.yml": test} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, "test.yml")).CombinedOutput(); err != nil {
		t.Fatalf("the engine's alerts differ from Prometheus's: %v\n%s\ntest:\n%s", err, res, test)
	}
}
