package schema

import "fmt"

// Naming selects metric names (config key prometheus_naming).
type Naming string

// Namings.
const (
	// Compat keeps the seed's names, e.g. aga_forward_latency_us.
	Compat Naming = "compat"
	// Conventional uses base units and lint-clean names, e.g.
	// aga_forward_latency_seconds.
	Conventional Naming = "conventional"
)

// MetricType is a family's Prometheus metric type. It is the schema's own
// enum so this package need not import client_golang.
type MetricType int

// Metric types; the zero value is no type.
const (
	Counter MetricType = iota + 1
	Gauge
	Histogram
)

// String is the type's name as Prometheus's TYPE line spells it.
func (t MetricType) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case Histogram:
		return "histogram"
	}
	return fmt.Sprintf("MetricType(%d)", int(t))
}

// Family describes one AGA-domain metric family. Names exclude the prefix.
type Family struct {
	Key          string // stable identifier used in code (the Fam* constants)
	Compat       string // name suffix in compat naming
	Conventional string // name suffix in conventional naming
	Type         MetricType
	Labels       []string // besides producer and prometheus_labels
	Help         string
	// Divisor converts observed values to conventional units (1e6: µs → s);
	// dividing keeps bucket bounds exact (5/1e6 is the double nearest 5e-6).
	Divisor float64
	// Buckets are the classic histogram upper bounds in compat units.
	Buckets []float64
}

// Name returns the full metric name.
func (f *Family) Name(prefix string, n Naming) string {
	if n == Conventional {
		return prefix + "_" + f.Conventional
	}
	return prefix + "_" + f.Compat
}

// Family keys (Family.Key).
const (
	FamForward           = "forward"
	FamRetrieval         = "retrieval"
	FamRetrievalInjected = "retrieval_injected"
	FamAuditOperations   = "audit_operations"
	FamForwardLatency    = "forward_latency"
	FamGateValue         = "gate_value"
	FamEntropyValue      = "entropy_value"
	FamRetrievalScore    = "retrieval_score"
	FamKnowledgeCount    = "knowledge_count"
	FamKnowledgeUtil     = "knowledge_utilization"
	FamKnowledgePinned   = "knowledge_pinned"
	FamActivationRate    = "activation_rate"
	FamSlotChangeRate    = "slot_change_rate"
	FamBuildInfo         = "build_info"
	FamProducerInfo      = "producer_info"
)

// ActivationWindowLen is how many of a producer's most recent forwards
// the activation_rate family covers.
const ActivationWindowLen = 1000

// NumLatencyBounds is the number of finite forward latency bucket bounds;
// a constant so fixed-size bucket arrays can be declared with it.
const NumLatencyBounds = 10

// latencyBoundsUs are the forward latency buckets of the seed
// (docs/seed-compatibility.md §4.2), in µs. The array type makes a count that
// disagrees with NumLatencyBounds a compile error.
var latencyBoundsUs = [NumLatencyBounds]float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}

// LatencyBoundsUs returns the forward latency histogram's finite bucket
// bounds in µs, ascending; a fresh slice the caller may keep or change.
// The exporter exposes them, the alert engine computes rule quantiles over
// them and a latency SLI threshold must be one, so all three agree.
func LatencyBoundsUs() []float64 {
	b := latencyBoundsUs
	return b[:]
}

// IsLatencyBound reports whether us is one of the forward latency bucket
// bounds (µs).
func IsLatencyBound(us float64) bool {
	for _, b := range latencyBoundsUs {
		if b == us {
			return true
		}
	}
	return false
}

// Histogram buckets of the seed (docs/seed-compatibility.md §4.2).
func gateBuckets() []float64 {
	return []float64{0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}
}
func entropyBuckets() []float64 {
	return []float64{0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0}
}
func scoreBuckets() []float64 {
	return []float64{0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}
}

// Families returns the AGA-domain families in exposition order: the seed's
// fourteen, then the producer info family. Each call returns fresh slices.
func Families() []Family {
	c, g, h := Counter, Gauge, Histogram
	return []Family{
		{Key: FamForward, Compat: "forward_total", Conventional: "forward_total", Type: c, Labels: []string{"layer", "applied"},
			Help: "AGA forward hook invocations, by layer and whether the injection was applied."},
		{Key: FamRetrieval, Compat: "retrieval_total", Conventional: "retrieval_total", Type: c, Labels: []string{"layer"},
			Help: "Retrieve-and-inject cycles that injected knowledge (aga-core emits retrieval events only then)."},
		{Key: FamRetrievalInjected, Compat: "retrieval_injected_total", Conventional: "retrieval_injected_total", Type: c, Labels: []string{"layer"},
			Help: "Knowledge items injected by retrievals."},
		{Key: FamAuditOperations, Compat: "audit_operations_total", Conventional: "audit_operations_total", Type: c, Labels: []string{"operation", "success"},
			Help: "Audit operations reported by the producer (not the agent's own audit records)."},
		{Key: FamForwardLatency, Compat: "forward_latency_us", Conventional: "forward_latency_seconds", Type: h, Labels: []string{"layer"},
			Help: "Latency of the AGA forward hook (observed when > 0).", Divisor: 1e6, Buckets: LatencyBoundsUs()},
		{Key: FamGateValue, Compat: "gate_value", Conventional: "gate_value", Type: h, Labels: []string{"layer"},
			Help: "Mean gate value per forward.", Buckets: gateBuckets()},
		{Key: FamEntropyValue, Compat: "entropy_value", Conventional: "entropy_value", Type: h, Labels: []string{"layer"},
			Help: "Mean entropy per forward (observed when > 0).", Buckets: entropyBuckets()},
		{Key: FamRetrievalScore, Compat: "retrieval_score", Conventional: "retrieval_score", Type: h,
			Help: "Scores of retrieved knowledge items, one observation per score.", Buckets: scoreBuckets()},
		{Key: FamKnowledgeCount, Compat: "knowledge_count", Conventional: "knowledge_items", Type: g,
			Help: "Knowledge items in the KV store (from the producer's status snapshot)."},
		{Key: FamKnowledgeUtil, Compat: "knowledge_utilization", Conventional: "knowledge_utilization", Type: g,
			Help: "KV store utilization, count / max_slots (from the status snapshot)."},
		{Key: FamKnowledgePinned, Compat: "knowledge_pinned_count", Conventional: "knowledge_pinned_items", Type: g,
			Help: "Pinned knowledge items (from the status snapshot)."},
		{Key: FamActivationRate, Compat: "activation_rate", Conventional: "activation_rate", Type: g,
			Help: fmt.Sprintf("Share of applied forwards over the most recent %d forwards of the producer, all layers mixed.", ActivationWindowLen)},
		{Key: FamSlotChangeRate, Compat: "slot_change_rate", Conventional: "slot_change_rate", Type: g,
			Help: "aga-core slot change rate: average slot changes per retrieval (from the status snapshot)."},
		{Key: FamBuildInfo, Compat: "build_info", Conventional: "build_info", Type: g, Labels: []string{"version", "hidden_dim", "bottleneck_dim", "max_slots", "device"},
			Help: "aga-core build of the producer; always 1."},
		{Key: FamProducerInfo, Compat: "producer_info", Conventional: "producer_info", Type: g,
			Labels: []string{"pid", "role", "rank", "world_size", "model", "aga_version", "ring", "producer_pod", "producer_namespace",
				"producer_container", "producer_pod_uid", "producer_container_id", "node", "gpu_uuids"},
			Help: "Identity of the producer process (Kubernetes pod and container when it runs in one, the GPUs it holds memory on, comma-separated); always 1."},
	}
}
