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
	if o.Keep.MaxPerSecond == 0 {
		o.Keep.MaxPerSecond = 1000
	}
	e, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return e
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
	e := newTestExporter(t, c, Options{Keep: pipeline.SpanKeepOptions{SlowUs: 1000}, CriticalUs: 5000})
	stop := run(e)
	p := testProducer("tp0", "llama-70b", "serve-0")
	batch := []pipeline.Event{forward(p, 1, 10), forward(p, 2, 1000), forward(p, 3, 999.9), forward(p, 4, 6000)}
	if err := e.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
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
	e := newTestExporter(t, c, Options{QueueSize: 16, Keep: pipeline.SpanKeepOptions{SampleRate: 1, MaxPerSecond: 1 << 20}})
	stop := run(e)
	p := testProducer("tp0", "", "")
	const n = 5000
	batch := make([]pipeline.Event, n)
	for i := range batch {
		batch[i] = forward(p, uint64(i), 10)
	}
	e.Write(context.Background(), batch) // returns with the collector stalled
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

// The forward counter's points add up to the forwards written, per layer,
// under each producer's resource.
func TestMetricSums(t *testing.T) {
	c := startFullCollector(t)
	e := newTestExporter(t, c, Options{Signals: []string{SignalMetrics}, MetricsInterval: time.Hour})
	stop := run(e)
	p, q := testProducer("tp0", "m", "pod-a"), testProducer("tp1", "m", "pod-b")
	var batch []pipeline.Event
	for i := 0; i < 70; i++ {
		batch = append(batch, forward(p, uint64(i), 5))
	}
	for i := 0; i < 30; i++ {
		batch = append(batch, forward(q, uint64(i), 5))
	}
	e.Write(context.Background(), batch)
	stop() // the providers' shutdown exports once more
	sums := map[string]int64{}
	pods := map[string]string{}
	c.mu.Lock()
	for _, req := range c.metrics {
		for _, rm := range req.ResourceMetrics {
			ra := attrs(rm.Resource.Attributes)
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != "aga_forward" {
						continue
					}
					for _, dp := range m.GetSum().DataPoints {
						sums[ra["aga.producer"].(string)] += dp.GetAsInt()
						pods[ra["aga.producer"].(string)] = ra["k8s.pod.name"].(string)
					}
				}
			}
		}
	}
	c.mu.Unlock()
	if sums["tp0"] != 70 || sums["tp1"] != 30 || pods["tp0"] != "pod-a" || pods["tp1"] != "pod-b" {
		t.Errorf("forward sums %v pods %v, want tp0 70 (pod-a) and tp1 30 (pod-b)", sums, pods)
	}
}

func TestTLSWrongCAFailsClearly(t *testing.T) {
	o := Options{CAFile: "/nonexistent/ca.pem", Signals: []string{SignalTraces}}
	if _, err := New(context.Background(), o); err == nil || !strings.Contains(err.Error(), "otlp_tls_ca_file") {
		t.Errorf("error %v, want one naming otlp_tls_ca_file", err)
	}
}

// prometheus_native_histograms gives exponential histograms;
// otlp_metrics_temporality delta gives delta sums.
func TestHistogramKindAndTemporality(t *testing.T) {
	for _, tc := range []struct {
		name        string
		exponential bool
		temporality string
	}{{"explicit cumulative", false, ""}, {"exponential delta", true, "delta"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := startFullCollector(t)
			e := newTestExporter(t, c, Options{Signals: []string{SignalMetrics}, MetricsInterval: time.Hour,
				Exponential: tc.exponential, Temporality: tc.temporality})
			stop := run(e)
			p := testProducer("tp0", "m", "")
			e.Write(context.Background(), []pipeline.Event{forward(p, 1, 100), forward(p, 2, 2000)})
			stop()
			var hist, sum bool
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, req := range c.metrics {
				for _, rm := range req.ResourceMetrics {
					for _, sm := range rm.ScopeMetrics {
						for _, m := range sm.Metrics {
							switch m.Name {
							case "aga_forward_latency":
								if m.Unit != "s" {
									t.Errorf("latency unit %q", m.Unit)
								}
								if tc.exponential {
									hist = m.GetExponentialHistogram() != nil && m.GetExponentialHistogram().DataPoints[0].Count == 2
								} else if h := m.GetHistogram(); h != nil {
									dp := h.DataPoints[0]
									hist = dp.Count == 2 && len(dp.ExplicitBounds) == 10 && dp.ExplicitBounds[0] == 5e-6
								}
							case "aga_forward":
								want := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
								if tc.temporality == "delta" {
									want = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
								}
								sum = m.GetSum().AggregationTemporality == want
							}
						}
					}
				}
			}
			if !hist || !sum {
				t.Errorf("histogram as configured %v, temporality as configured %v", hist, sum)
			}
		})
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
	e.Write(context.Background(), []pipeline.Event{
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

// A producer writing more layers than the cap gets at most maxLayers
// attribute sets of its own and "other" for the rest; nothing is lost.
func TestLayerCap(t *testing.T) {
	c := startFullCollector(t)
	e := newTestExporter(t, c, Options{Signals: []string{SignalMetrics}, MetricsInterval: time.Hour})
	stop := run(e)
	p := testProducer("tp0", "m", "")
	var batch []pipeline.Event
	for l := 0; l < 1000; l++ {
		ev := forward(p, uint64(l), 5)
		ev.Forward = ev.Forward.WithLayer(int32(l))
		batch = append(batch, ev)
	}
	e.Write(context.Background(), batch)
	stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	sets, other, total := 0, int64(0), int64(0)
	for _, req := range c.metrics {
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name != "aga_forward_latency" {
						continue
					}
					for _, dp := range m.GetHistogram().DataPoints {
						sets++
						total += int64(dp.Count)
						if attrs(dp.Attributes)["layer"] == "other" {
							other += int64(dp.Count)
						}
					}
				}
			}
		}
	}
	if sets != maxLayers+1 || other != 1000-maxLayers || total != 1000 {
		t.Errorf("%d attribute sets (want %d), %d under other (want %d), %d in all", sets, maxLayers+1, other, 1000-maxLayers, total)
	}
}
