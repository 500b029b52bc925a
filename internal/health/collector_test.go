package health

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agaobs/agaobs/internal/selfmetrics"
	agtest "github.com/agaobs/agaobs/internal/testutil"
)

func TestCollectorSeries(t *testing.T) {
	src := newFake(statuses("gpu", "disabled", "tp0/kv_store", "degraded", "tp0/liveness", "unhealthy", "tp1/liveness", "closed", "audit", "healthy"))
	h := New(Options{Sources: []Source{src}})
	set := selfmetrics.NewSet()
	set.Add("health", h.Collector())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)

	if n, err := testutil.GatherAndCount(reg, "agaobs_health_status", "agaobs_health_overall_status"); err != nil || n != 0 {
		t.Fatalf("before the first Evaluate: %d series, %v; want none", n, err)
	}
	// Nothing to report yet is not a failure.
	noData := `# HELP agaobs_collector_success Whether the collector's last scrape succeeded (1) or failed (0).
# TYPE agaobs_collector_success gauge
agaobs_collector_success{collector="health"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(noData), "agaobs_collector_success"); err != nil {
		t.Fatal(err)
	}
	h.Evaluate(time.Now())
	want := map[string]float64{"gpu": -1, "tp0/kv_store": 1, "tp0/liveness": 2, "tp1/liveness": 0, "audit": 0}
	check := func(want map[string]float64, overall float64, gone ...string) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for comp, v := range want {
			m := agtest.FindSeries(mfs, "agaobs_health_status", map[string]string{"component": comp})
			if m == nil || m.GetGauge().GetValue() != v {
				t.Errorf("agaobs_health_status{component=%q} = %v, want %v", comp, m, v)
			}
		}
		for _, comp := range gone {
			if m := agtest.FindSeries(mfs, "agaobs_health_status", map[string]string{"component": comp}); m != nil {
				t.Errorf("series for gone component %q still exported: %v", comp, m)
			}
		}
		if n := testutil.CollectAndCount(set, "agaobs_health_status"); n != len(want) {
			t.Errorf("%d agaobs_health_status series, want %d", n, len(want))
		}
		m := agtest.FindSeries(mfs, "agaobs_health_overall_status", nil)
		if m == nil || m.GetGauge().GetValue() != overall || len(m.Label) != 0 {
			t.Errorf("agaobs_health_overall_status = %v, want %v without labels", m, overall)
		}
	}
	check(want, 2)

	src.set(statuses("gpu", "disabled", "tp0/kv_store", "degraded", "audit", "healthy"))
	h.Evaluate(time.Now())
	check(map[string]float64{"gpu": -1, "tp0/kv_store": 1, "audit": 0}, 1, "tp0/liveness", "tp1/liveness")

	src.set(nil)
	h.Evaluate(time.Now())
	check(map[string]float64{}, 0, "gpu", "tp0/kv_store", "audit")

	if problems, err := testutil.CollectAndLint(set); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if err := selfmetrics.Check(set); err != nil {
		t.Error(err)
	}
}
