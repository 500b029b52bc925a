package pipeline

import "encoding/binary"

// Trace identity and the span keep decision. The OTLP sink turns kept
// events into spans; the metrics sink puts the trace id of kept slow
// forwards on the latency histogram as exemplars. Both run their own
// SpanKeeper over the same event stream, so they agree without importing
// each other, and a record re-read after an agent restart gets the same ids
// and the same decision.

// TraceID returns the trace id of a ring record: a mix of the ring's epoch
// (random per ring file) and the record's sequence number, never zero.
func TraceID(epoch, seq uint64) [16]byte {
	var id [16]byte
	hi := mix64(epoch ^ 0x9e3779b97f4a7c15 ^ mix64(seq))
	lo := traceLow(mix64(epoch+1), seq)
	if hi == 0 && lo == 0 {
		lo = 1
	}
	binary.BigEndian.PutUint64(id[:8], hi)
	binary.BigEndian.PutUint64(id[8:], lo)
	return id
}

// traceLow is the second half of a trace id, from mix64(epoch+1) (which a
// keeper computes once per ring) and the sequence number: what head
// sampling reads.
func traceLow(epochMix, seq uint64) uint64 { return mix64(seq ^ 0xbf58476d1ce4e5b9 ^ epochMix) }

// SpanID returns the span id of a ring record's span, never zero.
func SpanID(epoch, seq uint64) [8]byte {
	var id [8]byte
	v := mix64(epoch*0x94d049bb133111eb ^ seq ^ 0x2545f4914f6cdd1d)
	if v == 0 {
		v = 1
	}
	binary.BigEndian.PutUint64(id[:], v)
	return id
}

// mix64 is splitmix64's finaliser: every input bit affects every output
// bit, so consecutive sequence numbers give unrelated ids.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// HeadSampled is the ratio decision on a trace id, as OpenTelemetry's
// TraceIDRatioBased sampler makes it: the low 63 bits of the id's second
// half below rate × 2^63.
func HeadSampled(id [16]byte, rate float64) bool {
	switch {
	case rate >= 1:
		return true
	case !(rate > 0):
		return false
	}
	return sampledLow(binary.BigEndian.Uint64(id[8:]), sampleBound(rate))
}

// sampledLow is HeadSampled on the id's second half, against
// sampleBound(rate) (0 < rate < 1).
func sampledLow(lo, bound uint64) bool { return lo>>1 < bound }

// sampleBound is the bound sampledLow compares with: rate × 2^63.
func sampleBound(rate float64) uint64 { return uint64(rate * (1 << 63)) }

// SpanReason says why an event is kept as a span.
type SpanReason uint8

// Keep decisions. SpanCapped is a span that would have been kept but
// exceeded the per-second cap: counted, not sent.
const (
	SpanDropped SpanReason = iota
	SpanSampled            // head sampling
	SpanSlow               // a forward at or above the slow threshold
	SpanAlert              // a forward while a latency alert fires for its producer
	SpanAudit              // an audit operation (always kept)
	SpanCapped
)

func (r SpanReason) String() string {
	return [...]string{"dropped", "sampled", "slow", "alert", "audit", "capped"}[r]
}

// Kept reports whether the span is sent.
func (r SpanReason) Kept() bool { return r != SpanDropped && r != SpanCapped }

// SpanKeepOptions configure a SpanKeeper.
type SpanKeepOptions struct {
	// SampleRate is the head sampling ratio (0-1).
	SampleRate float64
	// SlowUs keeps every forward whose latency is at or above it (µs; 0:
	// none is kept for being slow).
	SlowUs float64
	// MaxPerSecond caps kept spans per second of event time (0: no cap).
	MaxPerSecond int
	// LatencyMetric reports whether an alert rule's metric is a latency
	// (its firing alert keeps every forward of the producer).
	LatencyMetric func(metric string) bool
}

// SpanKeeper decides which events become spans. It is not safe for
// concurrent use: each sink owns one and feeds it every event in order
// (alert transitions included, through Observe).
type SpanKeeper struct {
	opts SpanKeepOptions
	// firing counts firing latency alerts by producer ("" for rules over
	// every producer).
	firing map[string]map[string]bool
	sec    int64 // current second of event time
	used   int   // kept spans in it
	// epoch and epochMix cache mix64(epoch+1) for the last ring seen:
	// consecutive events come from the same ring.
	epoch, epochMix uint64
	// thresh is sampledLow's bound for SampleRate, computed once.
	thresh uint64
}

// NewSpanKeeper returns a keeper.
func NewSpanKeeper(o SpanKeepOptions) *SpanKeeper {
	k := &SpanKeeper{opts: o, firing: map[string]map[string]bool{}}
	if o.SampleRate > 0 && o.SampleRate < 1 {
		k.thresh = sampleBound(o.SampleRate)
	}
	return k
}

// Stamp makes the decision for every forward, retrieval and audit event of
// evs (Event.Span) and follows the alert transitions among them, in order:
// Decide and Observe over a range, as the dispatcher calls them at Flush.
func (k *SpanKeeper) Stamp(evs []Event) {
	for i := range evs {
		switch ev := &evs[i]; ev.Kind {
		case KindAgent:
			k.Observe(ev)
		case KindForward, KindRetrieval, KindAudit:
			ev.Span = k.Decide(ev)
		}
	}
}

// Observe follows alert transitions (KindAgent events of type
// AlertTransition); other events are ignored.
func (k *SpanKeeper) Observe(ev *Event) {
	if ev.Kind != KindAgent || ev.Lifecycle == nil || ev.Lifecycle.Type != AlertTransition {
		return
	}
	d := ev.Lifecycle.Details
	metric, _ := d["metric"].(string)
	if k.opts.LatencyMetric == nil || !k.opts.LatencyMetric(metric) {
		return
	}
	rule, _ := d["rule"].(string)
	producer, _ := d["producer"].(string)
	state, _ := d["state"].(string)
	rules := k.firing[producer]
	if state == "firing" {
		if rules == nil {
			rules = map[string]bool{}
			k.firing[producer] = rules
		}
		rules[rule] = true
		return
	}
	delete(rules, rule)
	if len(rules) == 0 {
		delete(k.firing, producer)
	}
}

// Firing reports whether a latency alert fires for the producer.
func (k *SpanKeeper) Firing(producer string) bool {
	return len(k.firing[producer]) > 0 || len(k.firing[""]) > 0
}

// Decide returns whether the event becomes a span and why. Forwards are
// kept when head-sampled, slow or during a firing latency alert of their
// producer; retrievals when head-sampled; audit operations always; every
// kept span counts against the per-second cap.
func (k *SpanKeeper) Decide(ev *Event) SpanReason {
	r := SpanDropped
	switch ev.Kind {
	case KindForward:
		r = k.forwardReason(ev)
	case KindRetrieval:
		if k.sampled(ev) {
			r = SpanSampled
		}
	case KindAudit:
		r = SpanAudit
	}
	return k.capped(ev, r)
}

// forwardReason is why a forward is kept, before the cap: slow, during a
// firing latency alert of its producer, or head-sampled.
func (k *SpanKeeper) forwardReason(ev *Event) SpanReason {
	if lat, ok := ev.Forward.Latency(); ok && k.opts.SlowUs > 0 && lat >= k.opts.SlowUs {
		return SpanSlow
	}
	if len(k.firing) > 0 && ev.Producer != nil && k.Firing(ev.Producer.Name) {
		return SpanAlert
	}
	if k.sampled(ev) {
		return SpanSampled
	}
	return SpanDropped
}

// capped counts a kept span against the per-second cap: SpanCapped once
// the second's spans are used up.
func (k *SpanKeeper) capped(ev *Event, r SpanReason) SpanReason {
	if r == SpanDropped || k.opts.MaxPerSecond <= 0 {
		return r
	}
	if sec := ev.TimeNs / 1e9; sec != k.sec {
		k.sec, k.used = sec, 0
	}
	if k.used >= k.opts.MaxPerSecond {
		return SpanCapped
	}
	k.used++
	return r
}

// sampled is the head sampling decision on the event's trace id (as
// HeadSampled, without building the whole id).
func (k *SpanKeeper) sampled(ev *Event) bool {
	rate := k.opts.SampleRate
	switch {
	case rate >= 1:
		return true
	case !(rate > 0):
		return false
	}
	if ev.Epoch != k.epoch || k.epochMix == 0 {
		k.epoch, k.epochMix = ev.Epoch, mix64(ev.Epoch+1)
	}
	return sampledLow(traceLow(k.epochMix, ev.Seq), k.thresh)
}
