package promrules

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/rules.yml from goldenOptions")

const goldenPath = "testdata/rules.yml"

// goldenOptions is the fixed configuration behind testdata/rules.yml, the
// rule file testdata/rules_test.yml unit-tests with promtool: the default
// rules, a node-wide rule, a rule using for, keep_firing_for, labels and
// annotations, a rule PromQL cannot express, and a latency and an
// availability SLO; with them the agent's own alerts and the fleet rules.
func goldenOptions() Options {
	heartbeat := newRule("node_heartbeat_stale", "producer_heartbeat_age_seconds", ">", 30)
	heartbeat.PerProducer = false
	heartbeat.Severity = "critical"
	heartbeat.Message = "Oldest producer heartbeat is {value:.0f}s old (threshold {threshold:.0f}s)"

	activation := newRule("low_activation", "activation_rate", "<", 0.1)
	activation.For = config.Duration(time.Minute)
	activation.KeepFiringFor = config.Duration(2 * time.Minute)
	activation.Labels = map[string]string{"team": "inference"}
	activation.Annotations = map[string]string{"runbook_url": "https://example.com/runbooks/low-activation"}
	activation.Message = "Activation rate {value:.2f} below {threshold} on {{ $labels.producer }}"

	return Options{
		NodeLabel: true, // the default of prometheus_node_label
		Rules: append(EffectiveRules(true, []config.AlertRule{
			heartbeat, activation, newRule("retrieval_failures", "retrieval_failure_rate", ">", 0.2),
		}), AnomalyRules()...),
		SLOs: []config.SLO{
			newSLO("forward_latency", 0.999, "latency", 1000),
			newSLO("serving", 0.99, "availability", 0),
		},
	}
}

// The committed rule file is what Generate renders, so the promtool unit
// tests below test Generate.
func TestGolden(t *testing.T) {
	got, skipped, err := Generate(goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	// The retrieval rule, and two default anomaly rules: retrieval result
	// counts are not exported, and straggler peer groups not expressible.
	if len(skipped) != 3 || skipped[0].Rule != "retrieval_failures" || skipped[1].Rule != "anomaly_retrieval_starvation" ||
		skipped[2].Rule != "anomaly_straggler_rank" {
		t.Errorf("skipped = %+v", skipped)
	}
	if *update {
		if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Generate's output differs from %s; if the change is intended, run\n"+
			"  go test ./internal/alerting/promrules -run TestGolden -update\n"+
			"and check testdata/rules_test.yml still passes.\ngot:\n%s", goldenPath, got)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool")
	out, err := exec.Command(promtool, "test", "rules", "testdata/rules_test.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// allMetricRules returns, besides the defaults, a rule for every metric in
// both scopes and every operator, with for, keep_firing_for, labels and
// annotations set on some.
func allMetricRules() []config.AlertRule {
	ops := []string{">", "<", ">=", "<=", "==", "!="}
	var custom []config.AlertRule
	for i, m := range strings.Fields(schema.RuleMetricList()) {
		if schema.RuleMetric(m).Detector() {
			continue // below, once per signal
		}
		for _, per := range []bool{true, false} {
			r := newRule(fmt.Sprintf("%s_%v", m, per), m, ops[i%len(ops)], 0.5)
			r.PerProducer = per
			r.WindowSeconds = []float64{60, 30, 300, 1.5}[i%4]
			r.Message = "{name}: {metric} is {value:.3g} ({threshold})"
			if i%2 == 0 {
				r.For = config.Duration(2 * time.Minute)
				r.KeepFiringFor = config.Duration(5 * time.Minute)
				r.Labels = map[string]string{"team": "ml", "tier": "{{ $labels.producer }}"}
				r.Annotations = map[string]string{"runbook_url": "https://example.com/" + m, "description": "{{ $value | humanize }}"}
			}
			custom = append(custom, r)
		}
	}
	for i, sig := range schema.AnomalySignals() {
		r := newRule("anomaly_"+sig, "anomaly", "", 0)
		r.Signal, r.Direction, r.Sensitivity = sig, []string{"", "up", "down"}[i%3], []string{"", "low", "medium", "high"}[i%4]
		custom = append(custom, r)
	}
	return append(EffectiveRules(true, custom), AnomalyRules()...)
}

// Every kind of output passes `promtool check rules`, in both namings.
func TestPromtoolCheckRules(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool")
	period28d := newSLO("p28", 0.9995, "latency", 5)
	period28d.Period = config.Duration(28 * 24 * time.Hour)
	period7d := newSLO("p7", 0.95, "availability", 0)
	period7d.Period = config.Duration(7 * 24 * time.Hour)
	cases := map[string]Options{
		"defaults": {Rules: DefaultRules()},
		"custom":   {Rules: allMetricRules(), ExtraLabels: map[string]string{"cluster": "c1"}},
		"slos": {SLOs: []config.SLO{
			newSLO("latency", 0.999, "latency", 1000), newSLO("availability", 0.99, "availability", 0), period28d, period7d,
		}},
		"everything": {Prefix: "llm", Rules: allMetricRules(), SLOs: goldenOptions().SLOs},
		"empty":      {},
	}
	for name, opts := range cases {
		for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
			o := opts
			o.Naming = naming
			t.Run(name+"/"+string(naming), func(t *testing.T) {
				t.Parallel()
				out, _, err := Generate(o)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "rules.yml")
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
				res, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
				if err != nil {
					t.Fatalf("promtool check rules: %v\n%s\nfile:\n%s", err, res, out)
				}
				if want := fmt.Sprintf("SUCCESS: %d rules found", strings.Count(string(out), "\n      - ")); !strings.Contains(string(res), want) {
					t.Errorf("promtool: %s, want %q", res, want)
				}
			})
		}
	}
}

// In conventional naming latency is exported in seconds while the rule
// (threshold and message) speaks microseconds: the alert fires on the
// seconds histogram and its summary still prints microseconds.
func TestPromtoolConventionalLatency(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool")
	out, _, err := Generate(Options{Naming: schema.Conventional, Rules: DefaultRules(), NodeLabel: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), out, 0o644); err != nil {
		t.Fatal(err)
	}

	// The "slow" producer of rules_test.yml, in one layer: per 15 s, 1500
	// forwards, 30 of them in (1000, 2500] µs. Bounds render as the exporter
	// renders them (5e-06 ... 0.005).
	var f schema.Family
	for _, fam := range schema.Families() {
		if fam.Key == famLatency {
			f = fam
		}
	}
	cum := []int{0, 0, 0, 0, 300, 900, 1200, 1470, 1500, 1500}
	var series strings.Builder
	add := func(le string, n int) {
		fmt.Fprintf(&series, "      - series: 'aga_forward_latency_seconds_bucket{node=\"n1\",instance=\"n1:9090\",producer=\"slow\",layer=\"0\",le=\"%s\"}'\n        values: '0+%dx10'\n", le, n)
	}
	for i, b := range f.Buckets {
		add(strconv.FormatFloat(b/f.Divisor, 'g', -1, 64), cum[i])
	}
	add("+Inf", 1500)
	fmt.Fprintf(&series, "      - series: 'aga_forward_latency_seconds_count{node=\"n1\",instance=\"n1:9090\",producer=\"slow\",layer=\"0\"}'\n        values: '0+1500x10'\n")

	test := `rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 15s
    input_series:
` + series.String() + `    alert_rule_test:
      - eval_time: 2m
        alertname: slo_latency_p99
        exp_alerts:
          - exp_labels: {severity: warning, node: n1, producer: slow}
            exp_annotations:
              summary: "SLO violation: P99 latency 1750.0µs exceeds 1000µs"
      - eval_time: 2m
        alertname: slo_latency_critical
        exp_alerts: []
`
	if err := os.WriteFile(filepath.Join(dir, "test.yml"), []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, "test.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s\ntest:\n%s\nrules:\n%s", err, res, test, out)
	}
}
