package config

import (
	"errors"
	"testing"
)

// The rule metric and latency bound sets come from internal/schema; the
// messages listing them are pinned here, as they read before the move.
func TestSchemaSetMessages(t *testing.T) {
	rule := func(metric string) Config {
		c := Default()
		var r AlertRule
		r.SetDefaults()
		r.Name, r.Metric, r.Severity = "r", metric, "warning"
		c.AlertRules = []AlertRule{r}
		return c
	}
	slo := func(us float64) Config {
		c := Default()
		var s SLO
		s.SetDefaults()
		s.Name, s.Objective, s.SLI = "s", 0.99, SLI{Type: "latency", ThresholdUs: us}
		c.SLOs = []SLO{s}
		return c
	}
	for _, tc := range []struct {
		name string
		c    Config
		key  string
		msg  string // "" when valid
	}{
		{"known metric", rule("producer_heartbeat_age_seconds"), "", ""},
		{"unknown metric", rule("latency_p90"), "alert_rules[0].metric",
			`invalid value "latency_p90": unknown rule metric: must be one of latency_p50 latency_p95 latency_p99 gate_mean entropy_mean activation_rate retrieval_failure_rate knowledge_utilization slot_change_rate forward_rate drop_rate producer_heartbeat_age_seconds anomaly straggler`},
		{"bound", slo(2500), "", ""},
		{"not a bound", slo(2000), "slos[0].sli.threshold_us",
			`invalid value "2000": must be a forward latency bucket bound (5 10 25 50 100 250 500 1000 2500 5000) so Prometheus can compute the same SLI`},
		{"near a bound", slo(5.000001), "slos[0].sli.threshold_us",
			`invalid value "5.000001": must be a forward latency bucket bound (5 10 25 50 100 250 500 1000 2500 5000) so Prometheus can compute the same SLI`},
	} {
		checkValidate(t, tc.name, tc.c, tc.key, tc.msg)
	}
}

// Rules with metric anomaly or straggler take signal, sensitivity and
// direction; other rules do not.
func TestDetectorRuleKeys(t *testing.T) {
	rule := func(metric string, set func(*AlertRule)) Config {
		c := Default()
		var r AlertRule
		r.SetDefaults()
		r.Name, r.Metric = "r", metric
		set(&r)
		c.AlertRules = []AlertRule{r}
		return c
	}
	off := rule("anomaly", func(r *AlertRule) { r.Signal = "gate_mean" })
	off.AnomalyEnabled = false
	short := Default()
	short.AnomalyLearningPeriod = Duration(30 * 1e9)
	for _, tc := range []struct {
		name string
		c    Config
		key  string
		msg  string // "" when valid
	}{
		{"anomaly", rule("anomaly", func(r *AlertRule) { r.Signal, r.Sensitivity, r.Direction = "latency_p99", "high", "up" }), "", ""},
		{"straggler", rule("straggler", func(r *AlertRule) { r.Signal = "offcpu_p99" }), "", ""},
		{"no signal", rule("anomaly", func(r *AlertRule) {}), "alert_rules[0].signal",
			"required when metric is anomaly: one of latency_p50 latency_p99 applied_ratio gate_mean entropy_mean forward_rate retrieval_results retrieval_injected kv_utilization slot_change_rate drop_rate offcpu_p99 gc_pause_p99 gpu_utilization"},
		{"unknown signal", rule("anomaly", func(r *AlertRule) { r.Signal = "latency_p95" }), "alert_rules[0].signal",
			`invalid value "latency_p95": unknown signal: must be one of latency_p50 latency_p99 applied_ratio gate_mean entropy_mean forward_rate retrieval_results retrieval_injected kv_utilization slot_change_rate drop_rate offcpu_p99 gc_pause_p99 gpu_utilization`},
		{"straggler signal", rule("straggler", func(r *AlertRule) { r.Signal = "gate_mean" }), "alert_rules[0].signal",
			`invalid value "gate_mean": unknown signal: must be one of latency_p99 latency_p50 offcpu_p99`},
		{"straggler direction", rule("straggler", func(r *AlertRule) { r.Signal, r.Direction = "latency_p99", "up" }), "alert_rules[0].direction",
			`invalid value "up": straggler rules compare slower ranks only; remove direction`},
		{"sensitivity", rule("anomaly", func(r *AlertRule) { r.Signal, r.Sensitivity = "gate_mean", "extreme" }), "alert_rules[0].sensitivity",
			`invalid value "extreme": must be one of low medium high`},
		{"direction", rule("anomaly", func(r *AlertRule) { r.Signal, r.Direction = "gate_mean", "sideways" }), "alert_rules[0].direction",
			`invalid value "sideways": must be one of up down both`},
		{"signal on a threshold rule", rule("gate_mean", func(r *AlertRule) { r.Signal = "gate_mean" }), "alert_rules[0].signal",
			`invalid value "gate_mean": only rules with metric anomaly or straggler take signal`},
		{"detector off", off, "alert_rules[0].metric", `invalid value "anomaly": needs anomaly_enabled: true`},
		{"learning too short", short, "anomaly_learning_period", `invalid value "30s": must be >= 1m`},
	} {
		checkValidate(t, tc.name, tc.c, tc.key, tc.msg)
	}
}

// checkValidate checks that c validates when msg is empty, else that it
// fails with exactly key and msg.
func checkValidate(t *testing.T, name string, c Config, key, msg string) {
	t.Helper()
	err := c.Validate()
	var ce *Error
	switch {
	case msg == "" && err != nil:
		t.Errorf("%s: %v", name, err)
	case msg == "":
	case !errors.As(err, &ce):
		t.Errorf("%s: error %v, want a *Error", name, err)
	case ce.Key != key || ce.Msg != msg:
		t.Errorf("%s: key %q msg %q\nwant key %q msg %q", name, ce.Key, ce.Msg, key, msg)
	}
}
