package anomaly

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The constant-folded indexes are the layouts' own: same bucket for every
// value, so quantiles (read through fine and coarse) stay where Add put
// the counts.
func TestIndexMatchesLayout(t *testing.T) {
	vals := []float64{math.SmallestNonzeroFloat64, math.MaxFloat64, 1, 0.25, 0.0625}
	for e := -30; e <= 40; e++ {
		p := math.Ldexp(1, e)
		vals = append(vals, p, math.Nextafter(p, 0), math.Nextafter(p, math.Inf(1)), p*1.3)
	}
	r := rand.New(rand.NewPCG(9, 10))
	for range 100_000 {
		vals = append(vals, math.Exp(r.Float64()*60-20))
	}
	for _, v := range vals {
		if got, want := histIndex(v), fine.index(v); got != want {
			t.Errorf("histIndex(%v) = %d, fine.index %d", v, got, want)
		}
		if got, want := layerIndex(v), coarse.index(v); got != want {
			t.Errorf("layerIndex(%v) = %d, coarse.index %d", v, got, want)
		}
	}
}
