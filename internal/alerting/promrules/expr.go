package promrules

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/metrics"
)

// Self-metrics of the agent the rules read (internal/metrics collectors).
// They carry the fixed agaobs_ prefix whatever prometheus_prefix is.
const (
	ringDroppedTotal    = "agaobs_ring_dropped_total"
	ringEventsTotal     = "agaobs_ring_events_total"
	heartbeatAge        = "agaobs_producer_heartbeat_age_seconds"
	producerAvailable   = "agaobs_producer_available"
	hotRing             = `class="hot"`
	retrievalFailure    = "retrieval_failure_rate"
	retrievalFailureWhy = "retrieval_failure_rate is not expressible in PromQL: the agent computes 1 - injected/results " +
		"from the retrieval result counts, and results_count is not exported"
)

// Keys of the AGA-domain families (metrics.Family.Key) the rules read.
const (
	famForward     = "forward"
	famLatency     = "forward_latency"
	famGate        = "gate_value"
	famEntropy     = "entropy_value"
	famUtilization = "knowledge_utilization"
	famSlotChange  = "slot_change_rate"
)

// names resolves the exposed metric names the rules read.
type names struct{ metrics.Names }

// newNames fails if the exporter renamed a family this package reads.
func newNames(prefix string, naming metrics.Naming) (names, error) {
	n, err := metrics.NewNames(prefix, naming, famForward, famLatency, famGate, famEntropy, famUtilization, famSlotChange)
	return names{n}, err
}

// metricExpr is the PromQL for one rule metric.
type metricExpr struct {
	expr string
	// div converts the rule's threshold to the expression's units; the
	// alert's $value times div is in the rule's units.
	div float64
}

// ruleMetricExpr returns the PromQL computing metric over window w (a
// PromQL range such as "60s"), per producer or over all producers. skip is
// the reason when the metric cannot be expressed.
func (n names) ruleMetricExpr(metric, w string, perProducer bool) (me metricExpr, skip string, err error) {
	// sum aggregates a rate the way the rule is scoped.
	sum := func(inner string) string {
		if perProducer {
			return "sum by (producer) (" + inner + ")"
		}
		return "sum(" + inner + ")"
	}
	// last is a last-value gauge: per producer as is, node-wide its maximum.
	last := func(sel string) string {
		if perProducer {
			return sel
		}
		return "max(" + sel + ")"
	}
	rate := func(sel string) string { return "rate(" + sel + "[" + w + "])" }
	switch metric {
	case "latency_p50", "latency_p95", "latency_p99":
		q := map[string]string{"latency_p50": "0.5", "latency_p95": "0.95", "latency_p99": "0.99"}[metric]
		by := "le"
		if perProducer {
			by = "le, producer"
		}
		return metricExpr{
			expr: fmt.Sprintf("histogram_quantile(%s, sum by (%s) (%s))", q, by, rate(n.Name(famLatency)+"_bucket")),
			div:  n.Divisor(famLatency),
		}, "", nil
	case "gate_mean", "entropy_mean":
		fam := famGate
		if metric == "entropy_mean" {
			fam = famEntropy
		}
		base := n.Name(fam)
		return metricExpr{expr: sum(rate(base+"_sum")) + " / " + sum(rate(base+"_count")), div: 1}, "", nil
	case "activation_rate":
		fwd := n.Name(famForward)
		return metricExpr{expr: sum(rate(fwd+`{applied="true"}`)) + " / " + sum(rate(fwd)), div: 1}, "", nil
	case "forward_rate":
		return metricExpr{expr: sum(rate(n.Name(famForward))), div: 1}, "", nil
	case "knowledge_utilization", "slot_change_rate":
		fam := famUtilization
		if metric == "slot_change_rate" {
			fam = famSlotChange
		}
		return metricExpr{expr: last("last_over_time(" + n.Name(fam) + "[" + w + "])"), div: 1}, "", nil
	case "drop_rate":
		dropped := sum(rate(ringDroppedTotal + "{" + hotRing + "}"))
		consumed := sum(rate(ringEventsTotal + "{" + hotRing + "}"))
		return metricExpr{expr: dropped + " / (" + consumed + " + " + dropped + ")", div: 1}, "", nil
	case "producer_heartbeat_age_seconds":
		return metricExpr{expr: last(heartbeatAge), div: 1}, "", nil
	case retrievalFailure:
		return metricExpr{}, retrievalFailureWhy, nil
	}
	return metricExpr{}, "", fmt.Errorf("unknown rule metric %q (want one of %s)", metric, config.RuleMetrics)
}

// promRange renders seconds as a PromQL range duration ("60s", "1500ms").
// PromQL resolves durations to the millisecond.
func promRange(seconds float64) (string, bool) {
	ms := math.Round(seconds * 1000)
	if !(ms >= 1) || ms > math.MaxInt64/2 {
		return "", false
	}
	if math.Mod(ms, 1000) == 0 {
		return strconv.FormatFloat(ms/1000, 'f', -1, 64) + "s", true
	}
	return strconv.FormatFloat(ms, 'f', -1, 64) + "ms", true
}

// promNumber renders v as a PromQL number literal, shortest round-trip form.
func promNumber(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// bucketMatcher returns the label matcher selecting the bucket bound le.
// client_golang writes le="1000" in the text format but le="1000.0" in
// OpenMetrics, Prometheus 2 ingests the protobuf format as "1000.0", and
// Prometheus 3 normalises every le to the OpenMetrics form; a regex matching
// both keeps the SLI working whichever way the series were scraped. Bounds
// already containing "." or "e" render the same in all formats.
func bucketMatcher(le float64) string {
	text := strconv.FormatFloat(le, 'g', -1, 64)
	if strings.ContainsAny(text, ".e") {
		return `le="` + text + `"`
	}
	return `le=~"` + text + `|` + text + `\\.0"`
}

// latencyTail returns, for a "latency_pQ > T" (or >=) rule whose T is a
// bucket bound, the exact condition "the cumulative count at T is below
// the rank Q·n", which is what "pQ > T" means for histogram_quantile. The
// rule still reports the quantile as its value. Without it, T = 5000 (the
// top bound) could never fire: histogram_quantile caps a quantile in the
// +Inf bucket at the top bound. The agent evaluates the same condition.
func (n names) latencyTail(r config.AlertRule, w string) (string, bool) {
	q := map[string]string{"latency_p50": "0.5", "latency_p95": "0.95", "latency_p99": "0.99"}[r.Metric]
	if q == "" || (r.Operator != ">" && r.Operator != ">=") || !isLatencyBound(r.Threshold) {
		return "", false
	}
	base := n.Name(famLatency)
	bound := r.Threshold / n.Divisor(famLatency)
	cmp := "<"
	if r.Operator == ">=" {
		cmp = "<="
	}
	by, on := "", "on () "
	if r.PerProducer {
		by, on = "by (producer) ", "on (producer) "
	}
	return fmt.Sprintf("%s(sum %s(rate(%s_bucket{%s}[%s])) %s %s * sum %s(rate(%s_count[%s])))",
		on, by, base, bucketMatcher(bound), w, cmp, q, by, base, w), true
}

func isLatencyBound(t float64) bool {
	for _, f := range metrics.Families() {
		if f.Key == famLatency {
			for _, b := range f.Buckets {
				if b == t {
					return true
				}
			}
		}
	}
	return false
}
