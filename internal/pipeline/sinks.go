package pipeline

import (
	"context"
	"math"
	"math/bits"
	"sort"
	"sync"
	"time"
)

// AckSink acknowledges audit records as soon as it receives them. It is the
// audit store stand-in: until a durable store is configured, audit ring space
// is released once the records are decoded and queued.
type AckSink struct{}

// Name implements Sink.
func (AckSink) Name() string { return "audit-ack" }

// Kinds implements Sink.
func (AckSink) Kinds() KindMask { return KindAudit.Mask() }

// Write implements Sink.
func (AckSink) Write(_ context.Context, batch []Event) error {
	for i := range batch {
		if batch[i].Ack != nil {
			batch[i].Ack.Ack()
		}
	}
	return nil
}

// Counter counts events per producer and kind and records event → sink
// latency (the event's own timestamp to the moment this sink sees it). The
// demo summary and the benchmarks read it.
type Counter struct {
	mu     sync.Mutex
	counts map[string]*[numKinds]uint64
	lat    LatencyHistogram
	now    func() time.Time
}

// NewCounter returns an empty Counter.
func NewCounter() *Counter {
	return &Counter{counts: map[string]*[numKinds]uint64{}, now: time.Now}
}

// Name implements Sink.
func (c *Counter) Name() string { return "counter" }

// Kinds implements Sink.
func (c *Counter) Kinds() KindMask { return AllKinds }

// Write implements Sink.
func (c *Counter) Write(_ context.Context, batch []Event) error {
	now := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	var lastP *Producer
	var k *[numKinds]uint64
	for i := range batch {
		ev := &batch[i]
		if k == nil || ev.Producer != lastP {
			lastP = ev.Producer
			name := ""
			if lastP != nil {
				name = lastP.Name
			}
			if k = c.counts[name]; k == nil {
				k = new([numKinds]uint64)
				c.counts[name] = k
			}
		}
		k[ev.Kind]++
		if ev.Kind == KindForward && ev.TimeNs > 0 {
			c.lat.Observe(time.Duration(now - ev.TimeNs))
		}
	}
	return nil
}

// Counts returns per-producer counts by kind name.
func (c *Counter) Counts() map[string]map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]map[string]uint64, len(c.counts))
	for p, k := range c.counts {
		m := map[string]uint64{}
		for i, n := range k {
			if n > 0 {
				m[Kind(i).String()] = n
			}
		}
		out[p] = m
	}
	return out
}

// Total returns the events counted, of every producer and kind, without
// the allocations of Counts: benchmarks poll it while the pipeline runs.
func (c *Counter) Total() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, k := range c.counts {
		for _, v := range k {
			n += v
		}
	}
	return n
}

// Producers returns the producer names seen, sorted.
func (c *Counter) Producers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.counts))
	for p := range c.counts {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Latency returns a copy of the forward-event latency histogram.
func (c *Counter) Latency() LatencyHistogram {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lat
}

// LatencyHistogram is a fixed log-scale histogram: 4 buckets per power of
// two from 1 µs to about 68 s, enough to read p50/p99 within 19 %.
type LatencyHistogram struct {
	Buckets [105]uint64
	Count   uint64
	Max     time.Duration
}

// latBucket is latBucketRef(d) without its two float divisions, which
// cost most of Counter.Write: the bucket of the smallest duration of d's
// bit length, plus the bucket bounds within that bit length that d
// reaches (at most four, unrolled). The bounds are found once from
// latBucketRef itself (it never decreases with d), so both agree by
// construction; TestLatBucketMatchesRef checks it.
func latBucket(d time.Duration) int {
	// d > below[i] without branches: the sign of below[i]-d, which does
	// not overflow (both are positive, or d is 0, or d is negative and
	// its row's bounds are -1).
	e := &durBuckets[bits.Len64(uint64(d))]
	return int(e.base + uint64(e.below[0]-d)>>63 + uint64(e.below[1]-d)>>63 +
		uint64(e.below[2]-d)>>63 + uint64(e.below[3]-d)>>63)
}

// maxBoundsPerLen is how many bucket bounds one bit length holds at most:
// the buckets are a quarter of a power of two wide, so a factor 2 of
// durations holds 4.
const maxBoundsPerLen = 4

// lenBuckets are the buckets of the durations of one bit length.
type lenBuckets struct {
	base uint64 // the bucket of the smallest duration
	// below is the largest duration before each later bucket (MaxInt64:
	// none, which no duration exceeds).
	below [maxBoundsPerLen]time.Duration
}

// durBuckets is indexed by bits.Len64 of a duration: 0 for 0, 1 to 63
// for positive ones, 64 for negative ones. Read-only after init.
var durBuckets = newDurBuckets()

func newDurBuckets() (t [65]lenBuckets) {
	t[0].below = [maxBoundsPerLen]time.Duration{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64}
	// Negative durations are bucket 0, as 0 is: no v <= -1 exceeds -1.
	t[64].below = [maxBoundsPerLen]time.Duration{-1, -1, -1, -1}
	for n := 1; n < 64; n++ {
		lo, hi := int64(1)<<(n-1), int64(uint64(1)<<n-1) // n = 63: hi = MaxInt64
		e := lenBuckets{base: uint64(latBucketRef(time.Duration(lo)))}
		for i := range e.below {
			e.below[i] = math.MaxInt64
		}
		k := 0
		for b := int(e.base) + 1; b <= latBucketRef(time.Duration(hi)); b++ {
			if k == maxBoundsPerLen {
				// Cannot happen with quarter-octave buckets; failing
				// at start-up beats a wrong bucket.
				panic("pipeline: more latency bucket bounds in one bit length than the table holds")
			}
			e.below[k] = time.Duration(firstAtBucket(lo, hi, b) - 1)
			k++
		}
		t[n] = e
	}
	return t
}

// firstAtBucket is the smallest d in [lo, hi] with latBucketRef(d) >= b,
// given that hi's bucket is.
func firstAtBucket(lo, hi int64, b int) int64 {
	for lo < hi {
		mid := lo + (hi-lo)/2
		if latBucketRef(time.Duration(mid)) >= b {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// latBucketRef defines the buckets; latBucket is its table-driven
// equivalent.
func latBucketRef(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	// log2(us)*4, computed without math.Log2 in the hot path: the whole
	// octave from the integer part's bit length (us >= 1, so that is
	// floor(log2(us)) + 1), then the quarter within it.
	k := bits.Len64(uint64(us)) - 1
	b := 4 * k
	frac := us / float64(uint64(1)<<k)
	switch {
	case frac >= 1.6818:
		b += 3
	case frac >= 1.4142:
		b += 2
	case frac >= 1.1892:
		b++
	}
	return min(b+1, 104)
}

// Observe adds one duration.
func (h *LatencyHistogram) Observe(d time.Duration) {
	// A negative d is bucket 0 and leaves Max (>= 0) as it is: as 0 does.
	h.ObserveBucket(latBucket(d), d)
}

// LatencyBucket is the bucket of LatencyHistogram that d falls in: a
// sink that adds one duration to several histograms computes it once.
func LatencyBucket(d time.Duration) int { return latBucket(d) }

// ObserveBucket adds d, whose bucket b is LatencyBucket(d).
func (h *LatencyHistogram) ObserveBucket(b int, d time.Duration) {
	h.Buckets[b]++
	h.Count++
	h.Max = max(h.Max, d)
}

// Quantile returns the upper bound of the bucket holding quantile q.
func (h *LatencyHistogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	// Nearest rank: the ceil(q·n)-th smallest observation.
	rank := uint64(math.Ceil(q*float64(h.Count))) - 1
	if q <= 0 {
		rank = 0
	}
	rank = min(rank, h.Count-1)
	var seen uint64
	for i, n := range h.Buckets {
		seen += n
		if seen > rank {
			if i == 0 {
				return time.Microsecond
			}
			// Upper bound of bucket i: 2^(i/4) µs.
			return min(h.Max, time.Duration(float64(time.Microsecond)*pow2quarter(i)))
		}
	}
	return h.Max
}

func pow2quarter(i int) float64 {
	v := float64(uint64(1) << (i / 4))
	for range i % 4 {
		v *= 1.189207115
	}
	return v
}
