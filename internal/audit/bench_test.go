package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// BenchmarkWriterDurable feeds aga-core-sized audit events to a Writer
// over a bbolt file (group commit of 1000 or 50 ms, fsync each) and
// reports durable records/s and the event → durable p99 (the upper bound
// of its histogram bucket). Run by `make bench`.
func BenchmarkWriterDurable(b *testing.B) {
	for _, backend := range []string{"bbolt", "file"} {
		b.Run(backend, func(b *testing.B) {
			st, _, err := Open(OpenOptions{Backend: backend, Path: filepath.Join(b.TempDir(), "audit.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			w := NewWriter(WriterOptions{Store: st, BatchSize: 1000, FlushInterval: 50 * time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = w.Run(ctx) }()
			prod := pipeline.NewProducer("tp0", "tp0", 1, 1, "r", pipeline.Identity{Producer: "tp0"})
			details := json.RawMessage(`{"id":"k-12345","reliability":0.93,"pinned":false,"metadata":{"source":"wiki","namespace":"default"},"store_count":48211}`)
			const chunk = 512 // what one consumer pass hands the sink
			evs := make([]pipeline.Event, chunk)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i += chunk {
				n := min(chunk, b.N-i)
				now := time.Now().UnixNano()
				for j := 0; j < n; j++ {
					evs[j] = pipeline.Event{Kind: pipeline.KindAudit, Producer: prod, TimeNs: now, RecvNs: now, Seq: uint64(i + j + 2),
						Audit: &pipeline.Audit{Operation: "register", Details: details, Success: true, Timestamp: float64(now) / 1e9}}
				}
				if err := w.Write(ctx, evs[:n]); err != nil {
					b.Fatal(err)
				}
			}
			for {
				if h, _ := st.Head(); h.Size >= uint64(b.N) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			el := time.Since(start)
			b.StopTimer()
			cancel()
			<-done
			w.mu.Lock()
			p99 := w.durable.quantile(0.99)
			w.mu.Unlock()
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
			b.ReportMetric(p99*1e3, "p99-ms")
			b.ReportMetric(float64(st.Size())/float64(b.N), "B/record")
			if testing.Verbose() {
				fmt.Printf("%s: %d records in %v\n", backend, b.N, el)
			}
		})
	}
}
