package promrules

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/schema"
)

// newRule returns a rule with the configuration defaults, as the config
// decoder builds it.
func newRule(name, metric, op string, threshold float64) config.AlertRule {
	var r config.AlertRule
	r.SetDefaults()
	r.Name, r.Metric, r.Operator, r.Threshold = name, metric, op, threshold
	return r
}

func newSLO(name string, objective float64, sliType string, thresholdUs float64) config.SLO {
	var s config.SLO
	s.SetDefaults()
	s.Name, s.Objective, s.SLI = name, objective, config.SLI{Type: sliType, ThresholdUs: thresholdUs}
	return s
}

func TestDefaultRules(t *testing.T) {
	rules := DefaultRules()
	want := []struct {
		name, metric string
		threshold    float64
		window       float64
		severity     string
		cooldown     float64
	}{
		{"slo_latency_p99", "latency_p99", 1000, 60, "warning", 300},
		{"slo_latency_critical", "latency_p99", 5000, 30, "critical", 60},
		{"high_utilization", "knowledge_utilization", 0.95, 60, "warning", 600},
		{"slot_thrashing", "slot_change_rate", 0.5, 30, "warning", 120},
	}
	if len(rules) != len(want) {
		t.Fatalf("got %d rules, want %d", len(rules), len(want))
	}
	for i, w := range want {
		r := rules[i]
		if r.Name != w.name || r.Metric != w.metric || r.Operator != ">" || r.Threshold != w.threshold ||
			r.WindowSeconds != w.window || r.Severity != w.severity || r.CooldownSeconds != w.cooldown ||
			!r.PerProducer || r.Message == "" {
			t.Errorf("rule %d = %+v, want %+v", i, r, w)
		}
	}
	// The defaults must pass the configuration's own validation.
	cfg := config.Default()
	cfg.AlertRules = rules
	if err := cfg.Validate(); err != nil {
		t.Errorf("default rules do not validate: %v", err)
	}
	// Fresh values: changing one result does not change the next.
	rules[0].Threshold = 1
	if DefaultRules()[0].Threshold != 1000 {
		t.Error("DefaultRules shares state between calls")
	}
}

func TestEffectiveRules(t *testing.T) {
	override := newRule("high_utilization", "knowledge_utilization", ">", 0.8)
	override.Labels = map[string]string{"team": "ml"}
	extra := newRule("fast_drops", "drop_rate", ">", 0.01)
	ruleNames := func(rs []config.AlertRule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}

	got := EffectiveRules(true, []config.AlertRule{extra, override})
	if want := []string{"slo_latency_p99", "slo_latency_critical", "high_utilization", "slot_thrashing", "fast_drops"}; !reflect.DeepEqual(ruleNames(got), want) {
		t.Fatalf("names = %v, want %v", ruleNames(got), want)
	}
	if got[2].Threshold != 0.8 {
		t.Errorf("override not applied: %+v", got[2])
	}
	got[2].Labels["team"] = "changed"
	if override.Labels["team"] != "ml" {
		t.Error("EffectiveRules shares label maps with its input")
	}

	got = EffectiveRules(false, []config.AlertRule{extra, override})
	if want := []string{"fast_drops", "high_utilization"}; !reflect.DeepEqual(ruleNames(got), want) {
		t.Errorf("without defaults: names = %v, want %v", ruleNames(got), want)
	}
	if got := EffectiveRules(false, nil); len(got) != 0 {
		t.Errorf("no rules: got %v", got)
	}
}

func TestSkippedRetrievalFailureRate(t *testing.T) {
	rules := EffectiveRules(true, []config.AlertRule{newRule("retrieval_failures", "retrieval_failure_rate", ">", 0.1)})
	out, skipped, err := Generate(Options{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].Rule != "retrieval_failures" || !strings.Contains(skipped[0].Reason, "results_count is not exported") {
		t.Fatalf("skipped = %+v", skipped)
	}
	if strings.Contains(string(out), "alert: retrieval_failures") {
		t.Error("the skipped rule is in the file")
	}
	if !strings.Contains(string(out), "#   retrieval_failures: retrieval_failure_rate is not expressible") {
		t.Errorf("the file does not name the skipped rule:\n%s", out)
	}
	for _, name := range []string{"slo_latency_p99", "slo_latency_critical", "high_utilization", "slot_thrashing"} {
		if !strings.Contains(string(out), "alert: "+name+"\n") {
			t.Errorf("default rule %s missing", name)
		}
	}
}

// The PromQL contract with the agent's engine (README of the rule metrics).
// Every expression keeps nodes apart: by node (and producer), never by
// producer alone.
func TestRuleExpressions(t *testing.T) {
	const (
		lat     = `histogram_quantile(0.99, sum by (node, producer, le) (rate(aga_forward_latency_us_bucket[60s])))`
		dropped = `sum by (node, producer) (rate(agaobs_ring_dropped_total{class="hot"}[60s]))`
		events  = `sum by (node, producer) (rate(agaobs_ring_events_total{class="hot"}[60s]))`
	)
	for _, tc := range []struct {
		metric      string
		naming      schema.Naming
		perProducer bool
		threshold   float64
		want        string
	}{
		// On a bucket bound, "pQ > T" is the exact tail condition (the
		// agent evaluates the same); the quantile stays the value.
		{"latency_p50", schema.Compat, true, 100, `histogram_quantile(0.5, sum by (node, producer, le) (rate(aga_forward_latency_us_bucket[60s]))) >= 100 and on (node, producer) (sum by (node, producer) (rate(aga_forward_latency_us_bucket{le=~"100|100\\.0"}[60s])) < 0.5 * sum by (node, producer) (rate(aga_forward_latency_us_count[60s])))`},
		{"latency_p95", schema.Compat, true, 150, `histogram_quantile(0.95, sum by (node, producer, le) (rate(aga_forward_latency_us_bucket[60s]))) > 150`},
		{"latency_p99", schema.Compat, true, 2000, lat + ` > 2000`}, // not a bound: plain quantile
		{"latency_p99", schema.Conventional, true, 1000, `histogram_quantile(0.99, sum by (node, producer, le) (rate(aga_forward_latency_seconds_bucket[60s]))) >= 0.001 and on (node, producer) (sum by (node, producer) (rate(aga_forward_latency_seconds_bucket{le="0.001"}[60s])) < 0.99 * sum by (node, producer) (rate(aga_forward_latency_seconds_count[60s])))`},
		{"latency_p99", schema.Compat, false, 5000, `histogram_quantile(0.99, sum by (node, le) (rate(aga_forward_latency_us_bucket[60s]))) >= 5000 and on (node) (sum by (node) (rate(aga_forward_latency_us_bucket{le=~"5000|5000\\.0"}[60s])) < 0.99 * sum by (node) (rate(aga_forward_latency_us_count[60s])))`},
		{"gate_mean", schema.Compat, true, 0.5, `sum by (node, producer) (rate(aga_gate_value_sum[60s])) / sum by (node, producer) (rate(aga_gate_value_count[60s])) > 0.5`},
		{"gate_mean", schema.Compat, false, 0.5, `sum by (node) (rate(aga_gate_value_sum[60s])) / sum by (node) (rate(aga_gate_value_count[60s])) > 0.5`},
		{"entropy_mean", schema.Conventional, true, 2, `sum by (node, producer) (rate(aga_entropy_value_sum[60s])) / sum by (node, producer) (rate(aga_entropy_value_count[60s])) > 2`},
		{"activation_rate", schema.Compat, true, 0.1, `sum by (node, producer) (rate(aga_forward_total{applied="true"}[60s])) / sum by (node, producer) (rate(aga_forward_total[60s])) > 0.1`},
		{"knowledge_utilization", schema.Compat, true, 0.95, `max by (node, producer) (last_over_time(aga_knowledge_utilization[60s])) > 0.95`},
		{"knowledge_utilization", schema.Compat, false, 0.95, `max by (node) (last_over_time(aga_knowledge_utilization[60s])) > 0.95`},
		{"slot_change_rate", schema.Conventional, true, 0.5, `max by (node, producer) (last_over_time(aga_slot_change_rate[60s])) > 0.5`},
		{"forward_rate", schema.Compat, true, 10, `sum by (node, producer) (rate(aga_forward_total[60s])) > 10`},
		{"forward_rate", schema.Compat, false, 10, `sum by (node) (rate(aga_forward_total[60s])) > 10`},
		{"drop_rate", schema.Compat, true, 0.01, dropped + ` / (` + events + ` + ` + dropped + `) > 0.01`},
		{"producer_heartbeat_age_seconds", schema.Compat, true, 5, `max by (node, producer) (agaobs_producer_heartbeat_age_seconds) > 5`},
		{"producer_heartbeat_age_seconds", schema.Compat, false, 5, `max by (node) (agaobs_producer_heartbeat_age_seconds) > 5`},
	} {
		r := newRule("r", tc.metric, ">", tc.threshold)
		r.PerProducer = tc.perProducer
		g := testGenerator(t, "aga", tc.naming)
		got, skip, err := g.alertRule(r)
		if err != nil || skip != "" {
			t.Errorf("%s %s: err %v, skip %q", tc.metric, tc.naming, err, skip)
			continue
		}
		if got.Expr != tc.want {
			t.Errorf("%s %s per_producer=%v:\n got %s\nwant %s", tc.metric, tc.naming, tc.perProducer, got.Expr, tc.want)
		}
	}

	// Every metric the configuration accepts is either expressed or skipped
	// with a reason; none is an error.
	for _, m := range strings.Fields(schema.RuleMetricList()) {
		if schema.RuleMetric(m).Detector() {
			continue // anomalyRules renders these (TestAnomalyRules)
		}
		g := testGenerator(t, "aga", schema.Compat)
		if _, skip, err := g.alertRule(newRule("r", m, ">", 1)); err != nil || (skip != "") != (m == "retrieval_failure_rate") {
			t.Errorf("metric %s: err %v, skip %q", m, err, skip)
		}
	}
}

// Without prometheus_node_label the rules tell agents apart by instance;
// prometheus_labels (SeriesLabels) stay on every alert, as on the agent's.
func TestNodeLabelModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"node", Options{NodeLabel: true}, `sum by (node, producer) (rate(aga_forward_total[60s])) > 1`},
		{"instance", Options{NodeLabel: false}, `sum by (instance, producer) (rate(aga_forward_total[60s])) > 1`},
		{"series labels", Options{NodeLabel: true, SeriesLabels: []string{"cluster", "zone"}},
			`sum by (node, producer, cluster, zone) (rate(aga_forward_total[60s])) > 1`},
	} {
		g := newGenerator(mustNames(t, "aga", schema.Compat), tc.opts)
		got, _, err := g.alertRule(newRule("r", "forward_rate", ">", 1))
		if err != nil || got.Expr != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got.Expr, err, tc.want)
		}
	}
}

// testGenerator is the generator Generate builds for prefix and naming,
// with the node label.
func testGenerator(t *testing.T, prefix string, n schema.Naming) *generator {
	t.Helper()
	return newGenerator(mustNames(t, prefix, n), Options{NodeLabel: true})
}

func mustNames(t *testing.T, prefix string, n schema.Naming) names {
	t.Helper()
	ns, err := newNames(prefix, n)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestAlertRuleFields(t *testing.T) {
	r := newRule("custom", "forward_rate", "<=", 1.5)
	r.WindowSeconds = 90.5
	r.For = config.Duration(2 * time.Minute)
	r.KeepFiringFor = config.Duration(90 * time.Second)
	r.Severity = "critical"
	r.Labels = map[string]string{"team": "ml", "severity": "ignored"}
	r.Annotations = map[string]string{"runbook_url": "https://example.com/r", "summary": "own summary"}
	g := newGenerator(mustNames(t, "llm", schema.Compat), Options{NodeLabel: true, ExtraLabels: map[string]string{"cluster": "c1", "team": "x"}})
	got, skip, err := g.alertRule(r)
	if err != nil || skip != "" {
		t.Fatalf("err %v, skip %q", err, skip)
	}
	want := rule{
		Alert:         "custom",
		Expr:          `sum by (node, producer) (rate(llm_forward_total[90500ms])) <= 1.5`,
		For:           "2m",
		KeepFiringFor: "1m30s",
		Labels:        map[string]string{"cluster": "c1", "team": "ml", "severity": "critical"},
		Annotations:   map[string]string{"runbook_url": "https://example.com/r", "summary": "own summary"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	for _, op := range []string{">", "<", ">=", "<=", "==", "!="} {
		got, _, err := g.alertRule(newRule("r", "forward_rate", op, 2))
		if err != nil || !strings.HasSuffix(got.Expr, " "+op+" 2") {
			t.Errorf("operator %s: %q, %v", op, got.Expr, err)
		}
	}
}

func TestSummary(t *testing.T) {
	r := newRule("slo_latency_p99", "latency_p99", ">", 1000)
	for _, tc := range []struct {
		msg   string
		scale float64
		want  string
	}{
		{"P99 {value:.1f}µs > {threshold:.0f}µs", 1, `P99 {{ printf "%.1f" $value }}µs > 1000µs`},
		{"{value:.1%} of {threshold:.1%}", 1, `{{ humanizePercentage $value }} of 100000.0%`},
		{"{value} vs {threshold}", 1, `{{ $value }} vs 1000.0`},
		{"{value:+08.2f}|{value:e}|{value:.3g}|{value:g}", 1, `{{ printf "%+08.2f" $value }}|{{ printf "%.6e" $value }}|{{ printf "%.3g" $value }}|{{ printf "%.6g" $value }}`},
		{"{metric} on {name}", 1, `latency_p99 on slo_latency_p99`},
		{"{{ $labels.producer }}: {value:.0f} {{ $value | humanize }}", 1, `{{ $labels.producer }}: {{ printf "%.0f" $value }} {{ $value | humanize }}`},
		{"braces }}ok", 1, `braces }ok`},
		// Conventional latency: $value is in seconds, the message in µs.
		{"P99 {value:.1f}µs", 1e6, `P99 {{ printf "%.17g * 1e+06" $value | query | first | value | printf "%.1f" }}µs`},
		// Untranslatable: the seed's default message.
		{"{value!r}", 1, `[WARNING] slo_latency_p99: latency_p99 = {{ printf "%.4f" $value }} > 1000.0`},
		{"{value:>10}", 1, `[WARNING] slo_latency_p99: latency_p99 = {{ printf "%.4f" $value }} > 1000.0`},
		{"{value:,.2f}", 1, `[WARNING] slo_latency_p99: latency_p99 = {{ printf "%.4f" $value }} > 1000.0`},
		{"{producer}", 1, `[WARNING] slo_latency_p99: latency_p99 = {{ printf "%.4f" $value }} > 1000.0`},
		{"lone } brace", 1, `[WARNING] slo_latency_p99: latency_p99 = {{ printf "%.4f" $value }} > 1000.0`},
		{"{{ nosuchfunc }}", 1, `[WARNING] slo_latency_p99: latency_p99 = {{ printf "%.4f" $value }} > 1000.0`},
		{"", 1e6, `[WARNING] slo_latency_p99: latency_p99 = {{ printf "%.17g * 1e+06" $value | query | first | value | printf "%.4f" }} > 1000.0`},
	} {
		r.Message = tc.msg
		if got := summary(r, tc.scale); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.msg, got, tc.want)
		}
	}
}

func TestPythonFormat(t *testing.T) {
	for _, tc := range []struct {
		spec string
		v    float64
		want string
	}{
		{".0f", 1000, "1000"},
		{".2f", 0.5, "0.50"},
		{".1%", 0.95, "95.0%"},
		{"08.1%", 0.5, "00050.0%"},
		{"", 0.1, "0.1"},
		{"", 1e-5, "1e-05"},
		{"", 2, "2.0"},
		{"+", 2, "+2.0"},
		{"8", 2, "     2.0"},
		{"g", 1234567, "1.23457e+06"},
		{".3", 2, "2.0"}, {"08.2f", -1.5, "-0001.50"},
		{"e", 1500, "1.500000e+03"},
	} {
		spec, ok := parseSpec(tc.spec)
		if !ok {
			t.Errorf("%q: not parsed", tc.spec)
			continue
		}
		if got, ok := spec.format(tc.v); !ok || got != tc.want {
			t.Errorf("format(%v, %q) = %q, %v; want %q", tc.v, tc.spec, got, ok, tc.want)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	bad := func(mut func(*Options)) Options {
		o := Options{Rules: DefaultRules()}
		mut(&o)
		return o
	}
	for name, opts := range map[string]Options{
		"prefix":       {Prefix: "1x"},
		"naming":       {Naming: "camel"},
		"extra label":  {ExtraLabels: map[string]string{"bad-name": "x"}},
		"metric":       bad(func(o *Options) { o.Rules[0].Metric = "latency_p42" }),
		"operator":     bad(func(o *Options) { o.Rules[0].Operator = "=~" }),
		"window":       bad(func(o *Options) { o.Rules[0].WindowSeconds = 0 }),
		"label name":   bad(func(o *Options) { o.Rules[0].Labels = map[string]string{"__x": "y"} }),
		"slo name":     {SLOs: []config.SLO{newSLO("bad-name", 0.99, "availability", 0)}},
		"slo obj":      {SLOs: []config.SLO{newSLO("s", 1, "availability", 0)}},
		"slo sli type": {SLOs: []config.SLO{newSLO("s", 0.99, "errors", 0)}},
	} {
		if _, _, err := Generate(opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}

	// Valid configuration that PromQL cannot express is skipped, not an
	// error.
	badName := newRule("p99 too high", "latency_p99", ">", 1)
	tinyWindow := newRule("tiny", "forward_rate", ">", 1)
	tinyWindow.WindowSeconds = 0.0001
	badTemplate := newRule("tmpl", "forward_rate", ">", 1)
	badTemplate.Annotations = map[string]string{"description": "{{ .Broken"}
	_, skipped, err := Generate(Options{
		Rules: []config.AlertRule{badName, tinyWindow, badTemplate},
		SLOs:  []config.SLO{newSLO("odd", 0.99, "latency", 750)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range skipped {
		got = append(got, s.Rule)
	}
	if want := []string{"p99 too high", "tiny", "tmpl", "odd"}; !reflect.DeepEqual(got, want) {
		t.Errorf("skipped %v, want %v (%+v)", got, want, skipped)
	}
}

// Without rules or SLOs the file still has the agent's own alerts and the
// fleet rules.
func TestGenerateEmpty(t *testing.T) {
	out, skipped, err := Generate(Options{})
	if err != nil || len(skipped) != 0 {
		t.Fatalf("err %v, skipped %v", err, skipped)
	}
	var groups []string
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(line, "  - name: "); ok {
			groups = append(groups, name)
		}
	}
	if want := []string{SelfGroup, FleetGroup}; !reflect.DeepEqual(groups, want) {
		t.Errorf("groups %v, want %v:\n%s", groups, want, out)
	}
}

func TestSLOExpressions(t *testing.T) {
	for _, tc := range []struct {
		naming   schema.Naming
		slo      config.SLO
		want5m   string
		budget   string
		critical string
	}{
		{schema.Compat, newSLO("lat", 0.999, "latency", 1000),
			`1 - (sum by (node, producer) (rate(aga_forward_latency_us_bucket{le=~"1000|1000\\.0"}[5m])) / sum by (node, producer) (rate(aga_forward_latency_us_count[5m])))`,
			`1 - (slo:sli_error:ratio_rate30d{slo="lat"} / 0.001)`,
			// The value is the long window's burn rate of the first pair
			// that holds, as in the agent.
			`(slo:sli_error:ratio_rate1h{slo="lat"} / 0.001 > 14.4 and slo:sli_error:ratio_rate5m{slo="lat"} / 0.001 > 14.4) or ` +
				`(slo:sli_error:ratio_rate6h{slo="lat"} / 0.001 > 6 and slo:sli_error:ratio_rate30m{slo="lat"} / 0.001 > 6)`},
		{schema.Conventional, newSLO("lat", 0.95, "latency", 5),
			`1 - (sum by (node, producer) (rate(aga_forward_latency_seconds_bucket{le="5e-06"}[5m])) / sum by (node, producer) (rate(aga_forward_latency_seconds_count[5m])))`,
			`1 - (slo:sli_error:ratio_rate30d{slo="lat"} / 0.05)`, ""},
		{schema.Compat, newSLO("avail", 0.9995, "availability", 0),
			`1 - (sum by (node, producer) (sum_over_time(agaobs_producer_available[5m])) / sum by (node, producer) (count_over_time(agaobs_producer_available[5m])))`,
			`1 - (slo:sli_error:ratio_rate30d{slo="avail"} / 0.0005)`, ""},
	} {
		g := testGenerator(t, "aga", tc.naming)
		grp, skip, err := g.sloGroup(tc.slo)
		if err != nil || skip != "" {
			t.Fatalf("%+v: err %v, skip %q", tc.slo, err, skip)
		}
		byName := map[string]rule{}
		var records []string
		for _, r := range grp.Rules {
			byName[r.Record+r.Alert] = r
			if r.Record != "" {
				records = append(records, r.Record)
			}
		}
		if got := byName["slo:sli_error:ratio_rate5m"].Expr; got != tc.want5m {
			t.Errorf("%s 5m:\n got %s\nwant %s", tc.slo.Name, got, tc.want5m)
		}
		if got := byName[sloBudgetRecord].Expr; got != tc.budget {
			t.Errorf("%s budget:\n got %s\nwant %s", tc.slo.Name, got, tc.budget)
		}
		if got := byName["slo_"+tc.slo.Name+"_burn_critical"].Expr; tc.critical != "" && got != tc.critical {
			t.Errorf("%s critical:\n got %s\nwant %s", tc.slo.Name, got, tc.critical)
		}
		wantRecords := []string{"slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate30m", "slo:sli_error:ratio_rate1h",
			"slo:sli_error:ratio_rate2h", "slo:sli_error:ratio_rate6h", "slo:sli_error:ratio_rate1d", "slo:sli_error:ratio_rate3d",
			"slo:sli_error:ratio_rate30d", sloBudgetRecord}
		if !reflect.DeepEqual(records, wantRecords) {
			t.Errorf("records %v", records)
		}
		if grp.Name != "agaobs-slo-"+tc.slo.Name {
			t.Errorf("group %q", grp.Name)
		}
	}

	// A period equal to a standard window is not recorded twice.
	s := newSLO("day", 0.99, "availability", 0)
	s.Period = config.Duration(24 * time.Hour)
	g := testGenerator(t, "aga", schema.Compat)
	grp, _, err := g.sloGroup(s)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(grp.Rules); n != 7+1+2 {
		t.Errorf("period 1d: %d rules", n)
	}
}

func TestErrorBudget(t *testing.T) {
	for _, tc := range []struct {
		objective       float64
		budget, percent string
	}{
		{0.999, "0.001", "99.9"},
		{0.99, "0.01", "99"},
		{0.9995, "0.0005", "99.95"},
		{0.5, "0.5", "50"},
		{1e-7, "0.9999999", "0.00001"},
	} {
		if b, p := errorBudget(tc.objective); b != tc.budget || p != tc.percent {
			t.Errorf("errorBudget(%v) = %s, %s; want %s, %s", tc.objective, b, p, tc.budget, tc.percent)
		}
	}
}

func TestBucketMatcher(t *testing.T) {
	for le, want := range map[float64]string{
		1000:        `le=~"1000|1000\\.0"`,
		1000 / 1e6:  `le="0.001"`,
		5 / 1e6:     `le="5e-06"`,
		2500 / 1e6:  `le="0.0025"`,
		0.5:         `le="0.5"`,
		5000 / 1e6:  `le="0.005"`,
		10.0 / 1e6:  `le="1e-05"`,
		250.0 / 1e6: `le="0.00025"`,
	} {
		if got := bucketMatcher(le); got != want {
			t.Errorf("bucketMatcher(%v) = %s, want %s", le, got, want)
		}
	}
}

// A burn-rate alert reports the window pair that fired: its summary asks
// Prometheus whether the first pair holds for the alert's node and
// producer and names that pair, else the second; the message of each pair
// is BurnMessage's, the text the agent sends. The old summary named
// neither pair ("1h and 5m, or 6x on 6h and 30m").
func TestBurnSummaryNamesThePair(t *testing.T) {
	s := newSLO("lat", 0.999, "latency", 1000)
	g := testGenerator(t, "aga", schema.Compat)
	grp, _, err := g.sloGroup(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alert    string
		first    string // the query of the first pair
		messages [2]string
	}{
		{"slo_lat_burn_critical",
			"{{ if printf `slo:sli_error:ratio_rate1h{slo=\"lat\",node=%[1]q,producer=%[2]q} / 0.001 > 14.4 and slo:sli_error:ratio_rate5m{slo=\"lat\",node=%[1]q,producer=%[2]q} / 0.001 > 14.4` $labels.node $labels.producer | query }}",
			[2]string{"over 1h, confirmed over 5m (threshold 14.4x)", "over 6h, confirmed over 30m (threshold 6x)"}},
		{"slo_lat_burn_warning",
			"{{ if printf `slo:sli_error:ratio_rate1d{slo=\"lat\",node=%[1]q,producer=%[2]q} / 0.001 > 3 and slo:sli_error:ratio_rate2h{slo=\"lat\",node=%[1]q,producer=%[2]q} / 0.001 > 3` $labels.node $labels.producer | query }}",
			[2]string{"over 1d, confirmed over 2h (threshold 3x)", "over 3d, confirmed over 6h (threshold 1x)"}},
	} {
		var got string
		for _, r := range grp.Rules {
			if r.Alert == tc.alert {
				got = r.Annotations["summary"]
			}
		}
		first, second, ok := strings.Cut(got, "{{ else }}")
		if !strings.HasPrefix(got, tc.first) || !ok || !strings.Contains(first, tc.messages[0]) || !strings.Contains(second, tc.messages[1]) ||
			!strings.HasSuffix(got, "{{ end }}") || checkTemplate(got) != nil {
			t.Errorf("%s summary:\n%s", tc.alert, got)
		}
	}
	if got, want := BurnMessage(s, BurnAlerts()[1].Pairs[1]),
		"SLO lat (objective 99.9% over 30d): error budget burning {value:.1f}x the sustainable rate over 3d, confirmed over 6h (threshold 1x)"; got != want {
		t.Errorf("BurnMessage:\n got %s\nwant %s", got, want)
	}
}

// aggregation matches a PromQL aggregation and its grouping clause, if any.
var aggregation = regexp.MustCompile(`\b(sum|max|min|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\s*(?:(by|without)\s*\(([^)]*)\))?\s*\(`)

// matching matches a vector matching clause.
var matching = regexp.MustCompile(`\b(on|ignoring)\s*\(([^)]*)\)`)

// Only the fleet group may merge nodes: every aggregation of every other
// rule groups by the node label (node, or instance without
// prometheus_node_label) and every vector match is on it, in both modes,
// with every rule metric, scope and SLO. The old rules grouped
// "by (le, producer)" and merged every node's producer of the same name.
func TestNodeSafeAggregation(t *testing.T) {
	for _, tc := range []struct {
		node bool
		keep []string
	}{{true, nil}, {false, nil}, {true, []string{"cluster"}}} {
		label := "instance"
		if tc.node {
			label = "node"
		}
		opts := Options{Rules: allMetricRules(), SLOs: goldenOptions().SLOs, NodeLabel: tc.node, SeriesLabels: tc.keep}
		for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
			opts.Naming = naming
			out, _, err := Generate(opts)
			if err != nil {
				t.Fatal(err)
			}
			var file ruleFile
			if err := yamlv3.Unmarshal(out, &file); err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, grp := range file.Groups {
				for _, r := range grp.Rules {
					name := grp.Name + "/" + r.Record + r.Alert
					if strings.Contains(r.Expr, "without") || strings.Contains(r.Expr, "ignoring") {
						t.Errorf("%s: without/ignoring keep labels nobody chose: %s", name, r.Expr)
					}
					if grp.Name == FleetGroup {
						continue
					}
					checked++
					for _, m := range aggregation.FindAllStringSubmatch(r.Expr, -1) {
						if m[2] != "by" || !slices.Contains(splitLabels(m[3]), label) {
							t.Errorf("%s (%s): %q does not keep %s: %s", name, naming, m[0], label, r.Expr)
						}
						for _, k := range tc.keep {
							if !slices.Contains(splitLabels(m[3]), k) && !strings.Contains(r.Expr, "up{job=") {
								t.Errorf("%s: %q drops the series label %s", name, m[0], k)
							}
						}
					}
					for _, m := range matching.FindAllStringSubmatch(r.Expr, -1) {
						if !slices.Contains(splitLabels(m[2]), label) {
							t.Errorf("%s (%s): %q matches across nodes: %s", name, naming, m[0], r.Expr)
						}
					}
				}
			}
			if checked < 40 {
				t.Errorf("only %d rules checked", checked)
			}
		}
	}
}

func splitLabels(s string) []string {
	var out []string
	for _, l := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

// rate() windows below 4 scrape intervals are widened to 4 intervals and
// the header says which; last_over_time windows and long enough rate
// windows are kept.
func TestScrapeIntervalWidening(t *testing.T) {
	fwd := newRule("fast_rate", "forward_rate", ">", 1)
	fwd.WindowSeconds = 30
	util := newRule("util", "knowledge_utilization", ">", 0.9)
	util.WindowSeconds = 30
	for _, tc := range []struct {
		scrape  time.Duration
		want    []string // in the rule file
		notWant []string
	}{
		{0, // the default, 15s: 30s becomes 60s, 1m and 5m stay
			[]string{"rate(aga_forward_total[60s])", "last_over_time(aga_knowledge_utilization[30s])", "rate(aga_forward_total[1m])",
				"# rate() windows below 4 scrape intervals (scrape interval 15s) are widened to 1m:\n#   fast_rate: 30s -> 60s\ngroups:"},
			[]string{"rate(aga_forward_total[30s])", "util: 30s", "agaobs-fleet: 1m"}},
		{10 * time.Second, // 40s: 30s becomes 40s
			[]string{"rate(aga_forward_total[40s])", "#   fast_rate: 30s -> 40s", "rate(aga_forward_total[1m])"},
			[]string{"agaobs-fleet:"}},
		{30 * time.Second, // 2m: the fleet's 1m rates too, not the 5m ones
			[]string{"rate(aga_forward_total[120s])", "#   fast_rate: 30s -> 120s", "#   agaobs-fleet: 1m -> 2m",
				"sum by (node, producer) (rate(aga_forward_total[2m]))", "rate(aga_forward_latency_us_bucket[5m])"},
			[]string{"#   AgaobsRingDrops"}},
		{2 * time.Minute, // 8m: the 5m SLO window and the self alerts' 5m too
			[]string{"#   SLO forward_latency: 5m -> 8m", "#   AgaobsRingDrops: 5m -> 8m", "#   AgaobsSinkDrops: 5m -> 8m",
				"rate(aga_forward_latency_us_count[8m])", "count_over_time(agaobs_producer_available[5m])"},
			[]string{"#   SLO serving"}}, // avg_over_time needs no two samples
	} {
		out, _, err := Generate(Options{Rules: []config.AlertRule{fwd, util}, SLOs: goldenOptions().SLOs, NodeLabel: true, ScrapeInterval: tc.scrape})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("scrape %v: lacks %q", tc.scrape, w)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(string(out), w) {
				t.Errorf("scrape %v: has %q", tc.scrape, w)
			}
		}
	}
}
