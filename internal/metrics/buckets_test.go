package metrics

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
)

// observe is the old one-call observation, for tests that feed a lone
// histogram: classic bucket, then native buckets.
func (h *hist) observe(v float64, bounds []float64, native bool, nativeDiv float64) int {
	t, nt := schema.NewBucketIndex(bounds), newNativeTable()
	b := t.Bucket(v)
	if b < 0 {
		return b
	}
	h.add(b, v)
	if native {
		h.observeNative(v/nativeDiv, &nt)
	}
	return b
}

// searchBucket is the bucket of the old linear search (-1: not observed).
func searchBucket(v float64, bounds []float64) int {
	if !pipeline.Finite(v) {
		return -1
	}
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	return i
}

// nearValues are vs, each with its neighbours a few ulps away, and
// special values.
func nearValues(vs ...float64) []float64 {
	out := []float64{0, math.Copysign(0, -1), -1, 5e-324, -5e-324, 1e-300, 1e300, math.MaxFloat64, -math.MaxFloat64,
		math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 1, 2, 0.5}
	for _, v := range vs {
		for _, x := range []float64{v, -v, v * 2, v / 2} {
			out = append(out, x)
			up, down := x, x
			for range 3 {
				up, down = math.Nextafter(up, math.Inf(1)), math.Nextafter(down, math.Inf(-1))
				out = append(out, up, down)
			}
		}
	}
	return out
}

// The bucket table gives the linear search's bucket for every value: at,
// around and between the bounds, of every histogram family in both
// namings and of bounds the table must refuse (unsorted, not finite,
// spread too wide) or handle at its edges (none positive, negative ones).
func TestBucketerMatchesSearch(t *testing.T) {
	cases := map[string][]float64{
		"empty":       nil,
		"one":         {1},
		"zero":        {0},
		"negative":    {-3, -1, -0.5},
		"mixed":       {-2, -0.25, 0, 1e-9, 3, 3.0000000001},
		"unsorted":    {1, 0.5, 2},
		"repeated":    {1, 1, 2},
		"infinite":    {1, math.Inf(1)},
		"nan":         {1, math.NaN()},
		"wide":        {1e-300, 1e300},
		"dense":       {1, math.Nextafter(1, 2), math.Nextafter(math.Nextafter(1, 2), 2)},
		"subnormal":   {5e-324, 1e-310, 1},
		"large":       {1e307, math.MaxFloat64},
		"smallbounds": {1e-3, 2e-3, 3e-3, 1},
	}
	for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
		for _, f := range New(Options{Naming: naming}).order {
			if f.Buckets != nil {
				cases[string(naming)+"/"+f.Key] = f.Buckets
				cases[string(naming)+"/"+f.Key+"/exposed"] = f.bounds
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for name, bounds := range cases {
		t.Run(name, func(t *testing.T) {
			bt := schema.NewBucketIndex(bounds)
			vals := nearValues(bounds...)
			for range 20000 {
				vals = append(vals, math.Ldexp(r.Float64(), r.IntN(80)-40), r.Float64()*10-1, float64(r.IntN(10000)))
			}
			for _, v := range vals {
				if got, want := bt.Bucket(v), searchBucket(v, bounds); got != want {
					t.Fatalf("bounds %v: %v (bits %#x) in bucket %d, want %d", bounds, v, math.Float64bits(v), got, want)
				}
			}
		})
	}
}

// The bit-level native index agrees with nativeIndex (the exposed buckets
// so far, float rounding included) at every schema: on random values over
// the whole float64 range, on powers of two and on the mantissas around
// every threshold, inside and outside the fallback margin.
func TestNativeTableMatchesNativeIndex(t *testing.T) {
	nt := newNativeTable()
	r := rand.New(rand.NewPCG(5, 6))
	var vals []float64
	for range 200000 {
		vals = append(vals, math.Ldexp(1+r.Float64(), r.IntN(2000)-1000))
	}
	for exp := -425; exp <= 1023; exp += 7 {
		vals = append(vals, math.Ldexp(1, exp), math.MaxFloat64)
		for _, th := range nt {
			for _, d := range []int64{-nativeMargin - 2, -nativeMargin - 1, -nativeMargin, -nativeMargin + 1, -700, -3, -1, 0, 1, 3, 700,
				nativeMargin - 1, nativeMargin, nativeMargin + 1, 1 << 30} {
				m := int64(th) + d
				if m < 0 || m >= 1<<52 {
					continue
				}
				vals = append(vals, math.Float64frombits(uint64(exp+1023)<<52|uint64(m)))
			}
		}
	}
	for s := int32(nativeSchema); s >= minNativeSchema; s-- {
		for _, v := range vals {
			if v <= nativeZeroLimit {
				continue
			}
			if got, want := nt.index(v, s), refNativeIndex(v, s); got != want {
				t.Fatalf("schema %d: %v (bits %#x) in bucket %d, nativeIndex %d", s, v, math.Float64bits(v), got, want)
			}
		}
	}
}

// refEvents is a batch of the pipeline's shape made hostile: runs of one
// producer's events cut mid-batch, producers forgotten and back, layers
// out of range and missing, non-finite and edge values (bounds and their
// neighbours, native thresholds), invalid marks, events without a
// producer, retrievals with scores.
func refEvents(r *rand.Rand, prods []*pipeline.Producer, seq *uint64, edges []float64) []pipeline.Event {
	val := func() float64 {
		switch r.IntN(8) {
		case 0:
			return edges[r.IntN(len(edges))]
		case 1:
			return math.Ldexp(1+r.Float64(), r.IntN(400)-200)
		case 2:
			return float64(r.IntN(6000))
		case 3:
			return r.Float64()*2 - 0.5
		}
		return r.Float64() * 1000
	}
	layers := []int32{-1, 0, 1, 29, 30, 31, 63, 64, 65, 200, math.MaxInt32, math.MinInt32}
	var evs []pipeline.Event
	for n := r.IntN(2000); n > 0; {
		p := prods[r.IntN(len(prods))]
		run := 1 + r.IntN(600)
		for ; run > 0 && n > 0; run, n = run-1, n-1 {
			*seq++
			ev := pipeline.Event{Producer: p, Epoch: 3, Seq: *seq, TimeNs: int64(*seq) * 1e5}
			switch x := r.IntN(100); {
			case x < 80:
				f := pipeline.Forward{}.WithApplied(r.IntN(3) > 0)
				if r.IntN(10) > 0 {
					l := int32(29 + r.IntN(3))
					if r.IntN(8) == 0 {
						l = layers[r.IntN(len(layers))]
					}
					f = f.WithLayer(l)
				}
				if r.IntN(10) > 0 {
					f = f.WithLatency(val())
				}
				if r.IntN(10) > 0 {
					f = f.WithGate(val())
				}
				if r.IntN(10) > 0 {
					f = f.WithEntropy(val())
				}
				ev.Kind, ev.Forward = pipeline.KindForward, f
				if r.IntN(20) == 0 {
					ev.Span = pipeline.SpanSlow
				}
			case x < 90:
				scores := make([]float64, r.IntN(4))
				for i := range scores {
					scores[i] = val()
				}
				ret := pipeline.Retrieval{Scores: scores}.WithInjected(int32(r.IntN(4) - 1))
				if r.IntN(5) > 0 {
					ret = ret.WithLayer(layers[r.IntN(len(layers))])
				}
				ev.Kind, ev.Retrieval = pipeline.KindRetrieval, &ret
			case x < 91:
				// Rare enough that producers live past the activation
				// window of 1000 forwards.
				if r.IntN(100) == 0 {
					ev.Kind, ev.Lifecycle = pipeline.KindLifecycle, &pipeline.Lifecycle{Type: pipeline.ProducerForgotten}
				} else {
					ev.Kind, ev.Lifecycle = pipeline.KindLifecycle, &pipeline.Lifecycle{Type: pipeline.ProducerAppeared}
				}
			case x < 98:
				ev.Kind, ev.Status = pipeline.KindStatus, &pipeline.Status{SlotChangeRate: ptr(val())}
			default:
				ev.Kind, ev.Forward = pipeline.KindForward, pipeline.Forward{}.WithLayer(30).WithLatency(val())
				ev.Producer = nil
			}
			if r.IntN(50) == 0 {
				ev.Invalid = pipeline.InvalidMask(r.IntN(1 << pipeline.NumInvalidFields))
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// exporterDump is everything e exposes: every family through Gather as
// protobuf text (native histograms and exemplars included), the scrape
// path's OpenMetrics text, and the exporter's self-metrics.
func exporterDump(t *testing.T, e *Exporter) string {
	t.Helper()
	var b bytes.Buffer
	mfs, err := e.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		b.WriteString(prototext.Format(mf))
	}
	b.Write(fastAGA(t, e, kindOM))
	ch := make(chan prometheus.Metric, 1024)
	if err := e.Collector().Update(ch); err != nil {
		t.Fatal(err)
	}
	close(ch)
	var self []string
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		self = append(self, prototext.Format(&d))
	}
	// The collector ranges over a map: order does not matter.
	slices.Sort(self)
	for _, s := range self {
		b.WriteString(s)
	}
	return b.String()
}

// Write gives what the old per-event path (refWrite) gives for the same
// events, byte for byte in every format, under every option set: the
// producer and layer caches, bucket tables and native index change only
// the cost.
func TestWriteMatchesReference(t *testing.T) {
	opts := fastOptions()
	opts["default"] = Options{}
	opts["native"] = Options{Native: true, MaxLayersPerProducer: 40}
	opts["conv-native-prodhist"] = Options{Naming: schema.Conventional, Native: true, ProducerHistograms: true}
	opts["spankeep"] = Options{Native: true, SpanKeep: &pipeline.SpanKeepOptions{SampleRate: 0.1, SlowUs: 500, MaxPerSecond: 50}}
	var edges []float64
	nt := newNativeTable()
	for _, f := range New(Options{Naming: schema.Conventional}).order {
		edges = append(edges, f.Buckets...)
		edges = append(edges, f.bounds...)
	}
	for _, m := range nt {
		edges = append(edges, math.Float64frombits(1023<<52|m&mantissaMask), math.Float64frombits(1030<<52|m&mantissaMask))
	}
	edges = nearValues(edges...)
	for name, o := range opts {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, uint64(len(name))))
			got, want := New(o), New(o)
			var prods []*pipeline.Producer
			for i := range 8 {
				prods = append(prods, producer(fmt.Sprintf("bench-%c", 'a'+i), i))
			}
			prods = append(prods, hostileProducer("w\xff\"{}", 9))
			var seq, seq2 uint64
			for step := range 60 {
				evs := refEvents(r, prods, &seq, edges)
				if step%3 == 2 {
					evs = append(evs, randomEvents(r, prods, &seq2)...)
				}
				if step%10 == 9 {
					// A producer restarts: a new one takes the name over.
					i := r.IntN(len(prods))
					prods[i] = producer(prods[i].Name, i)
				}
				if err := got.Write(context.Background(), evs); err != nil {
					t.Fatal(err)
				}
				want.refWrite(evs)
				if g, w := exporterDump(t, got), exporterDump(t, want); g != w {
					sameText(t, fmt.Sprintf("step %d", step), []byte(g), []byte(w))
				}
			}
		})
	}
}
