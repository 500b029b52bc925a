package alerting

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/alerting/anomaly"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
)

// writeReference is Engine.Write as it was before its per-run caches: a
// target lookup by name change, both windows' slices, the SLO series and
// the latency bucket looked up for every event. Write must leave the
// engine in the same state.
func writeReference(e *Engine, batch []pipeline.Event) {
	var lastName string
	var t *target
	for i := range batch {
		ev := &batch[i]
		if ev.Producer == nil {
			continue
		}
		name := ev.Producer.Name
		if ev.Kind == pipeline.KindLifecycle {
			if ev.Lifecycle.Type == pipeline.ProducerForgotten {
				e.forget(name)
				lastName, t = "", nil
			}
			continue
		}
		if t == nil || name != lastName {
			t, lastName = e.targetFor(name), name
			if t.acc != nil && t.acc.prod != ev.Producer {
				t.acc.prod = ev.Producer
			}
		}
		sec := ev.RecvNs / 1e9
		c := cursor{t: t, name: name, sec: sec, s: t.win.at(sec), ns: e.node.win.at(sec)}
		switch ev.Kind {
		case pipeline.KindForward:
			f := &ev.Forward
			if t.acc != nil {
				referenceAcc(t.acc, f)
			}
			lat, hasLat := f.Latency()
			gate, hasGate := f.Gate()
			ent, hasEnt := f.Entropy()
			for _, x := range [2]*slice{c.s, c.ns} {
				x.forwards++
				if f.Applied() {
					x.applied++
				}
				if hasLat {
					x.lat[scanBucket(lat)]++
				}
				if hasGate {
					x.gateSum += gate
					x.gateN++
				}
				if hasEnt {
					x.entSum += ent
					x.entN++
				}
			}
			if hasLat {
				for _, so := range e.slos {
					if so.SLI.Type == "latency" {
						good := 0.0
						if lat <= so.SLI.ThresholdUs {
							good = 1
						}
						so.seriesFor(name).add(sec, good, 1)
					}
				}
			}
		case pipeline.KindRetrieval:
			writeRetrieval(&c, ev.Retrieval)
		case pipeline.KindStatus:
			writeStatus(&c, ev.Status)
		}
	}
}

// scanBucket is latencyBucket as a scan of the bounds.
func scanBucket(v float64) int {
	for i, b := range latencyBoundsUs {
		if v <= b {
			return i
		}
	}
	return numLatencyBuckets - 1
}

// referenceAcc folds a forward into a minute reading it field by field.
func referenceAcc(a *minuteAcc, f *pipeline.Forward) {
	add := func(m *means) {
		m.forwards++
		if f.Applied() {
			m.applied++
		}
		if v, ok := f.Gate(); ok {
			m.gateSum += v
			m.gateN++
		}
		if v, ok := f.Entropy(); ok {
			m.entSum += v
			m.entN++
		}
	}
	lat, hasLat := f.Latency()
	add(&a.all.means)
	if hasLat {
		a.all.lat.Add(lat)
	}
	layer, ok := f.LayerIdx()
	if !ok || layer < 0 || int(layer) >= anomaly.DefaultMaxLayers {
		return
	}
	for len(a.layers) <= int(layer) {
		a.layers = append(a.layers, layerAcc{})
	}
	add(&a.layers[layer].means)
	if hasLat {
		a.layers[layer].lat.Add(lat)
	}
}

// randomBatch is events in runs of one producer (incarnations of one name
// alternating), seconds that mostly stay, step on, step back and jump,
// every kind with fields present or not and hostile values, and
// producers forgotten now and then.
func randomBatch(r *rand.Rand, prods []*pipeline.Producer, now *int64, n int) []pipeline.Event {
	var evs []pipeline.Event
	for len(evs) < n {
		p := prods[r.IntN(len(prods))]
		switch r.IntN(40) {
		case 0:
			*now -= r.Int64N(5e9)
		case 1:
			*now += r.Int64N(600e9)
		case 2:
			l := pipeline.Lifecycle{Type: pipeline.ProducerForgotten}
			evs = append(evs, pipeline.Event{Kind: pipeline.KindLifecycle, Producer: p, Lifecycle: &l, RecvNs: *now})
			continue
		}
		for range 1 + r.IntN(30) {
			*now += r.Int64N(40e6)
			ev := pipeline.Event{Producer: p, RecvNs: *now}
			switch k := r.IntN(20); {
			case k == 0:
				util, slots := r.Float64(), r.Float64()*10
				ev.Kind, ev.Status = pipeline.KindStatus, &pipeline.Status{KVStore: &pipeline.KVStoreStatus{Utilization: &util}, SlotChangeRate: &slots}
			case k < 3:
				rt := pipeline.Retrieval{}.WithResults(int32(r.IntN(8) - 1)).WithInjected(int32(r.IntN(4)))
				ev.Kind, ev.Retrieval = pipeline.KindRetrieval, &rt
			default:
				ev.Kind, ev.Forward = pipeline.KindForward, randomForward(r)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

func randomForward(r *rand.Rand) pipeline.Forward {
	f := pipeline.Forward{}.WithApplied(r.IntN(3) > 0)
	lats := []float64{0, -1, 5, 10, 2500, 5000, 5000.000001, 1e9, math.Inf(1)}
	if r.IntN(10) > 0 {
		lat := math.Exp(r.Float64() * 10)
		if r.IntN(8) == 0 {
			lat = lats[r.IntN(len(lats))]
		}
		f = f.WithLatency(lat)
	}
	if r.IntN(10) > 0 {
		f = f.WithGate(r.Float64())
	}
	if r.IntN(10) > 0 {
		f = f.WithEntropy(r.Float64()*3 - 0.5)
	}
	if r.IntN(10) > 0 {
		layers := []int32{-1, 95, 96, 1 << 30}
		l := int32(r.IntN(6))
		if r.IntN(10) == 0 {
			l = layers[r.IntN(len(layers))]
		}
		f = f.WithLayer(l)
	}
	return f
}

// Write's per-run caches (target, slices, SLO series, the binade bucket
// index) leave every window, anomaly minute and SLO series as the
// per-event lookups do, over producers alternating and restarting under
// one name, forgotten mid-batch, and seconds stepping back and jumping.
func TestWriteMatchesReference(t *testing.T) {
	slos := []config.SLO{
		{Name: "lat", Objective: 0.99, Period: config.Duration(24 * time.Hour), SLI: config.SLI{Type: "latency", ThresholdUs: 250}},
		{Name: "avail", Objective: 0.99, Period: config.Duration(24 * time.Hour), SLI: config.SLI{Type: "availability"}},
		{Name: "lat2", Objective: 0.9, Period: config.Duration(24 * time.Hour), SLI: config.SLI{Type: "latency", ThresholdUs: 1000}},
	}
	for _, anomalyOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("anomaly=%v", anomalyOn), func(t *testing.T) {
			cfg := config.Default()
			cfg.AnomalyEnabled = anomalyOn
			cfg.SLOs = slos
			got, want := newHarness(t, cfg, nil), newHarness(t, cfg, nil)
			var prods []*pipeline.Producer
			for i := range 4 {
				name := fmt.Sprintf("tp%d", i)
				prods = append(prods, pipeline.NewProducer(name, name, 1, 1, "r", pipeline.Identity{Producer: name}))
			}
			// A restarted tp0: a new incarnation under the same name.
			prods = append(prods, pipeline.NewProducer("tp0", "tp0", 2, 2, "r", pipeline.Identity{Producer: "tp0"}))
			r := rand.New(rand.NewPCG(5, 6))
			now := int64(1_700_000_000e9)
			for i := range 300 {
				batch := randomBatch(r, prods, &now, 1+r.IntN(400))
				if err := got.e.Write(context.Background(), batch); err != nil {
					t.Fatal(err)
				}
				want.e.mu.Lock()
				writeReference(want.e, batch)
				want.e.mu.Unlock()
				if err := sameEngineState(got.e, want.e); err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
			}
		})
	}
}

// sameEngineState compares what Write feeds: the windows' slices, the
// anomaly minutes (and their producers) and the SLO series.
func sameEngineState(got, want *Engine) error {
	if !reflect.DeepEqual(got.node.win.slices, want.node.win.slices) {
		return fmt.Errorf("node windows differ")
	}
	if len(got.targets) != len(want.targets) {
		return fmt.Errorf("%d targets, want %d", len(got.targets), len(want.targets))
	}
	for name, w := range want.targets {
		g := got.targets[name]
		if g == nil {
			return fmt.Errorf("target %s missing", name)
		}
		if !reflect.DeepEqual(g.win.slices, w.win.slices) {
			return fmt.Errorf("target %s: windows differ", name)
		}
		if !reflect.DeepEqual(g.acc, w.acc) {
			return fmt.Errorf("target %s: anomaly minutes differ", name)
		}
	}
	for i := range want.slos {
		if !reflect.DeepEqual(got.slos[i].series, want.slos[i].series) {
			return fmt.Errorf("SLO %s: series differ", want.slos[i].Name)
		}
	}
	return nil
}

// latencyBucket's binade index gives the bucket a scan of the bounds
// gives: at, just around and between the bounds, at powers of two, and
// for zero, negative, subnormal, infinite and NaN values.
func TestLatencyBucketMatchesScan(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), -1, -5000, math.SmallestNonzeroFloat64, math.MaxFloat64,
		math.Inf(1), math.Inf(-1), math.NaN()}
	for _, b := range latencyBoundsUs {
		vals = append(vals, b, math.Nextafter(b, 0), math.Nextafter(b, math.Inf(1)), b/2, b*2, b*1.5)
	}
	for e := -1074; e <= 1023; e++ {
		p := math.Ldexp(1, e)
		vals = append(vals, p, math.Nextafter(p, 0), math.Nextafter(p, math.Inf(1)))
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 100_000 {
		vals = append(vals, math.Exp(r.Float64()*20-5))
	}
	for _, v := range vals {
		if got, want := latencyBucket(v), scanBucket(v); got != want {
			t.Errorf("latencyBucket(%v) = %d, scan %d", v, got, want)
		}
	}
}
