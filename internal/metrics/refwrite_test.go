package metrics

// The exporter's per-event path as it was before the run caches, bucket
// tables and bit-level native index (exporter.go at bfecd90), kept as the
// reference that TestWriteMatchesReference holds the new path to.

import (
	"math"
	"strconv"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
)

func (e *Exporter) refWrite(batch []pipeline.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	native := e.opts.Native
	lat, gate, ent, score := e.fams[famLatency].Buckets, e.fams[famGate].Buckets, e.fams[famEntropy].Buckets, e.fams[famScore].Buckets
	latDiv := e.fams[famLatency].div
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
			e.refState(ev.Producer).countInvalid(ev)
		}
		switch ev.Kind {
		case pipeline.KindForward:
			dirty |= e.maskForward
			s := e.refState(ev.Producer)
			f := &ev.Forward
			l := e.refLayer(s, f.Layer())
			applied := 0
			if f.Applied() {
				applied = 1
			}
			l.fwd[applied]++
			h := l // the histograms: the layer's, or the producer's
			if s.hists != nil {
				h = s.hists
			}
			if v, ok := f.Latency(); ok {
				if b := h.lat.refObserve(v, lat, native, latDiv); slow && b >= 0 {
					if h.latEx == nil {
						h.latEx = make([]exemplar, len(h.lat.counts))
					}
					h.latEx[b] = exemplar{pipeline.TraceID(ev.Epoch, ev.Seq), pipeline.SpanID(ev.Epoch, ev.Seq), v, ev.TimeNs}
				}
			}
			if v, ok := f.Gate(); ok {
				h.gate.refObserve(v, gate, native, 1)
			}
			if v, ok := f.Entropy(); ok {
				h.entropy.refObserve(v, ent, native, 1)
			}
			if s.winLen == activationWindowLen {
				if s.win[s.winPos] {
					s.winOn--
				}
			} else {
				s.winLen++
			}
			s.win[s.winPos] = applied == 1
			s.winOn += applied
			s.winPos = (s.winPos + 1) % activationWindowLen
		case pipeline.KindRetrieval:
			dirty |= e.maskRetrieval
			s := e.refState(ev.Producer)
			r := ev.Retrieval
			l := e.refLayer(s, r.Layer())
			l.hasRet = true
			l.retrieval++
			l.injected += uint64(r.Injected())
			for _, v := range r.Scores {
				s.score.refObserve(v, score, native, 1)
			}
		case pipeline.KindAudit:
			dirty |= e.maskAudit
			s := e.refState(ev.Producer)
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
			e.status(e.refState(ev.Producer), ev.Status)
		case pipeline.KindLifecycle:
			switch ev.Lifecycle.Type {
			case pipeline.ProducerAppeared:
				e.refState(ev.Producer)
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
}

func (h *hist) refObserve(v float64, bounds []float64, native bool, nativeDiv float64) int {
	if !pipeline.Finite(v) {
		return -1 // Decode dropped and counted these already; a NaN would poison _sum for good
	}
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	h.counts[i]++
	h.count++
	h.sum += v
	if native {
		v /= nativeDiv
		if v <= nativeZeroLimit {
			h.zero++
			return i
		}
		if h.native == nil {
			h.native = map[int32]uint64{}
		}
		h.native[refNativeIndex(v, h.schema())]++
		for len(h.native) > maxNativeBuckets && h.schema() > minNativeSchema {
			h.halveResolution()
		}
	}
	return i
}

func refNativeIndex(v float64, s int32) int32 {
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

func (e *Exporter) refState(p *pipeline.Producer) *prodState {
	if e.last != nil && e.last.p == p {
		return e.last
	}
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

func (e *Exporter) refLayer(s *prodState, layer int32) *layerState {
	if layer >= 0 && layer < int32(len(s.small)) && s.small[layer] != nil {
		return s.small[layer]
	}
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
