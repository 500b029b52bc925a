package live

import (
	"math"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// ebpfWindow is how far back the eBPF percentiles look: the probes'
// histograms are cumulative, so a percentile of "now" is one of the
// difference to a snapshot this old.
const ebpfWindow = 10

// famView turns the GPU and eBPF metric families into their sections. It
// keeps the eBPF histograms of the last ebpfWindow frames to difference.
type famView struct {
	past []map[string][]bucket // ring of cumulative histograms per series key
	next int
}

type bucket struct {
	le    float64
	count uint64
}

func newFamView() *famView { return &famView{past: make([]map[string][]bucket, ebpfWindow)} }

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

// sections computes the GPUs and eBPF sections from one gather.
func (v *famView) sections(fams []*dto.MetricFamily) ([]GPURow, []EBPFRow) {
	byName := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	return gpuRows(byName), v.ebpfRows(byName)
}

func gpuRows(byName map[string]*dto.MetricFamily) []GPURow {
	rows := map[string]*GPURow{}
	var order []string
	nan := Num(math.NaN())
	for _, m := range byName["agaobs_gpu_info"].GetMetric() {
		u := label(m, "uuid")
		if _, ok := rows[u]; ok {
			continue
		}
		rows[u] = &GPURow{UUID: u, Index: label(m, "index"), Name: label(m, "name"), Util: nan, MemUsedBytes: nan,
			MemTotalBytes: nan, TempC: nan, PowerW: nan, XIDs: []XID{}}
		order = append(order, u)
	}
	set := func(fam string, f func(r *GPURow, v float64)) {
		for _, m := range byName[fam].GetMetric() {
			if r := rows[label(m, "uuid")]; r != nil {
				f(r, value(m))
			}
		}
	}
	set("agaobs_gpu_utilization_ratio", func(r *GPURow, v float64) { r.Util = Num(v) })
	set("agaobs_gpu_memory_used_bytes", func(r *GPURow, v float64) { r.MemUsedBytes = Num(v) })
	set("agaobs_gpu_memory_total_bytes", func(r *GPURow, v float64) { r.MemTotalBytes = Num(v) })
	set("agaobs_gpu_temperature_celsius", func(r *GPURow, v float64) { r.TempC = Num(v) })
	set("agaobs_gpu_power_watts", func(r *GPURow, v float64) { r.PowerW = Num(v) })
	counts := map[string]float64{}
	for _, m := range byName["agaobs_gpu_xid_errors_total"].GetMetric() {
		counts[label(m, "uuid")+"\x00"+label(m, "xid")] = value(m)
	}
	for _, m := range byName["agaobs_gpu_xid_last_seconds"].GetMetric() {
		r := rows[label(m, "uuid")]
		if r == nil {
			continue
		}
		x := label(m, "xid")
		sec := value(m)
		r.XIDs = append(r.XIDs, XID{XID: x, Count: counts[r.UUID+"\x00"+x],
			Last: time.Unix(0, int64(sec*1e9)).UTC()})
	}
	out := make([]GPURow, 0, len(order))
	for _, u := range order {
		r := rows[u]
		sort.Slice(r.XIDs, func(i, j int) bool { return r.XIDs[i].Last.After(r.XIDs[j].Last) })
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// ebpfFamilies are the probe histograms of the eBPF section, by the
// column they fill; series of one producer are summed over the other
// labels (off-CPU reason, CUDA API).
var ebpfFamilies = []struct{ fam, col string }{
	{"agaobs_bpf_offcpu_seconds", "offcpu"},
	{"agaobs_bpf_runqueue_latency_seconds", "runq"},
	{"agaobs_bpf_python_gc_pause_seconds", "gc"},
	{"agaobs_bpf_cuda_sync_wait_seconds", "cuda_sync"},
}

func (v *famView) ebpfRows(byName map[string]*dto.MetricFamily) []EBPFRow {
	now := map[string][]bucket{} // key: producer \x00 col
	for _, e := range ebpfFamilies {
		for _, m := range byName[e.fam].GetMetric() {
			h := m.GetHistogram()
			if h == nil || len(h.GetBucket()) == 0 {
				continue
			}
			key := label(m, "producer") + "\x00" + e.col
			acc := now[key]
			bs := h.GetBucket()
			for i := range len(bs) + 1 {
				le, n := math.Inf(1), h.GetSampleCount() // the implicit +Inf bucket
				if i < len(bs) {
					le, n = bs[i].GetUpperBound(), bs[i].GetCumulativeCount()
				}
				if i >= len(acc) {
					acc = append(acc, bucket{le: le})
				}
				if acc[i].le == le {
					acc[i].count += n
				}
			}
			now[key] = acc
		}
	}
	old := v.past[v.next]
	v.past[v.next] = now
	v.next = (v.next + 1) % len(v.past)
	if old == nil { // fewer than ebpfWindow frames: from the oldest kept
		for i := range v.past {
			if p := v.past[(v.next+i)%len(v.past)]; p != nil {
				old = p
				break
			}
		}
	}
	rows := map[string]*EBPFRow{}
	nan := Num(math.NaN())
	for key, cur := range now {
		prod, col, _ := strings.Cut(key, "\x00")
		r := rows[prod]
		if r == nil {
			r = &EBPFRow{Producer: prod, OffCPUP50: nan, OffCPUP99: nan, RunqP50: nan, RunqP99: nan, GCP50: nan, GCP99: nan,
				CUDASyncP50: nan, CUDASyncP99: nan}
			rows[prod] = r
		}
		delta := diff(cur, old[key])
		p50, p99 := Num(quantile(delta, 0.5)*1e6), Num(quantile(delta, 0.99)*1e6)
		switch col {
		case "offcpu":
			r.OffCPUP50, r.OffCPUP99 = p50, p99
		case "runq":
			r.RunqP50, r.RunqP99 = p50, p99
		case "gc":
			r.GCP50, r.GCP99 = p50, p99
		case "cuda_sync":
			r.CUDASyncP50, r.CUDASyncP99 = p50, p99
		}
	}
	out := make([]EBPFRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Producer < out[j].Producer })
	return out
}

// diff returns cur − old bucket by bucket (old nil or of another shape:
// cur itself, everything since the probe started).
func diff(cur, old []bucket) []bucket {
	if len(old) != len(cur) {
		return cur
	}
	out := make([]bucket, len(cur))
	for i := range cur {
		out[i] = bucket{le: cur[i].le}
		if cur[i].count >= old[i].count {
			out[i].count = cur[i].count - old[i].count
		}
	}
	return out
}

// quantile is the upper bound of the bucket holding quantile q of a
// cumulative histogram (NaN when it is empty or in the +Inf bucket
// beyond the last finite bound, which is then returned).
func quantile(b []bucket, q float64) float64 {
	if len(b) == 0 {
		return math.NaN()
	}
	total := b[len(b)-1].count
	if total == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(total)))
	for i, x := range b {
		if x.count >= rank {
			if math.IsInf(x.le, 1) && i > 0 {
				return b[i-1].le
			}
			return x.le
		}
	}
	return b[len(b)-1].le
}
