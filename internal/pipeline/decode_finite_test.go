package pipeline

import (
	"math"
	"strings"
	"testing"

	"github.com/agaobs/agaobs/internal/shm"
)

// Decode drops non-finite FORWARD values: the has bit cleared, the value
// zeroed (sinks that print a value without its bit print 0), the field in
// Event.Invalid when the producer claimed it.
func TestDecodeForwardNonFinite(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	all := shm.FwdHasGate | shm.FwdHasEntropy | shm.FwdHasLatency | shm.FwdHasLayer | shm.FwdApplied
	for _, tc := range []struct {
		name    string
		in      shm.Forward
		fields  uint32
		invalid []InvalidField
	}{
		{"finite", shm.Forward{GateMean: 0.5, EntropyMean: 1, LatencyUs: 3, Fields: all}, all, nil},
		{"NaN gate", shm.Forward{GateMean: nan, EntropyMean: 1, LatencyUs: 3, Fields: all}, all &^ shm.FwdHasGate, []InvalidField{InvalidGate}},
		{"Inf latency, -Inf entropy", shm.Forward{GateMean: 0.5, EntropyMean: -inf, LatencyUs: inf, Fields: all},
			shm.FwdHasGate | shm.FwdHasLayer | shm.FwdApplied, []InvalidField{InvalidEntropy, InvalidLatency}},
		{"all three", shm.Forward{GateMean: inf, EntropyMean: nan, LatencyUs: -inf, Fields: all}, shm.FwdHasLayer | shm.FwdApplied,
			[]InvalidField{InvalidGate, InvalidEntropy, InvalidLatency}},
		{"NaN without its bit is not counted", shm.Forward{GateMean: nan, LatencyUs: 3, Fields: shm.FwdHasLatency}, shm.FwdHasLatency, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := Event{Invalid: 1 << InvalidScore} // stale: Decode resets it
			if err := Decode(rec(shm.TypeForward, forwardBody(tc.in)), &ev); err != nil {
				t.Fatal(err)
			}
			f := ev.Forward
			if uint32(f.bits) != tc.fields {
				t.Errorf("fields %05b, want %05b", f.bits, tc.fields)
			}
			for _, v := range []float64{f.gate, f.entropy, f.latency} {
				if !Finite(v) {
					t.Errorf("non-finite value left: %+v", f)
				}
			}
			var want InvalidMask
			for _, fld := range tc.invalid {
				want |= 1 << fld
			}
			if ev.Invalid != want {
				t.Errorf("invalid %09b, want %09b", ev.Invalid, want)
			}
		})
	}
}

func TestDecodeRetrievalNonFinite(t *testing.T) {
	scores := []float64{0.9, math.NaN(), math.Inf(1), 0.1, math.Inf(-1)}
	body := make([]byte, shm.RetrievalBodyLen(len(scores), []string{"a"}))
	shm.PutRetrieval(body, &shm.Retrieval{Layer: 1, ResultsCount: 5, Fields: 3}, scores, []string{"a"})
	var ev Event
	if err := Decode(rec(shm.TypeRetrieval, string(body)), &ev); err != nil {
		t.Fatal(err)
	}
	r := ev.Retrieval
	if len(r.Scores) != 2 || r.Scores[0] != 0.9 || r.Scores[1] != 0.1 || r.InvalidScores != 3 || !ev.Invalid.Has(InvalidScore) {
		t.Errorf("scores %v, invalid %d, mask %b", r.Scores, r.InvalidScores, ev.Invalid)
	}
	if ev.Invalid != 1<<InvalidScore || r.Results() != 5 {
		t.Errorf("event %+v", r)
	}
}

// Status numbers: JSON cannot carry NaN or Inf, but the check stands
// whatever decoder fills the struct.
func TestCleanStatus(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	ev := Event{Kind: KindStatus, Status: &Status{
		KVStore:        &KVStoreStatus{Count: f(3), MaxSlots: f(math.Inf(1)), Utilization: f(math.NaN()), Pinned: f(1)},
		SlotChangeRate: f(math.Inf(-1))}}
	cleanStatus(&ev)
	kv := ev.Status.KVStore
	if kv.Count == nil || kv.Pinned == nil || kv.MaxSlots != nil || kv.Utilization != nil || ev.Status.SlotChangeRate != nil {
		t.Errorf("status %+v, slot change rate %v", kv, ev.Status.SlotChangeRate)
	}
	if want := InvalidMask(1<<InvalidKVMaxSlots | 1<<InvalidKVUtilization | 1<<InvalidSlotChangeRate); ev.Invalid != want {
		t.Errorf("invalid %09b, want %09b", ev.Invalid, want)
	}
	for fld := InvalidField(0); fld < NumInvalidFields; fld++ {
		if strings.HasPrefix(fld.String(), "field(") {
			t.Errorf("field %d has no name", fld)
		}
	}
}
