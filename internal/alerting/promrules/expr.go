package promrules

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/schema"
)

// Self-metrics of the agent the rules read (internal/metrics collectors).
// They carry the fixed agaobs_ prefix whatever prometheus_prefix is.
const (
	ringDroppedTotal    = "agaobs_ring_dropped_total"
	ringEventsTotal     = "agaobs_ring_events_total"
	heartbeatAge        = "agaobs_producer_heartbeat_age_seconds"
	producerAvailable   = "agaobs_producer_available"
	hotRing             = `class="hot"`
	retrievalFailureWhy = "retrieval_failure_rate is not expressible in PromQL: the agent computes 1 - injected/results " +
		"from the retrieval result counts, and results_count is not exported"
)

// famLatency is the forward latency family, which latency rules and SLIs
// read beyond their rule metric's family (its buckets and units).
const famLatency = schema.FamForwardLatency

// names resolves the exposed metric names the rules read.
type names struct{ schema.Names }

// newNames fails if a family a rule metric reads was renamed.
func newNames(prefix string, naming schema.Naming) (names, error) {
	required := []string{schema.FamForward, schema.FamRetrieval, famLatency, schema.FamProducerInfo}
	for _, m := range schema.RuleMetrics() {
		if f := m.Family(); f != "" {
			required = append(required, f)
		}
	}
	n, err := schema.NewNames(prefix, naming, required...)
	return names{n}, err
}

// metricExpr is the PromQL for one rule metric.
type metricExpr struct {
	expr string
	// div converts the rule's threshold to the expression's units; the
	// alert's $value times div is in the rule's units.
	div float64
}

// ruleMetricExpr returns the PromQL computing metric over a window of
// seconds, per producer (by node and producer) or node-wide (by node).
// rate() windows are widened to the scrape interval rule (rateRange); the
// gauges' last_over_time window is w as is. skip is the reason when the
// metric cannot be expressed.
func (g *generator) ruleMetricExpr(metric string, seconds float64, perProducer bool, what string) (me metricExpr, skip string, err error) {
	w, ok := promRange(seconds)
	if !ok {
		return metricExpr{}, fmt.Sprintf("window_seconds %v is below PromQL's 1ms resolution", seconds), nil
	}
	by := g.by(perProducer)
	// sum aggregates a rate the way the rule is scoped.
	sum := func(inner string) string { return "sum by (" + by + ") (" + inner + ")" }
	// last is a last-value gauge: its maximum per producer (one series,
	// without the target labels) or over the node's producers.
	last := func(sel string) string { return "max by (" + by + ") (" + sel + ")" }
	rate := func(sel string) string { return "rate(" + sel + "[" + g.rateRange(seconds, what) + "])" }
	m := schema.RuleMetric(metric)
	switch m {
	case schema.RuleLatencyP50, schema.RuleLatencyP95, schema.RuleLatencyP99:
		q, _ := m.Quantile()
		return metricExpr{
			expr: fmt.Sprintf("histogram_quantile(%s, sum by (%s, le) (%s))", promNumber(q), by, rate(g.names.Name(m.Family())+"_bucket")),
			div:  g.names.Divisor(m.Family()),
		}, "", nil
	case schema.RuleGateMean, schema.RuleEntropyMean:
		base := g.names.Name(m.Family())
		return metricExpr{expr: sum(rate(base+"_sum")) + " / " + sum(rate(base+"_count")), div: 1}, "", nil
	case schema.RuleActivationRate:
		fwd := g.names.Name(m.Family())
		return metricExpr{expr: sum(rate(fwd+`{applied="true"}`)) + " / " + sum(rate(fwd)), div: 1}, "", nil
	case schema.RuleForwardRate:
		return metricExpr{expr: sum(rate(g.names.Name(m.Family()))), div: 1}, "", nil
	case schema.RuleKnowledgeUtilization, schema.RuleSlotChangeRate:
		return metricExpr{expr: last("last_over_time(" + g.names.Name(m.Family()) + "[" + w + "])"), div: 1}, "", nil
	case schema.RuleDropRate:
		dropped := sum(rate(ringDroppedTotal + "{" + hotRing + "}"))
		consumed := sum(rate(ringEventsTotal + "{" + hotRing + "}"))
		return metricExpr{expr: dropped + " / (" + consumed + " + " + dropped + ")", div: 1}, "", nil
	case schema.RuleHeartbeatAge:
		return metricExpr{expr: last(heartbeatAge), div: 1}, "", nil
	case schema.RuleRetrievalFailureRate:
		return metricExpr{}, retrievalFailureWhy, nil
	}
	return metricExpr{}, "", fmt.Errorf("unknown rule metric %q (want one of %s)", metric, schema.RuleMetricList())
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
func (g *generator) latencyTail(r config.AlertRule) (string, bool) {
	q, ok := schema.RuleMetric(r.Metric).Quantile()
	if !ok || (r.Operator != ">" && r.Operator != ">=") || !schema.IsLatencyBound(r.Threshold) {
		return "", false
	}
	rw := g.rateRange(r.WindowSeconds, r.Name)
	base := g.names.Name(famLatency)
	bound := r.Threshold / g.names.Divisor(famLatency)
	cmp := "<"
	if r.Operator == ">=" {
		cmp = "<="
	}
	by := g.by(r.PerProducer)
	return fmt.Sprintf("on (%s) (sum by (%s) (rate(%s_bucket{%s}[%s])) %s %s * sum by (%s) (rate(%s_count[%s])))",
		by, by, base, bucketMatcher(bound), rw, cmp, promNumber(q), by, base, rw), true
}
