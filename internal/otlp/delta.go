package otlp

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// deltas turns the cumulative series the Prometheus aggregation holds into
// delta temporality (otlp_metrics_temporality: delta): each monotonic sum
// and histogram point becomes its change since the previous export. Only
// the metrics goroutine uses it.
type deltas struct {
	prev  map[seriesKey]*prevPoint
	round uint64
}

type seriesKey struct {
	metric string
	res    attribute.Distinct
	attrs  attribute.Distinct
}

type prevPoint struct {
	at      time.Time
	round   uint64
	value   float64
	count   uint64
	sum     float64
	buckets []uint64
	zero    uint64
	pos     map[int32]uint64
	neg     map[int32]uint64
}

func newDeltas() *deltas { return &deltas{prev: map[seriesKey]*prevPoint{}} }

// point returns the previous point of a series (nil the first time) and
// records that it was seen this round.
func (d *deltas) point(k seriesKey) (*prevPoint, bool) {
	p, ok := d.prev[k]
	if !ok {
		p = &prevPoint{}
		d.prev[k] = p
	}
	p.round = d.round
	return p, ok
}

// apply rewrites one resource's metrics in place.
func (d *deltas) apply(rm *metricdata.ResourceMetrics, now time.Time) {
	res := rm.Resource.Equivalent()
	for si := range rm.ScopeMetrics {
		ms := rm.ScopeMetrics[si].Metrics
		for mi := range ms {
			m := &ms[mi]
			switch v := m.Data.(type) {
			case metricdata.Sum[float64]:
				if !v.IsMonotonic {
					continue
				}
				for i := range v.DataPoints {
					dp := &v.DataPoints[i]
					p, seen := d.point(seriesKey{m.Name, res, dp.Attributes.Equivalent()})
					cur := dp.Value
					if seen && cur >= p.value {
						dp.Value -= p.value
						dp.StartTime = p.at
					}
					p.value, p.at = cur, dp.Time
				}
				v.Temporality = metricdata.DeltaTemporality
				m.Data = v
			case metricdata.Histogram[float64]:
				for i := range v.DataPoints {
					dp := &v.DataPoints[i]
					p, seen := d.point(seriesKey{m.Name, res, dp.Attributes.Equivalent()})
					cur := append([]uint64(nil), dp.BucketCounts...)
					count, sum := dp.Count, dp.Sum
					if seen && count >= p.count && len(p.buckets) == len(cur) {
						dp.Count -= p.count
						dp.Sum -= p.sum
						for b := range dp.BucketCounts {
							dp.BucketCounts[b] -= p.buckets[b]
						}
						dp.StartTime = p.at
						// Min and max are of the whole history: unknown
						// for the interval.
						dp.Min, dp.Max = metricdata.Extrema[float64]{}, metricdata.Extrema[float64]{}
					}
					p.count, p.sum, p.buckets, p.at = count, sum, cur, dp.Time
				}
				v.Temporality = metricdata.DeltaTemporality
				m.Data = v
			case metricdata.ExponentialHistogram[float64]:
				for i := range v.DataPoints {
					dp := &v.DataPoints[i]
					p, seen := d.point(seriesKey{m.Name, res, dp.Attributes.Equivalent()})
					pos, neg := bucketMap(dp.PositiveBucket), bucketMap(dp.NegativeBucket)
					count, sum, zero := dp.Count, dp.Sum, dp.ZeroCount
					if seen && count >= p.count {
						dp.Count -= p.count
						dp.Sum -= p.sum
						dp.ZeroCount -= min(p.zero, dp.ZeroCount)
						dp.PositiveBucket = subBuckets(dp.PositiveBucket, p.pos)
						dp.NegativeBucket = subBuckets(dp.NegativeBucket, p.neg)
						dp.StartTime = p.at
						dp.Min, dp.Max = metricdata.Extrema[float64]{}, metricdata.Extrema[float64]{}
					}
					p.count, p.sum, p.zero, p.pos, p.neg, p.at = count, sum, zero, pos, neg, dp.Time
				}
				v.Temporality = metricdata.DeltaTemporality
				m.Data = v
			}
		}
	}
}

// prune forgets series not seen this round (a forgotten producer's) and
// starts the next round.
func (d *deltas) prune(time.Time) {
	for k, p := range d.prev {
		if p.round != d.round {
			delete(d.prev, k)
		}
	}
	d.round++
}

func bucketMap(b metricdata.ExponentialBucket) map[int32]uint64 {
	m := make(map[int32]uint64, len(b.Counts))
	for i, c := range b.Counts {
		m[b.Offset+int32(i)] = c
	}
	return m
}

// subBuckets subtracts the previous counts by bucket index (the scale is
// fixed: the Prometheus exporter's schema).
func subBuckets(b metricdata.ExponentialBucket, prev map[int32]uint64) metricdata.ExponentialBucket {
	counts := append([]uint64(nil), b.Counts...)
	for i := range counts {
		if p := prev[b.Offset+int32(i)]; p <= counts[i] {
			counts[i] -= p
		}
	}
	return metricdata.ExponentialBucket{Offset: b.Offset, Counts: counts}
}
