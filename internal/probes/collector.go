package probes

import (
	"errors"
	"math"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// HistSlots is the number of log2 buckets per kernel histogram.
const HistSlots = 64

// Kernel bucket i counts durations in [2^(i-30), 2^(i-29)) seconds
// (bpf/common.h). Classic buckets are exported from 2^-20 s (~1 µs) to
// 2^6 s (64 s): what a GPU host process's waits span.
const (
	unitShift     = 30
	classicMinExp = -20
	classicMaxExp = 6
)

// HistEntry is one kernel histogram as read from the hists map.
type HistEntry struct {
	Slot    uint32
	Probe   ID
	Sub     uint16
	Buckets [HistSlots]uint64
	Count   uint64
	SumNs   uint64
}

// CountEntry is one kernel counter from the counts map.
type CountEntry struct {
	Slot  uint32
	Probe ID
	Sub   uint16
	Count uint64
}

// mapReader reads the kernel maps at scrape time (a fake in tests).
type mapReader interface {
	hists() ([]HistEntry, error)
	counts() ([]CountEntry, error)
}

// ProbeStatus is a probe's state for metrics and health.
type ProbeStatus struct {
	Enabled  bool
	Attached int               // producers (processes) instrumented
	Errors   map[string]uint64 // by reason
}

// snapshotSource is what the collector asks the manager.
type snapshotSource interface {
	// state returns availability, the reason when unavailable, the
	// producer name of each slot and each probe's status.
	state() (available bool, reason string, slots map[uint32]string, probes map[string]ProbeStatus)
	reader() mapReader // nil while nothing is loaded
}

type family struct {
	desc   *prometheus.Desc
	labels []string
	probe  Probe
	hist   bool
}

type collector struct {
	src      snapshotSource
	native   bool
	families map[ID]*family
	up       *prometheus.Desc
	down     *prometheus.Desc
	attached *prometheus.Desc
	errors   *prometheus.Desc
	fams     selfmetrics.Families
}

// familyOf names each probe's metric.
func familyOf(p Probe) (name, help string, labels []string, hist bool) {
	switch p.ID {
	case IDOffCPU:
		return "agaobs_bpf_offcpu_seconds", "Time the producer's threads spent off CPU, by reason: sleep (blocked) or preempted (runnable, waiting for a CPU).", []string{"producer", "reason"}, true
	case IDRunqueue:
		return "agaobs_bpf_runqueue_latency_seconds", "Wakeup-to-run latency of the producer's threads (time runnable on a run queue).", []string{"producer"}, true
	case IDPythonGC:
		return "agaobs_bpf_python_gc_pause_seconds", "CPython garbage collection pauses (USDT python:gc__start to gc__done).", []string{"producer"}, true
	case IDCUDASync:
		return "agaobs_bpf_cuda_sync_wait_seconds", "Host time spent in CUDA synchronize calls (runtime and driver APIs), entry to return.", []string{"producer", "api"}, true
	case IDCUDAGraphLaunch:
		return "agaobs_bpf_cuda_graph_launches_total", "CUDA graph launches (cudaGraphLaunch, cuGraphLaunch).", []string{"producer"}, false
	case IDCUDALaunch:
		return "agaobs_bpf_cuda_kernel_launches_total", "CUDA kernel launch calls, by API.", []string{"producer", "api"}, false
	case IDGILWait:
		return "agaobs_bpf_gil_wait_seconds", "Time threads waited to re-acquire the GIL (PyEval_RestoreThread).", []string{"producer"}, true
	case IDForwardMarker:
		return "agaobs_bpf_forward_latency_seconds", "AGA forward latency measured out of band: agaobs_forward_begin to agaobs_forward_end markers.", []string{"producer"}, true
	}
	return "", "", nil, false
}

// newCollector describes every probe's family, enabled or not: the set of
// enabled probes is configuration.
func newCollector(src snapshotSource, native bool) *collector {
	const availHelp = "Whether eBPF programs could be loaded (1), or 0 with the reason (not_permitted, not_supported, disabled, unknown)."
	c := &collector{src: src, native: native, families: map[ID]*family{}}
	// One family, two shapes: down carries the reason, up does not. Only
	// down is described (a checked collector describes a name once); up
	// has the same name, so the registry accepts it.
	c.down = c.fams.Gauge("agaobs_bpf_available", availHelp, "reason")
	c.up = prometheus.NewDesc("agaobs_bpf_available", availHelp, nil, nil)
	c.attached = c.fams.Gauge("agaobs_bpf_probe_attached", "Producer processes a probe is attached to (0: none yet, or it failed).", "probe")
	c.errors = c.fams.Counter("agaobs_bpf_probe_errors_total", "Probe attach failures by reason: not_permitted, not_supported, symbol_missing, no_target, other.", "probe", "reason")
	for _, p := range All() {
		name, help, labels, hist := familyOf(p)
		add := c.fams.Counter
		if hist {
			add = c.fams.Histogram
		}
		c.families[p.ID] = &family{desc: add(name, help, labels...), labels: labels, probe: p, hist: hist}
	}
	return c
}

// Describe implements selfmetrics.Collector.
func (c *collector) Describe() []selfmetrics.Family { return c.fams }

// Update implements selfmetrics.Collector.
func (c *collector) Update(ch chan<- prometheus.Metric) error {
	available, reason, slots, probes := c.src.state()
	if available {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	} else {
		ch <- prometheus.MustNewConstMetric(c.down, prometheus.GaugeValue, 0, reason)
	}
	for _, name := range sortedKeys(probes) {
		st := probes[name]
		if st.Enabled {
			ch <- prometheus.MustNewConstMetric(c.attached, prometheus.GaugeValue, float64(st.Attached), name)
		}
		for _, r := range sortedKeys(st.Errors) {
			ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.Errors[r]), name, r)
		}
	}
	r := c.src.reader()
	if r == nil {
		return nil
	}
	enabled := func(id ID) bool {
		f := c.families[id]
		return f != nil && probes[f.probe.Name].Enabled
	}
	// A map that cannot be read loses its series for this scrape and
	// reports the collector failed.
	hs, hErr := r.hists()
	if hErr == nil {
		for i := range hs {
			h := &hs[i]
			prod, ok := slots[h.Slot]
			if !ok || !enabled(h.Probe) || !c.families[h.Probe].hist {
				continue
			}
			f := c.families[h.Probe]
			ch <- &histMetric{desc: f.desc, names: f.labels, values: c.labels(f.probe, prod, h.Sub), h: h, native: c.native}
		}
	}
	cs, cErr := r.counts()
	if cErr == nil {
		// A family without an api label (cuda_graph_launch) sums its subs.
		type series struct {
			f      *family
			values []string
			n      float64
		}
		byKey := map[string]*series{}
		var order []string
		for _, e := range cs {
			prod, ok := slots[e.Slot]
			if !ok || !enabled(e.Probe) || c.families[e.Probe].hist {
				continue
			}
			f := c.families[e.Probe]
			lv := c.labels(f.probe, prod, e.Sub)
			k := f.probe.Name + "\xff" + strings.Join(lv, "\xff")
			s := byKey[k]
			if s == nil {
				s = &series{f: f, values: lv}
				byKey[k] = s
				order = append(order, k)
			}
			s.n += float64(e.Count)
		}
		for _, k := range order {
			s := byKey[k]
			ch <- prometheus.MustNewConstMetric(s.f.desc, prometheus.CounterValue, s.n, s.values...)
		}
	}
	return errors.Join(hErr, cErr)
}

// labels returns a series' label values: producer, then the reason or api.
func (c *collector) labels(p Probe, producer string, sub uint16) []string {
	switch {
	case p.ID == IDOffCPU:
		reason := "sleep"
		if sub == 1 {
			reason = "preempted"
		}
		return []string{producer, reason}
	case len(p.apiLabels()) > 0:
		return []string{producer, p.api(sub)}
	}
	return []string{producer}
}

// apiLabels reports whether the probe's metric carries an api label.
func (p Probe) apiLabels() []string {
	if p.ID == IDCUDASync || p.ID == IDCUDALaunch {
		return []string{"api"}
	}
	return nil
}

// histMetric renders a kernel histogram: classic power-of-two buckets in
// seconds, plus native schema-0 buckets (which the kernel's buckets are)
// when native histograms are on.
type histMetric struct {
	desc          *prometheus.Desc
	names, values []string
	h             *HistEntry
	native        bool
}

func (m *histMetric) Desc() *prometheus.Desc { return m.desc }

func (m *histMetric) Write(out *dto.Metric) error {
	h := m.h
	sum := float64(h.SumNs) / 1e9
	d := &dto.Histogram{SampleCount: proto.Uint64(h.Count), SampleSum: proto.Float64(sum)}
	var cum uint64
	i := 0
	for exp := classicMinExp; exp <= classicMaxExp; exp++ {
		// Classic bucket le=2^exp holds kernel buckets up to i = exp+29.
		for ; i <= exp+unitShift-1 && i < HistSlots; i++ {
			cum += h.Buckets[i]
		}
		d.Bucket = append(d.Bucket, &dto.Bucket{CumulativeCount: proto.Uint64(cum), UpperBound: proto.Float64(math.Ldexp(1, exp))})
	}
	if m.native {
		d.Schema, d.ZeroThreshold, d.ZeroCount = proto.Int32(0), proto.Float64(0), proto.Uint64(0)
		var prev int64
		last := int32(math.MinInt32)
		for i, n := range h.Buckets {
			if n == 0 {
				continue
			}
			idx := int32(i - unitShift + 1) // upper bound 2^(i-29) s
			if last == math.MinInt32 || idx != last+1 {
				off := idx
				if last != math.MinInt32 {
					off = idx - last - 1
				}
				d.PositiveSpan = append(d.PositiveSpan, &dto.BucketSpan{Offset: proto.Int32(off), Length: proto.Uint32(0)})
			}
			sp := d.PositiveSpan[len(d.PositiveSpan)-1]
			*sp.Length++
			d.PositiveDelta = append(d.PositiveDelta, int64(n)-prev)
			prev, last = int64(n), idx
		}
		if len(d.PositiveSpan) == 0 {
			d.PositiveSpan = []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(0)}}
		}
	}
	out.Histogram = d
	out.Label = labelPairs(m.names, m.values)
	return nil
}

// labelPairs pairs label names with values, sorted by name as the
// exposition wants.
func labelPairs(names, values []string) []*dto.LabelPair {
	pairs := make([]*dto.LabelPair, 0, len(values))
	for i, v := range values {
		if i < len(names) {
			pairs = append(pairs, &dto.LabelPair{Name: proto.String(names[i]), Value: proto.String(v)})
		}
	}
	sort.Slice(pairs, func(a, b int) bool { return pairs[a].GetName() < pairs[b].GetName() })
	return pairs
}
