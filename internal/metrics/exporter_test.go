package metrics

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
	agatest "github.com/agaobs/agaobs/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden exposition files")

func ptr[T any](v T) *T { return &v }

func retrieval(r pipeline.Retrieval) *pipeline.Retrieval { return &r }

func producer(name string, rank int) *pipeline.Producer {
	p := pipeline.NewProducer(name, name+"-key", 4000+rank, uint32(10+rank), "agaobs-10-4026531836-0", pipeline.Identity{
		Producer: name, Role: "worker", Rank: ptr(rank), WorldSize: ptr(2), Model: "tiny-llama", AGAVersion: "4.4.0",
		HiddenDim: ptr(4096), BottleneckDim: ptr(64), MaxSlots: ptr(256), Device: fmt.Sprintf("cuda:%d", rank),
		Pod: "infer-0", Namespace: "ml", Container: "server",
	})
	p.PodUID, p.ContainerID = "7c1e3a52-0b6f-4d8e-9a3c-2f1e0d9c8b7a", fmt.Sprintf("%064x", rank+1)
	return p
}

// testGPUs plays the GPU collector: rank r's process (host pid 4000+r)
// holds memory on GPU r, and rank 1 also on GPU 0.
func testGPUs(hostPID int) []string {
	switch hostPID {
	case 4000:
		return []string{"GPU-aaaa"}
	case 4001:
		return []string{"GPU-aaaa", "GPU-bbbb"}
	}
	return nil
}

func fwd(p *pipeline.Producer, layer int32, applied bool, gate, entropy, latency float64) pipeline.Event {
	f := pipeline.Forward{}.WithGate(gate).WithEntropy(entropy).WithLatency(latency).WithLayer(layer).WithApplied(applied)
	return pipeline.Event{Kind: pipeline.KindForward, Producer: p, Forward: f}
}

// knownSequence is the event sequence of the golden tests.
func knownSequence() ([]pipeline.Event, map[string]*pipeline.Producer) {
	p0, p1, gone := producer("worker-tp0", 0), producer("worker-tp1", 1), producer("worker-old", 9)
	var evs []pipeline.Event
	evs = append(evs, pipeline.Event{Kind: pipeline.KindLifecycle, Producer: p0, Lifecycle: &pipeline.Lifecycle{Type: pipeline.ProducerAppeared}})
	lat := []float64{3, 5, 7, 100, 6000}
	gate := []float64{0.0, 0.05, 0.1, 0.5, 1.0}
	ent := []float64{0, 0.5, 1.0, 4.5, 5.0}
	for i := range lat {
		evs = append(evs, fwd(p0, 0, i%2 == 0, gate[i], ent[i], lat[i]))
	}
	// Layer 1: no latency, no gate: neither is observed.
	evs = append(evs, pipeline.Event{Kind: pipeline.KindForward, Producer: p0, Forward: pipeline.Forward{}.WithLayer(1).WithEntropy(2)})
	// No layer: counted as layer 0, like the seed's default.
	evs = append(evs, pipeline.Event{Kind: pipeline.KindForward, Producer: p0, Forward: pipeline.Forward{}.WithLatency(20).WithApplied(true)})
	evs = append(evs,
		pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p0, Retrieval: retrieval(pipeline.Retrieval{Scores: []float64{0.9, 0.8, 0.05}}.WithLayer(0).WithResults(0).WithInjected(3).WithBudget(0))},
		pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p0, Retrieval: retrieval(pipeline.Retrieval{}.WithLayer(0).WithResults(0).WithInjected(0).WithBudget(0))},
		pipeline.Event{Kind: pipeline.KindAudit, Producer: p0, Audit: &pipeline.Audit{Operation: "register", Success: true}},
		pipeline.Event{Kind: pipeline.KindAudit, Producer: p0, Audit: &pipeline.Audit{Operation: "register", Success: true}},
		pipeline.Event{Kind: pipeline.KindAudit, Producer: p0, Audit: &pipeline.Audit{Operation: "clear", Success: false}},
		pipeline.Event{Kind: pipeline.KindStatus, Producer: p0, Status: &pipeline.Status{
			KVStore:        &pipeline.KVStoreStatus{Count: ptr(12.0), MaxSlots: ptr(256.0), Pinned: ptr(1.0)},
			SlotChangeRate: ptr(0.4), Build: &pipeline.Build{Version: "4.4.1"}}},
	)
	for i := 0; i < 3; i++ {
		evs = append(evs, fwd(p1, 5, true, 0.3, 1.5, 250))
	}
	evs = append(evs, fwd(gone, 0, true, 0.3, 1.5, 250),
		pipeline.Event{Kind: pipeline.KindLifecycle, Producer: gone, Lifecycle: &pipeline.Lifecycle{Type: pipeline.ProducerForgotten}})
	return evs, map[string]*pipeline.Producer{"tp0": p0, "tp1": p1}
}

func newLoaded(t testing.TB, naming schema.Naming, native bool) *Exporter {
	e := New(Options{Naming: naming, ConstLabels: map[string]string{"cluster": "test"}, Native: native, Node: "node-7", ProducerGPUs: testGPUs})
	evs, _ := knownSequence()
	if err := e.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestGoldenExposition(t *testing.T) {
	for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
		t.Run(string(naming), func(t *testing.T) {
			e := newLoaded(t, naming, false)
			golden := filepath.Join("testdata", "aga_"+string(naming)+".prom")
			if *update {
				mfs, _ := e.Gather()
				var buf bytes.Buffer
				for _, mf := range mfs {
					expfmt.MetricFamilyToText(&buf, mf)
				}
				os.WriteFile(golden, buf.Bytes(), 0o644)
			}
			f, err := os.Open(golden)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := testutil.GatherAndCompare(e, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The values the golden files hold, computed here independently.
func TestKnownValues(t *testing.T) {
	e := newLoaded(t, schema.Compat, false)
	mfs, _ := e.Gather()
	get := func(name string, labels map[string]string) *dto.Metric {
		m := agatest.FindSeries(mfs, name, labels)
		if m == nil {
			t.Fatalf("no series %s%v", name, labels)
		}
		return m
	}
	tp0 := map[string]string{"producer": "worker-tp0", "cluster": "test"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range tp0 {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	// Layer 0: events 0, 2, 4 applied plus the layer-less one; 1, 3 bypassed.
	if v := get("aga_forward_total", with("layer", "0", "applied", "true")).Counter.GetValue(); v != 4 {
		t.Errorf("applied forwards on layer 0 = %v, want 4", v)
	}
	if v := get("aga_forward_total", with("layer", "0", "applied", "false")).Counter.GetValue(); v != 2 {
		t.Errorf("bypassed forwards on layer 0 = %v, want 2", v)
	}
	// Latency observed for 3, 5, 7, 100, 6000 and 20 µs.
	h := get("aga_forward_latency_us", with("layer", "0")).Histogram
	wantCum := map[float64]uint64{5: 2, 10: 3, 25: 4, 50: 4, 100: 5, 5000: 5}
	for _, b := range h.Bucket {
		if w, ok := wantCum[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("latency le=%v count %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	if h.GetSampleCount() != 6 || h.GetSampleSum() != 6135 {
		t.Errorf("latency count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	// Entropy observed only when > 0: 0.5, 1.0, 4.5, 5.0 (and not the 0).
	if c := get("aga_entropy_value", with("layer", "0")).Histogram.GetSampleCount(); c != 4 {
		t.Errorf("entropy count %d, want 4", c)
	}
	if c := get("aga_gate_value", with("layer", "0")).Histogram.GetSampleCount(); c != 5 {
		t.Errorf("gate count %d, want 5 (the layer-less event had none)", c)
	}
	if v := get("aga_retrieval_injected_total", with("layer", "0")).Counter.GetValue(); v != 3 {
		t.Errorf("injected %v", v)
	}
	if v := get("aga_retrieval_total", with("layer", "0")).Counter.GetValue(); v != 2 {
		t.Errorf("retrievals %v", v)
	}
	if c := get("aga_retrieval_score", tp0).Histogram.GetSampleCount(); c != 3 {
		t.Errorf("scores %d", c)
	}
	if v := get("aga_audit_operations_total", with("operation", "clear", "success", "false")).Counter.GetValue(); v != 1 {
		t.Errorf("failed clears %v", v)
	}
	if v := get("aga_knowledge_utilization", tp0).Gauge.GetValue(); math.Abs(v-12.0/256) > 1e-12 {
		t.Errorf("utilization derived from count/max_slots = %v", v)
	}
	if v := get("aga_activation_rate", tp0).Gauge.GetValue(); math.Abs(v-4.0/7) > 1e-12 {
		t.Errorf("activation rate %v, want 4/7", v)
	}
	if m := get("aga_build_info", with("version", "4.4.1", "hidden_dim", "4096", "device", "cuda:0")); m.Gauge.GetValue() != 1 {
		t.Error("build info")
	}
	get("aga_producer_info", with("pid", "4000", "rank", "0", "producer_pod", "infer-0", "ring", "agaobs-10-4026531836-0"))
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetValue() == "worker-old" {
					t.Errorf("forgotten producer still exported in %s", mf.GetName())
				}
			}
		}
	}
}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		naming schema.Naming
		want   []string
	}{
		{schema.Conventional, nil},
		{schema.Compat, []string{
			`aga_forward_latency_us: metric names should not contain abbreviated units`,
			`aga_knowledge_count: non-histogram and non-summary metrics should not have "_count" suffix`,
			`aga_knowledge_pinned_count: non-histogram and non-summary metrics should not have "_count" suffix`,
		}},
	} {
		t.Run(string(tc.naming), func(t *testing.T) {
			problems, err := testutil.GatherAndLint(newLoaded(t, tc.naming, false))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range problems {
				got = append(got, p.Metric+": "+p.Text)
			}
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("lint problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestActivationWindowIsLast1000(t *testing.T) {
	e := New(Options{})
	p := producer("w", 0)
	var evs []pipeline.Event
	for i := 0; i < 1500; i++ {
		evs = append(evs, fwd(p, 0, i < 600, 0.5, 1, 10))
	}
	e.Write(context.Background(), evs)
	mfs, _ := e.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "aga_activation_rate" {
			if v := mf.Metric[0].Gauge.GetValue(); v != 0.1 {
				t.Fatalf("rate %v, want 0.1 (100 applied among the last 1000)", v)
			}
			return
		}
	}
	t.Fatal("no activation rate")
}

func TestNativeHistogram(t *testing.T) {
	e := New(Options{Native: true, Naming: schema.Conventional})
	p := producer("w", 0)
	e.Write(context.Background(), []pipeline.Event{fwd(p, 0, true, 0, 1, 1e6), fwd(p, 0, true, 1.0, 2, 2e6), fwd(p, 0, true, 1.0, 2, 2e6)})
	mfs, _ := e.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "aga_gate_value":
			h := mf.Metric[0].Histogram
			// 0 goes to the zero bucket; 1.0 is bucket 0 at any schema.
			if h.GetSchema() != 3 || h.GetZeroCount() != 1 || len(h.PositiveSpan) != 1 || h.PositiveSpan[0].GetOffset() != 0 ||
				h.PositiveSpan[0].GetLength() != 1 || len(h.PositiveDelta) != 1 || h.PositiveDelta[0] != 2 {
				t.Errorf("gate native histogram %v", h)
			}
		case "aga_forward_latency_seconds":
			h := mf.Metric[0].Histogram
			// 1 s → bucket 0, 2 s → bucket 8 (schema 3): spans [0,1] then gap 7.
			if len(h.PositiveSpan) != 2 || h.PositiveSpan[1].GetOffset() != 7 || fmt.Sprint(h.PositiveDelta) != "[1 1]" {
				t.Errorf("latency native histogram spans %v deltas %v", h.PositiveSpan, h.PositiveDelta)
			}
			if len(h.Bucket) != 10 || h.GetSampleSum() != 5 {
				t.Errorf("classic buckets kept beside native: %d buckets, sum %v", len(h.Bucket), h.GetSampleSum())
			}
		}
	}
}

func TestAuditOperationsBounded(t *testing.T) {
	e := New(Options{})
	p := producer("w", 0)
	var evs []pipeline.Event
	for i := 0; i < maxAuditOperations+10; i++ {
		evs = append(evs, pipeline.Event{Kind: pipeline.KindAudit, Producer: p, Audit: &pipeline.Audit{Operation: fmt.Sprintf("op%d", i), Success: true}})
	}
	e.Write(context.Background(), evs)
	mfs, _ := e.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "aga_audit_operations_total" && len(mf.Metric) != maxAuditOperations+1 {
			t.Fatalf("%d operation series, want %d plus other", len(mf.Metric), maxAuditOperations)
		}
	}
}

// The /metrics handler merges self-metrics and AGA families, applies const
// labels to both, and reports a failing collector without failing.
func TestHandler(t *testing.T) {
	e := newLoaded(t, schema.Compat, false)
	self := selfmetrics.NewSet()
	self.Add("rings", NewRingsCollector(snapshotOf([]ringRow{{Producer: "worker-tp0", Class: "hot", State: "live", Consumed: 7, Dropped: 2, Lost: 2, Fill: 0.25}})))
	self.Add("broken", failing{})
	reg := NewRegistry(map[string]string{"cluster": "test"}, e, self)
	srv := httptest.NewServer(reg.Handler(slogDiscard()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	body := buf.String()
	for _, want := range []string{
		`agaobs_ring_dropped_total{class="hot",cluster="test",producer="worker-tp0"} 2`,
		`agaobs_producer_up{cluster="test",producer="worker-tp0"} 1`,
		`agaobs_collector_success{cluster="test",collector="broken"} 0`,
		`agaobs_collector_success{cluster="test",collector="rings"} 1`,
		`aga_forward_total{applied="true",cluster="test",layer="0",producer="worker-tp0"} 4`,
		`agaobs_build_info{`, `go_goroutines{cluster="test"}`, `process_resident_memory_bytes{cluster="test"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Native histograms reach a scraper that negotiates protobuf, beside the
// classic buckets.
func TestNativeOverProtobuf(t *testing.T) {
	e := New(Options{Native: true})
	p := producer("w", 0)
	e.Write(context.Background(), []pipeline.Event{fwd(p, 0, true, 0.5, 1, 120)})
	srv := httptest.NewServer(NewRegistry(nil, e, nil).Handler(slogDiscard()))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		if mf.GetName() == "aga_forward_latency_us" {
			h := mf.Metric[0].Histogram
			if h.GetSchema() != 3 || len(h.PositiveDelta) != 1 || len(h.Bucket) != 10 {
				t.Fatalf("native histogram over protobuf: %v", h)
			}
			return
		}
	}
	t.Fatal("no aga_forward_latency_us in the protobuf exposition")
}
