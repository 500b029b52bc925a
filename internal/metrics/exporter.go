package metrics

import (
	"context"
	"math"
	"sort"
	"strconv"
	"sync"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
)

// maxAuditOperations bounds the operation label of one producer: the
// operation name comes from user code (AuditLog.record); beyond this many
// distinct names, the rest are counted as "other".
const maxAuditOperations = 64

// DefaultMaxLayersPerProducer is prometheus_max_layers_per_producer's
// default: aga-core hooks a few layers, a model has at most a few hundred.
const DefaultMaxLayersPerProducer = 256

// otherValue replaces a label value beyond its per-producer limit.
const otherValue = "other"

// Labels a producer controls the values of, each capped per producer;
// events beyond the cap count in agaobs_cardinality_limited_total.
const (
	limitLayer = iota
	limitOperation
	numLimits
)

var limitLabels = [numLimits]string{"layer", "operation"}

// Options configure an Exporter.
type Options struct {
	Prefix string        // default "aga"
	Naming schema.Naming // default schema.Compat
	// ConstLabels are prometheus_labels, added to every series.
	ConstLabels map[string]string
	// Native adds native histograms (schema 3) beside the classic buckets.
	Native bool
	// Node is the producer_info node label (NODE_NAME or the hostname).
	Node string
	// ProducerGPUs, if set, lists the GPU uuids a host pid holds memory
	// on (the GPU collector), for producer_info's gpu_uuids.
	ProducerGPUs func(hostPID int) []string
	// MaxLayersPerProducer bounds the distinct layer label values of one
	// producer (prometheus_max_layers_per_producer; default
	// DefaultMaxLayersPerProducer). The layer index is whatever the
	// producer writes: without a bound, distinct values are series and
	// memory without end. Further layers count under layer="other".
	MaxLayersPerProducer int
	// ProducerHistograms (prometheus_layer_histograms: false) keeps one
	// forward latency, gate and entropy histogram per producer, every
	// layer aggregated, without the layer label: a histogram is a dozen
	// series, a counter one, so this divides the series of a producer
	// hooking many layers by about ten. The per-layer counters keep layer.
	ProducerHistograms bool
	// SpanKeep, set when OTLP traces are on, puts exemplars on the forward
	// latency histogram's buckets: the exporter runs its own
	// pipeline.SpanKeeper with these options over every event (alert
	// transitions included), so it keeps the spans the OTLP sink keeps,
	// and a forward kept for being slow (pipeline.SpanSlow) leaves its
	// trace_id and span_id on the bucket it falls in, the newest per
	// bucket. Only OpenMetrics and protobuf carry exemplars. nil: none.
	SpanKeep *pipeline.SpanKeepOptions
	// SpanStamped, in place of SpanKeep, takes the decision the
	// dispatcher stamped on the event (Event.Span; the agent's wiring:
	// one decision for every sink, made once).
	SpanStamped bool
}

// Exporter is the Prometheus sink for AGA-domain families: a pipeline.Sink
// that folds events into compact per-producer state, and a
// prometheus.Gatherer that renders that state at scrape time. Write runs
// on the sink's goroutine; Gather on scrape goroutines; a mutex separates
// them (held per batch, not per event).
type Exporter struct {
	mu        sync.Mutex
	opts      Options
	fams      map[string]*famRender
	order     []*famRender
	constLP   []*dto.LabelPair
	producers map[*pipeline.Producer]*prodState
	byLabel   map[string]*prodState // producer label → state: labels are unique
	last      *prodState
	keep      *pipeline.SpanKeeper // Options.SpanKeep's; nil: no exemplars

	// Bucket search tables of the latency, gate, entropy and score
	// families (compat bounds), and the native bucket thresholds.
	bLat, bGate, bEnt, bScore schema.BucketIndex
	nt                        nativeTable
	latDiv                    float64 // the latency family's div

	// The scrape path's render caches (render.go), under mu.
	fast   bool                  // the fast path renders these families (prepareFast)
	sorted []*famRender          // order, by name
	cache  [numKinds][]*famEntry // per format, per order index
	// famGen[i] counts the changes of family order[i]; shape those of the
	// set of producers and layers (every family, and the series order).
	famGen []uint64
	shape  uint64

	// The families each kind of event changes, as famGen indices' bits.
	maskForward, maskRetrieval, maskAudit, maskStatus, maskAll uint64

	// The series order (orders), valid while ordShape is shape.
	ordValid  bool
	ordShape  uint64
	ordLayers []*layerState
	ordProds  []*prodState
}

// famRender is a family with its rendering parameters resolved.
type famRender struct {
	schema.Family
	name    string
	bounds  []float64 // classic bounds in exposition units
	div     float64   // compat → exposition units
	help    *string
	typ     *dto.MetricType
	nameptr *string
	idx     int               // in Exporter.order
	text    [numKinds]famText // fixed text per format (render.go)
}

// New returns an Exporter.
func New(opts Options) *Exporter {
	if opts.Prefix == "" {
		opts.Prefix = "aga"
	}
	if opts.Naming == "" {
		opts.Naming = schema.Compat
	}
	if opts.MaxLayersPerProducer <= 0 {
		opts.MaxLayersPerProducer = DefaultMaxLayersPerProducer
	}
	e := &Exporter{opts: opts, fams: map[string]*famRender{}, producers: map[*pipeline.Producer]*prodState{}, byLabel: map[string]*prodState{}}
	for _, f := range schema.Families() {
		fr := &famRender{Family: f, name: f.Name(opts.Prefix, opts.Naming), div: 1}
		if opts.Naming == schema.Conventional && f.Divisor != 0 {
			fr.div = f.Divisor
		}
		for _, b := range f.Buckets {
			fr.bounds = append(fr.bounds, b/fr.div)
		}
		fr.help, fr.typ, fr.nameptr = &fr.Family.Help, dtoType(f.Type), &fr.name
		e.fams[f.Key] = fr
		e.order = append(e.order, fr)
	}
	for k, v := range opts.ConstLabels {
		e.constLP = append(e.constLP, lp(k, v))
	}
	if opts.SpanKeep != nil {
		e.keep = pipeline.NewSpanKeeper(*opts.SpanKeep)
	}
	e.bLat = schema.NewBucketIndex(e.fams[famLatency].Buckets)
	e.bGate = schema.NewBucketIndex(e.fams[famGate].Buckets)
	e.bEnt = schema.NewBucketIndex(e.fams[famEntropy].Buckets)
	e.bScore = schema.NewBucketIndex(e.fams[famScore].Buckets)
	e.nt = newNativeTable()
	e.latDiv = e.fams[famLatency].div
	e.prepareFast()
	return e
}

// Name implements pipeline.Sink.
func (e *Exporter) Name() string { return "metrics" }

// Kinds implements pipeline.Sink. With exemplars, the agent's events too:
// the span keeper follows alert transitions.
func (e *Exporter) Kinds() pipeline.KindMask {
	m := pipeline.KindForward.Mask() | pipeline.KindRetrieval.Mask() | pipeline.KindAudit.Mask() |
		pipeline.KindStatus.Mask() | pipeline.KindLifecycle.Mask()
	if e.keep != nil {
		m |= pipeline.KindAgent.Mask()
	}
	return m
}

// hist is a histogram in compat units: non-cumulative classic bucket
// counts (the last is +Inf) and, when enabled, native buckets.
type hist struct {
	counts []uint64
	count  uint64
	sum    float64
	native map[int32]uint64
	zero   uint64
	// coarser is how many times the native resolution was halved to keep
	// at most maxNativeBuckets buckets (schema nativeSchema - coarser).
	coarser int8
}

// nativeSchema 3: bucket growth factor 2^(1/8) ≈ 1.09, client_golang's
// default resolution. A producer's values choose the native buckets: values
// spread over many orders of magnitude would make thousands per histogram,
// so beyond maxNativeBuckets the resolution halves (client_golang's
// NativeHistogramMaxBucketNumber strategy), down to minNativeSchema, whose
// 2^16-wide buckets cover every positive float64 in fewer than 100.
const (
	nativeSchema     = 3
	minNativeSchema  = -4
	maxNativeBuckets = 160
	nativeZeroLimit  = 1e-128
)

// add counts v (compat units, finite) in classic bucket i.
func (h *hist) add(i int, v float64) {
	h.counts[i]++
	h.count++
	h.sum += v
}

// observeNative adds v (exposition units, finite) to the native buckets:
// the classic ones have no units to convert, these do not scale.
func (h *hist) observeNative(v float64, nt *nativeTable) {
	if v <= nativeZeroLimit {
		h.zero++
		return
	}
	if h.native == nil {
		h.native = map[int32]uint64{}
	}
	h.native[nt.index(v, h.schema())]++
	for len(h.native) > maxNativeBuckets && h.schema() > minNativeSchema {
		h.halveResolution()
	}
}

func (h *hist) schema() int32 { return nativeSchema - int32(h.coarser) }

// halveResolution merges pairs of native buckets: bucket i of schema s lies
// in bucket ceil(i/2) of schema s-1.
func (h *hist) halveResolution() {
	m := make(map[int32]uint64, len(h.native)/2+1)
	for i, c := range h.native {
		m[(i+1)>>1] += c // arithmetic shift: ceil(i/2) for negative i too
	}
	h.native = m
	h.coarser++
}

// nativeIndex is the bucket of v > 0 at schema s: the bucket i holds
// (2^((i-1)/2^s), 2^(i/2^s)]. It is the definition of the native buckets
// exposed so far, rounding included: nativeTable.index falls back to it
// wherever its own answer could differ.
func nativeIndex(v float64, s int32) int32 {
	frac, exp := math.Frexp(v) // v = frac · 2^exp, frac in [0.5, 1)
	if s > 0 {
		// log2(v) = exp + log2(frac); bucket = ceil(log2(v) · 2^s).
		return int32(math.Ceil((float64(exp) + math.Log2(frac)) * float64(int32(1)<<s)))
	}
	// Buckets of whole powers of two: ceil(log2(v)) is exp, or exp-1 when
	// v is a power of two itself; then ceil(e / 2^-s).
	e := int32(exp)
	if frac == 0.5 {
		e--
	}
	return (e + int32(1)<<-s - 1) >> -s
}

type layerState struct {
	layer     int32     // meaningless for the "other" layer
	fwd       [2]uint64 // bypassed, applied
	retrieval uint64
	injected  uint64
	hasRet    bool
	lat       hist
	gate      hist
	entropy   hist
	lpFwd     [2][]*dto.LabelPair
	lpLayer   []*dto.LabelPair
	// latEx holds lat's exemplars, one per classic bucket (+Inf last),
	// made with the first one (Options.SpanKeep only).
	latEx []exemplar
	// blk caches the rendered label blocks of lpFwd[0], lpFwd[1] and
	// lpLayer (render.go), made on the first scrape.
	blk [3]string
}

// exemplar is the newest kept slow forward of a latency bucket.
type exemplar struct {
	trace [16]byte // never zero once set (pipeline.TraceID)
	span  [8]byte
	v     float64 // compat units
	ts    int64   // event time, ns; 0: unknown
}

func (x *exemplar) set() bool { return x.trace != [16]byte{} }

type auditKey struct {
	op      string
	success bool
}

type prodState struct {
	p *pipeline.Producer
	// label is the producer label: the name made a valid label value, and
	// suffixed in the unlikely case that another producer's name became
	// the same value.
	label   string
	byLayer map[int32]*layerState // at most MaxLayersPerProducer
	small   [64]*layerState       // layers 0–63 without a map lookup
	other   *layerState           // layers beyond the limit, layer="other"
	limited [numLimits]uint64     // events whose label value became "other"
	invalid [pipeline.NumInvalidFields]uint64
	score   hist
	audit   map[auditKey]uint64
	gauges  [4]float64 // knowledge count, utilization, pinned, slot change rate
	hasG    [4]bool
	win     [activationWindowLen]bool
	winPos  int
	winLen  int
	winOn   int
	build   *pipeline.Build
	lpProd  []*dto.LabelPair
	blk     string // lpProd rendered (render.go)

	// hists holds the producer's latency, gate and entropy histograms,
	// labelled by producer only, with ProducerHistograms; nil otherwise
	// (each layer holds its own).
	hists *layerState
}

const (
	gKnowledgeCount = iota
	gKnowledgeUtil
	gKnowledgePinned
	gSlotChange
)

// state returns p's state. Events come in runs of one producer, so the
// last one's is checked first, inline.
func (e *Exporter) state(p *pipeline.Producer) *prodState {
	if s := e.last; s != nil && s.p == p {
		return s
	}
	return e.stateSlow(p)
}

func (e *Exporter) stateSlow(p *pipeline.Producer) *prodState {
	s := e.producers[p]
	if s == nil {
		s = &prodState{p: p, byLayer: map[int32]*layerState{}, audit: map[auditKey]uint64{}}
		s.score.counts = make([]uint64, len(e.fams[famScore].bounds)+1)
		s.label = e.producerLabel(p)
		s.lpProd = e.labels("producer", s.label)
		if e.opts.ProducerHistograms {
			s.hists = &layerState{lpLayer: s.lpProd}
			e.newHists(s.hists)
		}
		e.producers[p] = s
		e.byLabel[s.label] = s
		e.shape++
	}
	e.last = s
	return s
}

// producerLabel returns p's producer label, unique among the producers the
// exporter holds. The ring consumer keeps names unique; a name held by
// another producer here is that producer's name taken over after its
// ProducerForgotten event was lost (a full sink queue drops events), so the
// new producer replaces it. Two names that only became one label value
// through schema.LabelValue get a "~N" suffix.
func (e *Exporter) producerLabel(p *pipeline.Producer) string {
	name := schema.LabelValue(p.Name)
	old := e.byLabel[name]
	if old == nil {
		return name
	}
	if old.p.Name == p.Name {
		e.forget(old)
		return name
	}
	for i := 2; ; i++ {
		suffix := "~" + strconv.Itoa(i)
		base := name
		for len(base)+len(suffix) > schema.MaxLabelValueLen {
			_, n := utf8.DecodeLastRuneInString(base)
			base = base[:len(base)-n]
		}
		if l := base + suffix; e.byLabel[l] == nil {
			return l
		}
	}
}

// forget drops a producer's state: its series disappear.
func (e *Exporter) forget(s *prodState) {
	delete(e.producers, s.p)
	if e.byLabel[s.label] == s {
		delete(e.byLabel, s.label)
	}
	e.last = nil
	e.shape++
}

// layer returns the state of layer, or of layer="other" once the producer
// has MaxLayersPerProducer layers.
func (e *Exporter) layer(s *prodState, layer int32) *layerState {
	if uint32(layer) < uint32(len(s.small)) && s.small[layer] != nil { // inline: layers 0–63 are the usual ones
		return s.small[layer]
	}
	return e.layerSlow(s, layer)
}

func (e *Exporter) layerSlow(s *prodState, layer int32) *layerState {
	l := s.byLayer[layer]
	if l == nil {
		if len(s.byLayer) >= e.opts.MaxLayersPerProducer {
			s.limited[limitLayer]++
			if s.other == nil {
				s.other = e.newLayer(s, otherValue)
			}
			return s.other
		}
		l = e.newLayer(s, strconv.Itoa(int(layer)))
		l.layer = layer
		s.byLayer[layer] = l
		if layer >= 0 && layer < int32(len(s.small)) {
			s.small[layer] = l
		}
	}
	return l
}

func (e *Exporter) newLayer(s *prodState, ls string) *layerState {
	e.shape++
	l := &layerState{}
	if !e.opts.ProducerHistograms {
		e.newHists(l)
	}
	l.lpFwd[0] = e.labels("producer", s.label, "layer", ls, "applied", "false")
	l.lpFwd[1] = e.labels("producer", s.label, "layer", ls, "applied", "true")
	l.lpLayer = e.labels("producer", s.label, "layer", ls)
	return l
}

// newHists gives l's latency, gate and entropy histograms their buckets.
// One allocation for the three: a forward observes all three, so they
// share cache lines.
func (e *Exporter) newHists(l *layerState) {
	nl, ng, ne := len(e.fams[famLatency].bounds)+1, len(e.fams[famGate].bounds)+1, len(e.fams[famEntropy].bounds)+1
	c := make([]uint64, nl+ng+ne)
	l.lat.counts = c[:nl:nl]
	l.gate.counts = c[nl : nl+ng : nl+ng]
	l.entropy.counts = c[nl+ng:]
}

// hist returns l's histogram of the family key (latency, gate or entropy).
func (l *layerState) hist(key string) *hist {
	switch key {
	case famLatency:
		return &l.lat
	case famGate:
		return &l.gate
	}
	return &l.entropy
}

// Write implements pipeline.Sink. What is observed follows the observation
// accessors of pipeline.Forward and pipeline.Retrieval (the seed's rules).
func (e *Exporter) Write(_ context.Context, batch []pipeline.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	// dirty: the families this batch changes (render.go's caches).
	var dirty uint64
	shape := e.shape
	for i := range batch {
		ev := &batch[i]
		// The keeper sees every event it would see in the OTLP sink, in
		// order, so both keep the same spans.
		slow := e.opts.SpanStamped && ev.Span == pipeline.SpanSlow
		if e.keep != nil {
			switch ev.Kind {
			case pipeline.KindAgent:
				e.keep.Observe(ev)
			case pipeline.KindForward, pipeline.KindRetrieval, pipeline.KindAudit:
				slow = e.keep.Decide(ev) == pipeline.SpanSlow
			}
		}
		if ev.Producer == nil {
			continue
		}
		if ev.Invalid != 0 {
			e.state(ev.Producer).countInvalid(ev)
		}
		switch ev.Kind {
		case pipeline.KindForward:
			dirty |= e.maskForward
			e.forward(ev, slow)
		case pipeline.KindRetrieval:
			dirty |= e.maskRetrieval
			s := e.state(ev.Producer)
			r := ev.Retrieval
			l := e.layer(s, r.Layer())
			l.hasRet = true
			l.retrieval++
			l.injected += uint64(r.Injected())
			for _, v := range r.Scores {
				if b := e.bScore.Bucket(v); b >= 0 {
					s.score.add(b, v)
					if e.opts.Native {
						s.score.observeNative(v, &e.nt)
					}
				}
			}
		case pipeline.KindAudit:
			dirty |= e.maskAudit
			s := e.state(ev.Producer)
			// Keyed by the label value, so operations that differ only in
			// invalid bytes count as one series.
			k := auditKey{schema.LabelValue(ev.Audit.Operation), ev.Audit.Success}
			if _, ok := s.audit[k]; !ok && len(s.audit) >= maxAuditOperations {
				k.op = otherValue
				s.limited[limitOperation]++
			}
			s.audit[k]++
		case pipeline.KindStatus:
			dirty |= e.maskStatus
			e.status(e.state(ev.Producer), ev.Status)
		case pipeline.KindLifecycle:
			switch ev.Lifecycle.Type {
			case pipeline.ProducerAppeared:
				e.state(ev.Producer)
			case pipeline.ProducerForgotten:
				// Its series disappear; a producer taking the name over
				// starts from zero.
				if s := e.producers[ev.Producer]; s != nil {
					e.forget(s)
				}
			}
		}
	}
	if e.shape != shape {
		dirty = e.maskAll // series came or went: every family, and the order
	}
	for i := range e.famGen {
		if dirty&(1<<i) != 0 {
			e.famGen[i]++
		}
	}
	return nil
}

// forward counts a forward event; slow: it leaves an exemplar. Non-finite
// values are skipped: Decode dropped and counted them already, and a NaN
// would poison _sum for good.
func (e *Exporter) forward(ev *pipeline.Event, slow bool) {
	s := e.state(ev.Producer)
	f := &ev.Forward
	l := e.layer(s, f.Layer())
	applied := f.Applied()
	if applied {
		l.fwd[1]++
	} else {
		l.fwd[0]++
	}
	h := l // the histograms: the layer's, or the producer's
	if s.hists != nil {
		h = s.hists
	}
	latB := -1
	if v, ok := f.Latency(); ok {
		b, in := e.bLat.Cell(v)
		if !in {
			b = e.bLat.Outside(v)
		}
		if b >= 0 {
			h.lat.add(b, v)
			latB = b
		}
	}
	if v, ok := f.Gate(); ok {
		b, in := e.bGate.Cell(v)
		if !in {
			b = e.bGate.Outside(v)
		}
		if b >= 0 {
			h.gate.add(b, v)
		}
	}
	if v, ok := f.Entropy(); ok {
		b, in := e.bEnt.Cell(v)
		if !in {
			b = e.bEnt.Outside(v)
		}
		if b >= 0 {
			h.entropy.add(b, v)
		}
	}
	if e.opts.Native || (slow && latB >= 0) {
		e.forwardNative(ev, h, slow, latB) // out of line: keeps this one's frame small
	}
	// The activation window: slots not yet written hold false, so the
	// outgoing slot is read the same way before and after it fills.
	if s.win[s.winPos] {
		s.winOn--
	}
	if s.winLen < activationWindowLen {
		s.winLen++
	}
	s.win[s.winPos] = applied
	if applied {
		s.winOn++
	}
	if s.winPos++; s.winPos == activationWindowLen {
		s.winPos = 0
	}
}

// forwardNative adds a forward's values, counted in h's classic buckets
// already, to the native buckets, and leaves its exemplar on latency
// bucket latB (-1: latency not observed) if slow.
func (e *Exporter) forwardNative(ev *pipeline.Event, h *layerState, slow bool, latB int) {
	f := &ev.Forward
	if v, ok := f.Latency(); ok && latB >= 0 {
		if e.opts.Native {
			h.lat.observeNative(v/e.latDiv, &e.nt)
		}
		if slow {
			if h.latEx == nil {
				h.latEx = make([]exemplar, len(h.lat.counts))
			}
			h.latEx[latB] = exemplar{pipeline.TraceID(ev.Epoch, ev.Seq), pipeline.SpanID(ev.Epoch, ev.Seq), v, ev.TimeNs}
		}
	}
	if !e.opts.Native {
		return
	}
	if v, ok := f.Gate(); ok && pipeline.Finite(v) {
		h.gate.observeNative(v, &e.nt)
	}
	if v, ok := f.Entropy(); ok && pipeline.Finite(v) {
		h.entropy.observeNative(v, &e.nt)
	}
}

// countInvalid counts the values Decode dropped from ev as non-finite.
func (s *prodState) countInvalid(ev *pipeline.Event) {
	for f := pipeline.InvalidField(0); f < pipeline.NumInvalidFields; f++ {
		if !ev.Invalid.Has(f) {
			continue
		}
		n := uint64(1)
		if f == pipeline.InvalidScore && ev.Retrieval != nil {
			n = uint64(max(ev.Retrieval.InvalidScores, 1))
		}
		s.invalid[f] += n
	}
}

func (e *Exporter) status(s *prodState, st *pipeline.Status) {
	set := func(i int, v *float64) {
		// Decode dropped non-finite values; count / max_slots can still
		// overflow to +Inf.
		if v != nil && pipeline.Finite(*v) {
			s.gauges[i], s.hasG[i] = *v, true
		}
	}
	if kv := st.KVStore; kv != nil {
		set(gKnowledgeCount, kv.Count)
		set(gKnowledgeUtil, kv.Utilization)
		set(gKnowledgePinned, kv.Pinned)
		if kv.Utilization == nil && kv.Count != nil && kv.MaxSlots != nil && *kv.MaxSlots > 0 {
			u := *kv.Count / *kv.MaxSlots
			set(gKnowledgeUtil, &u)
		}
	}
	set(gSlotChange, st.SlotChangeRate)
	if st.Build != nil {
		s.build = st.Build
	}
}

// labels builds sorted label pairs (with the const labels) from name/value
// pairs, values made valid (schema.LabelValue). The result is shared read-only by
// every gather.
func (e *Exporter) labels(kv ...string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(kv)/2+len(e.constLP))
	for i := 0; i+1 < len(kv); i += 2 {
		if e.isConst(kv[i]) {
			continue // producer_info's node when node is a const label: same value
		}
		out = append(out, lp(kv[i], kv[i+1]))
	}
	out = append(out, e.constLP...)
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

func (e *Exporter) isConst(name string) bool {
	for _, c := range e.constLP {
		if c.GetName() == name {
			return true
		}
	}
	return false
}

func lp(name, value string) *dto.LabelPair {
	value = schema.LabelValue(value)
	return &dto.LabelPair{Name: &name, Value: &value}
}
