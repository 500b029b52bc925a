package audit

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/metrics"
)

// Collector exports the audit trail's state. The head hash is logged and
// served by the API but never a label: it would make a new series per
// record.
func (w *Writer) Collector() prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("agaobs_audit_"+name, help, labels, nil)
	}
	return &collector{w: w,
		records:   d("records_total", "Audit records stored, by operation and success (gap, checkpoint and agent records included).", "operation", "success"),
		commit:    d("commit_duration_seconds", "Duration of one group commit (write and fsync)."),
		durable:   d("event_to_durable_seconds", "From the producer's event timestamp to the commit that made it durable."),
		queue:     d("queue_depth", "Records received and not yet committed."),
		bytes:     d("store_bytes", "Bytes of stored records (the file may be larger until `audit compact`)."),
		head:      d("head_size", "Records in the hash chain so far (the head's size); the hash is in the log and at /api/v1/audit/head."),
		up:        d("store_up", "1 while the store accepts writes, 0 while commits fail (audit rings then hold their records)."),
		writeErrs: d("write_errors_total", "Failed commits (each retried; nothing is acknowledged to a ring before it is durable)."),
		retain:    d("last_retention_timestamp_seconds", "When retention last ran (unix seconds; 0 before the first run)."),
	}
}

type collector struct {
	w                                                                   *Writer
	records, commit, durable, queue, bytes, head, up, writeErrs, retain *prometheus.Desc
}

func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	w := c.w
	w.mu.Lock()
	keys := make([][2]string, 0, len(w.records))
	for k := range w.records {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(w.records[k]), metrics.LabelValue(k[0]), k[1])
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
