package pipeline

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestLatBucketMatchesRef: the table-driven latBucket (and LatencyBucket)
// gives latBucketRef's bucket for every duration up to 5 ms, each bucket
// bound and its neighbours, both ends, and 1 M random durations at every
// scale.
func TestLatBucketMatchesRef(t *testing.T) {
	check := func(d time.Duration) {
		t.Helper()
		want := latBucketRef(d)
		if got := latBucket(d); got != want {
			t.Fatalf("latBucket(%d) = %d, latBucketRef %d", d, got, want)
		}
		if got := LatencyBucket(d); got != want {
			t.Fatalf("LatencyBucket(%d) = %d, latBucketRef %d", d, got, want)
		}
	}
	for d := time.Duration(-1000); d <= 5*time.Millisecond; d++ {
		check(d)
	}
	for n := range durBuckets {
		for _, b := range durBuckets[n].below {
			if b > 0 && b != math.MaxInt64 {
				check(b - 1)
				check(b)
				check(b + 1)
			}
		}
		if n > 0 && n < 64 {
			lo := time.Duration(1) << (n - 1)
			check(lo - 1)
			check(lo)
			check(lo + 1)
			check(2*lo - 1) // n = 63: MaxInt64
		}
	}
	// Every bucket's first duration, found by bisection over the
	// reference alone (not through the table), and its neighbour below.
	for b := 1; b <= latBucketRef(math.MaxInt64); b++ {
		lo, hi := time.Duration(0), time.Duration(math.MaxInt64)
		for lo < hi {
			if mid := lo + (hi-lo)/2; latBucketRef(mid) >= b {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		check(lo - 1)
		check(lo)
	}
	for _, d := range []time.Duration{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, math.MaxInt64 - 1, math.MaxInt64} {
		check(d)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1_000_000 {
		check(time.Duration(r.Int64N(math.MaxInt64)) >> r.UintN(63)) // every scale
	}
}

// TestLatencyObserveMatchesRef: Observe gives the histogram the reference
// buckets and the former clamping of negative durations give.
func TestLatencyObserveMatchesRef(t *testing.T) {
	var got, want LatencyHistogram
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 100_000 {
		d := time.Duration(r.Int64N(int64(10*time.Second))) >> r.UintN(30)
		if i%7 == 0 {
			d = -d
		}
		got.Observe(d)
		c := max(d, 0)
		want.Buckets[latBucketRef(c)]++
		want.Count++
		want.Max = max(want.Max, c)
	}
	if got != want {
		t.Fatalf("Observe %+v, reference %+v", got, want)
	}
}

// mixBatch is the pipeline benchmark's mix as one batch of 1024: runs of
// 512 events per producer (8 producers in turn), forwards on 3 layers,
// a retrieval every 15th, latencies from 20 µs to ~5 ms.
func mixBatch(now time.Time, start int) []Event {
	var prods [8]*Producer
	for i := range prods {
		prods[i] = &Producer{Name: "bench-" + string(rune('a'+i))}
	}
	batch := make([]Event, 1024)
	for i := range batch {
		n := start + i
		ev := &batch[i]
		ev.Producer = prods[n/512%len(prods)]
		ev.Kind = KindForward
		if n%15 == 14 {
			ev.Kind = KindRetrieval
		}
		ev.TimeNs = now.UnixNano() - int64(20*time.Microsecond) - int64(n*7919%5_000_000)
	}
	return batch
}

func BenchmarkCounterWrite(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	batches := make([][]Event, 8)
	for i := range batches {
		batches[i] = mixBatch(now, i*1024)
	}
	c := NewCounter()
	c.now = func() time.Time { return now }
	b.ResetTimer()
	for i := 0; i < b.N; i += 1024 {
		_ = c.Write(context.Background(), batches[i/1024%len(batches)])
	}
}

// TestCounterTotal: Total is the sum of Counts over producers and kinds.
func TestCounterTotal(t *testing.T) {
	c := NewCounter()
	if n := c.Total(); n != 0 {
		t.Fatalf("empty counter: Total %d", n)
	}
	a, b := &Producer{Name: "a"}, &Producer{Name: "b"}
	batch := []Event{
		{Kind: KindForward, Producer: a}, {Kind: KindRetrieval, Producer: a},
		{Kind: KindForward, Producer: b}, {Kind: KindAudit, Producer: b}, {Kind: KindHello},
	}
	for range 3 {
		if err := c.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	var want uint64
	for _, kinds := range c.Counts() {
		for _, n := range kinds {
			want += n
		}
	}
	if got := c.Total(); got != want || got != 15 {
		t.Fatalf("Total %d, Counts sum %d, want 15", got, want)
	}
}
