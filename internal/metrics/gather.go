package metrics

import (
	"encoding/hex"
	"math"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Gather implements prometheus.Gatherer for the AGA-domain families. It
// builds fresh dto objects from the compact state (label pairs and bucket
// bounds are shared read-only), so concurrent scrapes are safe and the
// registry's per-metric checks are skipped: the exporter guarantees unique
// label sets by construction.
func (e *Exporter) Gather() ([]*dto.MetricFamily, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	prods := make([]*prodState, 0, len(e.producers))
	for _, s := range e.producers {
		prods = append(prods, s)
	}
	sort.Slice(prods, func(i, j int) bool { return prods[i].label < prods[j].label })
	out := make([]*dto.MetricFamily, 0, len(e.order))
	for _, f := range e.order {
		mf := &dto.MetricFamily{Name: f.nameptr, Help: f.help, Type: f.typ}
		for _, s := range prods {
			e.render(f, s, mf)
		}
		if len(mf.Metric) > 0 {
			sortMetrics(mf.Metric)
			out = append(out, mf)
		}
	}
	// The Gatherer contract: families sorted by name.
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, nil
}

func (e *Exporter) render(f *famRender, s *prodState, mf *dto.MetricFamily) {
	counter := func(lps []*dto.LabelPair, v float64) {
		mf.Metric = append(mf.Metric, &dto.Metric{Label: lps, Counter: &dto.Counter{Value: &v}})
	}
	gauge := func(lps []*dto.LabelPair, v float64) {
		mf.Metric = append(mf.Metric, &dto.Metric{Label: lps, Gauge: &dto.Gauge{Value: &v}})
	}
	histo := func(lps []*dto.LabelPair, h *hist, ex []exemplar) {
		if h.count == 0 {
			return
		}
		mf.Metric = append(mf.Metric, &dto.Metric{Label: lps, Histogram: e.histogram(f, h, ex)})
	}
	switch f.Key {
	case famForward:
		for _, l := range s.sortedLayers() {
			counter(l.lpFwd[0], float64(l.fwd[0]))
			counter(l.lpFwd[1], float64(l.fwd[1]))
		}
	case famRetrieval, famRetrievalInject:
		for _, l := range s.sortedLayers() {
			if !l.hasRet {
				continue
			}
			if f.Key == famRetrieval {
				counter(l.lpLayer, float64(l.retrieval))
			} else {
				counter(l.lpLayer, float64(l.injected))
			}
		}
	case famAudit:
		keys := make([]auditKey, 0, len(s.audit))
		for k := range s.audit {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].op != keys[j].op {
				return keys[i].op < keys[j].op
			}
			return !keys[i].success && keys[j].success
		})
		for _, k := range keys {
			counter(e.labels("producer", s.label, "operation", k.op, "success", strconv.FormatBool(k.success)), float64(s.audit[k]))
		}
	case famLatency, famGate, famEntropy:
		if s.hists != nil {
			histo(s.hists.lpLayer, s.hists.hist(f.Key), s.hists.exemplars(f.Key)) // ProducerHistograms: no layer label
			break
		}
		for _, l := range s.sortedLayers() {
			histo(l.lpLayer, l.hist(f.Key), l.exemplars(f.Key))
		}
	case famScore:
		histo(s.lpProd, &s.score, nil)
	case famKnowledgeCount, famKnowledgeUtil, famKnowledgePinned, famSlotChange:
		if i := gaugeIndex(f.Key); s.hasG[i] {
			gauge(s.lpProd, s.gauges[i])
		}
	case famActivation:
		if s.winLen > 0 {
			gauge(s.lpProd, float64(s.winOn)/float64(s.winLen))
		}
	case famBuildInfo:
		if kv := s.buildLabels(); kv != nil {
			gauge(e.labels(append([]string{"producer", s.label}, kv...)...), 1)
		}
	case famProducerInfo:
		id := s.p.Identity()
		var gpus string
		if e.opts.ProducerGPUs != nil {
			gpus = strings.Join(e.opts.ProducerGPUs(s.p.HostPID), ",")
		}
		gauge(e.labels("producer", s.label, "pid", strconv.Itoa(s.p.HostPID), "role", id.Role,
			"rank", optInt(id.Rank), "world_size", optInt(id.WorldSize), "model", id.Model, "aga_version", id.AGAVersion,
			"ring", s.p.Ring, "producer_pod", id.Pod, "producer_namespace", id.Namespace, "producer_container", id.Container,
			"producer_pod_uid", s.p.PodUID, "producer_container_id", s.p.ContainerID, "node", e.opts.Node, "gpu_uuids", gpus), 1)
	}
}

// histogram renders h in exposition units: cumulative classic buckets and,
// when enabled, native buckets. ex, if not nil, holds an exemplar per
// classic bucket, +Inf last: a set one goes on its bucket (an exemplar of
// +Inf makes that bucket explicit, as client_golang does), and on the
// native histogram too.
func (e *Exporter) histogram(f *famRender, h *hist, ex []exemplar) *dto.Histogram {
	count, sum := h.count, h.sum/f.div
	out := &dto.Histogram{SampleCount: &count, SampleSum: &sum}
	buckets := make([]dto.Bucket, len(f.bounds))
	out.Bucket = make([]*dto.Bucket, len(f.bounds))
	var cum uint64
	for i := range f.bounds {
		cum += h.counts[i]
		c := cum
		buckets[i] = dto.Bucket{CumulativeCount: &c, UpperBound: &f.bounds[i]}
		out.Bucket[i] = &buckets[i]
	}
	if ex != nil {
		for i := range ex {
			if !ex[i].set() {
				continue
			}
			x := ex[i].dto(f.div)
			if i < len(f.bounds) {
				out.Bucket[i].Exemplar = x
			} else {
				out.Bucket = append(out.Bucket, &dto.Bucket{CumulativeCount: &count, UpperBound: &posInf, Exemplar: x})
			}
			if e.opts.Native {
				out.Exemplars = append(out.Exemplars, x)
			}
		}
	}
	if e.opts.Native {
		schema, zt, zc := h.schema(), nativeZeroLimit, h.zero
		out.Schema, out.ZeroThreshold, out.ZeroCount = &schema, &zt, &zc
		idx := make([]int32, 0, len(h.native))
		for i := range h.native {
			idx = append(idx, i)
		}
		sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
		var prev int64
		for n, i := range idx {
			if n == 0 || i != idx[n-1]+1 {
				off := i
				if n > 0 {
					off = i - idx[n-1] - 1
				}
				out.PositiveSpan = append(out.PositiveSpan, &dto.BucketSpan{Offset: &off, Length: new(uint32)})
			}
			sp := out.PositiveSpan[len(out.PositiveSpan)-1]
			*sp.Length++
			c := int64(h.native[i])
			out.PositiveDelta = append(out.PositiveDelta, c-prev)
			prev = c
		}
		if len(idx) == 0 {
			// An empty span marks the histogram as native for parsers.
			off := int32(0)
			out.PositiveSpan = []*dto.BucketSpan{{Offset: &off, Length: new(uint32)}}
		}
	}
	return out
}

// posInf is the +Inf bucket's bound, shared read-only.
var posInf = math.Inf(1)

// Exemplar label names, shared read-only.
var exSpanID, exTraceID = "span_id", "trace_id"

// exemplars returns l's exemplars of the family key: only the latency
// histogram has them.
func (l *layerState) exemplars(key string) []exemplar {
	if key == famLatency {
		return l.latEx
	}
	return nil
}

// dto renders x in exposition units (compat value / div), its labels in
// name order.
func (x *exemplar) dto(div float64) *dto.Exemplar {
	span, trace := hex.EncodeToString(x.span[:]), hex.EncodeToString(x.trace[:])
	v := x.v / div
	out := &dto.Exemplar{Label: []*dto.LabelPair{{Name: &exSpanID, Value: &span}, {Name: &exTraceID, Value: &trace}}, Value: &v}
	if x.ts > 0 {
		out.Timestamp = &timestamppb.Timestamp{Seconds: x.ts / 1e9, Nanos: int32(x.ts % 1e9)}
	}
	return out
}

// sortedLayers returns the layers by index, then "other".
func (s *prodState) sortedLayers() []*layerState {
	out := make([]*layerState, 0, len(s.byLayer)+1)
	for _, l := range s.byLayer {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].layer < out[j].layer })
	if s.other != nil {
		out = append(out, s.other)
	}
	return out
}

// buildLabels returns the aga_build_info label values: the status
// snapshot's build block, else the identity's build fields; nil if neither
// says anything.
func (s *prodState) buildLabels() []string {
	version, hidden, bottleneck, slots, device := "", "", "", "", ""
	if id := s.p.Identity(); id != nil {
		version, hidden, bottleneck, slots, device = id.AGAVersion, optInt(id.HiddenDim), optInt(id.BottleneckDim), optInt(id.MaxSlots), id.Device
	}
	if b := s.build; b != nil {
		version, hidden, bottleneck, slots, device = or(b.Version, version), or(optInt(b.HiddenDim), hidden),
			or(optInt(b.BottleneckDim), bottleneck), or(optInt(b.MaxSlots), slots), or(b.Device, device)
	}
	if version+hidden+bottleneck+slots+device == "" {
		return nil
	}
	return []string{"version", or(version, "unknown"), "hidden_dim", hidden, "bottleneck_dim", bottleneck, "max_slots", slots, "device", device}
}

func optInt(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func gaugeIndex(key string) int {
	switch key {
	case famKnowledgeCount:
		return gKnowledgeCount
	case famKnowledgeUtil:
		return gKnowledgeUtil
	case famKnowledgePinned:
		return gKnowledgePinned
	}
	return gSlotChange
}

// sortMetrics orders series by their label values, as the client_golang
// registry does, so every exposition is deterministic.
func sortMetrics(ms []*dto.Metric) {
	sort.Slice(ms, func(i, j int) bool { return lessLabels(ms[i].Label, ms[j].Label) })
}

// lessLabels is the series order: label values in label name order, then
// fewer labels first. The scrape path (render.go) orders by it too.
func lessLabels(a, b []*dto.LabelPair) bool {
	for k := 0; k < len(a) && k < len(b); k++ {
		if va, vb := a[k].GetValue(), b[k].GetValue(); va != vb {
			return va < vb
		}
	}
	return len(a) < len(b)
}
