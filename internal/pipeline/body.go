package pipeline

import "fmt"

// Forward is a decoded aga-core forward event. Its values are read through
// accessors: the Carried ones (GateMean, EntropyMean, LatencyUs, LayerIdx)
// say what the producer wrote, for sinks that reproduce the event (the
// event log); the observation ones (Gate, Entropy, Latency, Layer) encode
// the seed's observation rules (docs/seed-compatibility.md §4.3), for sinks that
// aggregate it (metrics, alerting and every future sink), so the rules are
// written once.
type Forward struct {
	gate, entropy, latency float64
	layer                  int32
	bits                   forwardBits
}

type forwardBits uint8

// The bit values match the ring format's (docs/ring-format.md §4.1), so
// decoding is a mask.
const (
	fwdApplied forwardBits = 1 << iota
	fwdHasGate
	fwdHasEntropy
	fwdHasLatency
	fwdHasLayer
	fwdAll = fwdApplied | fwdHasGate | fwdHasEntropy | fwdHasLatency | fwdHasLayer
)

// Applied reports aga_applied.
func (f *Forward) Applied() bool { return f.bits&fwdApplied != 0 }

// GateMean is gate_mean as carried (0, false when the event had none).
func (f *Forward) GateMean() (float64, bool) { return f.gate, f.bits&fwdHasGate != 0 }

// EntropyMean is entropy_mean as carried.
func (f *Forward) EntropyMean() (float64, bool) { return f.entropy, f.bits&fwdHasEntropy != 0 }

// LatencyUs is latency_us as carried.
func (f *Forward) LatencyUs() (float64, bool) { return f.latency, f.bits&fwdHasLatency != 0 }

// LayerIdx is layer_idx as carried.
func (f *Forward) LayerIdx() (int32, bool) {
	if f.bits&fwdHasLayer == 0 {
		return 0, false
	}
	return f.layer, true
}

// Latency is the latency to observe (µs): only a carried value > 0 is
// observed (the seed skipped 0, which it used for "not measured").
func (f *Forward) Latency() (us float64, ok bool) {
	return f.latency, f.bits&fwdHasLatency != 0 && f.latency > 0
}

// Entropy is the entropy to observe: only a carried value > 0.
func (f *Forward) Entropy() (float64, bool) {
	return f.entropy, f.bits&fwdHasEntropy != 0 && f.entropy > 0
}

// Gate is the gate value to observe: any carried value (the seed observed
// a missing one as 0; a deliberate deviation).
func (f *Forward) Gate() (float64, bool) { return f.GateMean() }

// Layer is the layer the event counts under: a missing layer counts as
// layer 0.
func (f *Forward) Layer() int32 {
	l, _ := f.LayerIdx()
	return l
}

// WithApplied returns f with aga_applied set to v. The With methods build
// events in producers' stand-ins and tests.
func (f Forward) WithApplied(v bool) Forward {
	if v {
		f.bits |= fwdApplied
	} else {
		f.bits &^= fwdApplied
	}
	return f
}

// WithGate returns f carrying gate_mean v.
func (f Forward) WithGate(v float64) Forward { f.gate, f.bits = v, f.bits|fwdHasGate; return f }

// WithEntropy returns f carrying entropy_mean v.
func (f Forward) WithEntropy(v float64) Forward {
	f.entropy, f.bits = v, f.bits|fwdHasEntropy
	return f
}

// WithLatency returns f carrying latency_us v.
func (f Forward) WithLatency(us float64) Forward {
	f.latency, f.bits = us, f.bits|fwdHasLatency
	return f
}

// WithLayer returns f carrying layer_idx l.
func (f Forward) WithLayer(l int32) Forward { f.layer, f.bits = l, f.bits|fwdHasLayer; return f }

// Retrieval is a decoded retrieval event with its own copies of scores and
// ids. Like Forward, the counts are read through accessors.
type Retrieval struct {
	layer, results, injected, budget int32
	bits                             retrievalBits
	Scores                           []float64
	IDs                              []string
	// InvalidScores is the number of non-finite scores Decode removed
	// from Scores (Event.Invalid has InvalidScore set when > 0).
	InvalidScores int
}

type retrievalBits uint8

// Bit values as in the ring format.
const (
	retHasLayer retrievalBits = 1 << iota
	retHasResults
	retHasInjected
	retHasBudget
	retAll = retHasLayer | retHasResults | retHasInjected | retHasBudget
)

func (r *Retrieval) get(v int32, bit retrievalBits) (int32, bool) {
	if r.bits&bit == 0 {
		return 0, false
	}
	return v, true
}

// LayerIdx is layer_idx as carried.
func (r *Retrieval) LayerIdx() (int32, bool) { return r.get(r.layer, retHasLayer) }

// ResultsCount is results_count as carried.
func (r *Retrieval) ResultsCount() (int32, bool) { return r.get(r.results, retHasResults) }

// InjectedCount is injected_count as carried.
func (r *Retrieval) InjectedCount() (int32, bool) { return r.get(r.injected, retHasInjected) }

// BudgetRemaining is budget_remaining as carried.
func (r *Retrieval) BudgetRemaining() (int32, bool) { return r.get(r.budget, retHasBudget) }

// Layer is the layer the event counts under (missing: layer 0).
func (r *Retrieval) Layer() int32 {
	l, _ := r.LayerIdx()
	return l
}

// Results is the number of results to count: a carried count > 0, else 0.
func (r *Retrieval) Results() int64 {
	n, _ := r.ResultsCount()
	return int64(max(n, 0))
}

// Injected is the number of injected results to count: a carried count
// > 0, else 0.
func (r *Retrieval) Injected() int64 {
	n, _ := r.InjectedCount()
	return int64(max(n, 0))
}

// WithLayer returns r carrying layer_idx l (r's scores and ids are shared).
func (r Retrieval) WithLayer(l int32) Retrieval { r.layer, r.bits = l, r.bits|retHasLayer; return r }

// WithResults returns r carrying results_count n.
func (r Retrieval) WithResults(n int32) Retrieval {
	r.results, r.bits = n, r.bits|retHasResults
	return r
}

// WithInjected returns r carrying injected_count n.
func (r Retrieval) WithInjected(n int32) Retrieval {
	r.injected, r.bits = n, r.bits|retHasInjected
	return r
}

// WithBudget returns r carrying budget_remaining n.
func (r Retrieval) WithBudget(n int32) Retrieval {
	r.budget, r.bits = n, r.bits|retHasBudget
	return r
}

// Identity is a producer's identity (its ring header, then its newest
// HELLO record). Every string is valid UTF-8 of bounded length: the ring
// layer checks them before an Identity exists.
type Identity struct {
	Producer      string `json:"producer"`
	Role          string `json:"role,omitempty"`
	Instance      int    `json:"instance"`
	Rank          *int   `json:"rank,omitempty"`
	WorldSize     *int   `json:"world_size,omitempty"`
	Model         string `json:"model,omitempty"`
	AGAVersion    string `json:"aga_version,omitempty"`
	HiddenDim     *int   `json:"hidden_dim,omitempty"`
	BottleneckDim *int   `json:"bottleneck_dim,omitempty"`
	MaxSlots      *int   `json:"max_slots,omitempty"`
	Device        string `json:"device,omitempty"`
	Pod           string `json:"pod,omitempty"`
	Namespace     string `json:"namespace,omitempty"`
	Container     string `json:"container,omitempty"`
	Process       string `json:"process,omitempty"`
	Client        string `json:"client,omitempty"`
	SchemaVersion int    `json:"schema_version"`
}

// RingClass is what a ring carries: hot events (dropped when full) or
// audit records (never dropped).
type RingClass uint8

// Ring classes (0: not about a ring).
const (
	ClassHot RingClass = iota + 1
	ClassAudit
)

func (c RingClass) String() string {
	switch c {
	case ClassHot:
		return "hot"
	case ClassAudit:
		return "audit"
	case 0:
		return ""
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Acknowledger is implemented by whoever hands out Acks (the ring
// consumer, one per audit ring): it releases the record a token names.
type Acknowledger interface {
	Acknowledge(AckToken)
}

// AckToken names one record to its Acknowledger; sinks never read it.
type AckToken [4]uint64

// Ack is an opaque acknowledgement handle: a lossless sink calls Ack once
// the record it came with is durable. The ring consumer owns what it does.
type Ack struct {
	to  Acknowledger
	tok AckToken
}

// NewAck returns a handle that acknowledges tok to to.
func NewAck(to Acknowledger, tok AckToken) *Ack { return &Ack{to: to, tok: tok} }

// Ack reports the record durable.
func (a *Ack) Ack() { a.to.Acknowledge(a.tok) }
