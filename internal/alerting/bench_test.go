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
