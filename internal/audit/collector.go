package audit

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Collector exports the audit trail's state. The head hash is logged and
// served by the API but never a label: it would make a new series per
// record.
func (w *Writer) Collector() selfmetrics.Collector {
	f := new(selfmetrics.Families)
	const p = "agaobs_audit_"
	return &collector{w: w, fams: f,
		records:   f.Counter(p+"records_total", "Audit records stored, by operation and success (gap, checkpoint and agent records included).", "operation", "success"),
		commit:    f.Histogram(p+"commit_duration_seconds", "Duration of one group commit (write and fsync)."),
		durable:   f.Histogram(p+"event_to_durable_seconds", "From the producer's event timestamp to the commit that made it durable."),
		queue:     f.Gauge(p+"queue_depth", "Records received and not yet committed."),
		bytes:     f.Gauge(p+"store_bytes", "Bytes of stored records (the file may be larger until `audit compact`)."),
		head:      f.Gauge(p+"head_size", "Records in the hash chain so far (the head's size); the hash is in the log and at /api/v1/audit/head."),
		up:        f.Gauge(p+"store_up", "1 while the store accepts writes, 0 while commits fail (audit rings then hold their records)."),
		writeErrs: f.Counter(p+"write_errors_total", "Failed commits (each retried; nothing is acknowledged to a ring before it is durable)."),
		retain:    f.Gauge(p+"last_retention_timestamp_seconds", "When retention last ran (unix seconds; 0 before the first run)."),
	}
}

type collector struct {
	w                                                                   *Writer
	records, commit, durable, queue, bytes, head, up, writeErrs, retain *prometheus.Desc
	fams                                                                *selfmetrics.Families
}

func (c *collector) Describe() []selfmetrics.Family { return *c.fams }

func (c *collector) Update(ch chan<- prometheus.Metric) error {
	w := c.w
	w.mu.Lock()
	keys := make([][2]string, 0, len(w.records))
	for k := range w.records {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(w.records[k]), schema.LabelValue(k[0]), k[1])
	}
	ch <- w.commit.metric(c.commit)
	ch <- w.durable.metric(c.durable)
	head := w.headSize
	w.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.head, prometheus.GaugeValue, float64(head))
	ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(w.queued.Load()))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(w.opts.Store.Size()))
	up := 0.0
	if w.up.Load() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.writeErrs, prometheus.CounterValue, float64(w.writeErrs.Load()))
	// 0 until the first run (it runs at start).
	ch <- prometheus.MustNewConstMetric(c.retain, prometheus.GaugeValue, float64(w.lastRetain.Load())/1e9)
	return nil
}

func (l *latencyCounts) metric(d *prometheus.Desc) prometheus.Metric {
	buckets := make(map[float64]uint64, len(latencyBounds))
	var cum uint64
	for i, b := range latencyBounds {
		cum += l.buckets[i]
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(d, l.count, l.sum, buckets)
}
