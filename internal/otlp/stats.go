package otlp

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Drop reasons (the reason label of agaobs_otlp_dropped_total).
const (
	reasonQueueFull   = "queue_full"   // the signal's queue was full (collector down or slow)
	reasonExportError = "export_error" // the collector refused it or did not answer in otlp_timeout
	reasonRateLimited = "rate_limited" // beyond otlp_trace_max_spans_per_second
	reasonShutdown    = "shutdown"     // still queued when the agent stopped
)

var reasons = []string{reasonQueueFull, reasonExportError, reasonRateLimited, reasonShutdown}

// exportBounds are the export duration buckets (seconds).
var exportBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// signalStats counts one signal's exports.
type signalStats struct {
	mu       sync.Mutex
	sent     uint64
	dropped  map[string]uint64
	errors   uint64 // failed export calls
	buckets  []uint64
	count    uint64
	sum      float64
	queueLen func() int
}

func newSignalStats() *signalStats {
	return &signalStats{dropped: map[string]uint64{}, buckets: make([]uint64, len(exportBounds))}
}

func (s *signalStats) drop(reason string, n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.dropped[reason] += uint64(n)
	s.mu.Unlock()
}

// exported records one export call of n items.
func (s *signalStats) exported(n int, d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := d.Seconds()
	s.count++
	s.sum += sec
	for i, b := range exportBounds {
		if sec <= b {
			s.buckets[i]++
			break
		}
	}
	if err != nil {
		s.errors++
		return
	}
	s.sent += uint64(n)
}

type collector struct {
	e                                      *Exporter
	sent, dropped, errs, dur, queued, info *prometheus.Desc
	fams                                   selfmetrics.Families
}

// Collector returns the exporter's self-metrics.
func (e *Exporter) Collector() selfmetrics.Collector {
	c := &collector{e: e}
	c.sent = c.fams.Counter("agaobs_otlp_sent_total", "Spans, log records and metric points the collector accepted, by signal.", "signal")
	c.dropped = c.fams.Counter("agaobs_otlp_dropped_total", "Spans, log records and metric points not sent, by signal and reason: queue_full (the collector down or slow), export_error (refused, or no answer within otlp_timeout), rate_limited (beyond otlp_trace_max_spans_per_second), shutdown (queued when the agent stopped). Audit records are never dropped: they wait.", "signal", "reason")
	c.errs = c.fams.Counter("agaobs_otlp_export_errors_total", "Export calls that failed, by signal (audit log exports are retried from the cursor).", "signal")
	c.dur = c.fams.Histogram("agaobs_otlp_export_duration_seconds", "Duration of one export call, retries included, by signal.", "signal")
	c.queued = c.fams.Gauge("agaobs_otlp_queue_length", "Spans and log records waiting for export, by signal.", "signal")
	c.info = c.fams.Gauge("agaobs_otlp_audit_cursor", "Sequence number of the last audit record the collector acknowledged.")
	return c
}

func (c *collector) Describe() []selfmetrics.Family { return c.fams }

func (c *collector) Update(ch chan<- prometheus.Metric) error {
	for _, sig := range []string{SignalTraces, SignalLogs, SignalMetrics, signalAudit} {
		s := c.e.stats[sig]
		if s == nil {
			continue
		}
		s.mu.Lock()
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(s.sent), sig)
		for _, r := range reasons {
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.dropped[r]), sig, r)
		}
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(s.errors), sig)
		buckets := make(map[float64]uint64, len(exportBounds))
		var cum uint64
		for i, b := range exportBounds {
			cum += s.buckets[i]
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.dur, s.count, s.sum, buckets, sig)
		s.mu.Unlock()
		if s.queueLen != nil {
			ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.queueLen()), sig)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, float64(c.e.auditCursor.Load()))
	return nil
}
