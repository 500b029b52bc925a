package metrics

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// limitedCount is agaobs_cardinality_limited_total{producer,label}.
func limitedCount(t *testing.T, e *Exporter, producer, label string) float64 {
	t.Helper()
	self := selfmetrics.NewSet()
	self.Add("exporter", e.Collector())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(self)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "agaobs_cardinality_limited_total" {
			continue
		}
		for _, m := range mf.Metric {
			if labelOf(m, "producer") == producer && labelOf(m, "label") == label {
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("no agaobs_cardinality_limited_total{producer=%q,label=%q}", producer, label)
	return 0
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A producer writing 10⁶ distinct layer indexes costs bounded memory and
// at most limit+1 series per layer family (the limit, then "other"). The
// memory is measured as it goes, so an unbounded exporter fails after a
// few MB rather than after gigabytes.
func TestLayerCardinalityBounded(t *testing.T) {
	const (
		layers    = 1 << 20 // over 10⁶, a whole number of batches
		batch     = 4096
		maxGrowth = 16 << 20 // 256 layers take well under 1 MB
	)
	for _, native := range []bool{false, true} {
		t.Run(fmt.Sprintf("native=%v", native), func(t *testing.T) {
			e := New(Options{Native: native})
			p := producer("w", 0)
			evs := make([]pipeline.Event, batch)
			before, grown := heapInUse(), int64(0)
			for n := 0; n < layers; n += batch {
				for i := range evs {
					layer := int32(n + i)
					// Latencies over the whole float64 range: native
					// buckets without end, but for their own limit.
					evs[i] = fwd(p, layer, i%2 == 0, float64(i%100)/100, 1, math.Ldexp(1, (n+i)%2000-1000))
				}
				evs[0] = pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p, Retrieval: retrieval(
					pipeline.Retrieval{}.WithLayer(int32(n)).WithResults(0).WithInjected(1).WithBudget(0))}
				if err := e.Write(context.Background(), evs); err != nil {
					t.Fatal(err)
				}
				if n%(8*batch) == 0 || n+batch >= layers {
					if grown = int64(heapInUse()) - int64(before); grown > maxGrowth {
						t.Fatalf("heap grew %d MB after %d distinct layers", grown>>20, n+batch)
					}
				}
			}
			t.Logf("heap grew %d KB for %d distinct layers", grown>>10, layers)
			mfs, err := e.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				f := e.fams[familyKey(mf.GetName())]
				if f == nil || !containsLabel(f.Labels, "layer") {
					continue
				}
				limit := DefaultMaxLayersPerProducer + 1
				if f.Key == famForward {
					limit *= 2 // applied true and false
				}
				if len(mf.Metric) > limit {
					t.Errorf("%s: %d series, want at most %d", mf.GetName(), len(mf.Metric), limit)
				}
				if labelOf(mf.Metric[len(mf.Metric)-1], "layer") != otherValue {
					t.Errorf("%s: no layer=\"other\" series", mf.GetName())
				}
			}
			// Every event to a layer past the first 256 was limited.
			if got, want := limitedCount(t, e, "w", "layer"), float64(layers-DefaultMaxLayersPerProducer); got != want {
				t.Errorf("limited layer events %v, want %v", got, want)
			}
			if got := limitedCount(t, e, "w", "operation"); got != 0 {
				t.Errorf("limited operation events %v, want 0", got)
			}
			runtime.KeepAlive(e)
		})
	}
}

func familyKey(name string) string {
	for _, f := range schema.Families() {
		if f.Name("aga", schema.Compat) == name {
			return f.Key
		}
	}
	return ""
}

func containsLabel(ls []string, l string) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// The limit keeps the first layers seen; later ones, forwards and
// retrievals alike, count under "other"; a kept layer stays kept.
func TestLayerLimit(t *testing.T) {
	e := New(Options{MaxLayersPerProducer: 2, ConstLabels: map[string]string{"cluster": "test"}})
	p := producer("w", 0)
	e.Write(context.Background(), []pipeline.Event{
		fwd(p, 7, true, 0.5, 1, 10), fwd(p, 3, true, 0.5, 1, 10), // kept
		fwd(p, 9, false, 0.5, 1, 10), fwd(p, -1, true, 0.5, 1, 10), // other
		fwd(p, 7, true, 0.5, 1, 10),
		{Kind: pipeline.KindRetrieval, Producer: p, Retrieval: retrieval(pipeline.Retrieval{}.WithLayer(12).WithResults(0).WithInjected(4).WithBudget(0))},
	})
	want := `# HELP aga_forward_total AGA forward hook invocations, by layer and whether the injection was applied.
# TYPE aga_forward_total counter
aga_forward_total{applied="false",cluster="test",layer="3",producer="w"} 0
aga_forward_total{applied="false",cluster="test",layer="7",producer="w"} 0
aga_forward_total{applied="false",cluster="test",layer="other",producer="w"} 1
aga_forward_total{applied="true",cluster="test",layer="3",producer="w"} 1
aga_forward_total{applied="true",cluster="test",layer="7",producer="w"} 2
aga_forward_total{applied="true",cluster="test",layer="other",producer="w"} 1
# HELP aga_retrieval_injected_total Knowledge items injected by retrievals.
# TYPE aga_retrieval_injected_total counter
aga_retrieval_injected_total{cluster="test",layer="other",producer="w"} 4
`
	if err := testutil.GatherAndCompare(e, strings.NewReader(want), "aga_forward_total", "aga_retrieval_injected_total"); err != nil {
		t.Error(err)
	}
	if got := limitedCount(t, e, "w", "layer"); got != 3 {
		t.Errorf("limited layer events %v, want 3", got)
	}
}

// Operations past the 64th count under "other" and as limited events.
func TestOperationLimitCounted(t *testing.T) {
	e := New(Options{})
	p := producer("w", 0)
	var evs []pipeline.Event
	for i := 0; i < maxAuditOperations+10; i++ {
		evs = append(evs, pipeline.Event{Kind: pipeline.KindAudit, Producer: p, Audit: &pipeline.Audit{Operation: fmt.Sprintf("op%d", i), Success: true}})
	}
	// Known operations are not limited; these differ only in invalid
	// bytes and are one label value.
	evs = append(evs,
		pipeline.Event{Kind: pipeline.KindAudit, Producer: p, Audit: &pipeline.Audit{Operation: "op0", Success: true}},
		pipeline.Event{Kind: pipeline.KindAudit, Producer: p, Audit: &pipeline.Audit{Operation: "op1\xff", Success: true}},
		pipeline.Event{Kind: pipeline.KindAudit, Producer: p, Audit: &pipeline.Audit{Operation: "op1\xfe", Success: true}})
	e.Write(context.Background(), evs)
	if got := limitedCount(t, e, "w", "operation"); got != 12 {
		t.Errorf("limited operation events %v, want 12", got)
	}
	mfs, _ := e.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "aga_audit_operations_total" && len(mf.Metric) != maxAuditOperations+1 {
			t.Errorf("%d operation series, want %d plus other", len(mf.Metric), maxAuditOperations)
		}
	}
}

// A native histogram keeps at most maxNativeBuckets buckets, halving its
// resolution, and loses no observation doing so.
func TestNativeBucketsBounded(t *testing.T) {
	var h hist
	h.counts = make([]uint64, 2)
	n := 0
	for exp := -420; exp <= 1023; exp++ {
		for _, m := range []float64{1, 1.3, 1.9} {
			h.observe(math.Ldexp(m, exp), []float64{1}, true, 1)
			n++
		}
	}
	h.observe(math.MaxFloat64, []float64{1}, true, 1)
	h.observe(5e-324, []float64{1}, true, 1) // zero bucket
	n += 2
	if len(h.native) > maxNativeBuckets {
		t.Errorf("%d native buckets, want at most %d", len(h.native), maxNativeBuckets)
	}
	var total uint64
	for _, c := range h.native {
		total += c
	}
	if total+h.zero != uint64(n) || h.count != uint64(n) {
		t.Errorf("native buckets hold %d + zero %d observations, want %d", total, h.zero, n)
	}
	if s := h.schema(); s >= nativeSchema || s < minNativeSchema {
		t.Errorf("schema %d", s)
	}
}

// nativeIndex at every schema puts v in (2^((i-1)/2^s), 2^(i/2^s)], and
// merging buckets (halveResolution) agrees with indexing at the coarser
// schema.
func TestNativeIndex(t *testing.T) {
	vals := []float64{1, 2, 0.5, 1.0000001, 3, 1024, 1025, 1e-100, 7.5e300, math.MaxFloat64, 0.999}
	for s := int32(nativeSchema); s >= minNativeSchema; s-- {
		for _, v := range vals {
			i := nativeIndex(v, s)
			lo, hi := math.Exp2(float64(i-1)/math.Exp2(float64(s))), math.Exp2(float64(i)/math.Exp2(float64(s)))
			if !(v > lo*(1-1e-12) && v <= hi*(1+1e-12)) {
				t.Errorf("schema %d: %v in bucket %d = (%v, %v]", s, v, i, lo, hi)
			}
			if s > minNativeSchema {
				if got, want := (i+1)>>1, nativeIndex(v, s-1); got != want {
					t.Errorf("schema %d → %d: %v merges into %d, indexes as %d", s, s-1, v, got, want)
				}
			}
		}
	}
	// Exact powers of two are upper bounds.
	for s := int32(nativeSchema); s >= minNativeSchema; s-- {
		if i := nativeIndex(1, s); i != 0 {
			t.Errorf("schema %d: 1 in bucket %d, want 0", s, i)
		}
	}
	if i := nativeIndex(2, 0); i != 1 {
		t.Errorf("schema 0: 2 in bucket %d, want 1", i)
	}
	if i := nativeIndex(4, -1); i != 1 {
		t.Errorf("schema -1: 4 in bucket %d, want 1", i)
	}
}
