package alerting

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/alerting/anomaly"
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
		anomalyScore: f.Gauge(prefix+"_anomaly_score", "Anomaly score of the signal's last minute against its learned baseline, in robust standard deviations (> 0 above, < 0 below; layer empty for the producer's own series, else the layer's ratio to its producer). Absent while the series learns (anomaly_learning_period).",
			"producer", "signal", "layer"),
		anomalous: f.Gauge(prefix+"_anomaly", "1 when any series of the signal (the producer's or a layer's) scores beyond the medium sensitivity, else 0.",
			"producer", "signal"),
		straggler: f.Gauge(prefix+"_straggler", "1 when the producer runs slower than the other ranks of its peer group by more than their spread allows (medium sensitivity), else 0.",
			"producer", "signal"),
		anomalySeries:  f.Gauge("agaobs_anomaly_series", "Baselines the anomaly detector holds (about 1 KiB each)."),
		anomalyLimited: f.Counter("agaobs_anomaly_series_limited_total", "Series the anomaly detector did not track for its budget (16384 series, 256 layers per producer)."),
		anomalyEval:    f.Gauge("agaobs_anomaly_minute_duration_seconds", "Time the anomaly detector took for the last minute's aggregates (every producer, layer and signal)."),
	}
}

type collector struct {
	e                                                  *Engine
	alerts, budget, burn, evalDur, failures, available *prometheus.Desc
	anomalyScore, anomalous, straggler                 *prometheus.Desc
	anomalySeries, anomalyLimited, anomalyEval         *prometheus.Desc
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
	c.anomalies(ch)
	return nil
}

// anomalies exports the detector's scores. Called with e.mu held.
func (c *collector) anomalies(ch chan<- prometheus.Metric) {
	d := c.e.det
	if d == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.anomalySeries, prometheus.GaugeValue, float64(d.Series()))
	ch <- prometheus.MustNewConstMetric(c.anomalyLimited, prometheus.CounterValue, float64(d.Limited))
	ch <- prometheus.MustNewConstMetric(c.anomalyEval, prometheus.GaugeValue, c.e.anomalyEval.Seconds())
	type key struct{ producer, signal string }
	flags := map[key]bool{}
	var order []key
	thr := anomaly.Medium.Threshold()
	d.Each(func(f anomaly.Finding) {
		if f.Learning {
			return
		}
		p := schema.LabelValue(f.Producer)
		ch <- prometheus.MustNewConstMetric(c.anomalyScore, prometheus.GaugeValue, f.Score, p, f.Signal, f.Layer)
		k := key{p, f.Signal}
		if _, seen := flags[k]; !seen {
			order = append(order, k)
		}
		flags[k] = flags[k] || f.Anomalous(anomaly.Both, thr)
	})
	for _, k := range order {
		v := 0.0
		if flags[k] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.anomalous, prometheus.GaugeValue, v, k.producer, k.signal)
	}
	sthr := anomaly.Medium.StragglerThreshold()
	d.EachStraggler(func(f anomaly.StragglerFinding) {
		if f.Learning {
			return
		}
		v := 0.0
		if f.Straggling(sthr) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.straggler, prometheus.GaugeValue, v, schema.LabelValue(f.Producer), f.Signal)
	})
}
