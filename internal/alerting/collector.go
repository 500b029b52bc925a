package alerting

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Collector exports the alert and SLO state (prefix = prometheus_prefix):
// the prefixed families are named, and described, at construction.
func (e *Engine) Collector(prefix string) selfmetrics.Collector {
	f := new(selfmetrics.Families)
	return &collector{e: e, fams: f,
		alerts: f.Gauge(prefix+"_alerts", "Active alerts, as Prometheus's ALERTS: 1 per pending or firing alert.",
			"alertname", "alertstate", "severity", "producer"),
		budget: f.Gauge(prefix+"_slo_error_budget_remaining_ratio", "Share of the SLO's error budget left over its period (negative once exhausted).",
			"slo", "producer"),
		burn: f.Gauge(prefix+"_slo_burn_rate", "SLO burn rate over the window: error ratio / (1 - objective).",
			"slo", "producer", "window"),
		evalDur: f.Histogram("agaobs_alert_evaluation_duration_seconds", "Duration of one evaluation of every rule and SLO."),
		failures: f.Counter("agaobs_alert_evaluation_failures_total", "Rule evaluations whose message template failed (the alert still fires with an error message).",
			"rule"),
		available: f.Gauge("agaobs_producer_available", "1 while the producer is up and not dropping records, else 0 (the availability SLI).",
			"producer"),
	}
}

type collector struct {
	e                                                  *Engine
	alerts, budget, burn, evalDur, failures, available *prometheus.Desc
	fams                                               *selfmetrics.Families
}

func (c *collector) Describe() []selfmetrics.Family { return *c.fams }

func (c *collector) Update(ch chan<- prometheus.Metric) error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.rules {
		for _, a := range e.active[r.Name] {
			if a.State == StateInactive {
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.GaugeValue, 1, r.Name, a.State.String(), r.Severity, schema.LabelValue(a.Producer))
		}
		if n := e.failures[r.Name]; n > 0 {
			ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(n), r.Name)
		}
	}
	now := e.lastEvalSec
	for _, s := range e.slos {
		producers := make([]string, 0, len(s.series))
		for p := range s.series {
			producers = append(producers, p)
		}
		sort.Strings(producers)
		for _, p := range producers {
			if r, ok := s.series[p].errorRatio(now, s.periodDuration()); ok {
				ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, 1-r/s.budget, s.Name, schema.LabelValue(p))
			}
			for _, w := range SLOWindows() {
				if b, ok := s.burn(p, now, w); ok {
					ch <- prometheus.MustNewConstMetric(c.burn, prometheus.GaugeValue, b, s.Name, schema.LabelValue(p), windowName(w))
				}
			}
		}
	}
	for name, t := range e.targets {
		if t.sampled {
			v := 0.0
			if t.available {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.available, prometheus.GaugeValue, v, schema.LabelValue(name))
		}
	}
	buckets := make(map[float64]uint64, len(evalBounds))
	var cum uint64
	for i, b := range evalBounds {
		cum += e.evals.buckets[i]
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.evalDur, e.evals.count, e.evals.sum, buckets)
	return nil
}
