package dashboard

import (
	"fmt"

	"github.com/agaobs/agaobs/internal/schema"
)

// Row titles of the fleet dashboard, in order.
const (
	rowFleet   = "Fleet"
	rowTable   = "Producers"
	rowWorst   = "Worst producers"
	rowModels  = "SLOs by model"
	rowNodes   = "Agents and GPUs by node"
	worstCount = 10
)

// fleetPanels builds the fleet dashboard: every node and producer of the
// selected nodes, from raw series (no recording rules), with links into
// the node dashboard (uid nodeUID).
func fleetPanels(n names, nodeUID string) []Panel {
	b := &builder{}
	f := fleet{names: n, nodeUID: nodeUID}
	f.overview(b)
	f.producerTable(b)
	f.worst(b)
	f.models(b)
	f.agents(b)
	return b.panels
}

// fleet holds what the fleet panels share.
type fleet struct {
	names
	nodeUID string
}

// p99 is each producer's P99 forward latency (all layers).
func (f fleet) p99(by string) string {
	return quantile("0.99", by, f.rate(f.aga(schema.FamForwardLatency)+"_bucket"))
}

// dropRatio is dropped / (consumed + dropped) on the hot rings, summed by
// the labels in by ("" sums everything): the expression of the agent's
// drop_rate alert metric.
func (f fleet) dropRatio(by string) string {
	sum := func(expr string) string {
		if by == "" {
			return "sum(" + expr + ")"
		}
		return "sum by (" + by + ") (" + expr + ")"
	}
	dropped := sum(f.rate(mRingDropped, hotRing))
	return dropped + " / (" + sum(f.rate(mRingEvents, hotRing)) + " + " + dropped + ")"
}

// producerGPUs is 1 for each GPU a producer's process uses (its
// agaobs_producer_gpu_memory_bytes series), to attribute per-GPU series to
// producers.
func (f fleet) producerGPUs() string { return "(0 * " + f.sel(mProducerGPUMem) + " + 1)" }

// orZero adds 0 for every selected node whose agent reports but that expr
// (aggregated by the node label only) leaves out.
func (f fleet) orZero(expr string) string {
	return expr + " or on (" + f.node + ") 0 * max by (" + f.node + ") (" + f.sel(mBuildInfo) + ")"
}

// links into the node dashboard from a table row: the node, and the
// producer where the row has one.
func (f fleet) links(producer bool) map[string][]DataLink {
	node := "${__data.fields." + f.node + "}"
	base := "/d/" + f.nodeUID + "?var-datasource=${datasource}&var-node=" + node
	out := map[string][]DataLink{f.node: {{Title: "Node dashboard: " + node, URL: base + "&${__url_time_range}"}}}
	if producer {
		out["producer"] = []DataLink{{Title: "Node dashboard: ${__data.fields.producer} on " + node,
			URL: base + "&var-producer=${__data.fields.producer}&${__url_time_range}"}}
	}
	return out
}

var (
	latencyNote = "The default slo_latency_p99 alert fires when a producer's P99 exceeds 1 ms, slo_latency_critical at 5 ms."
	dropNote    = "Hot-ring records dropped / (consumed + dropped): the producers' records lost because a ring was full (the drop_rate alert metric)."
	budgetNote  = "Share of the SLO's error budget left over its period (<prefix>_slo_error_budget_remaining_ratio); negative once exhausted."
)

func (f fleet) overview(b *builder) {
	b.row(rowFleet)
	b.add(4, 4, stat(statSpec{title: "Agents", unit: "short",
		desc:    "Agents Prometheus scrapes now on the selected nodes (one per node; each exports " + mBuildInfo + ", producers or not).",
		targets: []Target{series("count("+f.sel(mBuildInfo)+")", "agents")}}))
	b.add(4, 4, stat(statSpec{title: "Live producers", unit: "short",
		desc:    "Producer processes live on the selected nodes (agaobs_producer_up).",
		targets: []Target{series("sum("+f.sel(mProducerUp)+")", "producers")}}))
	b.add(4, 4, stat(statSpec{title: "Forward rate", unit: "ops",
		desc:    "AGA forward hook invocations per second across the selected nodes.",
		targets: []Target{series("sum("+f.rate(f.aga(schema.FamForward))+")", "forwards")}}))
	b.add(4, 4, stat(statSpec{title: "Fleet P99 forward latency", unit: f.latencyUnit(),
		desc:       "P99 latency of the AGA forward hook over every forward of the selected nodes. " + latencyNote,
		thresholds: steps("green", at(f.latencyBound(1000), "yellow"), at(f.latencyBound(5000), "red")),
		targets:    []Target{series(f.p99("le"), "P99")}}))
	b.add(4, 4, stat(statSpec{title: "Hot ring drop ratio", unit: "percentunit",
		desc:       dropNote + " Over the selected nodes.",
		thresholds: steps("green", at(0.001, "yellow"), at(0.01, "red")),
		targets:    []Target{series(f.dropRatio(""), "dropped")}}))
	b.add(4, 4, stat(statSpec{title: "Firing alerts", unit: "short",
		desc:       "Alerts firing on the selected nodes' agents (<prefix>_alerts).",
		thresholds: steps("green", at(1, "red")),
		targets:    []Target{series("count("+f.sel(f.alerting(sufAlerts), alertsFiring)+") or vector(0)", "firing")}}))
}

func (f fleet) producerTable(b *builder) {
	b.row(rowTable)
	np := f.by("producer")
	gpu := func(agg, expr string) string {
		return agg + " by (" + np + ") (" + expr + " * on (" + f.by("uuid") + ") group_right () " + f.producerGPUs() + ")"
	}
	b.add(24, 10, mergedTable("Producers by node",
		"Every producer of the selected nodes, one row each; a producer name repeats across nodes (inference-tp0 on each), the node tells them apart. "+
			"Click a node or producer for the node dashboard. Empty cells: no such series (no SLO, no GPU).",
		[]string{f.node, "producer", "model"}, f.links(true), []column{
			{hide: true, expr: "max by (" + f.by("producer", "model") + ") (" + f.info() + ")"},
			{name: "Up", unit: "short", desc: "1 while the producer process is live, 0 once it closed or died.",
				mappings: valueMap([3]string{"0", "down", "red"}, [3]string{"1", "up", "green"}),
				expr:     "max by (" + np + ") (" + f.sel(mProducerUp) + ")"},
			{name: "Forward rate", unit: "ops", desc: "AGA forward hook invocations per second.",
				expr: "sum by (" + np + ") (" + f.rate(f.aga(schema.FamForward)) + ")"},
			{name: "P99 latency", unit: f.latencyUnit(), desc: "P99 forward latency over all layers. " + latencyNote,
				thresholds: steps("green", at(f.latencyBound(1000), "yellow"), at(f.latencyBound(5000), "red")),
				expr:       f.p99(f.by("producer", "le"))},
			{name: "Drop ratio", unit: "percentunit", desc: dropNote,
				thresholds: steps("green", at(0.001, "yellow"), at(0.01, "red")),
				expr:       f.dropRatio(np)},
			{name: "Error budget left", unit: "percentunit", desc: budgetNote + " The least of the producer's SLOs.",
				thresholds: steps("red", at(0, "orange"), at(0.25, "green")),
				expr:       "min by (" + np + ") (" + f.sel(f.alerting(sufBudget)) + ")"},
			{name: "GPU utilization", unit: "percentunit", desc: "Mean utilization of the GPUs the producer's process uses (NVML).",
				expr: gpu("avg", f.sel(mGPUUtil))},
			{name: "XID errors", unit: "short", desc: "XID errors in the time range on the GPUs the producer's process uses.",
				thresholds: steps("green", at(1, "red")),
				expr:       gpu("sum", "sum by ("+f.by("uuid")+") (increase("+f.sel(mGPUXID)+"["+timeRange+"]))")},
		}, "P99 latency"))
}

func (f fleet) worst(b *builder) {
	b.row(rowWorst)
	np := f.by("producer")
	b.add(12, 9, mergedTable(fmt.Sprintf("Worst %d producers by P99 latency", worstCount),
		"The producers with the highest P99 forward latency now. "+latencyNote,
		[]string{f.node, "producer"}, f.links(true), []column{{name: "P99 latency", unit: f.latencyUnit(), desc: "P99 forward latency over all layers.",
			thresholds: steps("green", at(f.latencyBound(1000), "yellow"), at(f.latencyBound(5000), "red")),
			expr:       fmt.Sprintf("topk(%d, %s)", worstCount, f.p99(f.by("producer", "le")))}}, "P99 latency"))
	b.add(12, 9, mergedTable(fmt.Sprintf("Worst %d producers by drop ratio", worstCount),
		"The producers losing the largest share of their records now. "+dropNote,
		[]string{f.node, "producer"}, f.links(true), []column{{name: "Drop ratio", unit: "percentunit", desc: dropNote,
			thresholds: steps("green", at(0.001, "yellow"), at(0.01, "red")),
			expr:       fmt.Sprintf("topk(%d, %s)", worstCount, f.dropRatio(np))}}, "Drop ratio"))
}

func (f fleet) models(b *builder) {
	b.row(rowModels)
	const byModel = " The model is the model label of <prefix>_producer_info, joined on node and producer."
	b.add(12, 8, timeseries(tsSpec{title: "Error budget remaining by model", unit: "percentunit",
		desc:       budgetNote + " The least over each model's producers, per SLO." + byModel,
		thresholds: steps("red", at(0, "orange"), at(0.25, "green")),
		targets:    []Target{series("min by (model, slo) ("+f.withModel(f.sel(f.alerting(sufBudget)))+")", "{{model}} {{slo}}")}}))
	b.add(12, 8, timeseries(tsSpec{title: "SLO burn rate by model", unit: "none",
		desc: "How fast each SLO spends its error budget (1 spends it exactly over the period), the highest over each model's producers, per window. " +
			"The agent's multiwindow alerts: critical above 14.4 (1h and 5m) or 6 (6h and 30m), warning above 3 (1d and 2h) or 1 (3d and 6h)." + byModel,
		thresholds: steps("green", at(1, "yellow"), at(3, "orange"), at(14.4, "red")),
		targets:    []Target{series("max by (model, slo, window) ("+f.withModel(f.sel(f.alerting(sufBurnRate)))+")", "{{model}} {{slo}} {{window}}")}}))
	b.add(12, 8, timeseries(tsSpec{title: "P99 forward latency by model", unit: f.latencyUnit(),
		desc:       "P99 forward latency over every forward of each model's producers. " + latencyNote + byModel,
		thresholds: steps("green", at(f.latencyBound(1000), "yellow"), at(f.latencyBound(5000), "red")),
		targets: []Target{series(quantile("0.99", "model, le",
			f.withModel(f.rate(f.aga(schema.FamForwardLatency)+"_bucket"))), "{{model}}")}}))
	b.add(12, 8, timeseries(tsSpec{title: "Forward rate by model", unit: "ops",
		desc:    "AGA forward hook invocations per second of each model's producers." + byModel,
		targets: []Target{series("sum by (model) ("+f.withModel(f.rate(f.aga(schema.FamForward)))+")", "{{model}}")}}))
}

func (f fleet) agents(b *builder) {
	b.row(rowNodes)
	by := "max by (" + f.node + ") "
	seen := f.node + " seen in the time range"
	b.add(24, 9, mergedTable("Agents by node",
		"The agent of every selected node: whether Prometheus scrapes it now, its collectors, audit store, sink drops, producers, alerts and GPUs. "+
			"A node whose agent stopped reporting within the time range shows Agent: missing. Click a node for the node dashboard.",
		[]string{f.node, "version"}, f.links(false), []column{
			{hide: true, expr: "max by (" + f.by("version") + ") (last_over_time(" + f.sel(mBuildInfo) + "[" + timeRange + "]))"},
			{name: "Agent", unit: "short", desc: "up: the agent's " + mBuildInfo + " is scraped now; missing: " + seen + " but not now.",
				mappings: valueMap([3]string{"0", "missing", "red"}, [3]string{"1", "up", "green"}),
				expr:     by + "(" + f.sel(mBuildInfo) + ") or on (" + f.node + ") 0 * " + by + "(max_over_time(" + f.sel(mBuildInfo) + "[" + timeRange + "]))"},
			{name: "Failing collectors", unit: "short", desc: "Collectors whose last run failed (agaobs_collector_success 0, the GPU collector's included).",
				thresholds: steps("green", at(1, "red")),
				expr:       "sum by (" + f.node + ") (1 - (" + f.collectors() + "))"},
			{name: "Audit store", unit: "short", desc: "up while the tamper-evident audit store accepts writes (agaobs_audit_store_up).",
				mappings: valueMap([3]string{"0", "failing", "red"}, [3]string{"1", "up", "green"}),
				expr:     "min by (" + f.node + ") (" + f.sel(mAuditStoreUp) + ")"},
			{name: "Sink drops", unit: "ops", desc: "Events per second dropped because a sink's queue was full (agaobs_sink_dropped_total).",
				thresholds: steps("green", at(0.001, "red")),
				expr:       "sum by (" + f.node + ") (" + f.rate(mSinkDropped) + ")"},
			{name: "Live producers", unit: "short", desc: "Producer processes live on the node.",
				expr: f.orZero("sum by (" + f.node + ") (" + f.sel(mProducerUp) + ")")},
			{name: "Firing alerts", unit: "short", desc: "Alerts the node's agent reports firing.",
				thresholds: steps("green", at(1, "red")),
				expr:       f.orZero("count by (" + f.node + ") (" + f.sel(f.alerting(sufAlerts), alertsFiring) + ")")},
			{name: "GPUs", unit: "short", desc: "GPUs the agent's NVML collector sees (empty without a GPU or with gpu_enabled: false).",
				expr: "count by (" + f.node + ") (" + f.sel(mGPUInfo) + ")"},
			{name: "GPU utilization", unit: "percentunit", desc: "Mean utilization of the node's GPUs.",
				expr: "avg by (" + f.node + ") (" + f.sel(mGPUUtil) + ")"},
			{name: "XID errors", unit: "short", desc: "XID errors of the node's GPUs in the time range.",
				thresholds: steps("green", at(1, "red")),
				expr:       "sum by (" + f.node + ") (increase(" + f.sel(mGPUXID) + "[" + timeRange + "]))"},
		}, "Firing alerts"))
	b.add(12, 8, timeseries(tsSpec{title: "GPU utilization by node", unit: "percentunit", min: ptr(0.0), max: ptr(1.0),
		desc:    "Mean utilization of each selected node's GPUs (empty without a GPU or with gpu_enabled: false).",
		targets: []Target{series("avg by ("+f.node+") ("+f.sel(mGPUUtil)+")", f.legend())}}))
	b.add(12, 8, timeseries(tsSpec{title: "GPU XID errors by node", unit: "short", bars: true,
		desc: "XID errors received from NVML events on each selected node's GPUs (increase per interval). " +
			"Codes 48, 63, 64, 74, 79, 92, 94, 95 and 119 usually need a reset or a drained node.",
		targets: []Target{series("sum by ("+f.node+") (increase("+f.sel(mGPUXID)+"["+rateInterval+"]))", f.legend())}}))
}
