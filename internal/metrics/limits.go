package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Collector exports what the exporter refused to take from producers as
// agent self-metrics: label values beyond the per-producer limits, and
// non-finite values dropped at decoding. NewRegistry adds it to the
// self-metrics as "exporter".
func (e *Exporter) Collector() selfmetrics.Collector {
	c := &exporterCollector{e: e}
	c.limited = c.fams.Counter("agaobs_cardinality_limited_total",
		"Events counted under the label value \"other\" because the producer already had the most distinct values of that label kept per producer (layer: prometheus_max_layers_per_producer; operation: 64).",
		"producer", "label")
	c.invalid = c.fams.Counter("agaobs_invalid_values_total",
		"Non-finite values (NaN, ±Inf) the producer wrote, by field; they are dropped where the record is decoded, so no sink observes them. A series appears with the first one.",
		"producer", "field")
	return c
}

type exporterCollector struct {
	e                *Exporter
	limited, invalid *prometheus.Desc
	fams             selfmetrics.Families
}

func (c *exporterCollector) Describe() []selfmetrics.Family { return c.fams }

// Update implements selfmetrics.Collector. Both limits have a series per
// producer from the start, so increase() sees the first limited event.
func (c *exporterCollector) Update(ch chan<- prometheus.Metric) error {
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
	return nil
}
