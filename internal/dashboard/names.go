package dashboard

import (
	"github.com/agaobs/agaobs/internal/schema"
)

// Alerting families: prometheus_prefix + these suffixes (alerting.Collector).
const (
	sufAlerts     = "_alerts"
	sufBudget     = "_slo_error_budget_remaining_ratio"
	sufBurnRate   = "_slo_burn_rate"
	alertsFiring  = `alertstate="firing"`
	producerMatch = `producer=~"$producer"`
	layerMatch    = `layer=~"$layer"`
	hotRing       = `class="hot"`
	rateInterval  = "$__rate_interval"
	timeRange     = "$__range"
)

// Node labels: the agent adds node=<node_name> to every series it exposes
// (prometheus_node_label, the default); without it, the scrape target's
// instance tells nodes apart.
const (
	labelNode     = "node"
	labelInstance = "instance"
)

// The agent's own families (always agaobs_; README metrics reference,
// docs/health.md, docs/ebpf.md).
const (
	mBuildInfo         = "agaobs_build_info"
	mRingFill          = "agaobs_ring_fill_ratio"
	mRingEvents        = "agaobs_ring_events_total"
	mRingDropped       = "agaobs_ring_dropped_total"
	mRingLost          = "agaobs_ring_lost_total"
	mRingCorrupt       = "agaobs_ring_corrupt_total"
	mSinkDropped       = "agaobs_sink_dropped_total"
	mSinkLatency       = "agaobs_sink_event_latency_seconds"
	mCollectorSuccess  = "agaobs_collector_success"
	mHealthStatus      = "agaobs_health_status"
	mAuditStoreUp      = "agaobs_audit_store_up"
	mProducerUp        = "agaobs_producer_up"
	mGPUInfo           = "agaobs_gpu_info"
	mGPUUtil           = "agaobs_gpu_utilization_ratio"
	mGPUMemUsed        = "agaobs_gpu_memory_used_bytes"
	mGPUMemTotal       = "agaobs_gpu_memory_total_bytes"
	mGPUTemp           = "agaobs_gpu_temperature_celsius"
	mGPUPower          = "agaobs_gpu_power_watts"
	mGPUXID            = "agaobs_gpu_xid_errors_total"
	mGPUCollectSuccess = "agaobs_gpu_collect_success"
	mProducerGPUMem    = "agaobs_producer_gpu_memory_bytes"
	mBPFOffCPU         = "agaobs_bpf_offcpu_seconds"
	mBPFRunqueue       = "agaobs_bpf_runqueue_latency_seconds"
	mBPFGCPause        = "agaobs_bpf_python_gc_pause_seconds"
	mBPFCUDASync       = "agaobs_bpf_cuda_sync_wait_seconds"
	mBPFForward        = "agaobs_bpf_forward_latency_seconds"
	mBPFProbeAttached  = "agaobs_bpf_probe_attached"
)

// names resolves the exposed metric names and units the panels read, and
// the label that tells nodes apart.
type names struct {
	schema.Names
	node string // labelNode or labelInstance
}

// newNames fails if a family the panels read was renamed.
func newNames(prefix string, naming schema.Naming, byInstance bool) (names, error) {
	n, err := schema.NewNames(prefix, naming, schema.FamForward, schema.FamRetrieval, schema.FamRetrievalInjected, schema.FamAuditOperations,
		schema.FamForwardLatency, schema.FamGateValue, schema.FamEntropyValue, schema.FamRetrievalScore, schema.FamKnowledgeCount,
		schema.FamKnowledgeUtil, schema.FamKnowledgePinned, schema.FamActivationRate, schema.FamSlotChangeRate, schema.FamProducerInfo)
	node := labelNode
	if byInstance {
		node = labelInstance
	}
	return names{Names: n, node: node}, err
}

// aga returns the full name of an AGA-domain family.
func (n names) aga(key string) string { return n.Name(key) }

// alerting returns the full name of an alerting family.
func (n names) alerting(suffix string) string { return n.Prefix() + suffix }

// latencyUnit is the Grafana unit of the forward latency histogram: the
// family is in µs in compat naming and in seconds (its Divisor applied) in
// conventional naming.
func (n names) latencyUnit() string {
	if n.Divisor(schema.FamForwardLatency) == 1e6 {
		return "s"
	}
	return "µs"
}

// latencyBound converts a latency in µs (the alert rules' unit) to the
// histogram's unit.
func (n names) latencyBound(us float64) float64 { return us / n.Divisor(schema.FamForwardLatency) }

// nodes matches the selected nodes: every selector of both dashboards
// starts with it.
func (n names) nodes() string { return n.node + `=~"$node"` }

// producers matches the selected nodes' selected producers.
func (n names) producers() string { return n.nodes() + "," + producerMatch }

// layers matches the selected producers' selected layers.
func (n names) layers() string { return n.producers() + "," + layerMatch }

// sel is name{<selected nodes>[,more]}.
func (n names) sel(name string, more ...string) string {
	s := name + "{" + n.nodes()
	for _, m := range more {
		s += "," + m
	}
	return s + "}"
}

// legend is the node's legend placeholder ({{node}} or {{instance}}).
func (n names) legend() string { return "{{" + n.node + "}}" }

// by lists the node label and more labels for an aggregation's by clause.
func (n names) by(more ...string) string {
	s := n.node
	for _, m := range more {
		s += ", " + m
	}
	return s
}

// hidden lists table columns to hide, plus instance where the node label
// tells nodes apart.
func (n names) hidden(cols ...string) []string {
	if n.node == labelNode {
		cols = append(cols, labelInstance)
	}
	return cols
}

// info is the producer info series of the selected nodes.
func (n names) info() string { return n.sel(n.aga(schema.FamProducerInfo)) }

// withModel attaches the producer's model (the model label of
// <prefix>_producer_info) to an expression with node and producer labels.
func (n names) withModel(expr string) string {
	return expr + " * on (" + n.by("producer") + ") group_left (model) max by (" + n.by("producer", "model") + ") (" + n.info() + ")"
}

// gpu attaches the GPU's index (agaobs_gpu_info) to a per-GPU expression
// of the selected nodes; max by keeps the join one-to-one while an info
// label (driver version) changes.
func (n names) gpu(expr string) string {
	return expr + " * on (" + n.by("uuid") + ") group_left (index) max by (" + n.by("uuid", "index") + ") (" + n.sel(mGPUInfo) + ")"
}

// rate is rate(<name>{<selected nodes>[,more]}[$__rate_interval]).
func (n names) rate(name string, more ...string) string {
	return "rate(" + n.sel(name, more...) + "[" + rateInterval + "])"
}

// quantile is histogram_quantile over the summed bucket rates.
func quantile(q, by, bucketRate string) string {
	return "histogram_quantile(" + q + ", sum by (" + by + ") (" + bucketRate + "))"
}
