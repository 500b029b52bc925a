package schema

import (
	"math"
)

// BucketIndex finds a value's classic histogram bucket without a search: a positive
// float64's bits, shifted right, are a key that grows with the value, and
// the shift is chosen so that no two bounds share a key. A table indexed
// by key then leaves one comparison, against the one bound that may share
// the value's key. The bucket is the same as the first bound ≥ v
// (Prometheus's le): the number of bounds below v. The exporter's
// histograms and the alert engine's latency windows share it over the
// same bounds.
type BucketIndex struct {
	bounds []float64
	shift  uint
	kmin   uint64 // key of the smallest positive bound
	below  int    // bucket of a positive value under every positive bound's key: the bounds ≤ 0
	cells  []bucketCell
	linear bool // bounds the table does not fit: a linear search
}

// bucketCell is one key of a BucketIndex: a value with this key is in bucket
// lo, or lo+1 when above bound (+Inf where no bound has the key), held as
// its bits: positive floats order as their bits do.
type bucketCell struct {
	bound uint64
	lo    int
}

// maxBucketCells bounds a BucketIndex's table; the schema's bounds need
// fewer than 50.
const maxBucketCells = 1024

// NewBucketIndex indexes bounds (any: bounds the table does not fit are
// searched).
func NewBucketIndex(bounds []float64) BucketIndex {
	t := BucketIndex{bounds: bounds, linear: true}
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

// Bucket returns v's bucket, or -1 for a non-finite v.
func (t *BucketIndex) Bucket(v float64) int {
	if i, ok := t.Cell(v); ok {
		return i
	}
	return t.Outside(v)
}

// Cell is Bucket for a v with a key in the table (ok), which only a
// positive finite v has: a negative one's sign bit, +Inf's and NaN's
// exponent put theirs above every bound's, 0's is 0 and kmin is not.
// Inline, unlike Bucket: a forward observes three histograms.
func (t *BucketIndex) Cell(v float64) (int, bool) {
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

// Outside is Bucket for a value without a key in the table.
func (t *BucketIndex) Outside(v float64) int {
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
