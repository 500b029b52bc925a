package metrics

import (
	"math"
)

// bucketer finds a value's classic bucket without a search: a positive
// float64's bits, shifted right, are a key that grows with the value, and
// the shift is chosen so that no two bounds share a key. A table indexed
// by key then leaves one comparison, against the one bound that may share
// the value's key. The bucket is the same as the first bound ≥ v
// (hist.add's index): the number of bounds below v.
type bucketer struct {
	bounds []float64
	shift  uint
	kmin   uint64 // key of the smallest positive bound
	below  int    // bucket of a positive value under every positive bound's key: the bounds ≤ 0
	cells  []bucketCell
	linear bool // bounds the table does not fit: a linear search
}

// bucketCell is one key of a bucketer: a value with this key is in bucket
// lo, or lo+1 when above bound (+Inf where no bound has the key), held as
// its bits: positive floats order as their bits do.
type bucketCell struct {
	bound uint64
	lo    int
}

// maxBucketCells bounds a bucketer's table; the schema's bounds need
// fewer than 50.
const maxBucketCells = 1024

func newBucketer(bounds []float64) bucketer {
	t := bucketer{bounds: bounds, linear: true}
	npos := 0
	for i, b := range bounds {
		if !(b-b == 0) || (i > 0 && !(b > bounds[i-1])) {
			return t // not finite or not strictly increasing
		}
		if b <= 0 {
			npos = i + 1
		}
	}
	pos := bounds[npos:]
	for shift := uint(52); ; shift-- {
		keys := make([]uint64, len(pos))
		distinct := true
		for i, b := range pos {
			keys[i] = math.Float64bits(b) >> shift
			distinct = distinct && (i == 0 || keys[i] > keys[i-1])
		}
		if distinct {
			if len(keys) > 0 && keys[len(keys)-1]-keys[0] >= maxBucketCells {
				return t
			}
			t.shift, t.below, t.linear = shift, npos, false
			if len(keys) == 0 {
				t.kmin = math.MaxUint64 // every positive value is below: bucket len(bounds) = npos
				return t
			}
			if keys[0] == 0 {
				return t // 0's key: 0 may be a bound (below) or not
			}
			t.kmin = keys[0]
			t.cells = make([]bucketCell, keys[len(keys)-1]-keys[0]+1)
			n := 0 // positive bounds with a smaller key
			for k := range t.cells {
				c := &t.cells[k]
				c.lo, c.bound = npos+n, math.Float64bits(math.Inf(1))
				if keys[n]-t.kmin == uint64(k) {
					c.bound = math.Float64bits(pos[n])
					n++
				}
			}
			return t
		}
		if shift == 0 {
			return t
		}
	}
}

// bucket returns v's classic bucket, or -1 for a non-finite v.
func (t *bucketer) bucket(v float64) int {
	if i, ok := t.cell(v); ok {
		return i
	}
	return t.outside(v)
}

// cell is bucket for a v with a key in the table (ok), which only a
// positive finite v has: a negative one's sign bit, +Inf's and NaN's
// exponent put theirs above every bound's, 0's is 0 and kmin is not.
// Inline, unlike bucket: a forward observes three histograms.
func (t *bucketer) cell(v float64) (int, bool) {
	b := math.Float64bits(v)
	k := b>>(t.shift&63) - t.kmin
	if k >= uint64(len(t.cells)) {
		return 0, false
	}
	c := &t.cells[k]
	// v > bound without a branch (values cross bounds at random): both
	// are below 2^63, so bound-b wraps, setting bit 63, exactly then.
	return c.lo + int((c.bound-b)>>63), true
}

// outside is bucket for a value without a key in the table.
func (t *bucketer) outside(v float64) int {
	if b := math.Float64bits(v); !t.linear && b-1 < 0x7ff0_0000_0000_0000-1 { // 0 < v < +Inf
		if b>>t.shift < t.kmin {
			return t.below
		}
		return len(t.bounds)
	}
	if !(v-v == 0) {
		return -1
	}
	i := 0
	for i < len(t.bounds) && v > t.bounds[i] {
		i++
	}
	return i
}

// nativeTable holds the mantissas (float64 bits 0–51) of 2^(j/2^nativeSchema),
// j = 0 … 2^nativeSchema: where a native bucket of the finest schema starts
// within a power of two, 1<<52 standing for the next power.
type nativeTable [1<<nativeSchema + 1]uint64

const mantissaMask = 1<<52 - 1

// nativeMargin: a mantissa this close to a threshold (relative 2^-32)
// takes nativeIndex. Its rounding (log2 of the fraction added to the
// exponent, up to 2^10) errs by under 2^-42 in log2, a few hundred units
// of the mantissa, so beyond the margin both answers are exact.
const nativeMargin = 1 << 20

func newNativeTable() nativeTable {
	var t nativeTable
	for j := 1; j < 1<<nativeSchema; j++ {
		t[j] = math.Float64bits(math.Exp2(float64(j)/(1<<nativeSchema))) & mantissaMask
	}
	t[1<<nativeSchema] = 1 << 52
	return t
}

// index is nativeIndex(v, s) for v > nativeZeroLimit (a normal float64)
// and s ≤ nativeSchema, from v's bits: exponent e and mantissa m, v =
// (1+m/2^52)·2^e. The bucket is ceil(2^s·log2 v) = e·2^s + the number of
// thresholds of schema s (every 2^(nativeSchema-s)-th of t) below m.
func (t *nativeTable) index(v float64, s int32) int32 {
	b := math.Float64bits(v)
	e, m := int32(b>>52)-1023, b&mantissaMask
	if s <= 0 {
		// As nativeIndex: ceil(log2 v), then ceil of that / 2^-s.
		if m != 0 {
			e++
		}
		return (e + int32(1)<<-s - 1) >> -s
	}
	if m == 0 {
		return e << s // a power of two: nativeIndex's log2 is exact there
	}
	c := 1
	for t[c] < m {
		c++
	}
	if m-t[c-1] < nativeMargin || t[c]-m < nativeMargin {
		return nativeIndex(v, s)
	}
	return e<<s + 1 + int32(c-1)>>(nativeSchema-s)
}
