package health

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/metrics"
)

// Collector exports the statuses of the last Evaluate: one
// agaobs_health_status series per current component (a component that
// disappeared loses its series) and agaobs_health_overall_status, both
// encoded by MetricValue. Nothing is exported before the first Evaluate.
func (h *Health) Collector() prometheus.Collector {
	return &collector{h: h,
		status: prometheus.NewDesc("agaobs_health_status",
			"Health of one component at the last evaluation: 0 healthy or closed, 1 degraded, 2 unhealthy, -1 disabled.",
			[]string{"component"}, nil),
		overall: prometheus.NewDesc("agaobs_health_overall_status",
			"Overall health at the last evaluation (worst of the components): 0 healthy, 1 degraded, 2 unhealthy.", nil, nil),
	}
}

type collector struct {
	h               *Health
	status, overall *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.status
	ch <- c.overall
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
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
		return
	}
	sort.Strings(names)
	for _, n := range names {
		ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, values[n], metrics.LabelValue(n)) // names hold producer names
	}
	ch <- prometheus.MustNewConstMetric(c.overall, prometheus.GaugeValue, overall.MetricValue())
}
