package promrules

import (
	"fmt"

	"github.com/agaobs/agaobs/internal/alerting/anomaly"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/schema"
)

// AnomalyGroup holds the Prometheus approximation of the agent's anomaly
// rules: z-score recording rules (the signal over 5m, its average and
// standard deviation over a week, as GitLab published) and one alert per
// rule, named <rule>_zscore so that it never deduplicates with the agent's
// own alert, which is computed differently (robust baselines, a daily
// profile, per layer, peer groups).
const AnomalyGroup = "agaobs-anomaly"

// anomalyBaseline is the window the z-score's average and deviation span.
const anomalyBaseline = "1w"

// anomalySignalMetric maps the detector's producer-level signals that
// PromQL can compute from exported series to the rule metric computing
// them.
var anomalySignalMetric = map[string]schema.RuleMetric{
	"latency_p50":      schema.RuleLatencyP50,
	"latency_p99":      schema.RuleLatencyP99,
	"applied_ratio":    schema.RuleActivationRate,
	"gate_mean":        schema.RuleGateMean,
	"entropy_mean":     schema.RuleEntropyMean,
	"forward_rate":     schema.RuleForwardRate,
	"kv_utilization":   schema.RuleKnowledgeUtilization,
	"slot_change_rate": schema.RuleSlotChangeRate,
	"drop_rate":        schema.RuleDropRate,
}

// AnomalyAlertName is the Prometheus alert standing in for an agent
// anomaly rule.
func AnomalyAlertName(rule string) string { return rule + "_zscore" }

// anomalyRules renders one detector rule's recording rules and alert; skip
// says why it cannot be expressed.
func (g *generator) anomalyRules(r config.AlertRule, thresholds func(config.AlertRule) float64) ([]rule, string) {
	if schema.RuleMetric(r.Metric) == schema.RuleStraggler {
		return nil, "straggler: the comparison of a rank with its peer group (same model, world size and pod, the others' median each minute, offsets learned per rank) is not expressible in PromQL"
	}
	m, ok := anomalySignalMetric[r.Signal]
	if !ok {
		return nil, fmt.Sprintf("anomaly on %s: the signal is not exported as a series PromQL can compute it from", r.Signal)
	}
	if !isMetricName(AnomalyAlertName(r.Name)) {
		return nil, fmt.Sprintf("rule name %q is not a valid Prometheus alert name", r.Name)
	}
	me, skip, err := g.ruleMetricExpr(string(m), 300, true, r.Name)
	if err != nil || skip != "" {
		if skip == "" {
			skip = err.Error()
		}
		return nil, skip
	}
	base := "agaobs:anomaly_" + r.Signal
	value, avg, sd := base+":5m", base+":avg_"+anomalyBaseline, base+":stddev_"+anomalyBaseline
	by := g.by(true)
	z := fmt.Sprintf("(%s - %s) / %s", value, avg, sd)
	thr := thresholds(r)
	var cond string
	switch r.Direction {
	case "up":
		cond = fmt.Sprintf("%s > %s", z, promNumber(thr))
	case "down":
		cond = fmt.Sprintf("%s < -%s", z, promNumber(thr))
	default:
		cond = fmt.Sprintf("abs(%s) > %s", z, promNumber(thr))
	}
	out := []rule{
		{Record: value, Expr: me.expr},
		{Record: avg, Expr: fmt.Sprintf("avg by (%s) (avg_over_time(%s[%s]))", by, value, anomalyBaseline)},
		{Record: sd, Expr: fmt.Sprintf("max by (%s) (stddev_over_time(%s[%s])) > 0", by, value, anomalyBaseline)},
	}
	alert := rule{Alert: AnomalyAlertName(r.Name), Expr: cond, Labels: g.alertLabels(r.Labels, r.Severity),
		Annotations: map[string]string{
			"summary": fmt.Sprintf("%s z-score {{ $value | printf \"%%.1f\" }} over a %s baseline (Prometheus approximation of the agent's %s)",
				r.Signal, anomalyBaseline, r.Name),
		}}
	if r.For > 0 {
		alert.For = r.For.String()
	}
	return append(out, alert), ""
}

// detectorThreshold is the z-score an approximation alerts at: the
// sensitivity's score, as the agent's.
func detectorThreshold(r config.AlertRule) float64 {
	return anomaly.Sensitivity(r.Sensitivity).Threshold()
}
