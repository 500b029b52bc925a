package otlp

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/testutil"
)

// fakeCollector is an OTLP/gRPC endpoint that keeps what it receives. gate,
// when set, blocks every export until it is closed; failLogs fails that many
// log exports first.
type fakeCollector struct {
	coltrace.UnimplementedTraceServiceServer
	collogs.UnimplementedLogsServiceServer
	colmetrics.UnimplementedMetricsServiceServer
	addr string

	mu       sync.Mutex
	spans    []*tracepb.ResourceSpans
	logs     []*logspb.ResourceLogs
	metrics  []*colmetrics.ExportMetricsServiceRequest
	gate     chan struct{}
	failLogs atomic.Int32
}

func startCollector(t *testing.T) *fakeCollector { return startFullCollector(t) }

func (c *fakeCollector) wait(ctx context.Context) error {
	c.mu.Lock()
	g := c.gate
	c.mu.Unlock()
	if g == nil {
		return nil
	}
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *fakeCollector) Export(ctx context.Context, r *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.spans = append(c.spans, r.ResourceSpans...)
	c.mu.Unlock()
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// logsServer and metricsServer give the collector the other services'
// Export methods (same name, other types).
type logsServer struct{ *fakeCollector }

func (c logsServer) Export(_ context.Context, r *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	if c.failLogs.Add(-1) >= 0 {
		return nil, status.Error(codes.InvalidArgument, "refused by the test")
	}
	c.mu.Lock()
	c.logs = append(c.logs, r.ResourceLogs...)
	c.mu.Unlock()
	return &collogs.ExportLogsServiceResponse{}, nil
}

type metricsServer struct{ *fakeCollector }

func (c metricsServer) Export(_ context.Context, r *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	c.mu.Lock()
	c.metrics = append(c.metrics, r)
	c.mu.Unlock()
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

func startFullCollector(t *testing.T) *fakeCollector {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCollector{addr: l.Addr().String()}
	s := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(s, c)
	collogs.RegisterLogsServiceServer(s, logsServer{c})
	colmetrics.RegisterMetricsServiceServer(s, metricsServer{c})
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return c
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = v.IntValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = v.DoubleValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = v.BoolValue
		}
	}
	return m
}

func testProducer(name, model, pod string) *pipeline.Producer {
	rank := 0
	return pipeline.NewProducer(name, name+"-key", 4242, 7, "agaobs-7-1-0",
		pipeline.Identity{Producer: name, Model: model, Pod: pod, Namespace: "serving", Rank: &rank})
}

func forward(p *pipeline.Producer, seq uint64, us float64) pipeline.Event {
	return pipeline.Event{Kind: pipeline.KindForward, Producer: p, Epoch: 99, Seq: seq, TimeNs: 1_700_000_000e9 + int64(seq)*1e6,
		RecvNs: 1_700_000_000e9 + int64(seq)*1e6 + 1000, Forward: pipeline.Forward{}.WithLatency(us).WithLayer(3).WithApplied(true)}
}

func newTestExporter(t *testing.T, c *fakeCollector, o Options) *Exporter {
	t.Helper()
	o.Endpoint, o.Insecure, o.Node = c.addr, true, "node-a"
	if o.Signals == nil {
		o.Signals = []string{SignalTraces}
	}
	e, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// deliver passes events through a dispatcher as the agent wires it: the
// span decision stamped once by the dispatcher's keeper, the sink's filter.
func deliver(t *testing.T, e *Exporter, keep pipeline.SpanKeepOptions, batch []pipeline.Event) (written uint64) {
	t.Helper()
	if keep.MaxPerSecond == 0 {
		keep.MaxPerSecond = 1000
	}
	d := pipeline.NewDispatcher(nil)
	d.SetSpanKeeper(pipeline.NewSpanKeeper(keep))
	d.Register(e, pipeline.SinkOptions{Filter: e.Filter(), QueueSize: 1 << 20})
	d.Start()
	for _, ev := range batch {
		d.Add(ev)
	}
	d.Flush()
	d.Close()
	return d.Stats()[0].Written
}

// TestFilterKeepsWhatWriteExports: the dispatch filter passes exactly the
// AGA events Write turns into a span (any decision but dropped: capped ones
// are counted) or a log record (logs, at the exporter's level), and every
// other event, for each signal set and log level.
func TestFilterKeepsWhatWriteExports(t *testing.T) {
	c := startCollector(t)
	p := testProducer("tp0", "m", "pod")
	var evs []pipeline.Event
	for _, span := range []pipeline.SpanReason{pipeline.SpanDropped, pipeline.SpanSampled, pipeline.SpanSlow, pipeline.SpanCapped, pipeline.SpanAudit} {
		f := forward(p, 1, 10)
		f.Span = span
		evs = append(evs, f,
			pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p, Span: span, Retrieval: &pipeline.Retrieval{}},
			pipeline.Event{Kind: pipeline.KindAudit, Producer: p, Span: span, Audit: &pipeline.Audit{Success: span == pipeline.SpanAudit}},
			pipeline.Event{Kind: pipeline.KindEvent, Producer: p, Span: span, Other: &pipeline.Other{Name: "x"}},
			pipeline.Event{Kind: pipeline.KindLifecycle, Producer: p, Span: span, Lifecycle: &pipeline.Lifecycle{Type: pipeline.ProducerForgotten}})
	}
	for _, signals := range [][]string{{SignalTraces}, {SignalLogs}, {SignalTraces, SignalLogs}} {
		for _, level := range []pipeline.Level{pipeline.LevelDebug, pipeline.LevelInfo, pipeline.LevelWarning} {
			e := newTestExporter(t, c, Options{Signals: signals, LogLevel: level})
			filter := e.Filter()
			for i := range evs {
				ev := &evs[i]
				want := true
				switch ev.Kind {
				case pipeline.KindForward, pipeline.KindRetrieval, pipeline.KindAudit, pipeline.KindEvent:
					want = e.traceExp != nil && ev.Span != pipeline.SpanDropped || e.logs(ev)
				}
				if got := filter(ev); got != want {
					t.Errorf("signals %v, level %v: %v with span %v: filter %v, want %v", signals, level, ev.Kind, ev.Span, got, want)
				}
			}
		}
	}
}

// run starts Run and returns a function that stops it and waits.
func run(e *Exporter) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	return func() { cancel(); <-done }
}

// Slow forwards become spans with the record's ids, their timing and
// attributes, under the producer's resource; fast ones are not sampled at
// rate 0; critical ones carry status Error.
func TestSlowForwardsBecomeSpans(t *testing.T) {
	c := startCollector(t)
	e := newTestExporter(t, c, Options{CriticalUs: 5000})
	stop := run(e)
	p := testProducer("tp0", "llama-70b", "serve-0")
	batch := []pipeline.Event{forward(p, 1, 10), forward(p, 2, 1000), forward(p, 3, 999.9), forward(p, 4, 6000)}
	if n := deliver(t, e, pipeline.SpanKeepOptions{SlowUs: 1000}, batch); n != 2 {
		t.Errorf("%d events reached the sink, want the 2 kept (the filter leaves the others out)", n)
	}
	stop()
	var got []*tracepb.Span
	for _, rs := range c.spans {
		r := attrs(rs.Resource.Attributes)
		for k, want := range map[string]any{"service.name": "llama-70b", "service.instance.id": "node-a/tp0", "k8s.pod.name": "serve-0",
			"k8s.namespace.name": "serving", "k8s.node.name": "node-a", "gen_ai.request.model": "llama-70b", "process.pid": int64(4242), "host.name": "node-a"} {
			if r[k] != want {
				t.Errorf("resource %s = %v, want %v", k, r[k], want)
			}
		}
		for _, ss := range rs.ScopeSpans {
			got = append(got, ss.Spans...)
		}
	}
	if len(got) != 2 {
		t.Fatalf("%d spans, want the 2 slow forwards", len(got))
	}
	for i, seq := range []uint64{2, 4} {
		sp := got[i]
		tid, sid := pipeline.TraceID(99, seq), pipeline.SpanID(99, seq)
		if hex.EncodeToString(sp.TraceId) != hex.EncodeToString(tid[:]) || hex.EncodeToString(sp.SpanId) != hex.EncodeToString(sid[:]) {
			t.Errorf("span %d ids %x/%x, want %x/%x", seq, sp.TraceId, sp.SpanId, tid, sid)
		}
		ev := forward(p, seq, 0)
		us, _ := batch[i*2+1].Forward.LatencyUs()
		if sp.Name != "aga.forward" || sp.EndTimeUnixNano != uint64(ev.TimeNs) || sp.EndTimeUnixNano-sp.StartTimeUnixNano != uint64(us*1e3) {
			t.Errorf("span %d: %s %d..%d", seq, sp.Name, sp.StartTimeUnixNano, sp.EndTimeUnixNano)
		}
		a := attrs(sp.Attributes)
		if a["aga.layer"] != int64(3) || a["aga.applied"] != true || a["aga.latency_us"] != us || a["aga.producer"] != "tp0" || a["aga.keep_reason"] != "slow" {
			t.Errorf("span %d attributes %v", seq, a)
		}
		wantErr := seq == 4
		if (sp.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR) != wantErr {
			t.Errorf("span %d status %v", seq, sp.Status)
		}
	}
}

// A stalled collector never blocks Write: spans beyond the queue are
// dropped and counted.
func TestStalledCollectorDropsAndCounts(t *testing.T) {
	c := startCollector(t)
	c.gate = make(chan struct{})
	e := newTestExporter(t, c, Options{QueueSize: 16})
	stop := run(e)
	p := testProducer("tp0", "", "")
	const n = 5000
	batch := make([]pipeline.Event, n)
	for i := range batch {
		batch[i] = forward(p, uint64(i), 10)
	}
	// Returns with the collector stalled.
	deliver(t, e, pipeline.SpanKeepOptions{SampleRate: 1, MaxPerSecond: 1 << 20}, batch)
	st := e.stats[SignalTraces]
	st.mu.Lock()
	full := st.dropped[reasonQueueFull]
	st.mu.Unlock()
	if full < n-16-exportBatch {
		t.Errorf("%d dropped for a full queue, want at least %d", full, n-16-exportBatch)
	}
	close(c.gate)
	stop()
	st.mu.Lock()
	defer st.mu.Unlock()
	total := st.sent + st.dropped[reasonQueueFull] + st.dropped[reasonExportError] + st.dropped[reasonShutdown]
	if total != n {
		t.Errorf("sent %d + dropped %v = %d, want every one of %d spans accounted for", st.sent, st.dropped, total, n)
	}
}

type memAudit struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func (m *memAudit) After(seq uint64, limit int) ([]AuditRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []AuditRecord
	for _, r := range m.recs {
		if r.Seq > seq && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

type memCursor struct{ seq atomic.Uint64 }

func (c *memCursor) Load() (uint64, error) { return c.seq.Load(), nil }
func (c *memCursor) Save(s uint64) error   { c.seq.Store(s); return nil }

// Audit records reach the collector at least once, in order, across
// refused exports, and the cursor names the last one acknowledged; a
// restart resumes after it.
func TestAuditLogsAtLeastOnce(t *testing.T) {
	c := startFullCollector(t)
	c.failLogs.Store(2)
	src := &memAudit{}
	for i := uint64(1); i <= 600; i++ {
		src.recs = append(src.recs, AuditRecord{Seq: i, Time: time.Unix(1700000000, 0), Kind: "aga", Producer: fmt.Sprintf("tp%d", i%2),
			Operation: "add_knowledge", Success: i%5 != 0, Hash: fmt.Sprintf("h%d", i), JSON: []byte(fmt.Sprintf(`{"seq":%d}`, i))})
	}
	cur := &memCursor{}
	e := newTestExporter(t, c, Options{Signals: []string{SignalLogs}, Audit: src, Cursor: cur})
	stop := run(e)
	testutil.Eventually(t, time.Minute, func() bool { return cur.seq.Load() == 600 }, "cursor did not reach 600")
	stop()
	seqs := map[int64]int{}
	c.mu.Lock()
	for _, rl := range c.logs {
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				a := attrs(lr.Attributes)
				seq := a["aga.audit.seq"].(int64)
				seqs[seq]++
				if a["aga.audit.hash"] != fmt.Sprintf("h%d", seq) || lr.Body.GetStringValue() != fmt.Sprintf(`{"seq":%d}`, seq) {
					t.Errorf("record %d: %v body %v", seq, a, lr.Body)
				}
				if a["aga.producer"] != attrs(rl.Resource.Attributes)["aga.producer"] {
					t.Errorf("record %d under resource %v", seq, attrs(rl.Resource.Attributes))
				}
			}
		}
	}
	c.mu.Unlock()
	for i := int64(1); i <= 600; i++ {
		if seqs[i] != 1 {
			t.Errorf("record %d received %d times", i, seqs[i])
		}
	}
	// A restart resumes after the cursor: nothing new, nothing resent.
	src.recs = append(src.recs, AuditRecord{Seq: 601, Producer: "tp0", JSON: []byte(`{}`)})
	e2 := newTestExporter(t, c, Options{Signals: []string{SignalLogs}, Audit: src, Cursor: cur})
	stop = run(e2)
	testutil.Eventually(t, time.Minute, func() bool { return cur.seq.Load() == 601 }, "cursor did not reach 601")
	stop()
	n := 0
	c.mu.Lock()
	for _, rl := range c.logs {
		for _, sl := range rl.ScopeLogs {
			n += len(sl.LogRecords)
		}
	}
	c.mu.Unlock()
	if n != 601 {
		t.Errorf("%d audit log records after the restart, want 601", n)
	}
	if errs := e.stats[signalAudit].errors; errs != 2 {
		t.Errorf("%d failed audit exports counted, want 2", errs)
	}
}

func TestTLSWrongCAFailsClearly(t *testing.T) {
	o := Options{CAFile: "/nonexistent/ca.pem", Signals: []string{SignalTraces}}
	if _, err := New(context.Background(), o); err == nil || !strings.Contains(err.Error(), "otlp_tls_ca_file") {
		t.Errorf("error %v, want one naming otlp_tls_ca_file", err)
	}
}

// A producer's strings with invalid UTF-8 (protobuf refuses them) do not
// fail the batch: they arrive with U+FFFD, beside the other producers'.
func TestInvalidUTF8DoesNotPoisonBatches(t *testing.T) {
	c := startFullCollector(t)
	e := newTestExporter(t, c, Options{Signals: []string{SignalTraces, SignalLogs}, LogLevel: pipeline.LevelInfo})
	stop := run(e)
	bad := testProducer("bad", "model\xff", "pod\xfe")
	good := testProducer("good", "m", "p")
	errText := "boom\xc3"
	deliver(t, e, pipeline.SpanKeepOptions{}, []pipeline.Event{
		{Kind: pipeline.KindAudit, Producer: bad, Epoch: 1, Seq: 1, TimeNs: 1e18, Audit: &pipeline.Audit{Operation: "op\xff\xfe", Details: []byte("{\"k\":\"\xff\"}"), Error: &errText}},
		{Kind: pipeline.KindEvent, Producer: bad, Epoch: 1, Seq: 2, TimeNs: 1e18, Other: &pipeline.Other{Name: "ev\xff", Data: []byte("\"\xfe\"")}},
		{Kind: pipeline.KindAudit, Producer: good, Epoch: 2, Seq: 1, TimeNs: 1e18, Audit: &pipeline.Audit{Operation: "register", Success: true}},
	})
	stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	spans, logs := 0, 0
	for _, rs := range c.spans {
		for _, ss := range rs.ScopeSpans {
			spans += len(ss.Spans)
		}
	}
	for _, rl := range c.logs {
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				logs++
				if lr.EventName == "aga.ev\uFFFD" && !strings.Contains(lr.Body.GetKvlistValue().GetValues()[0].GetValue().GetStringValue(), "\uFFFD") {
					t.Errorf("event body %v", lr.Body)
				}
			}
		}
	}
	if spans != 2 || logs != 3 {
		t.Errorf("%d spans and %d log records arrived, want 2 audit spans and 3 records", spans, logs)
	}
}

// aggregation is a stand-in for the Prometheus exporter's AGA families:
// series labelled by producer (and node, as every series is).
type aggregation struct {
	reg     *prometheus.Registry
	forward *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func newAggregation(native bool) *aggregation {
	a := &aggregation{reg: prometheus.NewRegistry()}
	a.forward = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aga_forward_total", Help: "forwards",
		ConstLabels: prometheus.Labels{"node": "node-a"}}, []string{"producer", "layer", "applied"})
	ho := prometheus.HistogramOpts{Name: "aga_forward_latency_us", Help: "latency", Buckets: []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000},
		ConstLabels: prometheus.Labels{"node": "node-a"}}
	if native {
		ho.NativeHistogramBucketFactor = 1.1
	}
	a.latency = prometheus.NewHistogramVec(ho, []string{"producer", "layer"})
	a.reg.MustRegister(a.forward, a.latency)
	return a
}

// metricPoints returns, per producer resource, the points of a metric.
func metricPoints(c *fakeCollector, name string) map[string][]*metricspb.Metric {
	out := map[string][]*metricspb.Metric{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, req := range c.metrics {
		for _, rm := range req.ResourceMetrics {
			producer, _ := attrs(rm.Resource.Attributes)["aga.producer"].(string)
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name == name {
						out[producer] = append(out[producer], m)
					}
				}
			}
		}
	}
	return out
}

// The AGA families go out per producer, under its resource, without the
// producer and node attributes; the sums are what the aggregation holds.
func TestMetricsPerProducerResource(t *testing.T) {
	c := startFullCollector(t)
	agg := newAggregation(false)
	e := newTestExporter(t, c, Options{Signals: []string{SignalMetrics}, MetricsInterval: time.Hour, AGA: agg.reg})
	stop := run(e)
	p, q := testProducer("tp0", "m", "pod-a"), testProducer("tp1", "m", "pod-b")
	// The sink learns the producers (their resources) from their events.
	e.Write(context.Background(), []pipeline.Event{forward(p, 1, 5), forward(q, 1, 5)})
	agg.forward.WithLabelValues("tp0", "3", "true").Add(70)
	agg.forward.WithLabelValues("tp1", "3", "true").Add(30)
	stop() // the last export
	pts := metricPoints(c, "aga_forward_total")
	for name, want := range map[string]float64{"tp0": 70, "tp1": 30} {
		ms := pts[name]
		if len(ms) != 1 || len(ms[0].GetSum().DataPoints) != 1 {
			t.Fatalf("%s: %v", name, ms)
		}
		dp := ms[0].GetSum().DataPoints[0]
		a := attrs(dp.Attributes)
		if dp.GetAsDouble() != want || a["producer"] != nil || a["node"] != nil || a["layer"] != "3" || a["applied"] != "true" ||
			ms[0].GetSum().AggregationTemporality != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
			t.Errorf("%s: %v %v", name, dp, ms[0].GetSum().AggregationTemporality)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pods := map[string]string{}
	for _, req := range c.metrics {
		for _, rm := range req.ResourceMetrics {
			ra := attrs(rm.Resource.Attributes)
			if n, ok := ra["aga.producer"].(string); ok {
				pods[n], _ = ra["k8s.pod.name"].(string)
			}
		}
	}
	if pods["tp0"] != "pod-a" || pods["tp1"] != "pod-b" {
		t.Errorf("resources: %v", pods)
	}
}

// Classic histograms keep their bounds; native ones go out exponential;
// delta temporality sends the change since the previous export.
func TestHistogramKindAndDelta(t *testing.T) {
	for _, tc := range []struct {
		name   string
		native bool
		delta  bool
	}{{"explicit cumulative", false, false}, {"exponential delta", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := startFullCollector(t)
			agg := newAggregation(tc.native)
			o := Options{Signals: []string{SignalMetrics}, MetricsInterval: time.Hour, AGA: agg.reg}
			if tc.delta {
				o.Temporality = "delta"
			}
			e := newTestExporter(t, c, o)
			e.Write(context.Background(), []pipeline.Event{forward(testProducer("tp0", "m", ""), 1, 5)})
			agg.latency.WithLabelValues("tp0", "0").Observe(100)
			agg.latency.WithLabelValues("tp0", "0").Observe(2000)
			agg.forward.WithLabelValues("tp0", "0", "true").Add(2)
			e.exportMetrics(context.Background())
			agg.latency.WithLabelValues("tp0", "0").Observe(7)
			agg.forward.WithLabelValues("tp0", "0", "true").Add(1)
			e.exportMetrics(context.Background())
			hs, sums := metricPoints(c, "aga_forward_latency_us")["tp0"], metricPoints(c, "aga_forward_total")["tp0"]
			if len(hs) != 2 || len(sums) != 2 {
				t.Fatalf("%d histogram and %d sum exports, want 2 each", len(hs), len(sums))
			}
			wantCounts, wantSum := []uint64{2, 3}, []float64{2, 3}
			if tc.delta {
				wantCounts, wantSum = []uint64{2, 1}, []float64{2, 1}
			}
			for i := range hs {
				var count uint64
				if tc.native {
					eh := hs[i].GetExponentialHistogram()
					if eh == nil {
						t.Fatalf("export %d: not exponential: %v", i, hs[i])
					}
					count = eh.DataPoints[0].Count
				} else {
					h := hs[i].GetHistogram()
					if h == nil || len(h.DataPoints[0].ExplicitBounds) != 10 || h.DataPoints[0].ExplicitBounds[0] != 5 {
						t.Fatalf("export %d: %v", i, hs[i])
					}
					count = h.DataPoints[0].Count
				}
				if count != wantCounts[i] || sums[i].GetSum().DataPoints[0].GetAsDouble() != wantSum[i] {
					t.Errorf("export %d: count %d sum %v, want %d and %v", i, count, sums[i].GetSum().DataPoints[0].GetAsDouble(), wantCounts[i], wantSum[i])
				}
				wantT := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
				if tc.delta {
					wantT = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
				}
				if sums[i].GetSum().AggregationTemporality != wantT {
					t.Errorf("export %d: temporality %v", i, sums[i].GetSum().AggregationTemporality)
				}
			}
		})
	}
}

// Exemplars (the trace ids of slow spans on the latency buckets) arrive
// with 16- and 8-byte ids, not the hex text the bridge copies.
func TestExemplarIDs(t *testing.T) {
	c := startFullCollector(t)
	agg := newAggregation(false)
	e := newTestExporter(t, c, Options{Signals: []string{SignalMetrics}, MetricsInterval: time.Hour, AGA: agg.reg})
	e.Write(context.Background(), []pipeline.Event{forward(testProducer("tp0", "m", ""), 1, 5)})
	tid, sid := pipeline.TraceID(9, 1), pipeline.SpanID(9, 1)
	agg.latency.WithLabelValues("tp0", "0").(prometheus.ExemplarObserver).ObserveWithExemplar(2000,
		prometheus.Labels{"trace_id": hex.EncodeToString(tid[:]), "span_id": hex.EncodeToString(sid[:])})
	e.exportMetrics(context.Background())
	hs := metricPoints(c, "aga_forward_latency_us")["tp0"]
	if len(hs) != 1 {
		t.Fatalf("%d exports of the histogram (the export failed?)", len(hs))
	}
	ex := hs[0].GetHistogram().DataPoints[0].Exemplars
	if len(ex) != 1 || string(ex[0].TraceId) != string(tid[:]) || string(ex[0].SpanId) != string(sid[:]) {
		t.Errorf("exemplars %v, want trace %x span %x", ex, tid, sid)
	}
}

// The standard OTEL_EXPORTER_OTLP_* variables apply when our keys are
// unset, and ours win when set.
func TestOTELEnvironment(t *testing.T) {
	c := startFullCollector(t)
	down := "127.0.0.1:1" // nothing listens there
	for _, tc := range []struct {
		name, env, endpoint string
	}{{"environment only", "http://" + c.addr, ""}, {"our key wins", "http://" + down, c.addr}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.env)
			c.mu.Lock()
			c.spans = nil
			c.mu.Unlock()
			o := Options{Signals: []string{SignalTraces}, Endpoint: tc.endpoint, Insecure: tc.endpoint != "", Node: "node-a"}
			e, err := New(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			stop := run(e)
			deliver(t, e, pipeline.SpanKeepOptions{SlowUs: 1}, []pipeline.Event{forward(testProducer("tp0", "", ""), 1, 10)})
			stop()
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.spans) != 1 {
				t.Errorf("%d resource spans arrived, want 1", len(c.spans))
			}
		})
	}
}
