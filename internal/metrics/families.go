package metrics

import (
	"fmt"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

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

// Family describes one AGA-domain metric family. Names exclude the prefix.
type Family struct {
	Key          string // stable identifier used in code
	Compat       string // name suffix in compat naming
	Conventional string // name suffix in conventional naming
	Type         dto.MetricType
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

// Histogram buckets of the seed (python-reference.md §2.4).
func latencyBucketsUs() []float64 {
	return []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}
}
func gateBuckets() []float64 {
	return []float64{0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}
}
func entropyBuckets() []float64 {
	return []float64{0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0}
}
func scoreBuckets() []float64 {
	return []float64{0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}
}

// Family keys.
const (
	famForward          = "forward"
	famRetrieval        = "retrieval"
	famRetrievalInject  = "retrieval_injected"
	famAudit            = "audit_operations"
	famLatency          = "forward_latency"
	famGate             = "gate_value"
	famEntropy          = "entropy_value"
	famScore            = "retrieval_score"
	famKnowledgeCount   = "knowledge_count"
	famKnowledgeUtil    = "knowledge_utilization"
	famKnowledgePinned  = "knowledge_pinned"
	famActivation       = "activation_rate"
	famSlotChange       = "slot_change_rate"
	famBuildInfo        = "build_info"
	famProducerInfo     = "producer_info"
	activationWindowLen = 1000
)

// Families returns the AGA-domain families in exposition order: the seed's
// fourteen, then the producer info family.
func Families() []Family {
	c, g, h := dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM
	return []Family{
		{Key: famForward, Compat: "forward_total", Conventional: "forward_total", Type: c, Labels: []string{"layer", "applied"},
			Help: "AGA forward hook invocations, by layer and whether the injection was applied."},
		{Key: famRetrieval, Compat: "retrieval_total", Conventional: "retrieval_total", Type: c, Labels: []string{"layer"},
			Help: "Retrieve-and-inject cycles that injected knowledge (aga-core emits retrieval events only then)."},
		{Key: famRetrievalInject, Compat: "retrieval_injected_total", Conventional: "retrieval_injected_total", Type: c, Labels: []string{"layer"},
			Help: "Knowledge items injected by retrievals."},
		{Key: famAudit, Compat: "audit_operations_total", Conventional: "audit_operations_total", Type: c, Labels: []string{"operation", "success"},
			Help: "Audit operations reported by the producer (not the agent's own audit records)."},
		{Key: famLatency, Compat: "forward_latency_us", Conventional: "forward_latency_seconds", Type: h, Labels: []string{"layer"},
			Help: "Latency of the AGA forward hook (observed when > 0).", Divisor: 1e6, Buckets: latencyBucketsUs()},
		{Key: famGate, Compat: "gate_value", Conventional: "gate_value", Type: h, Labels: []string{"layer"},
			Help: "Mean gate value per forward.", Buckets: gateBuckets()},
		{Key: famEntropy, Compat: "entropy_value", Conventional: "entropy_value", Type: h, Labels: []string{"layer"},
			Help: "Mean entropy per forward (observed when > 0).", Buckets: entropyBuckets()},
		{Key: famScore, Compat: "retrieval_score", Conventional: "retrieval_score", Type: h,
			Help: "Scores of retrieved knowledge items, one observation per score.", Buckets: scoreBuckets()},
		{Key: famKnowledgeCount, Compat: "knowledge_count", Conventional: "knowledge_items", Type: g,
			Help: "Knowledge items in the KV store (from the producer's status snapshot)."},
		{Key: famKnowledgeUtil, Compat: "knowledge_utilization", Conventional: "knowledge_utilization", Type: g,
			Help: "KV store utilization, count / max_slots (from the status snapshot)."},
		{Key: famKnowledgePinned, Compat: "knowledge_pinned_count", Conventional: "knowledge_pinned_items", Type: g,
			Help: "Pinned knowledge items (from the status snapshot)."},
		{Key: famActivation, Compat: "activation_rate", Conventional: "activation_rate", Type: g,
			Help: fmt.Sprintf("Share of applied forwards over the most recent %d forwards of the producer, all layers mixed.", activationWindowLen)},
		{Key: famSlotChange, Compat: "slot_change_rate", Conventional: "slot_change_rate", Type: g,
			Help: "aga-core slot change rate: average slot changes per retrieval (from the status snapshot)."},
		{Key: famBuildInfo, Compat: "build_info", Conventional: "build_info", Type: g, Labels: []string{"version", "hidden_dim", "bottleneck_dim", "max_slots", "device"},
			Help: "aga-core build of the producer; always 1."},
		{Key: famProducerInfo, Compat: "producer_info", Conventional: "producer_info", Type: g,
			Labels: []string{"pid", "role", "rank", "world_size", "model", "aga_version", "ring", "producer_pod", "producer_namespace",
				"producer_container", "producer_pod_uid", "producer_container_id", "node", "gpu_uuids"},
			Help: "Identity of the producer process (Kubernetes pod and container when it runs in one, the GPUs it holds memory on, comma-separated); always 1."},
	}
}

// ReferenceTable renders the metrics reference (README) as a Markdown
// table: both namings side by side.
func ReferenceTable(prefix string) string {
	var b strings.Builder
	b.WriteString("| compat name (`prometheus_naming: compat`, default) | conventional name | type | labels | meaning |\n|---|---|---|---|---|\n")
	for _, f := range Families() {
		labels := append([]string{"producer"}, f.Labels...)
		typ := strings.ToLower(f.Type.String())
		if f.Buckets != nil {
			typ += " (buckets " + bucketList(f.Buckets) + ")"
		}
		conv := "same"
		if f.Conventional != f.Compat {
			conv = "`" + f.Name(prefix, Conventional) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name(prefix, Compat), conv, typ, strings.Join(labels, ", "), f.Help)
	}
	return b.String()
}

func bucketList(bs []float64) string {
	parts := make([]string, len(bs))
	for i, v := range bs {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}
