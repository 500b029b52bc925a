package probes

import (
	"math"
	"testing"
)

func TestQuantileSince(t *testing.T) {
	var prev, cur Cumulative
	// Before: 100 durations in [1 ms, 2 ms) (bucket 20: 2^-10 s).
	prev.Buckets[20] = 100
	cur = prev
	// This minute: 90 in [1, 2) ms and 10 in [8, 16) ms (bucket 23).
	cur.Buckets[20] += 90
	cur.Buckets[23] += 10
	for _, tc := range []struct {
		q      float64
		lo, hi float64
	}{{0.5, math.Ldexp(1, -10), math.Ldexp(1, -9)}, {0.99, math.Ldexp(1, -7), math.Ldexp(1, -6)}} {
		v, ok := cur.QuantileSince(&prev, tc.q)
		if !ok || v < tc.lo || v >= tc.hi {
			t.Errorf("q%.2f = %v, %v; want in [%v, %v)", tc.q, v, ok, tc.lo, tc.hi)
		}
	}
	// Without prev the old durations count: p99 stays in the 8-16 ms bucket
	// only for the new ones; over all 200 the p50 is in [1, 2) ms.
	if v, ok := cur.QuantileSince(nil, 0.5); !ok || v >= math.Ldexp(1, -9) {
		t.Errorf("all-time p50 = %v", v)
	}
	if _, ok := prev.QuantileSince(&prev, 0.99); ok {
		t.Error("a minute without durations has a quantile")
	}
	if _, ok := prev.QuantileSince(&cur, 0.99); ok {
		t.Error("counters that went backwards (a reattached probe) gave a quantile")
	}
}
