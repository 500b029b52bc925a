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
	nodeSelector  = `node=~"$node"`
	producerMatch = `producer=~"$producer"`
	layerMatch    = `layer=~"$layer"`
	rateInterval  = "$__rate_interval"
)

// The agent's own families (always agaobs_; README metrics reference,
// docs/health.md, docs/ebpf.md).
const (
	mRingFill          = "agaobs_ring_fill_ratio"
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

// names resolves the exposed metric names and units the panels read.
type names struct{ schema.Names }

// newNames fails if a family the panels read was renamed.
func newNames(prefix string, naming schema.Naming) (names, error) {
	n, err := schema.NewNames(prefix, naming, schema.FamForward, schema.FamRetrieval, schema.FamRetrievalInjected, schema.FamAuditOperations,
		schema.FamForwardLatency, schema.FamGateValue, schema.FamEntropyValue, schema.FamRetrievalScore, schema.FamKnowledgeCount,
		schema.FamKnowledgeUtil, schema.FamKnowledgePinned, schema.FamActivationRate, schema.FamSlotChangeRate, schema.FamProducerInfo)
	return names{n}, err
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

// info is the producer info series of the selected nodes.
func (n names) info() string {
	return n.aga(schema.FamProducerInfo) + "{" + nodeSelector + "}"
}

// byNode attaches the node label to a node-wide expression (one without a
// producer label) and keeps only the selected nodes: agent series carry no
// node label, so they are joined on the scrape target with producer info.
func (n names) byNode(expr string) string {
	return "(" + expr + ") * on (instance) group_left (node) max by (instance, node) (" + n.info() + ")"
}

// gpu attaches the GPU's index (agaobs_gpu_info) and node to a per-GPU
// expression and keeps the selected nodes' GPUs.
func (n names) gpu(expr string) string {
	return n.byNode(expr + gpuIndex)
}

// gpuIndex joins a per-GPU expression with its GPU's index; max by keeps
// the join one-to-one while an info label (driver version) changes.
const gpuIndex = " * on (instance, uuid) group_left (index) max by (instance, uuid, index) (" + mGPUInfo + ")"

// rate is rate(<name>{<matchers>}[$__rate_interval]).
func rate(name, matchers string) string {
	return "rate(" + name + "{" + matchers + "}[" + rateInterval + "])"
}

// quantile is histogram_quantile over the summed bucket rates.
func quantile(q, by, bucketRate string) string {
	return "histogram_quantile(" + q + ", sum by (" + by + ") (" + bucketRate + "))"
}
