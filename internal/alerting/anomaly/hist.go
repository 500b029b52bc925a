package anomaly

import "math"

// Hist is a log-linear histogram of positive values for one minute: eight
// linear sub-buckets per power of two from 2^histMinExp to 2^histMaxExp
// (1/16 µs to about 67 s for latencies), so a quantile moves with a shift
// of a few percent, which the exported buckets (a factor 2 to 2.5 apart)
// cannot show. The bucket index comes from the float's bits: no log.
type Hist struct {
	n      uint64
	counts [histBuckets]uint32
}

const (
	histMinExp  = -4
	histMaxExp  = 26
	histSub     = 8
	histBuckets = (histMaxExp - histMinExp) * histSub
)

// Add records v; values outside the range land in the end buckets, and
// non-positive or non-finite values are ignored.
func (h *Hist) Add(v float64) {
	if !(v > 0) || math.IsInf(v, 1) {
		return
	}
	h.counts[histIndex(v)]++
	h.n++
}

func histIndex(v float64) int {
	bits := math.Float64bits(v)
	exp := int(bits>>52&0x7ff) - 1023
	if exp < histMinExp {
		return 0
	}
	if exp >= histMaxExp {
		return histBuckets - 1
	}
	return (exp-histMinExp)*histSub + int(bits>>(52-3)&(histSub-1))
}

// histBounds returns bucket i's range [lo, hi).
func histBounds(i int) (lo, hi float64) {
	exp, sub := i/histSub+histMinExp, i%histSub
	base := math.Ldexp(1, exp)
	return base * (1 + float64(sub)/histSub), base * (1 + float64(sub+1)/histSub)
}

// Count is the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Quantile returns the q-quantile, interpolated linearly within its
// bucket; ok is false for an empty histogram.
func (h *Hist) Quantile(q float64) (float64, bool) {
	if h.n == 0 {
		return 0, false
	}
	rank := q * float64(h.n)
	var cum float64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		if next := cum + float64(c); next >= rank {
			lo, hi := histBounds(i)
			return lo + (hi-lo)*((rank-cum)/float64(c)), true
		} else {
			cum = next
		}
	}
	lo, hi := histBounds(histBuckets - 1)
	return (lo + hi) / 2, true
}

// Reset empties h.
func (h *Hist) Reset() { *h = Hist{} }
