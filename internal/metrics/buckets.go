package metrics

import (
	"math"
)

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
