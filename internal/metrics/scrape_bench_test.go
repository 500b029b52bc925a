package metrics

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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
	benchHandler(b, loadedRegistry(b, producers, layers, false).Handler(slogDiscard()), accept, encoding, nil)
}

// benchHandler scrapes h b.N times on one P; between scrapes (untimed),
// between runs if not nil.
func benchHandler(b *testing.B, h http.Handler, accept, encoding string, between func()) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", accept)
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	var size int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if between != nil {
			b.StopTimer()
			between()
			b.StartTimer()
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
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

// The same after every series changed: one forward on every layer of
// every producer between scrapes (untimed), so no family is cached, as on
// a node whose producers all run forwards between two scrapes.
func BenchmarkScrape96x8Changing(b *testing.B)     { benchScrapeChanging(b, "") }
func BenchmarkScrape96x8ChangingGzip(b *testing.B) { benchScrapeChanging(b, "gzip") }

func benchScrapeChanging(b *testing.B, encoding string) {
	reg := loadedRegistry(b, 8, 96, false)
	var batch []pipeline.Event
	for p := range reg.exporter.producers {
		for l := 0; l < 96; l++ {
			batch = append(batch, fwd(p, int32(l), l%2 == 0, 0.3, 1.5, 120))
		}
	}
	benchHandler(b, reg.Handler(slogDiscard()), textAccept, encoding, func() { reg.exporter.Write(context.Background(), batch) })
}

// BenchmarkScrapeCompare96x8 is the baseline of issue 19: the agaobs
// /metrics handler against client_golang's own registry and promhttp
// handler holding exactly the same series (every family of one agaobs
// scrape, parsed back and registered as const metrics), same headers,
// same run. The scrape target is at most half client_golang's time.
func BenchmarkScrapeCompare96x8(b *testing.B) {
	reg := loadedRegistry(b, 8, 96, false)
	h := reg.Handler(slogDiscard())
	cg := clientGolangTwin(b, h)
	for _, c := range []struct {
		name     string
		h        http.Handler
		encoding string
	}{{"agaobs", h, ""}, {"agaobs_gzip", h, "gzip"}, {"client_golang", cg, ""}, {"client_golang_gzip", cg, "gzip"}} {
		b.Run(c.name, func(b *testing.B) { benchHandler(b, c.h, textAccept, c.encoding, nil) })
	}
}

// clientGolangTwin returns promhttp.HandlerFor over a plain
// prometheus.NewRegistry holding the series of one text scrape of h as
// const metrics. It fails unless the two hold as many series and the AGA
// families' text is the same.
func clientGolangTwin(b *testing.B, h http.Handler) http.Handler {
	scrape := func(h http.Handler) []byte {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept", textAccept)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Body.Bytes()
	}
	parse := func(text []byte) map[string]*dto.MetricFamily {
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
		if err != nil {
			b.Fatal(err)
		}
		return mfs
	}
	count := func(mfs map[string]*dto.MetricFamily) (n int) {
		for _, mf := range mfs {
			n += len(mf.Metric)
		}
		return n
	}
	text := scrape(h)
	mfs := parse(text)
	var metrics []prometheus.Metric
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			names, values := make([]string, len(m.Label)), make([]string, len(m.Label))
			for i, l := range m.Label {
				names[i], values[i] = l.GetName(), l.GetValue()
			}
			d := prometheus.NewDesc(mf.GetName(), mf.GetHelp(), names, nil)
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				metrics = append(metrics, prometheus.MustNewConstMetric(d, prometheus.CounterValue, m.Counter.GetValue(), values...))
			case dto.MetricType_GAUGE:
				metrics = append(metrics, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, m.Gauge.GetValue(), values...))
			case dto.MetricType_UNTYPED:
				metrics = append(metrics, prometheus.MustNewConstMetric(d, prometheus.UntypedValue, m.Untyped.GetValue(), values...))
			case dto.MetricType_SUMMARY:
				q := map[float64]float64{}
				for _, x := range m.Summary.Quantile {
					q[x.GetQuantile()] = x.GetValue()
				}
				metrics = append(metrics, prometheus.MustNewConstSummary(d, m.Summary.GetSampleCount(), m.Summary.GetSampleSum(), q, values...))
			case dto.MetricType_HISTOGRAM:
				buckets := map[float64]uint64{}
				for _, x := range m.Histogram.Bucket {
					if !math.IsInf(x.GetUpperBound(), 1) {
						buckets[x.GetUpperBound()] = x.GetCumulativeCount()
					}
				}
				metrics = append(metrics, prometheus.MustNewConstHistogram(d, m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum(), buckets, values...))
			default:
				b.Fatalf("%s: type %v", mf.GetName(), mf.GetType())
			}
		}
	}
	cg := prometheus.NewRegistry()
	cg.MustRegister(constCollector(metrics))
	cgh := promhttp.HandlerFor(cg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 4, EnableOpenMetrics: true})
	cgText := scrape(cgh)
	if n, want := count(parse(cgText)), count(mfs); n != want || n != len(metrics) {
		b.Fatalf("client_golang registry holds %d series (%d const metrics), agaobs %d", n, len(metrics), want)
	}
	if got, want := agaLines(cgText), agaLines(text); got != want || !strings.Contains(want, "aga_forward_latency_us_bucket") {
		b.Fatal("the AGA families differ between client_golang and agaobs")
	}
	return cgh
}

// constCollector is an unchecked collector of fixed metrics.
type constCollector []prometheus.Metric

func (constCollector) Describe(chan<- *prometheus.Desc) {}
func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

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

// BenchmarkExporterWritePipeline: the metrics sink's cost per event of
// BenchmarkPipeline's mix (internal/agent): 8 producers, runs of 512
// events from one producer, forwards on 3 layers, a retrieval every 15th,
// in batches of 1024; with native histograms off (the default) and on.
func BenchmarkExporterWritePipeline(b *testing.B) {
	for _, native := range []bool{false, true} {
		b.Run(fmt.Sprintf("native=%v", native), func(b *testing.B) {
			e := New(Options{Native: native})
			batches := pipelineMix(8, 512, 8*512*4, 1024)
			b.ResetTimer()
			for n := 0; n < b.N; {
				for _, batch := range batches {
					e.Write(context.Background(), batch)
					n += len(batch)
				}
			}
		})
	}
}

// pipelineMix is total events of BenchmarkPipeline's mix in batches of
// size: runs of run events from each of producers in turn.
func pipelineMix(producers, run, total, size int) [][]pipeline.Event {
	ps := make([]*pipeline.Producer, producers)
	for i := range ps {
		ps[i] = producer(fmt.Sprintf("bench-%c", 'a'+i), i)
	}
	scores := []float64{0.9, 0.7}
	evs := make([]pipeline.Event, total)
	for i := range evs {
		p := ps[i/run%producers]
		if i%15 == 14 {
			evs[i] = pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p,
				Retrieval: retrieval(pipeline.Retrieval{Scores: scores}.WithLayer(29).WithResults(3).WithInjected(2))}
			continue
		}
		evs[i] = fwd(p, int32(29+i%3), i%4 != 0, 0.4, 1.5, float64(100+i%900))
	}
	var batches [][]pipeline.Event
	for len(evs) > 0 {
		n := min(size, len(evs))
		batches = append(batches, evs[:n])
		evs = evs[n:]
	}
	return batches
}
