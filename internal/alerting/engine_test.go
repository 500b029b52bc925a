package alerting

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/alerting/notify"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/state"
)

// recorder is a Notifier that keeps what it was sent.
type recorder struct {
	mu  sync.Mutex
	got []notify.Alert
}

func (r *recorder) Notify(a []notify.Alert) {
	r.mu.Lock()
	r.got = append(r.got, a...)
	r.mu.Unlock()
}

func (r *recorder) sent(name, status string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.got {
		if a.Name == name && a.Status == status {
			n++
		}
	}
	return n
}

// fakeRings returns a live hot ring per producer with settable counters.
type fakeRings struct {
	mu    sync.Mutex
	infos map[string]*pipeline.RingStatus
}

func newFakeRings(producers ...string) *fakeRings {
	f := &fakeRings{infos: map[string]*pipeline.RingStatus{}}
	for _, p := range producers {
		f.infos[p] = &pipeline.RingStatus{Class: pipeline.ClassHot, State: pipeline.RingStateLive, HeartbeatAge: 0.2}
	}
	return f
}

// snapshot is the consumer's snapshot of the fake rings, sorted by name.
func (f *fakeRings) snapshot() *pipeline.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &pipeline.Snapshot{}
	for name, r := range f.infos {
		s.Producers = append(s.Producers, pipeline.ProducerStatus{Name: name, Rings: []pipeline.RingStatus{*r}})
	}
	sort.Slice(s.Producers, func(i, j int) bool { return s.Producers[i].Name < s.Producers[j].Name })
	return s
}

func (f *fakeRings) set(p string, fn func(*pipeline.RingStatus)) {
	f.mu.Lock()
	fn(f.infos[p])
	f.mu.Unlock()
}

type harness struct {
	e     *Engine
	rec   *recorder
	rings *fakeRings
	prods map[string]*pipeline.Producer
}

func newHarness(t *testing.T, cfg config.Config, st *state.Store, producers ...string) *harness {
	t.Helper()
	h := &harness{rec: &recorder{}, rings: newFakeRings(producers...), prods: map[string]*pipeline.Producer{}}
	for _, p := range producers {
		h.prods[p] = pipeline.NewProducer(p, p, 1, 1, "r", pipeline.Identity{Producer: p})
	}
	e, err := New(Options{Config: cfg, Snapshot: h.rings.snapshot, Notifier: h.rec, State: st, Node: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	h.e = e
	return h
}

func (h *harness) write(evs ...pipeline.Event) { h.e.Write(context.Background(), evs) }

func (h *harness) fwd(p string, at time.Time, latency float64) pipeline.Event {
	return pipeline.Event{Kind: pipeline.KindForward, Producer: h.prods[p], RecvNs: at.UnixNano(),
		Forward: pipeline.Forward{}.WithLatency(latency).WithGate(0.5).WithLayer(31).WithApplied(true)}
}

func (h *harness) state(rule, producer string) string {
	active, _ := h.e.Alerts("", 0, 0)
	for _, a := range active {
		if a.RuleName == rule && a.Producer == producer {
			return a.State
		}
	}
	return ""
}

func defaults() config.Config {
	c := config.Default()
	return c
}

// p99 > 1000 fires for more than 1 % of forwards slower than 1000 µs and
// not at exactly 1 %; p99 > 5000 (the top bucket bound) fires too.
func TestLatencyRulesBucketProperty(t *testing.T) {
	h := newHarness(t, defaults(), nil, "tp0")
	now := base
	batch := func(slow int, latency float64) {
		var evs []pipeline.Event
		for i := 0; i < 1000; i++ {
			l := 300.0
			if i < slow {
				l = latency
			}
			evs = append(evs, h.fwd("tp0", now, l))
		}
		h.write(evs...)
	}
	batch(10, 1500) // exactly 1 % slower than 1000 µs
	h.e.Eval(now)
	if s := h.state("slo_latency_p99", "tp0"); s != "" {
		t.Fatalf("exactly 1%% above the threshold: state %q", s)
	}
	now = now.Add(time.Second)
	batch(12, 1500) // 22 of 2000 = 1.1 %
	h.e.Eval(now)
	if s := h.state("slo_latency_p99", "tp0"); s != "firing" || h.rec.sent("slo_latency_p99", "firing") != 1 {
		t.Fatalf("1.1%% above: state %q, sent %d", s, h.rec.sent("slo_latency_p99", "firing"))
	}
	if s := h.state("slo_latency_critical", "tp0"); s != "" {
		t.Fatalf("critical without forwards above 5000 µs: %q", s)
	}
	now = now.Add(time.Second)
	batch(80, 8000) // 80 of 3000 above 5000 µs
	h.e.Eval(now)
	if s := h.state("slo_latency_critical", "tp0"); s != "firing" {
		t.Fatalf("more than 1%% above the top bound: critical state %q", s)
	}
	// The windows are time windows: 61 s later the slow forwards are out.
	now = now.Add(61 * time.Second)
	batch(0, 0)
	h.e.Eval(now)
	if s := h.state("slo_latency_p99", "tp0"); s != "resolved" || h.rec.sent("slo_latency_p99", "resolved") != 1 {
		t.Fatalf("after the window passed: %q", s)
	}
}

func TestGaugeAndRateMetrics(t *testing.T) {
	cfg := defaults()
	cfg.PrometheusLabels = map[string]string{"cluster": "c1"}
	rule := func(name, metric, op string, thr float64, perProducer bool) config.AlertRule {
		r := config.AlertRule{}
		r.SetDefaults()
		r.Name, r.Metric, r.Operator, r.Threshold, r.PerProducer, r.WindowSeconds = name, metric, op, thr, perProducer, 10
		return r
	}
	cfg.AlertRules = []config.AlertRule{
		rule("gate_mean_mid", "gate_mean", "==", 0.5, true),
		rule("failing_retrievals", "retrieval_failure_rate", ">=", 0.75, true),
		rule("node_rate", "forward_rate", ">", 0.5, false),
		rule("drops", "drop_rate", ">", 0.1, true),
		rule("stale", "producer_heartbeat_age_seconds", ">", 5, true),
		rule("mostly_applied", "activation_rate", ">=", 0.75, true),
	}
	h := newHarness(t, cfg, nil, "tp0", "tp1")
	now := base
	h.e.Eval(now) // baseline ring sample
	st := func(util, slot float64) pipeline.Event {
		return pipeline.Event{Kind: pipeline.KindStatus, Producer: h.prods["tp0"], RecvNs: now.UnixNano(),
			Status: &pipeline.Status{KVStore: &pipeline.KVStoreStatus{Utilization: &util}, SlotChangeRate: &slot}}
	}
	g := func(p string, gate float64, applied bool) pipeline.Event {
		ev := h.fwd(p, now, 100)
		ev.Forward = ev.Forward.WithGate(gate).WithApplied(applied)
		return ev
	}
	// Gate mean is a real mean (0.1 and 0.9 → 0.5), not the latest value.
	h.write(st(0.96, 0.7), g("tp0", 0.1, true), g("tp0", 0.9, true), g("tp0", 0.9, true), g("tp0", 0.1, false),
		g("tp1", 0.2, true), g("tp1", 0.2, true),
		pipeline.Event{Kind: pipeline.KindRetrieval, Producer: h.prods["tp1"], RecvNs: now.UnixNano(),
			Retrieval: retrieval(pipeline.Retrieval{}.WithLayer(0).WithResults(10).WithInjected(2).WithBudget(0))})
	h.rings.set("tp1", func(r *pipeline.RingStatus) { r.Consumed, r.Dropped, r.HeartbeatAge = 100, 50, 9 })
	h.e.Eval(now.Add(time.Second))
	want := map[[2]string]string{
		{"high_utilization", "tp0"}: "firing", {"slot_thrashing", "tp0"}: "firing", {"gate_mean_mid", "tp0"}: "firing",
		{"gate_mean_mid", "tp1"}: "", {"failing_retrievals", "tp1"}: "firing", {"node_rate", ""}: "firing",
		{"drops", "tp1"}: "firing", {"drops", "tp0"}: "", {"stale", "tp1"}: "firing", {"stale", "tp0"}: "",
		{"mostly_applied", "tp0"}: "firing", {"high_utilization", "tp1"}: "",
	}
	for k, w := range want {
		if got := h.state(k[0], k[1]); got != w {
			t.Errorf("%s for %q: %q, want %q", k[0], k[1], got, w)
		}
	}
	// Notifications carry the labels Alertmanager needs.
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	for _, a := range h.rec.got {
		if a.Name == "drops" && (a.Labels["producer"] != "tp1" || a.Labels["node"] != "node-1" || a.Labels["severity"] != "warning" ||
			a.Labels["alertname"] != "drops" || a.Labels["cluster"] != "c1" || len(a.Labels) != 5) {
			t.Errorf("labels %v: want alertname, severity, node, producer and the prometheus_labels", a.Labels)
		}
		if a.Name == "node_rate" && a.Labels["producer"] != "" {
			t.Errorf("node-wide rule labelled with a producer: %v", a.Labels)
		}
	}
}

func TestRestartResumesForAndFiring(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	r := config.AlertRule{}
	r.SetDefaults()
	r.Name, r.Metric, r.Threshold, r.WindowSeconds, r.For = "busy", "forward_rate", 0, 30, config.Duration(2*time.Minute)
	cfg.AlertRules = []config.AlertRule{r}
	h := newHarness(t, cfg, st, "tp0")
	for s := 0; s <= 60; s += 10 {
		now := base.Add(time.Duration(s) * time.Second)
		h.write(h.fwd("tp0", now, 100))
		h.e.Eval(now)
	}
	if s := h.state("busy", "tp0"); s != "pending" {
		t.Fatalf("before the restart: %q", s)
	}
	// kill -9: a new engine from the same state file, no save on exit.
	h2 := newHarness(t, cfg, st, "tp0")
	for s := 90; s <= 130; s += 10 {
		now := base.Add(time.Duration(s) * time.Second)
		h2.write(h2.fwd("tp0", now, 100))
		h2.e.Eval(now)
		want := "pending"
		if s >= 120 { // the original ActiveAt (base) + for
			want = "firing"
		}
		if got := h2.state("busy", "tp0"); got != want {
			t.Fatalf("at %ds after the restart: %q, want %q", s, got, want)
		}
	}
	// A firing alert survives a restart without a second firing notice.
	h3 := newHarness(t, cfg, st, "tp0")
	now := base.Add(140 * time.Second)
	h3.write(h3.fwd("tp0", now, 100))
	h3.e.Eval(now)
	if h3.state("busy", "tp0") != "firing" || h3.rec.sent("busy", "firing") != 0 {
		t.Fatalf("restored firing alert: %q, %d notifications", h3.state("busy", "tp0"), h3.rec.sent("busy", "firing"))
	}
}

func TestReloadKeepsUnchangedRules(t *testing.T) {
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	mk := func(name string, thr float64) config.AlertRule {
		r := config.AlertRule{}
		r.SetDefaults()
		r.Name, r.Metric, r.Threshold, r.WindowSeconds, r.For = name, "forward_rate", thr, 30, config.Duration(time.Hour)
		return r
	}
	cfg.AlertRules = []config.AlertRule{mk("same", 0), mk("changed", 0)}
	h := newHarness(t, cfg, nil, "tp0")
	h.write(h.fwd("tp0", base, 100))
	h.e.Eval(base)
	cfg.AlertRules = []config.AlertRule{mk("same", 0), mk("changed", 0.001)}
	h.e.Reload(cfg)
	later := base.Add(10 * time.Second)
	h.write(h.fwd("tp0", later, 100))
	h.e.Eval(later)
	active, _ := h.e.Alerts("", 0, 0)
	for _, a := range active {
		want := base
		if a.RuleName == "changed" {
			want = later
		}
		if !a.ActiveAt.Equal(want) {
			t.Errorf("%s active since %v, want %v", a.RuleName, a.ActiveAt, want)
		}
	}
	if len(active) != 2 {
		t.Fatalf("active %+v", active)
	}
}

func TestTemplateErrorStaysWithItsRule(t *testing.T) {
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	mk := func(name, msg string) config.AlertRule {
		r := config.AlertRule{}
		r.SetDefaults()
		r.Name, r.Metric, r.Threshold, r.WindowSeconds, r.Message = name, "forward_rate", 0, 30, msg
		return r
	}
	cfg.AlertRules = []config.AlertRule{mk("broken", "rate {valu:.1f}"), mk("fine", "rate {value:.1f}/s")}
	h := newHarness(t, cfg, nil, "tp0")
	h.write(h.fwd("tp0", base, 100))
	h.e.Eval(base)
	var msgs []string
	for _, a := range h.rec.got {
		msgs = append(msgs, a.Name+": "+a.Message)
	}
	joined := strings.Join(msgs, "\n")
	if !strings.Contains(joined, "broken: <error expanding template:") || !strings.Contains(joined, "fine: rate 0.0/s") {
		t.Fatalf("messages:\n%s", joined)
	}
	if h.e.failures["broken"] != 1 || h.e.failures["fine"] != 0 {
		t.Errorf("failures %v", h.e.failures)
	}
}

// The latency SLO's critical alert needs both windows of a pair: a burst
// in the last 5 minutes alone does not page; an hour of it does.
func TestSLOBurnRateAlerts(t *testing.T) {
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	cfg.SLOs = []config.SLO{{Name: "lat", Objective: 0.99, Period: config.Duration(30 * 24 * time.Hour), SLI: config.SLI{Type: "latency", ThresholdUs: 1000}}}
	run := func(badFrom time.Duration, total time.Duration) (*harness, time.Time) {
		h := newHarness(t, cfg, nil, "tp0")
		var now time.Time
		for s := time.Duration(0); s < total; s += 10 * time.Second {
			now = base.Add(s)
			slow := 0
			if s >= badFrom {
				slow = 2 // 2 of 10 = 20 % bad: burn 20×
			}
			var evs []pipeline.Event
			for i := 0; i < 10; i++ {
				l := 200.0
				if i < slow {
					l = 2000
				}
				evs = append(evs, h.fwd("tp0", now, l))
			}
			h.write(evs...)
			if s%time.Minute == 0 {
				h.e.Eval(now)
			}
		}
		h.e.Eval(now)
		return h, now
	}
	h, _ := run(65*time.Minute, 70*time.Minute) // only the last 5 minutes bad
	if s := h.state("slo_lat_burn_critical", "tp0"); s != "" {
		t.Fatalf("short burst alone paged: %q", s)
	}
	h, now := run(0, 70*time.Minute)
	if s := h.state("slo_lat_burn_critical", "tp0"); s != "firing" {
		t.Fatalf("an hour at 20x burn: %q", s)
	}
	if b, ok := h.e.slos[0].burn("tp0", now.Unix(), time.Hour); !ok || b < 19 || b > 21 {
		t.Errorf("1h burn %v", b)
	}
}

func TestForgottenProducerResolves(t *testing.T) {
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	r := config.AlertRule{}
	r.SetDefaults()
	r.Name, r.Metric, r.Threshold, r.WindowSeconds = "busy", "forward_rate", 0, 30
	cfg.AlertRules = []config.AlertRule{r}
	h := newHarness(t, cfg, nil, "tp0")
	h.write(h.fwd("tp0", base, 100))
	h.e.Eval(base)
	h.write(pipeline.Event{Kind: pipeline.KindLifecycle, Producer: h.prods["tp0"], Lifecycle: &pipeline.Lifecycle{Type: pipeline.ProducerForgotten}})
	h.rings.mu.Lock()
	delete(h.rings.infos, "tp0")
	h.rings.mu.Unlock()
	h.e.Eval(base.Add(time.Second))
	if h.rec.sent("busy", "resolved") != 1 {
		t.Fatal("alert of a forgotten producer not resolved")
	}
}

// Alerts filters the history like the seed's get_alerts: severity, since
// (inclusive) and limit (the most recent n; 0 = all).
func TestAlertsFilters(t *testing.T) {
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	mk := func(name, severity string) config.AlertRule {
		r := config.AlertRule{}
		r.SetDefaults()
		r.Name, r.Metric, r.Threshold, r.WindowSeconds, r.Severity, r.CooldownSeconds = name, "forward_rate", 0, 5, severity, 10
		return r
	}
	cfg.AlertRules = []config.AlertRule{mk("w", "warning"), mk("c", "critical")}
	h := newHarness(t, cfg, nil, "tp0")
	for s := 0; s <= 30; s += 10 { // fires at 0, re-notified at 10, 20, 30
		now := base.Add(time.Duration(s) * time.Second)
		h.write(h.fwd("tp0", now, 100))
		h.e.Eval(now)
	}
	_, all := h.e.Alerts("", 0, 0)
	if len(all) != 8 {
		t.Fatalf("history %d entries, want 8", len(all))
	}
	_, crit := h.e.Alerts("critical", 0, 0)
	_, recent := h.e.Alerts("", 3, 0)
	_, since := h.e.Alerts("warning", 0, float64(base.Add(20*time.Second).Unix()))
	if len(crit) != 4 || crit[0].RuleName != "c" {
		t.Errorf("severity filter: %+v", crit)
	}
	if len(recent) != 3 || recent[2].Timestamp != float64(base.Add(30*time.Second).Unix()) {
		t.Errorf("limit keeps the most recent: %+v", recent)
	}
	if len(since) != 2 {
		t.Errorf("since is inclusive: %d entries, want 2", len(since))
	}
}

// Every state change reaches OnTransition (the audit trail); pending never
// reaches the notifier and re-notifications never reach the audit trail.
func TestTransitionsReachAuditHook(t *testing.T) {
	cfg := defaults()
	cfg.AlertUseDefaultRules = false
	r := config.AlertRule{}
	r.SetDefaults()
	r.Name, r.Metric, r.Threshold, r.WindowSeconds, r.For = "busy", "forward_rate", 0, 10, config.Duration(20*time.Second)
	r.CooldownSeconds = 5
	cfg.AlertRules = []config.AlertRule{r}
	h := newHarness(t, cfg, nil, "tp0")
	var got []string
	h.e.opts.OnTransition = func(a AuditTransition) {
		got = append(got, fmt.Sprintf("%s/%s/%s@%ds", a.Rule, a.Producer, a.State, a.At.Sub(base)/time.Second))
	}
	for s := 0; s <= 40; s += 10 {
		now := base.Add(time.Duration(s) * time.Second)
		h.write(h.fwd("tp0", now, 100))
		h.e.Eval(now)
	}
	h.e.Eval(base.Add(60 * time.Second)) // the window is empty: resolved
	want := []string{"busy/tp0/pending@0s", "busy/tp0/firing@20s", "busy/tp0/resolved@60s"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit transitions %v, want %v", got, want)
	}
	if h.rec.sent("busy", "pending") != 0 || h.rec.sent("busy", "firing") < 2 || h.rec.sent("busy", "resolved") != 1 {
		t.Fatalf("notifications: %+v", h.rec.got)
	}
}

func retrieval(r pipeline.Retrieval) *pipeline.Retrieval { return &r }
