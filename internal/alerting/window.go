package alerting

import (
	"math"
	"sort"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
)

// latencyBoundsUs are the exported forward latency buckets (µs), read-only;
// rule quantiles are computed over the same buckets as Prometheus would, so
// a threshold on a bound keeps its meaning in both places.
var latencyBoundsUs = schema.LatencyBoundsUs()

const numLatencyBuckets = schema.NumLatencyBounds + 1 // + +Inf

// latencyIndex finds a latency's bucket over the exported bounds, as the
// metrics exporter does. Read-only after init.
var latencyIndex = schema.NewBucketIndex(latencyBoundsUs)

// latencyBucket is the bucket of v: the first whose bound v is at or
// below, the +Inf bucket for larger values and NaN (and the first for
// -Inf).
func latencyBucket(v float64) int {
	if i, ok := latencyIndex.Cell(v); ok {
		return i
	}
	if i := latencyIndex.Outside(v); i >= 0 {
		return i
	}
	if v < 0 {
		return 0 // -Inf
	}
	return numLatencyBuckets - 1
}

// slice is one time step of a window: what happened during it.
type slice struct {
	start            int64 // unix seconds, aligned to the window's step
	lat              [numLatencyBuckets]uint64
	means            // forwards, applied, gate and entropy sums, as the anomaly minute keeps them
	results          int64
	injected         int64
	consumed, drops  uint64 // hot ring deltas
	util, slot       float64
	hasUtil, hasSlot bool
}

// addForward counts a forward's observations.
func (x *slice) addForward(o *forwardObs) {
	x.means.add(o)
	if o.hasLat {
		x.lat[o.bucket]++
	}
}

// window is a ring of slices covering the longest rule window: bounded
// memory whatever the event rate (no "last 1000 samples" cap).
type window struct {
	step   int64 // seconds per slice
	slices []slice
	last   *slice // the slice at returned last: most events fall in it
}

// maxSlices bounds memory per target; longer windows get wider slices.
const maxSlices = 3600

func newWindow(longest time.Duration) *window {
	secs := int64(math.Ceil(longest.Seconds()))
	step := max(int64(1), (secs+maxSlices-1)/maxSlices)
	n := secs/step + 2 // +1 for the current partial slice, +1 slack
	return &window{step: step, slices: make([]slice, n)}
}

// at returns the slice for unix second t, recycling an old one.
func (w *window) at(t int64) *slice {
	if l := w.last; l != nil && t >= l.start && t-l.start < w.step {
		return l // no divisions on the hot path
	}
	start := t - t%w.step
	s := &w.slices[(start/w.step)%int64(len(w.slices))]
	if s.start != start {
		*s = slice{start: start}
	}
	w.last = s
	return s
}

// sum aggregates the slices within (now-d, now].
func (w *window) sum(now int64, d time.Duration) slice {
	var out slice
	from := now - int64(math.Ceil(d.Seconds()))
	var utilAt, slotAt int64 = -1, -1
	for i := range w.slices {
		s := &w.slices[i]
		// Slices overlapping (now-d, now]; the current one is partial.
		if s.start+w.step <= from || s.start > now {
			continue
		}
		for b := range s.lat {
			out.lat[b] += s.lat[b]
		}
		out.means.merge(&s.means)
		out.results += s.results
		out.injected += s.injected
		out.consumed += s.consumed
		out.drops += s.drops
		if s.hasUtil && s.start > utilAt {
			out.util, out.hasUtil, utilAt = s.util, true, s.start
		}
		if s.hasSlot && s.start > slotAt {
			out.slot, out.hasSlot, slotAt = s.slot, true, s.start
		}
	}
	return out
}

// bucketQuantile is Prometheus's histogram_quantile on non-cumulative
// counts: linear interpolation within the bucket holding rank q·n, the
// first bucket starting at 0, and the highest finite bound for +Inf. So
// with T a bound, q-quantile > T exactly when more than (1-q) of the
// observations are above T.
func bucketQuantile(q float64, bounds []float64, counts []uint64) (float64, bool) {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0, false
	}
	cum := make([]float64, len(counts))
	var run float64
	for i, c := range counts {
		run += float64(c)
		cum[i] = run
	}
	rank := q * float64(total)
	b := sort.SearchFloat64s(cum, rank)
	if b >= len(bounds) { // the +Inf bucket
		return bounds[len(bounds)-1], true
	}
	start, below := 0.0, 0.0
	if b > 0 {
		start, below = bounds[b-1], cum[b-1]
	}
	inBucket := cum[b] - below
	if inBucket == 0 {
		return bounds[b], true
	}
	return start + (bounds[b]-start)*((rank-below)/inBucket), true
}

// metricValue computes a rule metric over an aggregated window of length
// d (docs/alerting.md has the table). ok is false when there is no data.
func metricValue(metric string, s slice, d time.Duration) (float64, bool) {
	switch m := schema.RuleMetric(metric); m {
	case schema.RuleLatencyP50, schema.RuleLatencyP95, schema.RuleLatencyP99:
		q, _ := m.Quantile()
		return bucketQuantile(q, latencyBoundsUs, s.lat[:])
	case schema.RuleGateMean:
		return ratio(s.gateSum, float64(s.gateN))
	case schema.RuleEntropyMean:
		return ratio(s.entSum, float64(s.entN))
	case schema.RuleActivationRate:
		return ratio(float64(s.applied), float64(s.forwards))
	case schema.RuleRetrievalFailureRate:
		if s.results <= 0 {
			return 0, false
		}
		return 1 - float64(s.injected)/float64(s.results), true
	case schema.RuleKnowledgeUtilization:
		return s.util, s.hasUtil
	case schema.RuleSlotChangeRate:
		return s.slot, s.hasSlot
	case schema.RuleForwardRate:
		return float64(s.forwards) / d.Seconds(), true
	case schema.RuleDropRate:
		return pipeline.DropCounts{Consumed: s.consumed, Dropped: s.drops}.Rate()
	}
	return 0, false // producer_heartbeat_age_seconds: Engine.metric reads it
}

func ratio(a, b float64) (float64, bool) {
	if b == 0 {
		return 0, false
	}
	return a / b, true
}
