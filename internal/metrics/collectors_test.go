package metrics

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// GPU memory is attributed to live producers once per process (hot and
// audit ring share a pid), not to dead ones.
func TestProducerGPUCollector(t *testing.T) {
	list := snapshotOf([]ringRow{
		{Producer: "tp0", Class: "hot", State: "live", HostPID: 100},
		{Producer: "tp0", Class: "audit", State: "live", HostPID: 100},
		{Producer: "tp1", Class: "hot", State: "live", HostPID: 101},
		{Producer: "old", Class: "hot", State: "dead", HostPID: 102},
	})
	mem := func(pid int) map[string]uint64 {
		return map[int]map[string]uint64{
			100: {"GPU-a": 1 << 30},
			101: {"GPU-a": 2 << 20, "GPU-b": 3 << 20},
			102: {"GPU-b": 5},
		}[pid]
	}
	cs := selfmetrics.NewSet()
	cs.Add("producer_gpu", NewProducerGPUCollector(list, mem))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs)
	want := `# HELP agaobs_producer_gpu_memory_bytes GPU memory used by the producer's process, per GPU (NVML running processes matched to the producer's host pid).
# TYPE agaobs_producer_gpu_memory_bytes gauge
agaobs_producer_gpu_memory_bytes{producer="tp0",uuid="GPU-a"} 1.073741824e+09
agaobs_producer_gpu_memory_bytes{producer="tp1",uuid="GPU-a"} 2.097152e+06
agaobs_producer_gpu_memory_bytes{producer="tp1",uuid="GPU-b"} 3.145728e+06
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agaobs_producer_gpu_memory_bytes"); err != nil {
		t.Fatal(err)
	}
}

// failing is a collector whose Update fails.
type failing struct{}

func (failing) Describe() []selfmetrics.Family        { return nil }
func (failing) Update(chan<- prometheus.Metric) error { return errors.New("boom") }

// The self collectors of this package emit only what they describe.
func TestCollectorsDescribe(t *testing.T) {
	live := []ringRow{
		{Producer: "tp0", Class: "hot", State: "live", HostPID: 100, Consumed: 3},
		{Producer: "tp0", Class: "audit", State: "live", HostPID: 100},
		{Producer: "tp1", Class: "hot", State: "dead"},
	}
	e := New(Options{})
	rc := NewRingsCollector(snapshotOf(live))
	s := selfmetrics.NewSet()
	s.Add("rings", rc)
	s.Add("consumer", NewConsumerCollector(func() pipeline.ConsumerCounters {
		return pipeline.ConsumerCounters{CheckErrors: 1, Rejected: map[string]uint64{"not_a_ring": 2}, Candidates: 3}
	}))
	s.Add("pipeline", NewPipelineCollector(func() []pipeline.SinkStats { return []pipeline.SinkStats{{Name: "metrics", Written: 4}} }))
	s.Add("producer_gpu", NewProducerGPUCollector(snapshotOf(live),
		func(int) map[string]uint64 { return map[string]uint64{"GPU-a": 1} }))
	s.Add("exporter", e.Collector())
	if err := selfmetrics.Check(s); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(s); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// A producer name taken over by a new incarnation still lists the dead
// one's rings: the {producer, class} series come from the live ring, once.
func TestRingsCollectorOneSeriesPerClass(t *testing.T) {
	rows := []ringRow{
		{Producer: "tp0", Class: "hot", State: "dead", Consumed: 900, Dropped: 9},
		{Producer: "tp0", Class: "hot", State: "live", Consumed: 5},
		{Producer: "tp0", Class: "audit", State: "dead", Consumed: 3},
	}
	s := selfmetrics.NewSet()
	s.Add("rings", NewRingsCollector(snapshotOf(rows)))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	want := `# HELP agaobs_ring_events_total Records consumed from the ring by this agent process.
# TYPE agaobs_ring_events_total counter
agaobs_ring_events_total{class="audit",producer="tp0"} 3
agaobs_ring_events_total{class="hot",producer="tp0"} 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agaobs_ring_events_total"); err != nil {
		t.Fatal(err)
	}
}
