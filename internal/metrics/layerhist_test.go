package metrics

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
)

// The golden exposition of the known sequence with
// prometheus_layer_histograms: false; the default's are aga_<naming>.prom.
func TestGoldenProducerHistograms(t *testing.T) {
	for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
		t.Run(string(naming), func(t *testing.T) {
			e := New(Options{Naming: naming, ConstLabels: map[string]string{"cluster": "test"}, Node: "node-7",
				ProducerGPUs: testGPUs, ProducerHistograms: true})
			evs, _ := knownSequence()
			if err := e.Write(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "aga_"+string(naming)+"_producer_histograms.prom")
			if *update {
				mfs, _ := e.Gather()
				var buf bytes.Buffer
				for _, mf := range mfs {
					expfmt.MetricFamilyToText(&buf, mf)
				}
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
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

// layerEvents are forwards of two producers on layers 0, 1 and 7 (and one
// beyond a limit of 3 layers), with retrievals, so that every histogram and
// per-layer counter has series.
func layerEvents() []pipeline.Event {
	var evs []pipeline.Event
	for r, name := range []string{"a", "b"} {
		p := producer(name, r)
		for i, layer := range []int32{0, 1, 7, 0, 7, 7, 9} {
			evs = append(evs, fwd(p, layer, i%2 == 0, float64(i)/10, float64(i+1)/2, float64(4+i*600+r)))
			evs = append(evs, pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p,
				Retrieval: retrieval(pipeline.Retrieval{Scores: []float64{0.5}}.WithLayer(layer).WithInjected(1))})
		}
	}
	return evs
}

func gatherMap(t *testing.T, e *Exporter) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := e.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelNames(m *dto.Metric) []string {
	var out []string
	for _, l := range m.Label {
		out = append(out, l.GetName())
	}
	return out
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// With ProducerHistograms the latency, gate and entropy histograms lose
// layer and hold, per producer, exactly what the per-layer histograms of
// the default add up to (classic and native buckets, count, sum); the
// counters, the retrieval score and the layer limit are the same in both
// modes.
func TestProducerHistograms(t *testing.T) {
	for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
		for _, native := range []bool{false, true} {
			name := string(naming)
			if native {
				name += "/native"
			}
			t.Run(name, func(t *testing.T) {
				opts := Options{Naming: naming, Native: native, MaxLayersPerProducer: 3, ConstLabels: map[string]string{"cluster": "c"}}
				perLayer := New(opts)
				opts.ProducerHistograms = true
				perProducer := New(opts)
				for _, e := range []*Exporter{perLayer, perProducer} {
					if err := e.Write(context.Background(), layerEvents()); err != nil {
						t.Fatal(err)
					}
				}
				byLayer, byProd := gatherMap(t, perLayer), gatherMap(t, perProducer)
				if len(byLayer) != len(byProd) {
					t.Fatalf("%d families per layer, %d per producer", len(byLayer), len(byProd))
				}
				for _, f := range schema.Families() {
					fam := f.Name("aga", naming)
					l, p := byLayer[fam], byProd[fam]
					layered := slices.Contains(f.Labels, "layer")
					if (l == nil) != (p == nil) || (l == nil && layered) {
						t.Fatalf("%s missing: per layer %v, per producer %v", fam, l != nil, p != nil)
					}
					if l == nil {
						continue // audit and status families: no such events here
					}
					if f.Type != schema.Histogram || !layered {
						// Counters and per-producer families: identical.
						var a, b bytes.Buffer
						expfmt.MetricFamilyToText(&a, l)
						expfmt.MetricFamilyToText(&b, p)
						if a.String() != b.String() {
							t.Errorf("%s differs between the modes:\n%s\n%s", fam, a.String(), b.String())
						}
						continue
					}
					if len(p.Metric) != 2 {
						t.Errorf("%s: %d series per producer mode, want 2 (one per producer)", fam, len(p.Metric))
					}
					if len(l.Metric) != 2*4 { // layers 0, 1, 7 and other
						t.Errorf("%s: %d series per layer mode, want 8", fam, len(l.Metric))
					}
					for _, m := range p.Metric {
						if got := labelNames(m); !slices.Equal(got, []string{"cluster", "producer"}) {
							t.Errorf("%s labels %v, want [cluster producer]", fam, got)
						}
						want := sumLayers(t, l, labelValue(m, "producer"))
						if got := m.Histogram; !sameHistogram(got, want) {
							t.Errorf("%s{producer=%s} = %v, want the sum of its layers %v", fam, labelValue(m, "producer"), got, want)
						}
					}
				}
			})
		}
	}
}

// sumLayers adds the producer's per-layer histograms of mf.
func sumLayers(t *testing.T, mf *dto.MetricFamily, producer string) *dto.Histogram {
	t.Helper()
	var out *dto.Histogram
	native := map[int32]int64{}
	for _, m := range mf.Metric {
		if labelValue(m, "producer") != producer {
			continue
		}
		h := m.Histogram
		if out == nil {
			out = &dto.Histogram{SampleCount: new(uint64), SampleSum: new(float64), ZeroCount: new(uint64)}
			for _, b := range h.Bucket {
				out.Bucket = append(out.Bucket, &dto.Bucket{UpperBound: b.UpperBound, CumulativeCount: new(uint64)})
			}
		}
		*out.SampleCount += h.GetSampleCount()
		*out.SampleSum += h.GetSampleSum()
		*out.ZeroCount += h.GetZeroCount()
		for i, b := range h.Bucket {
			*out.Bucket[i].CumulativeCount += b.GetCumulativeCount()
		}
		for i, c := range nativeCounts(h) {
			native[i] += c
		}
		if h.Schema != nil {
			if out.Schema != nil && out.GetSchema() != h.GetSchema() {
				t.Fatalf("layers of %s at different schemas", producer)
			}
			out.Schema = h.Schema
		}
	}
	if out == nil {
		t.Fatalf("no per-layer histogram of %s", producer)
	}
	out.PositiveDelta = nil
	for _, i := range slices.Sorted(mapKeys(native)) {
		out.PositiveDelta = append(out.PositiveDelta, int64(i), native[i]) // compared as (index, count) pairs
	}
	return out
}

func mapKeys(m map[int32]int64) func(func(int32) bool) {
	return func(yield func(int32) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// nativeCounts decodes h's positive native buckets: index → count.
func nativeCounts(h *dto.Histogram) map[int32]int64 {
	out := map[int32]int64{}
	var idx int32
	var c int64
	d := 0
	for _, sp := range h.PositiveSpan {
		idx += sp.GetOffset()
		for n := uint32(0); n < sp.GetLength(); n++ {
			c += h.PositiveDelta[d]
			d++
			out[idx] = c
			idx++
		}
	}
	return out
}

func sameHistogram(got, want *dto.Histogram) bool {
	// The sums add the same values in another order.
	if got.GetSampleCount() != want.GetSampleCount() || math.Abs(got.GetSampleSum()-want.GetSampleSum()) > 1e-9*math.Abs(want.GetSampleSum()) ||
		got.GetZeroCount() != want.GetZeroCount() || got.GetSchema() != want.GetSchema() || len(got.Bucket) != len(want.Bucket) {
		return false
	}
	for i, b := range got.Bucket {
		if b.GetUpperBound() != want.Bucket[i].GetUpperBound() || b.GetCumulativeCount() != want.Bucket[i].GetCumulativeCount() {
			return false
		}
	}
	native := nativeCounts(got)
	var pairs []int64
	for _, i := range slices.Sorted(mapKeys(native)) {
		pairs = append(pairs, int64(i), native[i])
	}
	return slices.Equal(pairs, want.PositiveDelta)
}

// Write allocates nothing once a producer's layers exist, in both modes.
func TestWriteAllocsByHistogramMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"per layer", Options{}},
		{"per producer", Options{ProducerHistograms: true}},
		{"per producer, native", Options{ProducerHistograms: true, Native: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(tc.opts)
			p := producer("w", 0)
			batch := make([]pipeline.Event, 256)
			for i := range batch {
				batch[i] = fwd(p, int32(i%3), i%2 == 0, 0.4, 1.5, float64(100+i%900))
			}
			e.Write(context.Background(), batch) // layers and native buckets exist
			if n := testing.AllocsPerRun(20, func() { e.Write(context.Background(), batch) }); n != 0 {
				t.Errorf("%v allocations per batch", n)
			}
		})
	}
}
