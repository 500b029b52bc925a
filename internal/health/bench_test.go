package health

import (
	"context"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// BenchmarkProducersWrite is the health sink's Write over the pipeline
// benchmark's mix, one op per event: runs of 512 events per producer (8
// producers), forwards with a retrieval every 15th, batches of 1024, and a
// status event at the start of each run (far more than a real producer
// sends: an upper bound).
func BenchmarkProducersWrite(b *testing.B) {
	var prods [8]*pipeline.Producer
	for i := range prods {
		prods[i] = &pipeline.Producer{Name: "bench-" + string(rune('a'+i))}
	}
	util := 0.5
	st := &pipeline.Status{KVStore: &pipeline.KVStoreStatus{Utilization: &util}}
	batches := make([][]pipeline.Event, 8)
	for j := range batches {
		batch := make([]pipeline.Event, 1024)
		for i := range batch {
			n := j*1024 + i
			ev := &batch[i]
			ev.Producer = prods[n/512%len(prods)]
			ev.Kind = pipeline.KindForward
			ev.TimeNs = time.Now().UnixNano()
			switch {
			case n%512 == 0:
				ev.Kind, ev.Status = pipeline.KindStatus, st
			case n%15 == 14:
				ev.Kind = pipeline.KindRetrieval
			}
		}
		batches[j] = batch
	}
	p := NewProducers(ProducerOptions{Snapshot: func() *pipeline.Snapshot { return &pipeline.Snapshot{} }})
	b.ResetTimer()
	for i := 0; i < b.N; i += 1024 {
		_ = p.Write(context.Background(), batches[i/1024%len(batches)])
	}
}
