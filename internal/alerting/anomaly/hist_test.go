package anomaly

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// histRes is the histogram's relative resolution: a bucket spans at most
// 1/8 of its lower bound.
const histRes = 1.0 / histSub

// exactQuantile is the value of rank ceil(q·n) of the sorted samples, the
// element whose bucket Hist.Quantile interpolates in.
func exactQuantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(len(sorted)-1, i))]
}

func TestHistQuantileDistributions(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) float64
	}{
		{"uniform 100..1000", func(r *rand.Rand) float64 { return 100 + 900*r.Float64() }},
		{"exponential mean 250", func(r *rand.Rand) float64 { return 250 * r.ExpFloat64() }},
		{"lognormal µ=ln 2000 σ=1", func(r *rand.Rand) float64 { return math.Exp(math.Log(2000) + r.NormFloat64()) }},
		{"normal 5000±50", func(r *rand.Rand) float64 { return 5000 + 50*r.NormFloat64() }},
		{"pareto α=1.5 from 10", func(r *rand.Rand) float64 { return 10 / math.Pow(1-r.Float64(), 1/1.5) }},
		{"bimodal 50 / 40000", func(r *rand.Rand) float64 {
			if r.IntN(10) == 0 {
				return 40000 * (1 + 0.05*r.NormFloat64())
			}
			return 50 * (1 + 0.05*r.NormFloat64())
		}},
	}
	qs := []float64{0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(i)+1, 7))
			var h Hist
			vals := make([]float64, 0, 20000)
			for range 20000 {
				v := tc.gen(r)
				vals = append(vals, v)
				h.Add(v)
			}
			slices.Sort(vals)
			if h.Count() != uint64(len(vals)) {
				t.Fatalf("Count = %d, want %d", h.Count(), len(vals))
			}
			prev := 0.0
			for _, q := range qs {
				got, ok := h.Quantile(q)
				if !ok {
					t.Fatalf("Quantile(%v): ok false", q)
				}
				want := exactQuantile(vals, q)
				if rel := math.Abs(got-want) / want; rel > histRes {
					t.Errorf("Quantile(%v) = %.4g, exact %.4g: off by %.1f%% (resolution %.1f%%)", q, got, want, 100*rel, 100*histRes)
				}
				if got < prev {
					t.Errorf("Quantile(%v) = %.4g below the previous quantile %.4g", q, got, prev)
				}
				prev = got
			}
		})
	}
}

// TestHistInterpolates: within a bucket the quantile is interpolated, so
// a smooth distribution's quantiles come out far better than the bucket
// width.
func TestHistInterpolates(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	var h Hist
	for range 100000 {
		h.Add(100 + 900*r.Float64())
	}
	for _, q := range []float64{0.05, 0.25, 0.5, 0.75, 0.95} {
		got, _ := h.Quantile(q)
		if want := 100 + 900*q; math.Abs(got-want)/want > 0.01 {
			t.Errorf("uniform 100..1000: Quantile(%v) = %.1f, want %.1f within 1%%", q, got, want)
		}
	}
}

// TestHistShiftVisible: a 5% shift of every value moves the median by
// about 5%, which the exported buckets could not show.
func TestHistShiftVisible(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	var a, b Hist
	for range 10000 {
		v := 800 * (1 + 0.1*r.NormFloat64())
		a.Add(v)
		b.Add(1.05 * v)
	}
	ma, _ := a.Quantile(0.5)
	mb, _ := b.Quantile(0.5)
	if shift := mb/ma - 1; shift < 0.03 || shift > 0.07 {
		t.Fatalf("median moved %.1f%% for a 5%% shift (%.1f -> %.1f)", 100*shift, ma, mb)
	}
}

func TestHistPointMass(t *testing.T) {
	for _, v := range []float64{0.0625, 0.1, 1, 3, 7.5, 1000, 1024, 123456.789, 5e7} {
		var h Hist
		for range 100 {
			h.Add(v)
		}
		for _, q := range []float64{0, 0.5, 1} {
			got, ok := h.Quantile(q)
			if !ok || got < v/(1+histRes) || got > v*(1+histRes) {
				t.Errorf("point mass %g: Quantile(%v) = %g, %v; want within %.1f%%", v, q, got, ok, 100*histRes)
			}
		}
	}
}

func TestHistIgnores(t *testing.T) {
	var h Hist
	for _, v := range []float64{0, math.Copysign(0, -1), -1, -1e9, math.Inf(-1), math.Inf(1), math.NaN(), -math.SmallestNonzeroFloat64} {
		h.Add(v)
	}
	if h.Count() != 0 {
		t.Fatalf("Count = %d after only ignored values, want 0", h.Count())
	}
	if q, ok := h.Quantile(0.5); ok {
		t.Fatalf("Quantile of an empty histogram = %g, ok true", q)
	}
	h.Add(100)
	h.Add(math.NaN())
	h.Add(-5)
	if h.Count() != 1 {
		t.Fatalf("Count = %d, want 1", h.Count())
	}
	if q, _ := h.Quantile(0.99); q < 100/(1+histRes) || q > 100*(1+histRes) {
		t.Fatalf("Quantile(0.99) = %g, want about 100", q)
	}
}

func TestHistClamping(t *testing.T) {
	lo0, hi0 := histBounds(0)
	loN, hiN := histBounds(histBuckets - 1)
	tests := []struct {
		name   string
		v      float64
		lo, hi float64
	}{
		{"smallest subnormal", math.SmallestNonzeroFloat64, lo0, hi0},
		{"1e-9", 1e-9, lo0, hi0},
		{"just below 2^-4", math.Nextafter(0.0625, 0), lo0, hi0},
		{"2^-4", 0.0625, lo0, hi0},
		{"2^26", math.Ldexp(1, histMaxExp), loN, hiN},
		{"1e12", 1e12, loN, hiN},
		{"max float64", math.MaxFloat64, loN, hiN},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Hist
			h.Add(tc.v)
			if h.Count() != 1 {
				t.Fatalf("Count = %d, want 1 (clamped, not dropped)", h.Count())
			}
			for _, q := range []float64{0.01, 0.5, 1} {
				got, ok := h.Quantile(q)
				if !ok || got < tc.lo || got > tc.hi {
					t.Errorf("Quantile(%v) = %g, %v; want in end bucket [%g, %g]", q, got, ok, tc.lo, tc.hi)
				}
			}
		})
	}
}

// TestHistIndexBounds: every in-range value lies in its bucket's bounds,
// the buckets tile the range without gaps, and the index is monotone.
func TestHistIndexBounds(t *testing.T) {
	for i := 0; i < histBuckets; i++ {
		lo, hi := histBounds(i)
		if !(lo < hi) || (hi-lo)/lo > histRes+1e-12 {
			t.Fatalf("bucket %d: [%g, %g) wider than %.1f%%", i, lo, hi, 100*histRes)
		}
		if i > 0 {
			if _, prevHi := histBounds(i - 1); prevHi != lo {
				t.Fatalf("bucket %d starts at %g, bucket %d ends at %g", i, lo, i-1, prevHi)
			}
		}
		if got := histIndex(lo); got != i {
			t.Fatalf("histIndex(%g) = %d, want %d (its lower bound)", lo, got, i)
		}
		if got := histIndex(math.Nextafter(hi, 0)); got != i {
			t.Fatalf("histIndex(just below %g) = %d, want %d", hi, got, i)
		}
	}
	r := rand.New(rand.NewPCG(9, 9))
	minV, maxV := math.Ldexp(1, histMinExp), math.Ldexp(1, histMaxExp)
	prevV, prevI := 0.0, -1
	vals := make([]float64, 5000)
	for k := range vals {
		vals[k] = math.Exp(math.Log(minV) + r.Float64()*(math.Log(maxV)-math.Log(minV)))
	}
	slices.Sort(vals)
	for _, v := range vals {
		i := histIndex(v)
		lo, hi := histBounds(i)
		if v < lo || v >= hi {
			t.Fatalf("%g in bucket %d = [%g, %g)", v, i, lo, hi)
		}
		if i < prevI {
			t.Fatalf("histIndex(%g) = %d < histIndex(%g) = %d", v, i, prevV, prevI)
		}
		prevV, prevI = v, i
	}
}

func TestHistReset(t *testing.T) {
	var h Hist
	for v := 1.0; v < 1000; v *= 1.5 {
		h.Add(v)
	}
	if h.Count() == 0 {
		t.Fatal("nothing recorded")
	}
	h.Reset()
	if h.Count() != 0 || h != (Hist{}) {
		t.Fatal("Reset left data behind")
	}
	if _, ok := h.Quantile(0.5); ok {
		t.Fatal("Quantile after Reset: ok true")
	}
	h.Add(42)
	if q, _ := h.Quantile(0.5); q < 42/(1+histRes) || q > 42*(1+histRes) {
		t.Fatalf("after Reset and Add(42): median %g", q)
	}
}

// LayerHist: quantiles within its 4-per-octave resolution (linear
// interpolation keeps them within a bucket of the truth), non-positive and
// non-finite values ignored, and a saturating bucket halves every count
// without moving the quantiles.
func TestLayerHist(t *testing.T) {
	var h LayerHist
	if _, ok := h.Quantile(0.5); ok {
		t.Fatal("empty LayerHist has a quantile")
	}
	for _, v := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		h.Add(v)
	}
	if _, ok := h.Quantile(0.5); ok {
		t.Fatal("ignored values were counted")
	}
	// 1000 values uniform in [100, 200) µs and 10 at 1000 µs.
	for i := range 1000 {
		h.Add(100 + float64(i)/10)
	}
	for range 10 {
		h.Add(1000)
	}
	if p50, _ := h.Quantile(0.5); p50 < 130 || p50 > 175 {
		t.Errorf("p50 = %v, want about 150", p50)
	}
	if p99, _ := h.Quantile(0.995); p99 < 768 || p99 > 1024 {
		t.Errorf("p99.5 = %v, want in the bucket of 1000, [768, 1024)", p99)
	}
	// Saturate two buckets with 200 000 values each (over the 16-bit
	// counts): every count halves when one would overflow, and the
	// proportions, hence the quantiles, stay.
	var s LayerHist
	for range 200000 {
		s.Add(150)
		s.Add(1000)
	}
	if p50, _ := s.Quantile(0.25); p50 < 128 || p50 >= 160 {
		t.Errorf("after saturation p25 = %v, want in the 150 µs bucket [128, 160)", p50)
	}
	if p75, _ := s.Quantile(0.75); p75 < 768 || p75 >= 1024 {
		t.Errorf("after saturation p75 = %v, want in the 1000 µs bucket", p75)
	}
	if _, ok := h.Quantile(math.NaN()); ok {
		t.Error("a NaN quantile")
	}
}
