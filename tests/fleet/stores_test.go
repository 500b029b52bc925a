package fleet_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/dashboard"
	"github.com/agaobs/agaobs/internal/jsonfloat"
	"github.com/agaobs/agaobs/internal/testutil"
)

// close reports whether a and b agree within rel (relative) or both are
// NaN (a ratio of nothing).
func closeTo(a, b, rel float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b)) || math.Abs(a-b) < 1e-9
}

// fleetRule is a recorded fleet series and the same value computed from
// the raw series, aggregated across producers (node level) or nodes
// (model level; the producers here all serve one model).
var fleetRules = []struct{ record, raw, by string }{
	{"node:aga_forward:rate1m", `sum by (node) (rate(aga_forward_total[1m]))`, "node"},
	{"node:aga_forward_applied:ratio_rate1m",
		`sum by (node) (rate(aga_forward_total{applied="true"}[1m])) / sum by (node) (rate(aga_forward_total[1m]))`, "node"},
	{"node:aga_forward_latency_us:p99_rate5m",
		`histogram_quantile(0.99, sum by (node, le) (rate(aga_forward_latency_us_bucket[5m])))`, "node"},
	{"model:aga_forward:rate1m", `sum(rate(aga_forward_total[1m]))`, "model"},
	{"model:aga_forward_latency_us:p99_rate5m",
		`histogram_quantile(0.99, sum by (le) (rate(aga_forward_latency_us_bucket[5m])))`, "model"},
}

// checkFleetRules: every fleet recording rule equals the sum (or ratio) of
// the per-node values computed from the raw series at the rule's own
// evaluation time, within 1 %, at three quarters of its evaluations over
// the last 30 s at least. Prometheus evaluates a rule over the samples it
// has at that moment: a scrape that takes longer than usual (a loaded
// machine) appends samples timestamped before an evaluation that did not
// see them, which a later query at that timestamp does see; those
// evaluations are logged, not failed.
func (f *fleet) checkFleetRules(t *testing.T) {
	t.Helper()
	for _, r := range fleetRules {
		rec, err := f.query(r.record + "[30s]")
		if err != nil || len(rec) == 0 {
			t.Errorf("%s: no recorded series (%v)", r.record, err)
			continue
		}
		series := map[string]bool{}
		good, total := 0, 0
		var bad []string
		for _, s := range rec {
			series[fmt.Sprint(s.labels)] = true
			raw, err := queryAt(f.prom, r.raw, s.at)
			if err != nil {
				t.Fatal(err)
			}
			var want float64
			found := false
			for _, w := range raw {
				if r.by == "model" || w.labels["node"] == s.labels["node"] {
					want, found = w.value, true
				}
			}
			total++
			if found && closeTo(s.value, want, 0.01) {
				good++
			} else {
				bad = append(bad, fmt.Sprintf("%v = %g at %v; from the raw series %g (found %v)", s.labels, s.value, s.at.Format("15:04:05.000"), want, found))
			}
		}
		if r.by == "node" && len(series) != len(f.nodes) {
			t.Errorf("%s: %d series, want one per node (%d)", r.record, len(series), len(f.nodes))
		}
		if len(bad) > 0 {
			t.Logf("%s: %d of %d evaluations differ from the raw series by more than 1 %%: %s", r.record, len(bad), total, strings.Join(bad, "; "))
		}
		if 4*good < 3*total {
			t.Errorf("%s: only %d of %d evaluations over the last 30 s equal the raw series within 1 %%", r.record, good, total)
		}
	}
}

// checkLongTermStore: the recorded fleet series remote-written into
// VictoriaMetrics read back with the same samples, and every query of the
// fleet dashboard returns data there too. VictoriaMetrics's rate()
// extrapolates differently from Prometheus's (it does not extrapolate to
// the window's edges), so dashboard values are compared within 25 %.
func (f *fleet) checkLongTermStore(t *testing.T) {
	t.Helper()
	// Let the last minute of samples arrive (batch_send_deadline 1s, the
	// store's latency offset 1s).
	cutoff := time.Now().Add(-10 * time.Second)
	for _, r := range []string{"node:aga_forward:rate1m", "model:aga_forward:rate1m"} {
		prom, err := queryAt(f.prom, r+"[2m]", cutoff)
		if err != nil || len(prom) == 0 {
			t.Errorf("%s: no samples in Prometheus (%v)", r, err)
			continue
		}
		var vm map[string]float64
		ok := testutil.WaitFor(30*time.Second, func() bool {
			vm, err = vmExport(f.vm, r)
			if err != nil {
				return false
			}
			for _, s := range prom {
				if _, ok := vm[sampleKey(s.labels, s.at)]; !ok {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Errorf("%s: VictoriaMetrics lacks samples Prometheus recorded (%d in Prometheus, %d read back, %v)", r, len(prom), len(vm), err)
			continue
		}
		for _, s := range prom {
			// The store keeps 13 significant digits of a float.
			if v := vm[sampleKey(s.labels, s.at)]; !closeTo(v, s.value, 1e-9) {
				t.Errorf("%s%v at %v: Prometheus %g, VictoriaMetrics %g", r, s.labels, s.at, s.value, v)
			}
		}
	}
	for _, opts := range []dashboard.Options{{Fleet: true}} {
		for _, q := range dashboard.Queries(opts) {
			// A 1 m range: every series began earlier, so both stores
			// compute increase() from samples inside the range (MetricsQL
			// counts a series' first sample from zero when it starts
			// within the range; PromQL does not).
			expr := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1m", "$__interval", "15s", "$node", ".*").Replace(q.Expr)
			at := cutoff
			p, perr := queryAt(f.prom, expr, at)
			v, verr := queryAt(f.vm, expr, at)
			switch {
			case perr != nil || verr != nil:
				t.Errorf("%s / %s: Prometheus %v, VictoriaMetrics %v\n    %s", q.Panel, q.RefID, perr, verr, expr)
			case len(p) == 0:
				t.Errorf("%s / %s: no data in Prometheus\n    %s", q.Panel, q.RefID, expr)
			case len(v) == 0:
				t.Errorf("%s / %s: no data in VictoriaMetrics\n    %s", q.Panel, q.RefID, expr)
			default:
				if pv, vv := sumOf(p), sumOf(v); !closeTo(pv, vv, 0.25) {
					t.Errorf("%s / %s: Prometheus %g, VictoriaMetrics %g (more than 25 %% apart)\n    %s", q.Panel, q.RefID, pv, vv, expr)
				}
			}
		}
	}
}

func sumOf(ss []sample) float64 {
	t := 0.0
	for _, s := range ss {
		if !math.IsNaN(s.value) {
			t += s.value
		}
	}
	return t
}

// sampleKey names a sample by its labels (without __name__) and time.
func sampleKey(labels map[string]string, at time.Time) string {
	keys := make([]string, 0, len(labels))
	for k, v := range labels {
		if k != "__name__" {
			keys = append(keys, k+"="+v)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",") + "@" + fmt.Sprint(at.UnixMilli())
}

// vmExport reads every raw sample of one series name from VictoriaMetrics.
func vmExport(base, name string) (map[string]float64, error) {
	resp, err := http.Get(base + "/api/v1/export?" + url.Values{"match[]": {name}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("export: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var line struct {
			Metric     map[string]string `json:"metric"`
			Values     []float64         `json:"values"`
			Timestamps []int64           `json:"timestamps"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, err
		}
		for i, ts := range line.Timestamps {
			out[sampleKey(line.Metric, time.UnixMilli(ts))] = line.Values[i]
		}
	}
	return out, sc.Err()
}

// report logs what the fleet cost Prometheus: series, scrape durations,
// rule evaluation times; with AGAOBS_FLEET_REPORT it also writes them as
// JSON (BENCHMARKS.md, "Fleet").
func (f *fleet) report(t *testing.T) {
	t.Helper()
	one := func(expr string) float64 {
		v, err := f.query(expr)
		if err != nil || len(v) == 0 {
			return math.NaN()
		}
		return v[0].value
	}
	r := map[string]any{
		"nodes":                      len(f.nodes),
		"producers":                  2 * len(f.nodes),
		"head_series":                one(`prometheus_tsdb_head_series`),
		"series_per_agent_max":       one(`max(scrape_samples_scraped{job="agaobs-agent"})`),
		"series_all_agents":          one(`sum(scrape_samples_scraped{job="agaobs-agent"})`),
		"scrape_duration_max_s":      one(`max(max_over_time(scrape_duration_seconds{job="agaobs-agent"}[5m]))`),
		"scrape_duration_avg_s":      one(`avg(avg_over_time(scrape_duration_seconds{job="agaobs-agent"}[5m]))`),
		"rule_group_eval_max_s":      one(`max(prometheus_rule_group_last_duration_seconds)`),
		"rule_groups":                one(`count(prometheus_rule_group_last_duration_seconds)`),
		"rule_eval_seconds_total":    one(`sum(prometheus_rule_evaluation_duration_seconds_sum)`),
		"rule_evaluations_total":     one(`sum(prometheus_rule_evaluation_duration_seconds_count)`),
		"scrape_interval_s":          f.scrape.Seconds(),
		"evaluation_interval_s":      1,
		"prometheus_version_comment": "Debian prometheus 2.42",
	}
	b, err := json.MarshalIndent(jsonfloat.Replace(r), "", "  ") // a query without data is NaN
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fleet report:\n%s", b)
	if p := os.Getenv("AGAOBS_FLEET_REPORT"); p != "" {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Error(err)
		}
	}
}
