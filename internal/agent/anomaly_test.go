package agent

import (
	"math"
	"testing"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/probes"
)

// The detector's node signals: p99 of this minute's probe durations (the
// cumulative histograms' difference), none in a producer's first minute
// or without probes, and the mean utilization of the producer's GPUs.
func TestAnomalyExtras(t *testing.T) {
	hist := func(bucket int, n uint64) *probes.Cumulative {
		c := &probes.Cumulative{Count: n}
		c.Buckets[bucket] = n
		return c
	}
	minuteHists := []map[string]map[probes.ID]*probes.Cumulative{
		{"tp0": {probes.IDOffCPU: hist(20, 100)}},
		// +100 durations in [2^-10, 2^-9) s and 5 in [2^-6, 2^-5) s.
		{"tp0": {probes.IDOffCPU: func() *probes.Cumulative { c := hist(20, 200); c.Buckets[24] = 5; return c }()}},
	}
	call := 0
	x := &anomalyExtras{
		hists: func() map[string]map[probes.ID]*probes.Cumulative { h := minuteHists[call]; call++; return h },
		util:  func() map[string]float64 { return map[string]float64{"GPU-a": 0.5, "GPU-b": 0.9, "GPU-c": 0.1} },
		gpus: func(pid int) []string {
			if pid == 42 {
				return []string{"GPU-a", "GPU-b"}
			}
			return nil
		},
	}
	p := pipeline.NewProducer("tp0", "k", 42, 1, "r", pipeline.Identity{Producer: "tp0"})
	first := x.get(100, p)
	if first.OffCPUP99.OK {
		t.Errorf("a first minute has an off-CPU p99: %+v", first.OffCPUP99)
	}
	if !first.GPUUtilization.OK || math.Abs(first.GPUUtilization.V-0.7) > 1e-9 {
		t.Errorf("GPU utilization %+v, want the mean of GPU-a and GPU-b, 0.7", first.GPUUtilization)
	}
	if again := x.get(100, p); call != 1 || again != first {
		t.Errorf("the same minute read the maps again (%d reads) or changed: %+v", call, again)
	}
	second := x.get(101, p)
	if lo, hi := math.Ldexp(1, -6)*1e6, math.Ldexp(1, -5)*1e6; !second.OffCPUP99.OK || second.OffCPUP99.V < lo || second.OffCPUP99.V >= hi {
		t.Errorf("off-CPU p99 %+v µs, want in [%v, %v)", second.OffCPUP99, lo, hi)
	}
	if second.GCPauseP99.OK {
		t.Errorf("a GC p99 without the probe: %+v", second.GCPauseP99)
	}
	other := pipeline.NewProducer("tp9", "k9", 7, 1, "r", pipeline.Identity{Producer: "tp9"})
	if o := x.get(101, other); o.OffCPUP99.OK || o.GPUUtilization.OK {
		t.Errorf("a producer without probes or GPUs has values: %+v", o)
	}
}
