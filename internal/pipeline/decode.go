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
	ev.Seq, ev.TimeNs, ev.Flags = rec.Seq, rec.TimeNs, rec.Flags
	switch rec.Type {
	case shm.TypeForward:
		f, err := shm.DecodeForward(rec.Body)
		if err != nil {
			return err
		}
		ev.Kind, ev.Forward = KindForward, f
	case shm.TypeRetrieval:
		v, err := shm.DecodeRetrieval(rec.Body)
		if err != nil {
			return err
		}
		r := &Retrieval{Retrieval: v.Retrieval, Scores: make([]float64, v.NumScores()), IDs: make([]string, 0, v.NumIDs())}
		for i := range r.Scores {
			r.Scores[i] = v.Score(i)
		}
		v.EachID(func(id []byte) { r.IDs = append(r.IDs, string(id)) })
		ev.Kind, ev.Retrieval = KindRetrieval, r
	case shm.TypeAudit:
		lost, obj, err := shm.DecodeAudit(rec.Body)
		if err != nil {
			return err
		}
		a, err := decodeAudit(obj)
		if err != nil {
			return err
		}
		a.LostBefore = lost
		ev.Kind, ev.Audit = KindAudit, a
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
	case shm.TypeHello:
		id, err := shm.ParseIdentity(rec.Body)
		if err != nil {
			return fmt.Errorf("hello: %v: %w", err, shm.ErrCorrupt)
		}
		ev.Kind, ev.Hello = KindHello, &id
	default:
		return fmt.Errorf("record type %v: %w", rec.Type, shm.ErrCorrupt)
	}
	return nil
}

func decodeAudit(obj []byte) (*Audit, error) {
	a := &Audit{Success: true, Operation: "unknown"}
	if err := json.Unmarshal(obj, a); err != nil {
		return nil, fmt.Errorf("audit: %v: %w", err, shm.ErrCorrupt)
	}
	if len(a.Details) == 0 || string(a.Details) == "null" {
		a.Details = json.RawMessage("{}")
	}
	a.Raw = append(json.RawMessage(nil), obj...)
	// Details alias the decoder's input only through Unmarshal's copy.
	return a, nil
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

func num(m map[string]any, k string) (float64, bool) {
	v, ok := m[k].(float64)
	return v, ok && !math.IsNaN(v)
}

func clampI32(f float64) int32 {
	return int32(max(math.MinInt32, min(math.MaxInt32, f)))
}

func forwardFromMap(m map[string]any) shm.Forward {
	var f shm.Forward
	if b, ok := m["aga_applied"].(bool); ok && b {
		f.Fields |= shm.FwdApplied
	}
	if v, ok := num(m, "gate_mean"); ok {
		f.GateMean, f.Fields = v, f.Fields|shm.FwdHasGate
	}
	if v, ok := num(m, "entropy_mean"); ok {
		f.EntropyMean, f.Fields = v, f.Fields|shm.FwdHasEntropy
	}
	if v, ok := num(m, "latency_us"); ok {
		f.LatencyUs, f.Fields = v, f.Fields|shm.FwdHasLatency
	}
	if v, ok := num(m, "layer_idx"); ok {
		f.Layer, f.Fields = clampI32(v), f.Fields|shm.FwdHasLayer
	}
	return f
}

func retrievalFromMap(m map[string]any) *Retrieval {
	r := &Retrieval{}
	set := func(k string, dst *int32, bit uint32) {
		if v, ok := num(m, k); ok {
			*dst, r.Fields = clampI32(v), r.Fields|bit
		}
	}
	set("layer_idx", &r.Layer, shm.RetHasLayer)
	set("results_count", &r.ResultsCount, shm.RetHasResults)
	set("injected_count", &r.InjectedCount, shm.RetHasInjected)
	set("budget_remaining", &r.BudgetRemaining, shm.RetHasBudget)
	if s, ok := m["scores"].([]any); ok {
		for _, x := range s {
			if v, ok := x.(float64); ok {
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
