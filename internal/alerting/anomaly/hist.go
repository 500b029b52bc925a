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
	if h.n == 0 || !(q >= 0 && q <= 1) {
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

// LayerHist is the per-layer minute histogram: 4 linear sub-buckets per
// power of two from 2^-2 to 2^22 (0.25 µs to about 4 s) in 16-bit counts,
// 192 bytes. At 96 layers × 8 producers every layer's state fits in a
// core's L2 cache, where the fine Hist (1 KiB each) did not and cost the
// agent a cache miss per event. A count about to overflow halves every
// count of the layer: a quantile needs only their proportions.
type LayerHist struct {
	counts [layerBuckets]uint16
}

const (
	layerMinExp  = -2
	layerMaxExp  = 22
	layerSub     = 4
	layerBuckets = (layerMaxExp - layerMinExp) * layerSub
)

// Add records v (non-positive and non-finite values are ignored).
func (h *LayerHist) Add(v float64) {
	if !(v > 0) || math.IsInf(v, 1) {
		return
	}
	bits := math.Float64bits(v)
	exp := int(bits>>52&0x7ff) - 1023
	i := 0
	switch {
	case exp < layerMinExp:
	case exp >= layerMaxExp:
		i = layerBuckets - 1
	default:
		i = (exp-layerMinExp)*layerSub + int(bits>>(52-2)&(layerSub-1))
	}
	if h.counts[i] == math.MaxUint16 {
		for j := range h.counts {
			h.counts[j] >>= 1
		}
	}
	h.counts[i]++
}

// Quantile returns the q-quantile, interpolated linearly within its
// bucket; ok is false for an empty histogram.
func (h *LayerHist) Quantile(q float64) (float64, bool) {
	if !(q >= 0 && q <= 1) {
		return 0, false
	}
	var total float64
	for _, c := range h.counts {
		total += float64(c)
	}
	if total == 0 {
		return 0, false
	}
	rank, cum := q*total, 0.0
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		if next := cum + float64(c); next >= rank {
			exp, sub := i/layerSub+layerMinExp, i%layerSub
			base := math.Ldexp(1, exp)
			lo, hi := base*(1+float64(sub)/layerSub), base*(1+float64(sub+1)/layerSub)
			return lo + (hi-lo)*((rank-cum)/float64(c)), true
		} else {
			cum = next
		}
	}
	return math.Ldexp(1, layerMaxExp), true
}
