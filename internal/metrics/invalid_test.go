package metrics

import (
	"context"
	"math"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	agatest "github.com/agaobs/agaobs/internal/testutil"
)

// ringEvents writes records with a real ring writer and decodes them as the
// consumer does.
func ringEvents(t *testing.T, p *pipeline.Producer, write func(w *shm.Writer)) []pipeline.Event {
	t.Helper()
	const capacity = 1 << 16
	buf := make([]byte, shm.HeaderSize+capacity)
	w, err := shm.NewBufferWriter(buf, shm.WriterOptions{Class: shm.ClassHot, Capacity: capacity, Identity: shm.Identity{Producer: p.Name}})
	if err != nil {
		t.Fatal(err)
	}
	write(w)
	r, err := shm.NewRing(buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	var evs []pipeline.Event
	if _, err := r.Poll(1000, func(rec *shm.Record) shm.Disposition {
		var ev pipeline.Event
		if err := pipeline.Decode(rec, &ev); err != nil {
			t.Errorf("decode %v: %v", rec.Type, err)
			return shm.Corrupt
		}
		ev.Producer = p
		evs = append(evs, ev)
		return shm.Done
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

// NaN and ±Inf written into ring records are dropped where they are
// decoded and counted per field: every _sum stays finite and the finite
// values around them are still observed.
func TestNonFiniteValuesThroughRing(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	p := producer("w", 0)
	all := shm.FwdHasGate | shm.FwdHasEntropy | shm.FwdHasLatency | shm.FwdHasLayer
	evs := ringEvents(t, p, func(w *shm.Writer) {
		for _, f := range []shm.Forward{
			{GateMean: 0.5, EntropyMean: 1.5, LatencyUs: 100, Fields: all},
			{GateMean: nan, EntropyMean: -inf, LatencyUs: inf, Fields: all | shm.FwdApplied},
			{GateMean: inf, EntropyMean: nan, LatencyUs: nan, Fields: all},
			// Non-finite values without their has bit are not values.
			{GateMean: nan, EntropyMean: 2, LatencyUs: 50, Fields: shm.FwdHasEntropy | shm.FwdHasLatency},
		} {
			if err := w.EmitForward(1, &f); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.EmitRetrieval(1, &shm.Retrieval{InjectedCount: 2, Fields: 15}, []float64{0.5, nan, inf, -inf, 0.25}, []string{"a"}); err != nil {
			t.Fatal(err)
		}
	})
	e := New(Options{})
	if err := e.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	srv := NewRegistry(nil, e, nil).Handler(slogDiscard())
	_, mfs := checkExposition(t, srv)
	hist := func(name string) *dto.Histogram {
		t.Helper()
		m := agatest.FindSeries(flatten(mfs), name, map[string]string{"producer": "w"})
		if m == nil {
			t.Fatalf("no %s", name)
		}
		return m.Histogram
	}
	for _, tc := range []struct {
		name  string
		count uint64
		sum   float64
	}{
		{"aga_gate_value", 1, 0.5},
		{"aga_entropy_value", 2, 3.5},
		{"aga_forward_latency_us", 2, 150},
		{"aga_retrieval_score", 2, 0.75},
	} {
		h := hist(tc.name)
		if h.GetSampleCount() != tc.count || h.GetSampleSum() != tc.sum {
			t.Errorf("%s: count %d sum %v, want %d and %v", tc.name, h.GetSampleCount(), h.GetSampleSum(), tc.count, tc.sum)
		}
	}
	if m := agatest.FindSeries(flatten(mfs), "aga_forward_total", map[string]string{"producer": "w", "applied": "true"}); m.GetCounter().GetValue() != 1 {
		t.Errorf("the forward with non-finite values is still a forward: %v", m)
	}
	want := map[string]float64{"gate_mean": 2, "entropy_mean": 2, "latency_us": 2, "scores": 3}
	got := map[string]float64{}
	for _, m := range mfs["agaobs_invalid_values_total"].GetMetric() {
		if labelOf(m, "producer") == "w" {
			got[labelOf(m, "field")] = m.Counter.GetValue()
		}
	}
	if len(got) != len(want) {
		t.Errorf("agaobs_invalid_values_total %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("agaobs_invalid_values_total{field=%q} = %v, want %v", k, got[k], v)
		}
	}
}

func flatten(m map[string]*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, mf := range m {
		out = append(out, mf)
	}
	return out
}

// A derived utilization that overflows is not exported; status values the
// exporter is handed as non-finite (Decode drops those) are not either.
func TestNonFiniteStatusGauges(t *testing.T) {
	e := New(Options{})
	p := producer("w", 0)
	e.Write(context.Background(), []pipeline.Event{{Kind: pipeline.KindStatus, Producer: p, Status: &pipeline.Status{
		KVStore:        &pipeline.KVStoreStatus{Count: ptr(1e308), MaxSlots: ptr(1e-308), Pinned: ptr(math.NaN())},
		SlotChangeRate: ptr(math.Inf(-1))}}})
	mfs, _ := e.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "aga_knowledge_utilization", "aga_knowledge_pinned_count", "aga_slot_change_rate":
			t.Errorf("%s exported: %v", mf.GetName(), mf.Metric)
		}
	}
}
