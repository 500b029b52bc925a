package metrics

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// loadedRegistry is a scrape target the size of a node: producers ×
// hooked layers, every family populated, self-metrics for 2 rings and 4
// sinks per producer.
func loadedRegistry(b *testing.B, producers, layers int, native bool) *Registry {
	e := New(Options{Native: native, ConstLabels: map[string]string{"cluster": "bench"}})
	var infos []ringRow
	for p := 0; p < producers; p++ {
		pr := producer(fmt.Sprintf("worker-tp%d", p), p)
		var evs []pipeline.Event
		for l := 0; l < layers; l++ {
			for i := 0; i < 50; i++ {
				evs = append(evs, fwd(pr, int32(l), i%3 != 0, float64(i%10)/10, float64(i%5), float64(10+i*40)))
			}
		}
		evs = append(evs, pipeline.Event{Kind: pipeline.KindRetrieval, Producer: pr, Retrieval: &pipeline.Retrieval{Scores: []float64{0.9, 0.5}}})
		for _, op := range []string{"register", "unregister", "clear", "attach"} {
			evs = append(evs, pipeline.Event{Kind: pipeline.KindAudit, Producer: pr, Audit: &pipeline.Audit{Operation: op, Success: true}})
		}
		evs = append(evs, pipeline.Event{Kind: pipeline.KindStatus, Producer: pr, Status: &pipeline.Status{
			KVStore: &pipeline.KVStoreStatus{Count: ptr(10.0), MaxSlots: ptr(256.0), Pinned: ptr(1.0)}, SlotChangeRate: ptr(0.2)}})
		e.Write(context.Background(), evs)
		for _, c := range []string{"hot", "audit"} {
			infos = append(infos, ringRow{Producer: pr.Name, Class: c, State: "live", Consumed: 1000})
		}
	}
	self := selfmetrics.NewSet()
	self.Add("rings", NewRingsCollector(snapshotOf(infos)))
	sinks := []pipeline.SinkStats{{Name: "metrics"}, {Name: "log"}, {Name: "counter"}, {Name: "audit-ack"}}
	self.Add("pipeline", NewPipelineCollector(func() []pipeline.SinkStats { return sinks }))
	return NewRegistry(map[string]string{"cluster": "bench"}, e, self)
}

func benchScrape(b *testing.B, producers, layers int, accept, encoding string) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	h := loadedRegistry(b, producers, layers, false).Handler(slogDiscard())
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", accept)
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	var size int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/scrape")
}

const textAccept = "text/plain;version=0.0.4"
const omAccept = "application/openmetrics-text;version=1.0.0"

// Scrape cost at aga-core's default of 3 hooked layers × 8 producers and at
// 96 layers × 8 producers, uncompressed text, OpenMetrics and gzip.
func BenchmarkScrape3x8(b *testing.B)      { benchScrape(b, 8, 3, textAccept, "") }
func BenchmarkScrape3x8Gzip(b *testing.B)  { benchScrape(b, 8, 3, textAccept, "gzip") }
func BenchmarkScrape96x8(b *testing.B)     { benchScrape(b, 8, 96, textAccept, "") }
func BenchmarkScrape96x8OM(b *testing.B)   { benchScrape(b, 8, 96, omAccept, "") }
func BenchmarkScrape96x8Gzip(b *testing.B) { benchScrape(b, 8, 96, textAccept, "gzip") }

// BenchmarkExporterWrite: the metrics sink's cost per forward event.
func BenchmarkExporterWrite(b *testing.B) {
	e := New(Options{})
	p := producer("w", 0)
	batch := make([]pipeline.Event, 4096)
	for i := range batch {
		batch[i] = fwd(p, int32(29+i%3), i%2 == 0, 0.4, 1.5, float64(100+i%900))
	}
	b.ResetTimer()
	for n := 0; n < b.N; n += len(batch) {
		e.Write(context.Background(), batch)
	}
}

// BenchmarkExporterWriteSpanKeep: the same with exemplars on (OTLP traces):
// every forward goes through the span keeper; Fast has no slow forward,
// Slow10 has 10% at or above the threshold, each leaving an exemplar.
func BenchmarkExporterWriteSpanKeepFast(b *testing.B)   { benchWriteSpanKeep(b, 900) }
func BenchmarkExporterWriteSpanKeepSlow10(b *testing.B) { benchWriteSpanKeep(b, 1000) }

func benchWriteSpanKeep(b *testing.B, spread int) {
	e := New(Options{SpanKeep: &pipeline.SpanKeepOptions{SampleRate: 0.01, SlowUs: 1000, MaxPerSecond: 1000}})
	p := producer("w", 0)
	batch := make([]pipeline.Event, 4096)
	for i := range batch {
		batch[i] = fwd(p, int32(29+i%3), i%2 == 0, 0.4, 1.5, float64(100+i%spread))
		batch[i].Epoch, batch[i].Seq, batch[i].TimeNs = 1, uint64(i), int64(i)*1e6
	}
	b.ResetTimer()
	for n := 0; n < b.N; n += len(batch) {
		e.Write(context.Background(), batch)
	}
}
