package agent

import (
	"github.com/agaobs/agaobs/internal/alerting"
	"github.com/agaobs/agaobs/internal/alerting/anomaly"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/probes"
)

// anomalyExtras gives the anomaly detector each producer's minute of the
// node collectors' views: off-CPU and GC pause p99 from the eBPF probes'
// cumulative histograms (this minute's counts less the last minute's) and
// the utilization of the GPUs the producer holds memory on (their mean).
// The engine calls it under its lock, once per producer per minute; the
// kernel maps are read once per minute.
type anomalyExtras struct {
	hists  func() map[string]map[probes.ID]*probes.Cumulative // nil: no probes
	util   func() map[string]float64                          // GPU UUID → utilization; nil: no GPUs
	gpus   func(hostPID int) []string                         // the GPUs a process holds memory on
	minute int64
	cur    map[string]map[probes.ID]*probes.Cumulative
	prev   map[string]map[probes.ID]*probes.Cumulative
	utils  map[string]float64
}

// newAnomalyExtras reads a's probes and GPU collector when called: the
// engine is built before them.
func newAnomalyExtras(a *Agent) *anomalyExtras {
	return &anomalyExtras{gpus: a.gpuUUIDs,
		hists: func() map[string]map[probes.ID]*probes.Cumulative {
			if a.probes == nil {
				return nil
			}
			return a.probes.Histograms()
		},
		util: func() map[string]float64 {
			if a.gpu == nil {
				return nil
			}
			return a.gpu.Utilization()
		}}
}

func (x *anomalyExtras) get(minute int64, p *pipeline.Producer) alerting.ExtraSignals {
	if minute != x.minute {
		x.minute = minute
		x.prev, x.cur, x.utils = x.cur, nil, nil
		if x.hists != nil {
			x.cur = x.hists()
		}
		if x.util != nil {
			x.utils = x.util()
		}
	}
	var out alerting.ExtraSignals
	p99 := func(id probes.ID) anomaly.Value {
		c := x.cur[p.Name][id]
		if c == nil || x.prev == nil {
			return anomaly.Value{}
		}
		sec, ok := c.QuantileSince(x.prev[p.Name][id], 0.99)
		return anomaly.Value{V: sec * 1e6, OK: ok}
	}
	out.OffCPUP99, out.GCPauseP99 = p99(probes.IDOffCPU), p99(probes.IDPythonGC)
	if len(x.utils) > 0 {
		sum, n := 0.0, 0
		for _, uuid := range x.gpus(p.HostPID) {
			if u, ok := x.utils[uuid]; ok {
				sum, n = sum+u, n+1
			}
		}
		if n > 0 {
			out.GPUUtilization = anomaly.Value{V: sum / float64(n), OK: true}
		}
	}
	return out
}
