package live

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// latencyBucket gives pipeline.LatencyBucket's bucket for every duration
// tried: every duration up to 5 ms, each bucket bound and its
// neighbours, both ends, and random durations over the whole range.
func TestLatencyBucketMatchesPipeline(t *testing.T) {
	check := func(d time.Duration) {
		t.Helper()
		if got, want := latencyBucket(d), pipeline.LatencyBucket(d); got != want {
			t.Fatalf("latencyBucket(%d) = %d, pipeline.LatencyBucket %d", d, got, want)
		}
	}
	for d := time.Duration(-1000); d <= 5*time.Millisecond; d++ {
		check(d)
	}
	for n := range durBuckets {
		e := &durBuckets[n]
		if e.slow {
			t.Errorf("bit length %d has more than %d bucket bounds: it takes the slow path", n, maxBoundsPerLen)
		}
		for _, b := range e.below {
			if b != math.MaxInt64 {
				for _, d := range []int64{b - 1, b, b + 1} {
					check(time.Duration(d))
				}
			}
		}
		if n > 0 {
			lo := int64(1) << (n - 1)
			for _, d := range []int64{lo - 1, lo, lo + 1, 2*lo - 1} {
				check(time.Duration(d))
			}
		}
	}
	for _, d := range []time.Duration{math.MinInt64, -1, 0, 1, math.MaxInt64 - 1, math.MaxInt64} {
		check(d)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1_000_000 {
		check(time.Duration(r.Int64N(math.MaxInt64)) >> r.UintN(63)) // every scale
	}
}
