package live

import (
	"math"
	"math/bits"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// latencyBucket is pipeline.LatencyBucket(d) without its two float
// divisions, which cost about half of Write: the bucket of the smallest
// duration of d's bit length, plus the bucket bounds within that bit
// length that d reaches (all four, unrolled). The bounds are found once from
// pipeline.LatencyBucket itself (it never decreases with d), so both
// agree by construction; TestLatencyBucketMatchesPipeline checks it.
func latencyBucket(d time.Duration) int {
	if d <= 0 {
		return 0 // LatencyBucket(max(d, 0))
	}
	e := &durBuckets[bits.Len64(uint64(d))]
	if e.slow {
		return slowBucket(d)
	}
	// v > below[i] without branches: the sign of below[i]-v (no overflow,
	// both are positive).
	v := int64(d)
	return int(e.base) + int(uint64(e.below[0]-v)>>63+uint64(e.below[1]-v)>>63+
		uint64(e.below[2]-v)>>63+uint64(e.below[3]-v)>>63)
}

// slowBucket keeps pipeline.LatencyBucket out of latencyBucket, which
// then inlines.
//
//go:noinline
func slowBucket(d time.Duration) int { return pipeline.LatencyBucket(d) }

// maxBoundsPerLen is how many bucket bounds one bit length may hold: the
// buckets are a quarter of a power of two wide, so a factor 2 of
// durations holds 4. A bit length with more uses pipeline.LatencyBucket.
const maxBoundsPerLen = 4

// lenBuckets are the buckets of the durations of one bit length.
type lenBuckets struct {
	base int32 // the bucket of the smallest duration
	slow bool  // more bounds than fit: ask pipeline
	// below is the largest duration before each later bucket (MaxInt64:
	// none, which no duration exceeds).
	below [maxBoundsPerLen]int64
}

// durBuckets is indexed by bits.Len64 of a positive duration. Read-only
// after init.
var durBuckets = newDurBuckets()

func newDurBuckets() (t [64]lenBuckets) {
	for n := 1; n < len(t); n++ {
		lo, hi := int64(1)<<(n-1), int64(uint64(1)<<n-1) // n = 63: hi = MaxInt64
		e := lenBuckets{base: int32(pipeline.LatencyBucket(time.Duration(lo)))}
		for i := range e.below {
			e.below[i] = math.MaxInt64
		}
		k := 0
		for b := e.base + 1; int(b) <= pipeline.LatencyBucket(time.Duration(hi)); b++ {
			if k == maxBoundsPerLen {
				e.slow = true
				break
			}
			e.below[k] = firstAtBucket(lo, hi, int(b)) - 1
			k++
		}
		t[n] = e
	}
	return t
}

// firstAtBucket is the smallest d in [lo, hi] with
// pipeline.LatencyBucket(d) >= b, given that hi's bucket is.
func firstAtBucket(lo, hi int64, b int) int64 {
	for lo < hi {
		mid := lo + (hi-lo)/2
		if pipeline.LatencyBucket(time.Duration(mid)) >= b {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
