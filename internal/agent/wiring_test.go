package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/selfmetrics"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// /readyz's ring_dir check reports what the consumer's own scan of the
// ring directory saw: a ring_dir that stops being readable fails it.
func TestReadyzRingDir(t *testing.T) {
	cfg := testConfig(t)
	cfg.RingRescanInterval = config.Duration(50 * time.Millisecond)
	cfg.PrometheusEnabled = false
	a, ctx := runAgent(t, cfg, Options{})
	if !testutil.WaitFor(30*time.Second, func() bool { return a.consumer.Passes() > 0 && a.checkRingDir(ctx) == nil }) {
		t.Fatalf("ring_dir check never passed: %v", a.checkRingDir(ctx))
	}
	// Replaced by a file: every scan fails with ENOTDIR.
	if err := os.RemoveAll(cfg.RingDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.RingDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var got error
	if !testutil.WaitFor(30*time.Second, func() bool { got = a.checkRingDir(ctx); return got != nil }) {
		t.Fatal("ring_dir check still passes with ring_dir replaced by a file")
	}
	if !strings.Contains(got.Error(), "ring_dir "+cfg.RingDir) || !strings.Contains(got.Error(), "not a directory") {
		t.Errorf("error %q does not name ring_dir and the cause", got)
	}
}

// countingSink is a sink that is also a selfmetrics.Collector.
type countingSink struct {
	fams selfmetrics.Families
	desc *prometheus.Desc
	n    atomic.Int64
}

func newCountingSink() *countingSink {
	s := &countingSink{}
	s.desc = s.fams.Counter("agaobs_test_sink_events_total", "Events the test sink saw.")
	return s
}

func (s *countingSink) Name() string             { return "test_sink" }
func (s *countingSink) Kinds() pipeline.KindMask { return pipeline.KindAgent.Mask() }
func (s *countingSink) Write(_ context.Context, b []pipeline.Event) error {
	s.n.Add(int64(len(b)))
	return nil
}
func (s *countingSink) Describe() []selfmetrics.Family { return s.fams }
func (s *countingSink) Update(ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, float64(s.n.Load()))
	return nil
}

// A sink added with addSink (here through Options.Sinks) is one line of
// wiring: it gets its queue, the events it subscribes to (the agent's own
// config_loaded event), and its metrics with agaobs_collector_success.
func TestAddSinkRegistersItsMetrics(t *testing.T) {
	sink := newCountingSink()
	a, _ := runAgent(t, testConfig(t), Options{Sinks: []pipeline.Sink{sink}})
	if !testutil.WaitFor(30*time.Second, func() bool { return sink.n.Load() >= 1 }) {
		t.Fatal("the sink never received the agent's config_loaded event")
	}
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sawSeries, sawSuccess bool
	for _, mf := range mfs {
		switch mf.GetName() {
		case "agaobs_test_sink_events_total":
			sawSeries = len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetCounter().GetValue() >= 1
		case "agaobs_collector_success":
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "collector" && l.GetValue() == "test_sink" && m.GetGauge().GetValue() == 1 {
						sawSuccess = true
					}
				}
			}
		}
	}
	if !sawSeries || !sawSuccess {
		t.Errorf("sink metrics registered: series %v, collector_success %v", sawSeries, sawSuccess)
	}
}

// Every series the agent exposes carries node=<node_name> (one Prometheus
// scraping many nodes must never merge them); aga_producer_info keeps
// exactly one node label. With prometheus_node_label false only
// aga_producer_info has one.
func TestNodeLabelOnEverySeries(t *testing.T) {
	for _, nodeLabel := range []bool{true, false} {
		t.Run(fmt.Sprintf("prometheus_node_label=%v", nodeLabel), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.AlertEnabled = true
			cfg.NodeName, cfg.PrometheusNodeLabel = "gpu-node-b", nodeLabel
			cfg.PrometheusLabels = map[string]string{"cluster": "c1"}
			a, _ := runAgent(t, cfg, Options{})
			w, err := shm.CreateWriter(cfg.RingDir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 16,
				Identity: shm.Identity{Producer: "inference-tp0", Model: "m"}})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			f := shm.Forward{LatencyUs: 100, Fields: shm.FwdHasLatency}
			_ = w.EmitForward(time.Now().UnixNano(), &f)
			var mfs []*dto.MetricFamily
			if !testutil.WaitFor(30*time.Second, func() bool {
				mfs, err = a.Registry().Gather()
				for _, mf := range mfs {
					if mf.GetName() == "aga_forward_total" {
						return true
					}
				}
				return false
			}) {
				t.Fatalf("no aga_forward_total series: %v", err)
			}
			series := 0
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					series++
					nodes := 0
					var cluster string
					for _, l := range m.GetLabel() {
						switch l.GetName() {
						case "node":
							nodes++
							if l.GetValue() != "gpu-node-b" {
								t.Errorf("%s: node=%q", mf.GetName(), l.GetValue())
							}
						case "cluster":
							cluster = l.GetValue()
						}
					}
					want := 0
					if nodeLabel || mf.GetName() == "aga_producer_info" {
						want = 1
					}
					if nodes != want || cluster != "c1" {
						t.Errorf("%s%v: %d node labels (want %d), cluster %q", mf.GetName(), m.GetLabel(), nodes, want, cluster)
					}
				}
			}
			if series < 50 {
				t.Errorf("only %d series gathered", series)
			}
		})
	}
}

// testConfig is a config for an agent inside a test: its own directory,
// a memory audit store, metrics on a free loopback port, no health or
// admin listener, GPU, eBPF, event log or alerting.
func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	tmp := t.TempDir()
	cfg.RingDir, cfg.StatePath = filepath.Join(tmp, "rings"), filepath.Join(tmp, "state.db")
	cfg.AuditStorageBackend = "memory"
	cfg.PrometheusHost, cfg.PrometheusPort = "127.0.0.1", 0
	cfg.HealthEnabled, cfg.AdminListenAddress = false, ""
	cfg.GPUEnabled, cfg.BPFEnabled, cfg.LogEnabled, cfg.AlertEnabled = false, false, false, false
	return cfg
}

// runAgent builds and runs an agent until the test ends.
func runAgent(t *testing.T, cfg config.Config, opts Options) (*Agent, context.Context) {
	t.Helper()
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, ctx
}
