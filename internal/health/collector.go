package health

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Collector exports the statuses of the last Evaluate: one
// agaobs_health_status series per current component (a component that
// disappeared loses its series) and agaobs_health_overall_status, both
// encoded by MetricValue. Nothing is exported before the first Evaluate.
func (h *Health) Collector() selfmetrics.Collector {
	f := new(selfmetrics.Families)
	return &collector{h: h, fams: f,
		status: f.Gauge("agaobs_health_status",
			"Health of one component at the last evaluation: 0 healthy or closed, 1 degraded, 2 unhealthy, -1 disabled.",
			"component"),
		overall: f.Gauge("agaobs_health_overall_status",
			"Overall health at the last evaluation (worst of the components): 0 healthy, 1 degraded, 2 unhealthy."),
	}
}

type collector struct {
	h               *Health
	status, overall *prometheus.Desc
	fams            *selfmetrics.Families
}

func (c *collector) Describe() []selfmetrics.Family { return *c.fams }

func (c *collector) Update(ch chan<- prometheus.Metric) error {
	h := c.h
	h.mu.Lock()
	evaluated, overall := h.evaluated, h.overall
	names := make([]string, 0, len(h.last))
	values := make(map[string]float64, len(h.last))
	for n, comp := range h.last {
		names = append(names, n)
		values[n] = comp.Status.MetricValue()
	}
	h.mu.Unlock()
	if !evaluated {
		return selfmetrics.ErrNoData
	}
	sort.Strings(names)
	for _, n := range names {
		ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, values[n], schema.LabelValue(n)) // names hold producer names
	}
	ch <- prometheus.MustNewConstMetric(c.overall, prometheus.GaugeValue, overall.MetricValue())
	return nil
}
