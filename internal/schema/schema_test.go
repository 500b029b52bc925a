package schema

import (
	"go/build"
	"math"
	"slices"
	"strings"
	"testing"
)

// The facts other packages rely on: bounds ascending and those of the
// latency family, family keys and names unique, every rule metric's family
// defined.
func TestLatencyBounds(t *testing.T) {
	b := LatencyBoundsUs()
	if len(b) != NumLatencyBounds {
		t.Fatalf("%d bounds, NumLatencyBounds %d", len(b), NumLatencyBounds)
	}
	for i, v := range b {
		if !(v > 0) || math.IsInf(v, 0) || (i > 0 && !(v > b[i-1])) {
			t.Errorf("bound %d (%v) is not finite, positive and above the previous", i, v)
		}
		if !IsLatencyBound(v) {
			t.Errorf("IsLatencyBound(%v) false", v)
		}
	}
	for _, v := range []float64{0, 4.999, 5.5, 6000, math.Inf(1), math.NaN()} {
		if IsLatencyBound(v) {
			t.Errorf("IsLatencyBound(%v) true", v)
		}
	}
	b[0] = -1 // a fresh slice: changing it changes nothing shared
	if LatencyBoundsUs()[0] == -1 {
		t.Error("LatencyBoundsUs returns shared storage")
	}
	n, err := NewNames("aga", Compat, FamForwardLatency)
	if err != nil {
		t.Fatal(err)
	}
	if f := n.Family(FamForwardLatency); !slices.Equal(f.Buckets, LatencyBoundsUs()) || f.Type != Histogram {
		t.Errorf("forward latency family: type %v buckets %v, want a histogram over %v", f.Type, f.Buckets, LatencyBoundsUs())
	}
}

func TestFamilies(t *testing.T) {
	keys, names := map[string]bool{}, map[[2]string]bool{}
	for _, f := range Families() {
		if keys[f.Key] {
			t.Errorf("duplicate key %q", f.Key)
		}
		keys[f.Key] = true
		for _, n := range []Naming{Compat, Conventional} {
			k := [2]string{string(n), f.Name("aga", n)}
			if names[k] {
				t.Errorf("duplicate %s name %q", n, k[1])
			}
			names[k] = true
		}
		switch {
		case f.Type != Counter && f.Type != Gauge && f.Type != Histogram:
			t.Errorf("%s: type %v", f.Key, f.Type)
		case (f.Type == Histogram) != (f.Buckets != nil):
			t.Errorf("%s: %v with buckets %v", f.Key, f.Type, f.Buckets)
		case f.Type == Counter && !strings.HasSuffix(f.Compat, "_total"):
			t.Errorf("%s: counter %q lacks _total", f.Key, f.Compat)
		case f.Help == "":
			t.Errorf("%s: no help", f.Key)
		}
		if !slices.IsSorted(f.Buckets) || len(slices.Compact(slices.Clone(f.Buckets))) != len(f.Buckets) {
			t.Errorf("%s: buckets %v not strictly increasing", f.Key, f.Buckets)
		}
	}
}

func TestRuleMetrics(t *testing.T) {
	ms := RuleMetrics()
	if got := strings.Join(strings.Fields(RuleMetricList()), " "); got != RuleMetricList() || len(strings.Fields(got)) != len(ms) {
		t.Errorf("RuleMetricList %q does not list the %d metrics once, space-separated", got, len(ms))
	}
	seen := map[RuleMetric]bool{}
	for i, m := range ms {
		if seen[m] {
			t.Errorf("duplicate rule metric %s", m)
		}
		seen[m] = true
		if !m.Valid() || strings.Fields(RuleMetricList())[i] != string(m) {
			t.Errorf("%s: invalid or out of RuleMetricList order", m)
		}
		if f := m.Family(); f != "" {
			if _, err := NewNames("aga", Compat, f); err != nil {
				t.Errorf("%s: %v", m, err)
			}
		}
		q, ok := m.Quantile()
		if ok != strings.HasPrefix(string(m), "latency_p") {
			t.Errorf("%s: quantile %v %v", m, q, ok)
		}
		if ok && (!(q > 0 && q < 1) || m.Family() != FamForwardLatency) {
			t.Errorf("%s: quantile %v of family %q, want (0,1) of %q", m, q, m.Family(), FamForwardLatency)
		}
	}
	if q, ok := RuleLatencyP95.Quantile(); !ok || q != 0.95 {
		t.Errorf("latency_p95 quantile %v %v", q, ok)
	}
	if RuleMetric("latency_p42").Valid() || RuleMetric("").Valid() {
		t.Error("an unknown rule metric is valid")
	}
}

// The leaf rule: the standard library only.
func TestImportsStdlibOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range slices.Concat(pkg.Imports, pkg.TestImports) {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("imports %s: internal/schema must stay a standard-library-only leaf", imp)
		}
	}
}
