package probes

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/selfmetrics"
	agatest "github.com/agaobs/agaobs/internal/testutil"
)

// register puts c in a selfmetrics set, as the agent does, checks that it
// emits only what it describes, and returns a pedantic registry holding
// it with the names of c's own families (comparisons leave out the set's
// agaobs_collector_* series).
func register(t *testing.T, c selfmetrics.Collector) (*prometheus.Registry, []string) {
	t.Helper()
	s := selfmetrics.NewSet()
	s.Add("probes", c)
	if err := selfmetrics.Check(s); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	var names []string
	for _, f := range c.Describe() {
		names = append(names, f.Name)
	}
	return reg, names
}

func mfsMap(mfs []*dto.MetricFamily) map[string]*dto.MetricFamily {
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func series(mfs map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
	return agatest.FindSeries([]*dto.MetricFamily{mf}, name, pairs(labels...))
}

func pairs(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

type fakeSource struct {
	available bool
	reason    string
	slots     map[uint32]string
	probes    map[string]ProbeStatus
	rd        *fakeReader
}

func (f *fakeSource) state() (bool, string, map[uint32]string, map[string]ProbeStatus) {
	return f.available, f.reason, f.slots, f.probes
}

func (f *fakeSource) reader() mapReader {
	if f.rd == nil {
		return nil
	}
	return f.rd
}

type fakeReader struct {
	h   []HistEntry
	c   []CountEntry
	err error
}

func (r *fakeReader) hists() ([]HistEntry, error) { return r.h, r.err }
func (r *fakeReader) counts() ([]CountEntry, error) {
	if r.err != nil {
		return nil, r.err
	}
	return r.c, nil
}

func enabledStatus(names ...string) map[string]ProbeStatus {
	out := map[string]ProbeStatus{}
	for _, n := range Names() {
		out[n] = ProbeStatus{Errors: map[string]uint64{}}
	}
	for _, n := range names {
		out[n] = ProbeStatus{Enabled: true, Attached: 1, Errors: map[string]uint64{}}
	}
	return out
}

// Kernel bucket i is [2^(i-30), 2^(i-29)) s: classic bucket le=2^e holds
// kernel buckets up to i=e+29; counters sum their subs unless the family
// has an api label; a disabled probe and an unknown slot export nothing.
func TestCollectorRendering(t *testing.T) {
	var h HistEntry
	h.Slot, h.Probe, h.Sub = 1, IDCUDASync, 1
	h.Buckets[20] = 3 // [2^-10, 2^-9) s: ~1–2 ms
	h.Buckets[21] = 1 // [2^-9, 2^-8)
	h.Buckets[40] = 1 // [2^10, 2^11) s: beyond the last classic bucket (64 s)
	h.Count, h.SumNs = 5, 1_500_000_000_000
	gil := HistEntry{Slot: 1, Probe: IDGILWait, Count: 1, SumNs: 10}
	gil.Buckets[0] = 1
	stray := HistEntry{Slot: 9, Probe: IDCUDASync, Sub: 1, Count: 1}
	src := &fakeSource{available: true, slots: map[uint32]string{1: "tp0"},
		probes: enabledStatus("cuda_sync", "cuda_graph_launch", "cuda_launch"),
		rd: &fakeReader{h: []HistEntry{h, gil, stray}, c: []CountEntry{
			{Slot: 1, Probe: IDCUDAGraphLaunch, Sub: 1, Count: 4}, {Slot: 1, Probe: IDCUDAGraphLaunch, Sub: 2, Count: 3},
			{Slot: 1, Probe: IDCUDALaunch, Sub: 3, Count: 9},
		}}}
	reg, _ := register(t, newCollector(src, false))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	if names["agaobs_bpf_gil_wait_seconds"] {
		t.Error("a disabled probe exported a histogram")
	}
	sync := series(mfsMap(mfs), "agaobs_bpf_cuda_sync_wait_seconds", "producer", "tp0", "api", "cudaStreamSynchronize")
	if sync == nil {
		t.Fatal("no cuda sync series")
	}
	hg := sync.Histogram
	if hg.GetSampleCount() != 5 || hg.GetSampleSum() != 1500 {
		t.Fatalf("count %d sum %v", hg.GetSampleCount(), hg.GetSampleSum())
	}
	cum := map[float64]uint64{}
	for _, b := range hg.Bucket {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if len(hg.Bucket) != classicMaxExp-classicMinExp+1 || cum[math.Ldexp(1, -10)] != 0 || cum[math.Ldexp(1, -9)] != 3 ||
		cum[math.Ldexp(1, -8)] != 4 || cum[64] != 4 {
		t.Fatalf("classic buckets %v", cum)
	}
	if len(sync.Label) != 2 {
		t.Fatalf("labels %v", sync.Label)
	}
	want := `# HELP agaobs_bpf_cuda_graph_launches_total CUDA graph launches (cudaGraphLaunch, cuGraphLaunch).
# TYPE agaobs_bpf_cuda_graph_launches_total counter
agaobs_bpf_cuda_graph_launches_total{producer="tp0"} 7
# HELP agaobs_bpf_cuda_kernel_launches_total CUDA kernel launch calls, by API.
# TYPE agaobs_bpf_cuda_kernel_launches_total counter
agaobs_bpf_cuda_kernel_launches_total{api="cuLaunchKernel",producer="tp0"} 9
# HELP agaobs_bpf_available Whether eBPF programs could be loaded (1), or 0 with the reason (not_permitted, not_supported, disabled, unknown).
# TYPE agaobs_bpf_available gauge
agaobs_bpf_available 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agaobs_bpf_cuda_graph_launches_total",
		"agaobs_bpf_cuda_kernel_launches_total", "agaobs_bpf_available"); err != nil {
		t.Fatal(err)
	}
}

// With native histograms the kernel buckets become schema-0 buckets with
// the same bounds: index i-29.
func TestCollectorNative(t *testing.T) {
	var h HistEntry
	h.Slot, h.Probe = 1, IDForwardMarker
	h.Buckets[20], h.Buckets[21], h.Buckets[24] = 2, 1, 5
	h.Count = 8
	src := &fakeSource{available: true, slots: map[uint32]string{1: "tp0"}, probes: enabledStatus("forward_marker"),
		rd: &fakeReader{h: []HistEntry{h}}}
	reg, _ := register(t, newCollector(src, true))
	mfs, _ := reg.Gather()
	s := series(mfsMap(mfs), "agaobs_bpf_forward_latency_seconds", "producer", "tp0")
	if s == nil {
		t.Fatal("no series")
	}
	hg := s.Histogram
	if hg.GetSchema() != 0 || len(hg.PositiveSpan) != 2 || hg.PositiveSpan[0].GetOffset() != -9 || hg.PositiveSpan[0].GetLength() != 2 ||
		hg.PositiveSpan[1].GetOffset() != 2 || hg.PositiveSpan[1].GetLength() != 1 {
		t.Fatalf("spans %v", hg.PositiveSpan)
	}
	if d := hg.PositiveDelta; len(d) != 3 || d[0] != 2 || d[1] != -1 || d[2] != 4 {
		t.Fatalf("deltas %v", d)
	}
	if len(hg.Bucket) == 0 {
		t.Fatal("classic buckets dropped beside native ones")
	}
}

// Unavailable eBPF: the reason, the failure counters, no probe series.
func TestCollectorUnavailable(t *testing.T) {
	st := enabledStatus("offcpu")
	st["offcpu"] = ProbeStatus{Enabled: true, Errors: map[string]uint64{ReasonNotPermitted: 1}}
	src := &fakeSource{reason: ReasonNotPermitted, probes: st}
	reg, names := register(t, newCollector(src, false))
	want := `# HELP agaobs_bpf_available Whether eBPF programs could be loaded (1), or 0 with the reason (not_permitted, not_supported, disabled, unknown).
# TYPE agaobs_bpf_available gauge
agaobs_bpf_available{reason="not_permitted"} 0
# HELP agaobs_bpf_probe_attached Producer processes a probe is attached to (0: none yet, or it failed).
# TYPE agaobs_bpf_probe_attached gauge
agaobs_bpf_probe_attached{probe="offcpu"} 0
# HELP agaobs_bpf_probe_errors_total Probe attach failures by reason: not_permitted, not_supported, symbol_missing, no_target, other.
# TYPE agaobs_bpf_probe_errors_total counter
agaobs_bpf_probe_errors_total{probe="offcpu",reason="not_permitted"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

// A kernel map that cannot be read fails the collector (its
// agaobs_collector_success goes to 0), not the scrape.
func TestCollectorMapError(t *testing.T) {
	src := &fakeSource{available: true, slots: map[uint32]string{1: "tp0"}, probes: enabledStatus("offcpu"),
		rd: &fakeReader{err: errors.New("map gone")}}
	reg, _ := register(t, newCollector(src, false))
	want := `# HELP agaobs_collector_success Whether the collector's last scrape succeeded (1) or failed (0).
# TYPE agaobs_collector_success gauge
agaobs_collector_success{collector="probes"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agaobs_collector_success"); err != nil {
		t.Fatal(err)
	}
}
