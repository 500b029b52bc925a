package gpu

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// metricsRegistry registers c's metrics as the agent does (in a
// selfmetrics set, which the pedantic registry checks against their
// descriptors) and returns the names of c's own families: comparisons
// leave out the set's agaobs_collector_* series, whose durations vary.
func metricsRegistry(t testing.TB, c *Collector) (*prometheus.Registry, []string) {
	t.Helper()
	s := selfmetrics.NewSet()
	s.Add("gpu", c.Metrics())
	if err := selfmetrics.Check(s); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	var names []string
	for _, f := range c.Metrics().Describe() {
		names = append(names, f.Name)
	}
	return reg, names
}

// agaobs_collector_success{collector="gpu"} follows the last poll: 1
// before the first one (nothing to report), then its outcome.
func TestCollectorSuccessFollowsPoll(t *testing.T) {
	for _, tc := range []struct {
		name string
		snap snapshot
		want string
	}{
		{"no poll yet", snapshot{}, "1"},
		{"poll failed", snapshot{done: true, err: "NVML is not initialised"}, "0"},
		{"poll succeeded", snapshot{done: true, ok: true, sampled: true}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Options{})
			c.snap = tc.snap
			reg, _ := metricsRegistry(t, c)
			want := `# HELP agaobs_collector_success Whether the collector's last scrape succeeded (1) or failed (0).
# TYPE agaobs_collector_success gauge
agaobs_collector_success{collector="gpu"} ` + tc.want + "\n"
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agaobs_collector_success"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
