package pipeline

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/agaobs/agaobs/internal/shm"
)

// Decode fills ev from rec. FORWARD records are decoded in place without
// allocating; other bodies are copied out of the ring (their slices die when
// the Poll callback returns). A body that does not decode returns an error
// wrapping shm.ErrCorrupt; ev is then unusable.
func Decode(rec *shm.Record, ev *Event) error {
	ev.Seq, ev.TimeNs, ev.Flags, ev.Invalid = rec.Seq, rec.TimeNs, rec.Flags, 0
	switch rec.Type {
	case shm.TypeForward:
		gate, entropy, latency, layer, fields, ok := shm.ForwardValues(rec.Body)
		if !ok {
			_, err := shm.DecodeForward(rec.Body)
			return err
		}
		ev.Kind = KindForward
		// Field by field, for the reason shm.ForwardValues gives.
		fw := &ev.Forward
		fw.gate, fw.entropy, fw.latency = gate, entropy, latency
		fw.layer, fw.bits = layer, forwardBits(fields)&fwdAll
		if !Finite(gate) || !Finite(entropy) || !Finite(latency) {
			cleanForward(ev)
		}
	case shm.TypeRetrieval:
		v, err := shm.DecodeRetrieval(rec.Body)
		if err != nil {
			return err
		}
		r := newRetrieval(v.NumScores())
		r.layer, r.results, r.injected, r.budget = v.Layer, v.ResultsCount, v.InjectedCount, v.BudgetRemaining
		r.bits = retrievalBits(v.Fields) & retAll
		if n := v.NumIDs(); n > 0 {
			r.IDs = make([]string, 0, n)
		}
		for i := 0; i < v.NumScores(); i++ {
			if s := v.Score(i); Finite(s) {
				r.Scores = append(r.Scores, s)
			} else {
				r.InvalidScores++
			}
		}
		v.EachID(func(id []byte) { r.IDs = append(r.IDs, string(id)) })
		ev.Kind, ev.Retrieval = KindRetrieval, r
		if r.InvalidScores > 0 {
			ev.Invalid |= 1 << InvalidScore
		}
	case shm.TypeAudit:
		// Never an error: a body that does not decode is stored sanitized
		// (decodeAudit), so no audit record a ring delivers goes missing.
		ev.Kind, ev.Audit = KindAudit, decodeAudit(rec.Body)
	case shm.TypeEvent:
		name, data, err := shm.DecodeEvent(rec.Body)
		if err != nil {
			return err
		}
		if !json.Valid(data) {
			return fmt.Errorf("event %q: invalid JSON: %w", name, shm.ErrCorrupt)
		}
		return decodeOther(string(name), data, ev)
	case shm.TypeStatus:
		var s Status
		if err := json.Unmarshal(rec.Body, &s); err != nil {
			return fmt.Errorf("status: %v: %w", err, shm.ErrCorrupt)
		}
		ev.Kind, ev.Status = KindStatus, &s
		cleanStatus(ev)
	case shm.TypeHello:
		_, err := DecodeHello(rec, ev)
		return err
	default:
		return fmt.Errorf("record type %v: %w", rec.Type, shm.ErrCorrupt)
	}
	return nil
}

// inlineScores is how many scores a retrieval keeps in the allocation of
// the Retrieval itself: the common top-k fits, so decoding one allocates
// once.
const inlineScores = 4

type retrievalAlloc struct {
	r      Retrieval
	scores [inlineScores]float64
}

func newRetrieval(scores int) *Retrieval {
	a := new(retrievalAlloc)
	if scores <= inlineScores {
		a.r.Scores = a.scores[:0:scores]
	} else {
		a.r.Scores = make([]float64, 0, scores)
	}
	return &a.r
}

// DecodeHello is Decode for a HELLO record: it fills ev (KindHello) and
// returns the identity, which belongs on the Producer (Producer.SetIdentity;
// sinks read it there), not in the event.
func DecodeHello(rec *shm.Record, ev *Event) (Identity, error) {
	ev.Seq, ev.TimeNs, ev.Flags, ev.Invalid = rec.Seq, rec.TimeNs, rec.Flags, 0
	id, err := shm.ParseIdentity(rec.Body)
	if err != nil {
		return Identity{}, fmt.Errorf("hello: %v: %w", err, shm.ErrCorrupt)
	}
	ev.Kind = KindHello
	return Identity(id), nil
}

// decodeOther keeps an EVENT record by name, except the forward and
// retrieval events a producer could not encode in their fixed layout
// (format §4.1): those are mapped onto the typed fields.
func decodeOther(name string, data []byte, ev *Event) error {
	switch name {
	case "forward":
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			ev.Kind, ev.Forward = KindForward, forwardFromMap(m)
			return nil
		}
	case "retrieval":
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			ev.Kind, ev.Retrieval = KindRetrieval, retrievalFromMap(m)
			return nil
		}
	}
	ev.Kind, ev.Other = KindEvent, &Other{Name: name, Data: append(json.RawMessage(nil), data...)}
	return nil
}

// cleanForward drops non-finite gate, entropy and latency values (see
// InvalidField); Decode calls it only when one is.
func cleanForward(ev *Event) {
	f := &ev.Forward
	for _, x := range [...]struct {
		bit   forwardBits
		v     *float64
		field InvalidField
	}{{fwdHasGate, &f.gate, InvalidGate}, {fwdHasEntropy, &f.entropy, InvalidEntropy}, {fwdHasLatency, &f.latency, InvalidLatency}} {
		if !Finite(*x.v) {
			if f.bits&x.bit != 0 {
				ev.Invalid |= 1 << x.field
			}
			f.bits &^= x.bit
			*x.v = 0 // a value without its has bit is zero for sinks that print it anyway
		}
	}
}

// cleanStatus drops non-finite status numbers. JSON has no NaN or Inf, so
// this only guards against a decoder that accepts them.
func cleanStatus(ev *Event) {
	drop := func(p **float64, field InvalidField) {
		if *p != nil && !Finite(**p) {
			*p = nil
			ev.Invalid |= 1 << field
		}
	}
	s := ev.Status
	if kv := s.KVStore; kv != nil {
		drop(&kv.Count, InvalidKVCount)
		drop(&kv.MaxSlots, InvalidKVMaxSlots)
		drop(&kv.Utilization, InvalidKVUtilization)
		drop(&kv.Pinned, InvalidKVPinned)
	}
	drop(&s.SlotChangeRate, InvalidSlotChangeRate)
}

func num(m map[string]any, k string) (float64, bool) {
	v, ok := m[k].(float64)
	return v, ok && Finite(v)
}

func clampI32(f float64) int32 {
	return int32(max(math.MinInt32, min(math.MaxInt32, f)))
}

func forwardFromMap(m map[string]any) Forward {
	var f Forward
	if b, ok := m["aga_applied"].(bool); ok && b {
		f = f.WithApplied(true)
	}
	if v, ok := num(m, "gate_mean"); ok {
		f = f.WithGate(v)
	}
	if v, ok := num(m, "entropy_mean"); ok {
		f = f.WithEntropy(v)
	}
	if v, ok := num(m, "latency_us"); ok {
		f = f.WithLatency(v)
	}
	if v, ok := num(m, "layer_idx"); ok {
		f = f.WithLayer(clampI32(v))
	}
	return f
}

func retrievalFromMap(m map[string]any) *Retrieval {
	r := &Retrieval{}
	set := func(k string, dst *int32, bit retrievalBits) {
		if v, ok := num(m, k); ok {
			*dst, r.bits = clampI32(v), r.bits|bit
		}
	}
	set("layer_idx", &r.layer, retHasLayer)
	set("results_count", &r.results, retHasResults)
	set("injected_count", &r.injected, retHasInjected)
	set("budget_remaining", &r.budget, retHasBudget)
	if s, ok := m["scores"].([]any); ok {
		for _, x := range s {
			if v, ok := x.(float64); ok && Finite(v) {
				r.Scores = append(r.Scores, v)
			}
		}
	}
	if s, ok := m["ids"].([]any); ok {
		for _, x := range s {
			r.IDs = append(r.IDs, fmt.Sprint(x))
		}
	}
	return r
}
