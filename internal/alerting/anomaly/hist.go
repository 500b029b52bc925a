package anomaly

import "math"

// logLinear is a histogram's bucket layout: 2^shift linear sub-buckets
// per power of two from 2^minExp to 2^maxExp, values outside in the end
// buckets. The bucket index comes from the float's bits: no log.
type logLinear struct{ minExp, maxExp, shift int }

func (l logLinear) buckets() int { return (l.maxExp - l.minExp) << l.shift }

func (l logLinear) index(v float64) int {
	bits := math.Float64bits(v)
	exp := int(bits>>52&0x7ff) - 1023
	switch {
	case exp < l.minExp:
		return 0
	case exp >= l.maxExp:
		return l.buckets() - 1
	}
	return (exp-l.minExp)<<l.shift + int(bits>>(52-l.shift)&(1<<l.shift-1))
}

// bounds returns bucket i's range [lo, hi).
func (l logLinear) bounds(i int) (lo, hi float64) {
	sub := 1 << l.shift
	base := math.Ldexp(1, i/sub+l.minExp)
	return base * (1 + float64(i%sub)/float64(sub)), base * (1 + float64(i%sub+1)/float64(sub))
}

// quantile returns the q-quantile of counts laid out as l, interpolated
// linearly within its bucket; ok is false when counts are all zero.
func quantile[C uint16 | uint32](l logLinear, counts []C, q float64) (float64, bool) {
	var total float64
	for _, c := range counts {
		total += float64(c)
	}
	if total == 0 || !(q >= 0 && q <= 1) {
		return 0, false
	}
	rank, cum := q*total, 0.0
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if next := cum + float64(c); next >= rank {
			lo, hi := l.bounds(i)
			return lo + (hi-lo)*((rank-cum)/float64(c)), true
		} else {
			cum = next
		}
	}
	_, hi := l.bounds(len(counts) - 1) // rounding: rank above the total
	return hi, true
}

// Hist is a log-linear histogram of positive values for one minute: eight
// linear sub-buckets per power of two from 2^histMinExp to 2^histMaxExp
// (1/16 µs to about 67 s for latencies), so a quantile moves with a shift
// of a few percent, which the exported buckets (a factor 2 to 2.5 apart)
// cannot show.
type Hist struct {
	n      uint64
	counts [histBuckets]uint32
}

const (
	histMinExp  = -4
	histMaxExp  = 26
	histShift   = 3
	histSub     = 1 << histShift
	histBuckets = (histMaxExp - histMinExp) * histSub
)

var fine = logLinear{minExp: histMinExp, maxExp: histMaxExp, shift: histShift}

// Add records v; values outside the range land in the end buckets, and
// non-positive or non-finite values are ignored.
func (h *Hist) Add(v float64) {
	if !(v > 0) || math.IsInf(v, 1) {
		return
	}
	h.counts[histIndex(v)]++
	h.n++
}

// histIndex is fine.index(v) with the layout's constants inlined: the
// per-event path then makes no loads or variable shifts for it.
func histIndex(v float64) int {
	return logLinear{minExp: histMinExp, maxExp: histMaxExp, shift: histShift}.index(v)
}

// histBounds returns bucket i's range [lo, hi).
func histBounds(i int) (lo, hi float64) { return fine.bounds(i) }

// Count is the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Quantile returns the q-quantile, interpolated linearly within its
// bucket; ok is false for an empty histogram.
func (h *Hist) Quantile(q float64) (float64, bool) { return quantile(fine, h.counts[:], q) }

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
	layerShift   = 2
	layerBuckets = (layerMaxExp - layerMinExp) << layerShift
)

var coarse = logLinear{minExp: layerMinExp, maxExp: layerMaxExp, shift: layerShift}

// layerIndex is coarse.index(v) with the constants inlined (histIndex).
func layerIndex(v float64) int {
	return logLinear{minExp: layerMinExp, maxExp: layerMaxExp, shift: layerShift}.index(v)
}

// Add records v (non-positive and non-finite values are ignored).
func (h *LayerHist) Add(v float64) {
	if !(v > 0) || math.IsInf(v, 1) {
		return
	}
	i := layerIndex(v)
	if h.counts[i] == math.MaxUint16 {
		for j := range h.counts {
			h.counts[j] >>= 1
		}
	}
	h.counts[i]++
}

// Quantile returns the q-quantile, interpolated linearly within its
// bucket; ok is false for an empty histogram.
func (h *LayerHist) Quantile(q float64) (float64, bool) { return quantile(coarse, h.counts[:], q) }
