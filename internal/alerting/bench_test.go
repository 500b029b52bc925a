package alerting

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
)

// BenchmarkEval: one evaluation of the default rules and one latency SLO
// for 8 producers with full windows.
func BenchmarkEval(b *testing.B) {
	cfg := config.Default()
	cfg.SLOs = []config.SLO{{Name: "lat", Objective: 0.99, Period: config.Duration(30 * 24 * time.Hour), SLI: config.SLI{Type: "latency", ThresholdUs: 1000}}}
	var names []string
	for i := 0; i < 8; i++ {
		names = append(names, fmt.Sprintf("tp%d", i))
	}
	h := newHarness(&testing.T{}, cfg, nil, names...)
	for s := 0; s < 60; s++ {
		now := base.Add(time.Duration(s) * time.Second)
		var evs []pipeline.Event
		for _, n := range names {
			for i := 0; i < 100; i++ {
				evs = append(evs, h.fwd(n, now, float64(100+i*10)))
			}
		}
		h.write(evs...)
	}
	now := base.Add(60 * time.Second)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.e.Eval(now)
	}
}

// BenchmarkEngineWrite: the alert sink's cost per forward event.
func BenchmarkEngineWrite(b *testing.B) {
	cfg := config.Default()
	h := newHarness(&testing.T{}, cfg, nil, "tp0")
	batch := make([]pipeline.Event, 4096)
	for i := range batch {
		batch[i] = h.fwd("tp0", base, float64(100+i%900))
	}
	b.ResetTimer()
	for n := 0; n < b.N; n += len(batch) {
		h.e.Write(context.Background(), batch)
	}
}

// BenchmarkAnomalyMinute: one minute tick of the anomaly detector at 8
// producers × 96 layers: the minute's histograms turned into every signal
// (p50 and p99 per layer and producer, ratios, means) and scored and
// learned by every baseline, peer groups included (issue #18: <= 5 ms).
func BenchmarkAnomalyMinute(b *testing.B) {
	cfg := config.Default()
	var names []string
	for i := 0; i < 8; i++ {
		names = append(names, fmt.Sprintf("tp%d", i))
	}
	h := newHarness(&testing.T{}, cfg, nil, names...)
	ws := 4
	for _, n := range names {
		h.prods[n].SetIdentity(pipeline.Identity{Producer: n, Model: "m", WorldSize: &ws})
	}
	fill := func(sec int64) {
		var evs []pipeline.Event
		for _, n := range names {
			for l := 0; l < 96; l++ {
				for i := 0; i < 20; i++ {
					ev := h.fwd(n, time.Unix(sec, 0), float64(100+l+i*7))
					ev.Forward = ev.Forward.WithLayer(int32(l)).WithEntropy(1.5)
					evs = append(evs, ev)
				}
			}
		}
		h.write(evs...)
	}
	minute := base.Unix()/60*60 + 60
	h.e.Eval(time.Unix(minute, 0))
	// A day of minutes so the baselines are warm and seasonal.
	for m := int64(1); m <= 1500; m++ {
		fill(minute + (m-1)*60 + 1)
		h.e.Eval(time.Unix(minute+m*60, 0))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m := int64(1501 + i)
		fill(minute + (m-1)*60 + 1)
		b.StartTimer()
		h.e.mu.Lock()
		live := map[string]bool{}
		for _, n := range names {
			live[n] = true
		}
		h.e.closeMinute(time.Unix(minute+m*60, 0), live)
		h.e.mu.Unlock()
	}
	b.ReportMetric(float64(h.e.det.Series()), "series")
}

// BenchmarkEngineWriteLayers: the alert sink's cost per forward event at
// 8 producers × 96 layers, events cycling through the layers as a decode
// loop does, with the anomaly detector on and off.
func BenchmarkEngineWriteLayers(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("anomaly=%v", on), func(b *testing.B) {
			cfg := config.Default()
			cfg.AnomalyEnabled = on
			var names []string
			for i := 0; i < 8; i++ {
				names = append(names, fmt.Sprintf("tp%d", i))
			}
			h := newHarness(&testing.T{}, cfg, nil, names...)
			batch := make([]pipeline.Event, 4096)
			for i := range batch {
				ev := h.fwd(names[(i/512)%8], base, float64(100+i%900))
				ev.Forward = ev.Forward.WithLayer(int32(i % 96)).WithEntropy(1.5)
				batch[i] = ev
			}
			b.ResetTimer()
			for n := 0; n < b.N; n += len(batch) {
				h.e.Write(context.Background(), batch)
			}
		})
	}
}

// pipelineMix is the event mix of the agent's BenchmarkPipeline: 8
// producers, each a run of events (one ring's share of a consumer pass),
// forwards with every field on 3 layers and one retrieval in 15.
func pipelineMix(prods []*pipeline.Producer, run, n int, at time.Time) []pipeline.Event {
	evs := make([]pipeline.Event, n)
	ret := pipeline.Retrieval{}.WithLayer(29).WithResults(3).WithInjected(2)
	for i := range evs {
		p := prods[(i/run)%len(prods)]
		if i%15 == 14 {
			evs[i] = pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p, RecvNs: at.UnixNano(), Retrieval: &ret}
			continue
		}
		f := pipeline.Forward{}.WithApplied(true).WithGate(0.4).WithEntropy(1.5).WithLatency(180).WithLayer(int32(29 + i%3))
		evs[i] = pipeline.Event{Kind: pipeline.KindForward, Producer: p, RecvNs: at.UnixNano(), Forward: f}
	}
	return evs
}

// BenchmarkEngineWritePipeline: the alert sink's cost per event in the
// pipeline benchmark's mix with the default config (anomaly detection on).
func BenchmarkEngineWritePipeline(b *testing.B) {
	var names []string
	for i := 0; i < 8; i++ {
		names = append(names, fmt.Sprintf("tp%d", i))
	}
	h := newHarness(&testing.T{}, config.Default(), nil, names...)
	var prods []*pipeline.Producer
	for _, n := range names {
		prods = append(prods, h.prods[n])
	}
	batch := pipelineMix(prods, 512, 4096, base)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += len(batch) {
		h.e.Write(context.Background(), batch)
	}
}
