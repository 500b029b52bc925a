package promrules

import (
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/testutil"
)

// fleetProducer is one producer of the fleet test: per second, applied
// and other forwards, retrievals, latency observations in (50, 100] µs
// (fast) or (1000, 2500] µs (slow), hot-ring records consumed and dropped,
// and whether it is available.
type fleetProducer struct {
	node, producer, model   string
	applied, other, retr    float64
	fast, slow              float64
	consumed, dropped       float64
	available, hasLatencies bool
}

// The fleet: node-a and node-b both run a tp0 and a tp1; node-b's tp0
// serves another model than the other three, so a join or sum that mixed
// nodes up would show.
var fleet = []fleetProducer{
	{node: "node-a", producer: "tp0", model: "llama", applied: 2, other: 2, retr: 1, fast: 100.0 / 15, consumed: 3, dropped: 1, available: true, hasLatencies: true},
	{node: "node-a", producer: "tp1", model: "llama", applied: 2, other: 2, retr: 0, consumed: 4, available: true},
	{node: "node-b", producer: "tp0", model: "mistral", applied: 2, other: 6, retr: 2, slow: 100.0 / 15, consumed: 4, available: false, hasLatencies: true},
	{node: "node-b", producer: "tp1", model: "llama", applied: 1, other: 3, retr: 1, slow: 100.0 / 15, consumed: 1, dropped: 1, available: true, hasLatencies: true},
}

// fleetSeries renders the fleet's input series, 15 s apart over 10
// minutes, as the exporter names them in naming n, with the target labels
// Prometheus adds and the agent's node label.
func fleetSeries(n schema.Naming) string {
	names, _ := newNames("aga", n)
	var b strings.Builder
	add := func(name string, labels map[string]string, perSecond float64) {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			kv = append(kv, fmt.Sprintf("%s=%q", k, labels[k]))
		}
		fmt.Fprintf(&b, "      - series: '%s{%s}'\n        values: '0+%sx40'\n", name, strings.Join(kv, ","),
			strconv.FormatFloat(perSecond*15, 'g', -1, 64))
	}
	lat := names.Family(famLatency)
	for _, p := range fleet {
		l := func(kv ...string) map[string]string {
			m := map[string]string{"node": p.node, "producer": p.producer, "instance": p.node + ":9090", "job": "agaobs-agent"}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		}
		fwd := names.Name(schema.FamForward)
		add(fwd, l("layer", "0", "applied", "true"), p.applied/2)
		add(fwd, l("layer", "1", "applied", "true"), p.applied/2)
		add(fwd, l("layer", "0", "applied", "false"), p.other)
		add(names.Name(schema.FamRetrieval), l("layer", "0"), p.retr)
		if p.hasLatencies {
			base := names.Name(famLatency)
			for _, bound := range lat.Buckets {
				cum := 0.0
				if bound >= 100 {
					cum += p.fast
				}
				if bound >= 2500 {
					cum += p.slow
				}
				le := strconv.FormatFloat(bound/names.Divisor(famLatency), 'g', -1, 64)
				add(base+"_bucket", l("layer", "0", "le", le), cum)
			}
			add(base+"_bucket", l("layer", "0", "le", "+Inf"), p.fast+p.slow)
			add(base+"_count", l("layer", "0"), p.fast+p.slow)
			add(base+"_sum", l("layer", "0"), 75*p.fast+1750*p.slow)
		}
		add(ringEventsTotal, l("class", "hot"), p.consumed)
		add(ringDroppedTotal, l("class", "hot"), p.dropped)
		add(ringEventsTotal, l("class", "audit"), 5)  // never counted
		add(ringDroppedTotal, l("class", "audit"), 9) // never counted
		avail := "0"
		if p.available {
			avail = "1"
		}
		fmt.Fprintf(&b, "      - series: 'agaobs_producer_available{instance=%q,job=\"agaobs-agent\",node=%q,producer=%q}'\n        values: '%sx40'\n",
			p.node+":9090", p.node, p.producer, avail)
		// node-b's last scrape before the evaluation failed (every series of
		// the target is marked stale): the model rules still count its
		// producers, whose rates are computed over a range.
		info := "1x40"
		if p.node == "node-b" {
			info = "1x39 stale"
		}
		fmt.Fprintf(&b, "      - series: 'aga_producer_info{instance=%q,job=\"agaobs-agent\",model=%q,node=%q,pid=\"4000\",producer=%q,rank=\"0\"}'\n        values: '%s'\n",
			p.node+":9090", p.model, p.node, p.producer, info)
	}
	return b.String()
}

// fleetWant is what every fleet recording rule records for the fleet at
// 10m: by record, label set → value. Latencies in µs.
func fleetWant(n schema.Naming) map[string]map[string]float64 {
	names, _ := newNames("aga", n)
	fm := fleetMetric(names.Name(schema.FamForward))
	rm := fleetMetric(names.Name(schema.FamRetrieval))
	lat := names.Name(famLatency)
	a, b := `node="node-a"`, `node="node-b"`
	np := func(node, producer string) string { return fmt.Sprintf(`node=%q,producer=%q`, node, producer) }
	llama, mistral := `model="llama"`, `model="mistral"`
	want := map[string]map[string]float64{
		"node_producer:" + fm + ":rate1m": {np("node-a", "tp0"): 4, np("node-a", "tp1"): 4, np("node-b", "tp0"): 8, np("node-b", "tp1"): 4},
		"node_producer:" + fm + "_applied:rate1m": {np("node-a", "tp0"): 2, np("node-a", "tp1"): 2, np("node-b", "tp0"): 2,
			np("node-b", "tp1"): 1},
		"node_producer:" + rm + ":rate1m":                         {np("node-a", "tp0"): 1, np("node-a", "tp1"): 0, np("node-b", "tp0"): 2, np("node-b", "tp1"): 1},
		"node_producer:agaobs_ring_dropped:rate1m":                {np("node-a", "tp0"): 1, np("node-a", "tp1"): 0, np("node-b", "tp0"): 0, np("node-b", "tp1"): 1},
		"node_producer:agaobs_ring_events:rate1m":                 {np("node-a", "tp0"): 3, np("node-a", "tp1"): 4, np("node-b", "tp0"): 4, np("node-b", "tp1"): 1},
		"node:" + fm + ":rate1m":                                  {a: 8, b: 12},
		"node:" + fm + "_applied:ratio_rate1m":                    {a: 0.5, b: 0.25},
		"node:" + lat + ":p50_rate5m":                             {a: 75, b: 1750},
		"node:" + lat + ":p99_rate5m":                             {a: 99.5, b: 2485},
		"node:" + rm + ":rate1m":                                  {a: 1, b: 3},
		"node:agaobs_ring_dropped:ratio_rate1m":                   {a: 1.0 / 8, b: 1.0 / 6},
		"model:" + fm + ":rate1m":                                 {llama: 12, mistral: 8},
		"model:" + fm + "_applied:ratio_rate1m":                   {llama: 5.0 / 12, mistral: 0.25},
		"model:" + lat + ":p50_rate5m":                            {llama: 100, mistral: 1750},
		"model:" + lat + ":p99_rate5m":                            {llama: 2470, mistral: 2485},
		"model:" + rm + ":rate1m":                                 {llama: 2, mistral: 2},
		"model:agaobs_ring_dropped:ratio_rate1m":                  {llama: 2.0 / 10, mistral: 0},
		"model_slo:error_budget_remaining:ratio" + `{slo="lat"}`:  {llama + `,slo="lat"`: 1 - 0.5/0.001, mistral + `,slo="lat"`: 1 - 1/0.001},
		"model_slo:error_budget_remaining:ratio" + `{slo="ok"}`:   {llama + `,slo="ok"`: 1, mistral + `,slo="ok"`: 1 - 1/0.01},
		"node_producer:" + lat + "_bucket:rate5m" + `{le="+Inf"}`: {np("node-a", "tp0") + `,le="+Inf"`: 100.0 / 15, np("node-b", "tp0") + `,le="+Inf"`: 100.0 / 15, np("node-b", "tp1") + `,le="+Inf"`: 100.0 / 15},
	}
	for _, w := range []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"} {
		want["model_slo:sli_error:ratio_rate"+w+`{slo="lat"}`] = map[string]float64{llama + `,slo="lat"`: 0.5, mistral + `,slo="lat"`: 1}
		want["model_slo:sli_error:ratio_rate"+w+`{slo="ok"}`] = map[string]float64{llama + `,slo="ok"`: 0, mistral + `,slo="ok"`: 1}
		if w != "30d" {
			want["model_slo:burn_rate:ratio_rate"+w+`{slo="lat"}`] = map[string]float64{llama + `,slo="lat"`: 500, mistral + `,slo="lat"`: 1000}
			want["model_slo:burn_rate:ratio_rate"+w+`{slo="ok"}`] = map[string]float64{llama + `,slo="ok"`: 0, mistral + `,slo="ok"`: 100}
		}
	}
	return want
}

// Every fleet recording rule, in both namings, on a fleet of two nodes
// that run producers of the same names: the per-node rules keep the nodes
// apart, the per-model rules join each producer's model on (node,
// producer) and pool the counts of every replica, and no record keeps a
// target label (instance, job) or a series label. Values are compared
// rounded to a thousandth (latencies to the nanosecond), as promtool
// compares floats exactly.
func TestPromtoolFleetRules(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool")
	slos := []config.SLO{newSLO("lat", 0.999, "latency", 1000), newSLO("ok", 0.99, "availability", 0)}
	for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
		t.Run(string(naming), func(t *testing.T) {
			t.Parallel()
			out, _, err := Generate(Options{Naming: naming, SLOs: slos, NodeLabel: true})
			if err != nil {
				t.Fatal(err)
			}
			records, err := FleetRecords("aga", naming, "lat", "ok")
			if err != nil {
				t.Fatal(err)
			}
			want := fleetWant(naming)
			names, _ := newNames("aga", naming)
			latScale := 1000.0 // µs → ns
			if naming == schema.Conventional {
				latScale = 1e9 // s → ns
			}
			var tests strings.Builder
			covered := map[string]bool{}
			for _, sel := range slices.Sorted(maps.Keys(want)) {
				record, _, _ := strings.Cut(sel, "{")
				covered[record] = true
				scale := 1000.0
				if strings.Contains(record, names.Name(famLatency)+":p") {
					scale = latScale
				}
				fmt.Fprintf(&tests, "      - expr: round(%s * %s)\n        eval_time: 10m\n        exp_samples:\n", sel, promNumber(scale))
				samples := want[sel]
				for _, labels := range slices.Sorted(maps.Keys(samples)) {
					v := samples[labels]
					// v is in µs for latencies: scaled to ns as the expression is.
					fmt.Fprintf(&tests, "          - labels: '{%s}'\n            value: %s\n", labels, promNumber(math.Round(v*1000)))
				}
			}
			for _, r := range records {
				if !covered[r] {
					t.Errorf("fleet record %s is not tested", r)
				}
			}
			if len(records) != 18+2*(8+7+1) {
				t.Errorf("%d fleet records: %v", len(records), records)
			}
			dir := t.TempDir()
			test := "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 15s\n    input_series:\n" +
				fleetSeries(naming) + "    promql_expr_test:\n" + tests.String()
			for name, body := range map[string]string{"rules.yml": string(out), "test.yml": test} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, "test.yml")).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool test rules: %v\n%s", err, res)
			}
		})
	}
}
