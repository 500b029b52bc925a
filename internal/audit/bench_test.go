package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// processCPU is the process's CPU time so far (user + system, all
// threads).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriterDurable feeds aga-core-sized audit events to a Writer
// over a bbolt file (group commit of 1000 or 50 ms, fsync each) and
// reports durable records/s, the event → durable p99 (the upper bound of
// its histogram bucket) and the process CPU time (user + system, getrusage)
// per record over the timed loop. Run by `make bench`.
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
			cpu0 := processCPU(b)
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
			cpu := processCPU(b) - cpu0
			b.StopTimer()
			cancel()
			<-done
			w.mu.Lock()
			p99 := w.durable.quantile(0.99)
			w.mu.Unlock()
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
			b.ReportMetric(p99*1e3, "p99-ms")
			b.ReportMetric(float64(st.Size())/float64(b.N), "B/record")
			// The whole process (the benchmark's producer side included)
			// over the timed loop: the writer's CPU per durable record.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
			if testing.Verbose() {
				fmt.Printf("%s: %d records in %v\n", backend, b.N, el)
			}
		})
	}
}
