package dashboard

import (
	"fmt"

	"github.com/agaobs/agaobs/internal/schema"
)

// Row titles, in dashboard order: the seed's five groups, then what the
// agent adds.
const (
	rowOverview  = "Overview"
	rowForward   = "Forward performance"
	rowGate      = "Gate & entropy"
	rowRetrieval = "Retrieval"
	rowAudit     = "Audit operations"
	rowAlerts    = "Alerts & SLOs"
	rowGPU       = "GPU"
	rowEBPF      = "eBPF probes"
	rowAgent     = "Agent"
)

// panels builds every row and panel.
func panels(n names) []Panel {
	b := &builder{}
	addOverview(b, n)
	addForward(b, n)
	addGateEntropy(b, n)
	addRetrieval(b, n)
	addAudit(b, n)
	addAlerts(b, n)
	addGPU(b, n)
	addEBPF(b, n)
	addAgent(b, n)
	return b.panels
}

func addOverview(b *builder, n names) {
	b.row(rowOverview)
	p, byProducer := producerMatch, n.legend()+" {{producer}}"
	b.add(6, 4, stat(statSpec{title: "Activation rate", unit: "percentunit",
		desc:       fmt.Sprintf("Share of forwards where AGA applied its injection, over each producer's most recent %d forwards (all layers).", schema.ActivationWindowLen),
		thresholds: steps("green", at(0.3, "yellow"), at(0.7, "red")),
		targets:    []Target{series(n.sel(n.aga(schema.FamActivationRate), p), byProducer)}}))
	b.add(6, 4, stat(statSpec{title: "Knowledge items", unit: "short",
		desc:    "Knowledge items in each producer's KV store (from its status snapshot, every 2 s).",
		targets: []Target{series(n.sel(n.aga(schema.FamKnowledgeCount), p), byProducer)}}))
	b.add(6, 4, stat(statSpec{title: "KV store utilization", unit: "percentunit",
		desc:       "KV store utilization, knowledge items / max_slots. The high_utilization alert fires above 95 %; eviction is likely near 100 %.",
		thresholds: steps("green", at(0.7, "yellow"), at(0.9, "red")),
		targets:    []Target{series(n.sel(n.aga(schema.FamKnowledgeUtil), p), byProducer)}}))
	b.add(6, 4, stat(statSpec{title: "Pinned knowledge", unit: "short",
		desc:    "Pinned knowledge items (never evicted) in each producer's KV store.",
		targets: []Target{series(n.sel(n.aga(schema.FamKnowledgePinned), p), byProducer)}}))
}

func addForward(b *builder, n names) {
	b.row(rowForward)
	lat := n.aga(schema.FamForwardLatency) + "_bucket"
	pl := []string{producerMatch, layerMatch}
	var qs []Target
	for _, q := range [][2]string{{"0.5", "P50"}, {"0.95", "P95"}, {"0.99", "P99"}} {
		qs = append(qs, series(quantile(q[0], "le", n.rate(lat, pl...)), q[1]))
	}
	b.add(8, 8, timeseries(tsSpec{title: "Forward latency (P50/P95/P99)", unit: n.latencyUnit(), targets: qs,
		desc: "Latency of the AGA forward hook across the selected producers and layers (histogram quantiles; observed when > 0). " +
			"The default slo_latency_p99 alert fires when P99 exceeds 1 ms, slo_latency_critical at 5 ms.",
		thresholds: steps("green", at(n.latencyBound(1000), "yellow"), at(n.latencyBound(5000), "red"))}))
	b.add(8, 8, timeseries(tsSpec{title: "Forward latency P99 by layer", unit: n.latencyUnit(),
		desc:    "P99 latency of the AGA forward hook per hooked layer, across the selected producers.",
		targets: []Target{series(quantile("0.99", "le, layer", n.rate(lat, pl...)), "layer {{layer}}")}}))
	fwd := n.aga(schema.FamForward)
	b.add(8, 8, timeseries(tsSpec{title: "Forward QPS (applied vs bypassed)", unit: "ops",
		desc: "AGA forward hook invocations per second: applied (knowledge injected) and bypassed (the gate or entropy check skipped injection).",
		targets: []Target{
			series("sum("+n.rate(fwd, append(pl, `applied="true"`)...)+")", "Applied"),
			series("sum("+n.rate(fwd, append(pl, `applied="false"`)...)+")", "Bypassed"),
		}}))
}

func addGateEntropy(b *builder, n names) {
	b.row(rowGate)
	b.add(12, 8, heatmap("Gate value distribution", "Distribution of the mean gate value per forward (0: knowledge ignored, 1: fully injected), per second.", "none",
		buckets("sum by (le) ("+n.rate(n.aga(schema.FamGateValue)+"_bucket", producerMatch, layerMatch)+")")))
	b.add(12, 8, heatmap("Entropy distribution", "Distribution of the mean attention entropy per forward (observed when > 0), per second. High entropy marks the uncertain tokens where AGA injects.", "none",
		buckets("sum by (le) ("+n.rate(n.aga(schema.FamEntropyValue)+"_bucket", producerMatch, layerMatch)+")")))
}

func addRetrieval(b *builder, n names) {
	b.row(rowRetrieval)
	p, byProducer, by := producerMatch, n.legend()+" {{producer}}", n.by("producer")
	b.add(6, 8, timeseries(tsSpec{title: "Retrieval rate", unit: "ops",
		desc:    "Retrieve-and-inject cycles per second that injected knowledge (aga-core emits retrieval events only then).",
		targets: []Target{series("sum by ("+by+") ("+n.rate(n.aga(schema.FamRetrieval), p, layerMatch)+")", byProducer)}}))
	b.add(6, 8, timeseries(tsSpec{title: "Injected knowledge items", unit: "ops",
		desc:    "Knowledge items injected by retrievals, per second.",
		targets: []Target{series("sum by ("+by+") ("+n.rate(n.aga(schema.FamRetrievalInjected), p, layerMatch)+")", byProducer)}}))
	b.add(6, 8, timeseries(tsSpec{title: "Slot change rate", unit: "short",
		desc:       "aga-core's average slot changes per retrieval (status snapshot). The slot_thrashing alert fires above 0.5.",
		thresholds: steps("green", at(0.5, "red")),
		targets:    []Target{series(n.sel(n.aga(schema.FamSlotChangeRate), p), byProducer)}}))
	b.add(6, 8, heatmap("Retrieval score distribution", "Scores of the retrieved knowledge items (one observation per item), per second.", "none",
		buckets("sum by (le) ("+n.rate(n.aga(schema.FamRetrievalScore)+"_bucket", p)+")")))
}

func addAudit(b *builder, n names) {
	b.row(rowAudit)
	b.add(24, 8, timeseries(tsSpec{title: "Audit operations by type", unit: "ops",
		desc: "Audit operations reported by the producers per second, by operation and success (register, unregister, load_from, clear, attach, …). " +
			"These are the producers' operations; the agent's tamper-evident trail is in the Agent row.",
		targets: []Target{series("sum by (operation, success) ("+n.rate(n.aga(schema.FamAuditOperations), producerMatch)+")", "{{operation}} (success={{success}})")}}))
}

func addAlerts(b *builder, n names) {
	b.row(rowAlerts)
	// Node-wide alerts have no producer label: "|" also matches the empty value.
	firing := n.sel(n.alerting(sufAlerts), alertsFiring, `producer=~"$producer|"`)
	b.add(4, 8, stat(statSpec{title: "Firing alerts", unit: "short",
		desc:       "Alerts the agent's rule engine reports firing (the seed's four rules, custom alert_rules and SLO burn-rate alerts).",
		thresholds: steps("green", at(1, "red")),
		targets:    []Target{series("count("+firing+") or vector(0)", "firing")}}))
	b.add(12, 8, table("Firing alert list", "Each firing alert with its node, producer (empty for node-wide rules) and severity, as the agent's <prefix>_alerts reports it.",
		instantTable(firing), n.hidden("Time", "Value", "__name__", "alertstate", "job"), []string{"alertname", "severity", n.node, "producer"}))
	b.add(8, 8, stat(statSpec{title: "SLO error budget remaining", unit: "percentunit",
		desc:       "Share of each SLO's error budget left over its period, per producer; negative once the budget is exhausted.",
		thresholds: steps("red", at(0, "orange"), at(0.25, "green")),
		targets:    []Target{series(n.sel(n.alerting(sufBudget), producerMatch), n.legend()+" {{producer}} {{slo}}")}}))
	b.add(24, 8, timeseries(tsSpec{title: "SLO burn rate", unit: "none",
		desc: "How fast each SLO spends its error budget (error ratio / (1 - objective)) over each window: 1 spends it exactly over the period. " +
			"The agent's multiwindow alerts: critical above 14.4 (1h and 5m) or 6 (6h and 30m), warning above 3 (1d and 2h) or 1 (3d and 6h).",
		thresholds: steps("green", at(1, "yellow"), at(3, "orange"), at(14.4, "red")),
		targets:    []Target{series(n.sel(n.alerting(sufBurnRate), producerMatch), n.legend()+" {{producer}} {{slo}} {{window}}")}}))
}

func addGPU(b *builder, n names) {
	b.row(rowGPU)
	legend := n.legend() + " GPU {{index}}"
	const nodeWide = " All GPUs of the selected nodes (the agent's NVML collector; empty without a GPU or with gpu_enabled: false)."
	b.add(8, 8, timeseries(tsSpec{title: "GPU utilization", unit: "percentunit", min: ptr(0.0), max: ptr(1.0),
		desc:    "Share of the last sample period a kernel ran on the GPU." + nodeWide,
		targets: []Target{series(n.gpu(n.sel(mGPUUtil)), legend)}}))
	b.add(8, 8, timeseries(tsSpec{title: "GPU memory", unit: "bytes",
		desc: "Device memory in use and installed." + nodeWide,
		targets: []Target{
			series(n.gpu(n.sel(mGPUMemUsed)), legend+" used"),
			series(n.gpu(n.sel(mGPUMemTotal)), legend+" total"),
		}}))
	b.add(8, 8, timeseries(tsSpec{title: "GPU memory by producer", unit: "bytes", stack: true,
		desc:    "GPU memory used by each selected producer's process, per GPU (NVML running processes matched to the producer's host pid).",
		targets: []Target{series(n.gpu(n.sel(mProducerGPUMem, producerMatch)), n.legend()+" {{producer}} GPU {{index}}")}}))
	b.add(8, 8, timeseries(tsSpec{title: "GPU temperature", unit: "celsius",
		desc:    "GPU core temperature." + nodeWide,
		targets: []Target{series(n.gpu(n.sel(mGPUTemp)), legend)}}))
	b.add(8, 8, timeseries(tsSpec{title: "GPU power", unit: "watt",
		desc:    "Power draw of the board." + nodeWide,
		targets: []Target{series(n.gpu(n.sel(mGPUPower)), legend)}}))
	b.add(8, 8, timeseries(tsSpec{title: "GPU XID errors", unit: "short", bars: true,
		desc:    "XID errors received from NVML events, by GPU and XID code (increase per interval). Codes 48, 63, 64, 74, 79, 92, 94, 95 and 119 usually need a reset or a drained node." + nodeWide,
		targets: []Target{series(n.gpu("sum by ("+n.by("uuid", "xid")+") (increase("+n.sel(mGPUXID)+"["+rateInterval+"]))"), legend+" XID {{xid}}")}}))
}

func addEBPF(b *builder, n names) {
	b.row(rowEBPF)
	p := producerMatch
	const why = " Measured in the kernel by the agent's eBPF probes (docs/ebpf.md); needs root or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN."
	b.add(8, 8, timeseries(tsSpec{title: "Off-CPU time by reason (P50/P99)", unit: "s",
		desc: "How long the producers' threads stay off CPU each time they leave it: sleep (blocked) or preempted (runnable, waiting for a CPU)." + why,
		targets: []Target{
			series(quantile("0.5", "le, reason", n.rate(mBPFOffCPU+"_bucket", p)), "P50 {{reason}}"),
			series(quantile("0.99", "le, reason", n.rate(mBPFOffCPU+"_bucket", p)), "P99 {{reason}}"),
		}}))
	b.add(8, 8, timeseries(tsSpec{title: "Run-queue latency (P50/P99)", unit: "s",
		desc:    "Wakeup-to-run latency of the producers' threads: time spent runnable waiting for a CPU." + why,
		targets: n.twoQuantiles(mBPFRunqueue, "le", "")}))
	b.add(8, 8, timeseries(tsSpec{title: "Python GC pauses (P50/P99)", unit: "s",
		desc:    "CPython garbage collection pauses in the producers (USDT gc__start to gc__done; the interpreter needs USDT notes)." + why,
		targets: n.twoQuantiles(mBPFGCPause, "le", "")}))
	b.add(8, 8, timeseries(tsSpec{title: "CUDA synchronize wait by API (P50/P99)", unit: "s",
		desc:    "Host time the producers spend waiting in CUDA synchronize calls (cudaStreamSynchronize, cuCtxSynchronize, …), by API; needs libcudart or libcuda mapped." + why,
		targets: n.twoQuantiles(mBPFCUDASync, "le, api", " {{api}}")}))
	b.add(8, 8, timeseries(tsSpec{title: "Forward latency, eBPF marker (P50/P99)", unit: "s",
		desc:    "AGA forward latency measured out of band between the agaobs_forward_begin and agaobs_forward_end markers (the forward_marker probe, off by default)." + why,
		targets: n.twoQuantiles(mBPFForward, "le", "")}))
	b.add(8, 8, stat(statSpec{title: "eBPF probes attached", unit: "short",
		desc:       "Producer processes each eBPF probe is attached to (0: no target yet, disabled, or failed; see agaobs_bpf_probe_errors_total).",
		thresholds: steps("yellow", at(1, "green")),
		targets:    []Target{series(n.sel(mBPFProbeAttached), n.legend()+" {{probe}}")}}))
}

// twoQuantiles is P50 and P99 of a histogram family of the selected
// producers, grouped by by.
func (n names) twoQuantiles(family, by, legendSuffix string) []Target {
	r := n.rate(family+"_bucket", producerMatch)
	return []Target{series(quantile("0.5", by, r), "P50"+legendSuffix), series(quantile("0.99", by, r), "P99"+legendSuffix)}
}

func addAgent(b *builder, n names) {
	b.row(rowAgent)
	p, by := producerMatch, n.by("producer", "class")
	pc := n.legend() + " {{producer}} {{class}}"
	b.add(8, 8, timeseries(tsSpec{title: "Ring fill", unit: "percentunit", min: ptr(0.0), max: ptr(1.0),
		desc:       "Share of each shared-memory ring's data area holding unreleased records. A full hot ring drops the producer's newest records; a full audit ring makes the producer wait up to 200 µs.",
		thresholds: steps("green", at(0.8, "red")),
		targets:    []Target{series("max by ("+by+") ("+n.sel(mRingFill, p)+")", pc)}}))
	b.add(8, 8, timeseries(tsSpec{title: "Ring drops and gaps", unit: "ops",
		desc: "Records per second the producers dropped because a ring was full (their own count), and sequence gaps the agent saw (equal to drops once the producer commits again).",
		targets: []Target{
			series("sum by ("+by+") ("+n.rate(mRingDropped, p)+")", "dropped "+pc),
			series("sum by ("+by+") ("+n.rate(mRingLost, p)+")", "lost "+pc),
		}}))
	b.add(8, 8, timeseries(tsSpec{title: "Corrupt records", unit: "ops",
		desc:    "Corrupt ring frames or bodies per second, counted and skipped by the agent.",
		targets: []Target{series("sum by ("+by+") ("+n.rate(mRingCorrupt, p)+")", pc)}}))
	b.add(8, 8, timeseries(tsSpec{title: "Sink drops", unit: "ops",
		desc:    "Events per second dropped because a sink's queue was full (metrics, log, alerts, audit); the ring consumer never waits for a sink.",
		targets: []Target{series("sum by ("+n.by("sink")+") ("+n.rate(mSinkDropped)+")", n.legend()+" {{sink}}")}}))
	b.add(8, 8, timeseries(tsSpec{title: "Event to sink latency (P99)", unit: "s",
		desc:    "P99 time from a producer's event to its sink receiving it (the oldest event of each batch, an upper bound).",
		targets: []Target{series(quantile("0.99", n.by("sink", "le"), n.rate(mSinkLatency+"_bucket")), n.legend()+" {{sink}}")}}))
	b.add(8, 8, stat(statSpec{title: "Producers up", unit: "short",
		desc:     "1 while the producer process is live, 0 once it closed or died (it stays listed for producer_retention).",
		mappings: valueMap([3]string{"0", "down", "red"}, [3]string{"1", "up", "green"}),
		targets:  []Target{series(n.sel(mProducerUp, p), n.legend()+" {{producer}}")}}))
	okMap := valueMap([3]string{"0", "failed", "red"}, [3]string{"1", "ok", "green"})
	b.add(8, 6, stat(statSpec{title: "Collector health", unit: "short", mappings: okMap,
		desc:    "Whether each of the agent's collectors (rings, pipeline, GPU, …) succeeded on its last run.",
		targets: []Target{series("min by ("+n.by("collector")+") ("+n.collectors()+")", n.legend()+" {{collector}}")}}))
	b.add(8, 6, stat(statSpec{title: "Health status", unit: "short",
		desc: "Health of each component at the last evaluation (the /health endpoint): the agent's own components and the selected producers' " +
			"(kv_store, gate_system, retriever, attachment, ring, liveness).",
		mappings: valueMap([3]string{"-1", "disabled", "text"}, [3]string{"0", "healthy", "green"}, [3]string{"1", "degraded", "orange"}, [3]string{"2", "unhealthy", "red"}),
		targets: []Target{series("max by ("+n.by("component")+") ("+n.sel(mHealthStatus, `component=~"($producer)/.+|[^/]+"`)+")",
			n.legend()+" {{component}}")}}))
	b.add(8, 6, stat(statSpec{title: "Audit store", unit: "short", mappings: valueMap([3]string{"0", "failing", "red"}, [3]string{"1", "up", "green"}),
		desc:    "1 while the agent's tamper-evident audit store accepts writes, 0 while commits fail (audit rings then hold their records until it recovers).",
		targets: []Target{series(n.sel(mAuditStoreUp), n.legend())}}))
}

// collectors is the success of each collector of the selected nodes' agents
// (agaobs_collector_success), the GPU collector's as collector="gpu".
func (n names) collectors() string {
	return n.sel(mCollectorSuccess) + ` or label_replace(` + n.sel(mGPUCollectSuccess) + `, "collector", "gpu", "", "")`
}
