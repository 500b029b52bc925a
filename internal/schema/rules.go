package schema

import "strings"

// RuleMetric is a metric alert rules may watch (alert_rules[].metric). The
// alert engine computes it from events; the rule generator translates it
// to PromQL over the exported families (docs/alerting.md has the table).
type RuleMetric string

// Rule metrics.
const (
	RuleLatencyP50           RuleMetric = "latency_p50"
	RuleLatencyP95           RuleMetric = "latency_p95"
	RuleLatencyP99           RuleMetric = "latency_p99"
	RuleGateMean             RuleMetric = "gate_mean"
	RuleEntropyMean          RuleMetric = "entropy_mean"
	RuleActivationRate       RuleMetric = "activation_rate"
	RuleRetrievalFailureRate RuleMetric = "retrieval_failure_rate"
	RuleKnowledgeUtilization RuleMetric = "knowledge_utilization"
	RuleSlotChangeRate       RuleMetric = "slot_change_rate"
	RuleForwardRate          RuleMetric = "forward_rate"
	RuleDropRate             RuleMetric = "drop_rate"
	RuleHeartbeatAge         RuleMetric = "producer_heartbeat_age_seconds"
	// RuleAnomaly and RuleStraggler watch the anomaly detector's scores
	// (signal, sensitivity and direction instead of a threshold).
	RuleAnomaly   RuleMetric = "anomaly"
	RuleStraggler RuleMetric = "straggler"
)

// ruleMetrics holds the facts per rule metric, in the order configuration
// errors list them (changing it changes those messages).
var ruleMetrics = []struct {
	m RuleMetric
	// family is the AGA-domain family the metric is computed from; empty
	// when it reads the agent's own series (drop_rate, the heartbeat age)
	// or data that is not exported (retrieval result counts).
	family   string
	quantile float64 // latency_pQ's Q, else 0
}{
	{RuleLatencyP50, FamForwardLatency, 0.5},
	{RuleLatencyP95, FamForwardLatency, 0.95},
	{RuleLatencyP99, FamForwardLatency, 0.99},
	{RuleGateMean, FamGateValue, 0},
	{RuleEntropyMean, FamEntropyValue, 0},
	{RuleActivationRate, FamForward, 0},
	{RuleRetrievalFailureRate, "", 0},
	{RuleKnowledgeUtilization, FamKnowledgeUtil, 0},
	{RuleSlotChangeRate, FamSlotChangeRate, 0},
	{RuleForwardRate, FamForward, 0},
	{RuleDropRate, "", 0},
	{RuleHeartbeatAge, "", 0},
	{RuleAnomaly, "", 0},
	{RuleStraggler, "", 0},
}

// Detector reports whether m reads the anomaly detector (anomaly,
// straggler) rather than a window of events.
func (m RuleMetric) Detector() bool { return m == RuleAnomaly || m == RuleStraggler }

// anomalySignals are the anomaly detector's signals, in its order: the
// signal label values and alert_rules[].signal. The first five are also
// tracked per layer.
var anomalySignals = []string{
	"latency_p50", "latency_p99", "applied_ratio", "gate_mean", "entropy_mean",
	"forward_rate", "retrieval_results", "retrieval_injected", "kv_utilization",
	"slot_change_rate", "drop_rate", "offcpu_p99", "gc_pause_p99", "gpu_utilization",
}

// stragglerSignals are the signals peer groups compare.
var stragglerSignals = []string{"latency_p99", "latency_p50", "offcpu_p99"}

// AnomalySignals returns the anomaly detector's signal names in order.
func AnomalySignals() []string { return append([]string(nil), anomalySignals...) }

// StragglerSignals returns the signals a straggler rule may watch.
func StragglerSignals() []string { return append([]string(nil), stragglerSignals...) }

// RuleMetrics returns every rule metric, in the order docs and error
// messages list them.
func RuleMetrics() []RuleMetric {
	out := make([]RuleMetric, len(ruleMetrics))
	for i, r := range ruleMetrics {
		out[i] = r.m
	}
	return out
}

// RuleMetricList is RuleMetrics separated by spaces, as configuration
// errors spell the set.
func RuleMetricList() string {
	var b strings.Builder
	for i, r := range ruleMetrics {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(r.m))
	}
	return b.String()
}

// Valid reports whether m is a rule metric.
func (m RuleMetric) Valid() bool {
	for _, r := range ruleMetrics {
		if r.m == m {
			return true
		}
	}
	return false
}

// Family is the key of the AGA-domain family m is computed from; empty for
// metrics read from the agent's own series or from unexported data, and for
// an unknown m.
func (m RuleMetric) Family() string {
	for _, r := range ruleMetrics {
		if r.m == m {
			return r.family
		}
	}
	return ""
}

// Quantile is Q of a latency_pQ metric (0.5, 0.95, 0.99); ok is false for
// the other metrics.
func (m RuleMetric) Quantile() (q float64, ok bool) {
	for _, r := range ruleMetrics {
		if r.m == m {
			return r.quantile, r.quantile != 0
		}
	}
	return 0, false
}
