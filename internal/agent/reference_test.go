package agent

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/metrics"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

var update = flag.Bool("update", false, "rewrite the README metrics reference")

const (
	beginMetrics = "<!-- BEGIN METRICS (generated: go test ./internal/agent -run TestREADMEMetricsReference -update) -->\n"
	endMetrics   = "<!-- END METRICS -->"
)

func TestREADMEMetricsReference(t *testing.T) {
	path := "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, beginMetrics), strings.Index(s, endMetrics)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the metrics reference markers")
	}
	want := s[:i+len(beginMetrics)] + MetricsReference() + s[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != s {
		t.Fatal("README.md metrics reference is out of date: run go test ./internal/agent -run TestREADMEMetricsReference -update")
	}
}

// metricsAgent builds an agent (not running) with Prometheus and every
// optional self-metrics source on: event log, alerting, GPU and eBPF.
func metricsAgent(t *testing.T) *Agent {
	t.Helper()
	cfg := config.Default()
	tmp := t.TempDir()
	cfg.RingDir, cfg.StatePath = tmp, filepath.Join(tmp, "state.db")
	cfg.AuditStorageBackend = "memory"
	cfg.PrometheusEnabled, cfg.PrometheusHost, cfg.PrometheusPort = true, "127.0.0.1", 0
	cfg.PrometheusLabels = map[string]string{"site": "lab"}
	cfg.HealthEnabled, cfg.AdminListenAddress = false, ""
	cfg.LogEnabled, cfg.LogFile, cfg.LogStderr = true, filepath.Join(tmp, "events.log"), false
	cfg.AlertEnabled, cfg.GPUEnabled, cfg.BPFEnabled, cfg.BPFRequire = true, true, true, false
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.closeAll)
	for _, s := range a.servers {
		t.Cleanup(func() { s.Close() })
	}
	return a
}

// undescribed emits a family it does not describe.
type undescribed struct{}

func (undescribed) Describe() []selfmetrics.Family { return nil }
func (undescribed) Update(ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("agaobs_stray", "Not described.", nil, nil), prometheus.GaugeValue, 1)
	return nil
}

// mislabelled emits a described family with a label it does not describe.
type mislabelled struct{ fams selfmetrics.Families }

func (m *mislabelled) Describe() []selfmetrics.Family { return m.fams }
func (m *mislabelled) Update(ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("agaobs_mislabelled", "Labelled.", []string{"extra"}, nil), prometheus.GaugeValue, 1, "x")
	return nil
}

// Every collector the agent registers describes what it emits (the
// registry checks the descriptors, selfmetrics.Check the metrics), the
// README reference describes the same families, and a collector that
// strays fails the check.
func TestSelfMetricsDescribed(t *testing.T) {
	a := metricsAgent(t)
	withBroken := func(c selfmetrics.Collector) func() *selfmetrics.Set {
		return func() *selfmetrics.Set {
			s := referenceSet()
			s.Add("broken", c)
			return s
		}
	}
	m := &mislabelled{}
	m.fams.Gauge("agaobs_mislabelled", "Labelled.")
	for _, tc := range []struct {
		name string
		set  func() *selfmetrics.Set
		want string // error substring; "" for none
	}{
		{"agent", func() *selfmetrics.Set { return a.Registry().Self }, ""},
		{"reference", referenceSet, ""},
		{"undescribed family", withBroken(undescribed{}), "agaobs_stray"},
		{"undescribed label", withBroken(m), `label "extra" not described`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := selfmetrics.Check(tc.set())
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check = %v, want an error with %q", err, tc.want)
			}
		})
	}

	// Nothing reaches the agent's registry beside the set but
	// client_golang's own families.
	described := map[string]bool{}
	for _, f := range a.Registry().Self.Families() {
		described[f.Name] = true
	}
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n := mf.GetName(); strings.HasPrefix(n, "agaobs_") && n != "agaobs_build_info" && !described[n] {
			t.Errorf("%s reaches the registry without a selfmetrics collector", n)
		}
	}
	if problems, err := testutil.GatherAndLint(a.Registry()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// The reference lists what the agent registers.
	ref := metrics.NewRegistry(nil, metrics.New(metrics.Options{}), referenceSet()).Self.Families()
	names := func(fams []selfmetrics.Family) []string {
		var out []string
		for _, f := range fams {
			out = append(out, f.Name)
		}
		slices.Sort(out)
		return out
	}
	if got, want := names(ref), names(a.Registry().Self.Families()); !slices.Equal(got, want) {
		t.Errorf("the reference describes\n%v\nthe agent\n%v", got, want)
	}
}
