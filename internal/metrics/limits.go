package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// Collector exports what the exporter refused to take from producers as
// agent self-metrics: label values beyond the per-producer limits, and
// non-finite values dropped at decoding. NewRegistry registers it.
func (e *Exporter) Collector() prometheus.Collector {
	return &exporterCollector{e: e,
		limited: prometheus.NewDesc("agaobs_cardinality_limited_total",
			"Events counted under the label value \"other\" because the producer already had the most distinct values of that label kept per producer (layer: prometheus_max_layers_per_producer; operation: 64).",
			[]string{"producer", "label"}, nil),
		invalid: prometheus.NewDesc("agaobs_invalid_values_total",
			"Non-finite values (NaN, ±Inf) the producer wrote, by field; they are dropped where the record is decoded, so no sink observes them. A series appears with the first one.",
			[]string{"producer", "field"}, nil),
	}
}

type exporterCollector struct {
	e                *Exporter
	limited, invalid *prometheus.Desc
}

// Describe sends nothing: an unchecked collector, like the others.
func (c *exporterCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector. Both limits have a series per
// producer from the start, so increase() sees the first limited event.
func (c *exporterCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.producers {
		for i, n := range s.limited {
			ch <- prometheus.MustNewConstMetric(c.limited, prometheus.CounterValue, float64(n), s.label, limitLabels[i])
		}
		for f, n := range s.invalid {
			if n > 0 {
				ch <- prometheus.MustNewConstMetric(c.invalid, prometheus.CounterValue, float64(n), s.label, pipeline.InvalidField(f).String())
			}
		}
	}
}
