package anomaly

import (
	"math/rand/v2"
	"testing"
)

func TestZZExplore(t *testing.T) {
	const mu, sd = 1000.0, 20.0
	f := Floors{Floor: sd / 2}
	r := rand.New(rand.NewPCG(3, 1))
	var b Baseline
	for m := int64(0); m < 2*1440+300; m++ {
		b.Observe(f, t0+m, mu+sd*r.NormFloat64())
	}
	for m := int64(2*1440 + 300); m < 2*1440+300+240; m++ {
		s := b.Observe(f, t0+m, mu+8*sd+sd*r.NormFloat64())
		if m%20 == 0 {
			t.Logf("%d z %.2f sig %.2f exp %.1f", m, s.Z, s.Sigma, s.Expected)
		}
	}
}
