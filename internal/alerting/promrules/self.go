package promrules

import (
	"fmt"
	"strings"
	"time"
)

// SelfAlert is one of the agent's own alerts (group agaobs-self): about
// the agent, its producers' rings, the audit store, the pipeline, the GPUs
// and eBPF, rather than about the inference the producers do. Each has a
// runbook section in docs/runbooks.md.
type SelfAlert struct {
	Name     string
	Severity string
	For      time.Duration
	// PerProducer alerts carry the producer label; the others only the
	// node's.
	PerProducer bool
	// PerGPU alerts carry the GPU's uuid label.
	PerGPU bool
	// Summary is a Go template over $labels and $value that Prometheus
	// and the agent's engine (for the alerts it raises itself) expand alike.
	Summary string
}

// Names of the agent's own alerts.
const (
	AlertAgentDown            = "AgaobsAgentDown"
	AlertAuditStoreUnwritable = "AgaobsAuditStoreUnwritable"
	AlertAuditVerifyFailed    = "AgaobsAuditVerifyFailed"
	AlertRingDrops            = "AgaobsRingDrops"
	AlertSinkDrops            = "AgaobsSinkDrops"
	AlertProducerDied         = "AgaobsProducerDied"
	AlertGPUXidCritical       = "AgaobsGPUXidCritical"
	AlertGPULost              = "AgaobsGPULost"
	AlertNVMLUnavailable      = "AgaobsNVMLUnavailable"
	AlertGPUEccUncorrectable  = "AgaobsGPUEccUncorrectable"
	AlertBPFUnavailable       = "AgaobsBPFUnavailable"
)

// RingDropsThreshold is the share of a producer's hot-ring records
// dropped over SelfRateWindow above which AgaobsRingDrops holds.
const RingDropsThreshold = 0.01

// SelfRateWindow is the rate window of the self alerts on counters.
const SelfRateWindow = 5 * time.Minute

const (
	gpuLostLookback = time.Hour
	// criticalXIDs are internal/gpu's critical XIDs (docs/health.md).
	criticalXIDs        = "48|62|64|74|79|95|119|120"
	producerStateFamily = "agaobs_producer_state"
	auditStoreUp        = "agaobs_audit_store_up"
	auditVerifyOK       = "agaobs_audit_verify_ok"
	sinkDroppedTotal    = "agaobs_sink_dropped_total"
)

// SelfAlerts returns the agent's own alerts. Summaries name the node with
// $labels.node; the rule file says $labels.instance instead when agents
// are told apart by instance.
func SelfAlerts() []SelfAlert {
	return []SelfAlert{
		{Name: AlertAgentDown, Severity: "critical", For: 5 * time.Minute,
			Summary: "agaobs-agent on {{ $labels.node }} is down: Prometheus cannot scrape it (no metrics, alerts or audit trail from this node)"},
		{Name: AlertAuditStoreUnwritable, Severity: "critical", For: 2 * time.Minute,
			Summary: "The audit store of agaobs-agent on {{ $labels.node }} does not accept writes: audit records wait in the producers' rings"},
		{Name: AlertAuditVerifyFailed, Severity: "critical", For: time.Minute,
			Summary: "The audit trail of agaobs-agent on {{ $labels.node }} failed its background verification: the hash chain was tampered with, is corrupt, or could not be read"},
		{Name: AlertRingDrops, Severity: "warning", For: 10 * time.Minute, PerProducer: true,
			Summary: "Producer {{ $labels.producer }} on {{ $labels.node }} drops {{ humanizePercentage $value }} of its hot-ring records: its ring is full, the agent does not keep up"},
		{Name: AlertSinkDrops, Severity: "warning", For: 10 * time.Minute,
			Summary: "agaobs-agent on {{ $labels.node }} drops events at a full sink queue ({{ printf \"%.3g\" $value }}/s): metrics, logs or alerts miss events"},
		{Name: AlertProducerDied, Severity: "warning", For: time.Minute, PerProducer: true,
			Summary: "Producer {{ $labels.producer }} on {{ $labels.node }} died without closing its rings"},
		{Name: AlertGPUXidCritical, Severity: "critical", For: time.Minute, PerGPU: true,
			Summary: "GPU {{ $labels.uuid }} on {{ $labels.node }} reported a critical XID error {{ humanizeDuration $value }} ago"},
		{Name: AlertGPULost, Severity: "critical", For: time.Minute, PerGPU: true,
			Summary: "GPU {{ $labels.uuid }} on {{ $labels.node }} is lost: NVML no longer reports it"},
		{Name: AlertNVMLUnavailable, Severity: "warning", For: 5 * time.Minute,
			Summary: "agaobs-agent on {{ $labels.node }} cannot read the GPUs through NVML"},
		{Name: AlertGPUEccUncorrectable, Severity: "critical", For: time.Minute, PerGPU: true,
			Summary: "GPU {{ $labels.uuid }} on {{ $labels.node }} has uncorrectable ECC errors or a failed or pending row remapping"},
		{Name: AlertBPFUnavailable, Severity: "info", For: 10 * time.Minute,
			Summary: "agaobs-agent on {{ $labels.node }} cannot load its eBPF probes (the out-of-band latency and CPU metrics are missing)"},
	}
}

// RunbookURL is the runbook_url of a self alert under base (empty:
// DefaultRunbookBaseURL): the alert's section of docs/runbooks.md, whose
// heading is the alert's name (GitHub anchors are lowercase).
func RunbookURL(base, alert string) string {
	if base == "" {
		base = DefaultRunbookBaseURL
	}
	return base + "#" + strings.ToLower(alert)
}

// selfExpr is the PromQL of a self alert.
func (g *generator) selfExpr(a SelfAlert) string {
	n := g.by(false)
	np := g.by(true)
	gpu := g.grouping("uuid")
	rw := func(what string) string { return g.rateDuration(SelfRateWindow, what) }
	switch a.Name {
	case AlertAgentDown:
		// The scrape target is down. Prometheus's up carries target labels
		// only: the node is the target's node label when relabeling set
		// one, else its instance without a port (the shipped
		// ServiceMonitor sets instance to the node name).
		if g.node == "node" {
			return fmt.Sprintf(`max by (node) (up{job=%[1]q,node!=""} or label_replace(up{job=%[1]q,node=""}, "node", "$1", "instance", "(.+?)(?::[0-9]+)?")) == 0`, g.agentJob)
		}
		return fmt.Sprintf(`max by (instance) (up{job=%q}) == 0`, g.agentJob)
	case AlertAuditStoreUnwritable:
		return fmt.Sprintf("min by (%s) (%s) == 0", n, auditStoreUp)
	case AlertAuditVerifyFailed:
		// Absent before the agent's first verify and with
		// audit_verify_interval 0: no alert then.
		return fmt.Sprintf("max by (%s) (%s) == 0", n, auditVerifyOK)
	case AlertRingDrops:
		w := rw(a.Name)
		dropped := fmt.Sprintf("sum by (%s) (rate(%s{%s}[%s]))", np, ringDroppedTotal, hotRing, w)
		consumed := fmt.Sprintf("sum by (%s) (rate(%s{%s}[%s]))", np, ringEventsTotal, hotRing, w)
		return fmt.Sprintf("%s / (%s + %s) > %s", dropped, consumed, dropped, promNumber(RingDropsThreshold))
	case AlertSinkDrops:
		return fmt.Sprintf("sum by (%s) (rate(%s[%s])) > 0", n, sinkDroppedTotal, rw(a.Name))
	case AlertProducerDied:
		return fmt.Sprintf(`max by (%s) (%s{state="dead"}) == 1`, np, producerStateFamily)
	case AlertGPUXidCritical:
		return fmt.Sprintf(`time() - max by (%s) (agaobs_gpu_xid_last_seconds{xid=~"%s"}) < %s`,
			gpu, criticalXIDs, promNumber(g.xidWindow.Seconds()))
	case AlertGPULost:
		// A GPU the agent reported within the last hour and no longer
		// does, on a node whose GPU collection still succeeds (a failing
		// collection or a down agent is another alert).
		return fmt.Sprintf("(group by (%s) (max_over_time(agaobs_gpu_info[%s])) unless on (%s) agaobs_gpu_info) and on (%s) (max by (%s) (agaobs_gpu_collect_success) == 1)",
			gpu, durationString(gpuLostLookback), gpu, n, n)
	case AlertNVMLUnavailable:
		return fmt.Sprintf("min by (%s) (agaobs_gpu_up) == 0 or min by (%s) (agaobs_gpu_collect_success) == 0", n, n)
	case AlertGPUEccUncorrectable:
		return fmt.Sprintf(`max by (%s) (agaobs_gpu_ecc_errors_total{type="volatile_uncorrected"}) > 0 or max by (%s) (agaobs_gpu_remapped_rows{state=~"pending|failure"}) > 0`,
			gpu, gpu)
	case AlertBPFUnavailable:
		return fmt.Sprintf(`min by (%s) (agaobs_bpf_available{reason!="disabled"}) == 0`, n)
	}
	panic("promrules: no expression for self alert " + a.Name)
}

// selfGroup renders the agent's own alerts, leaving out those a configured
// rule replaces (taken).
func (g *generator) selfGroup(taken map[string]bool) group {
	grp := group{Name: SelfGroup, Rules: []rule{}}
	for _, a := range SelfAlerts() {
		if taken[a.Name] {
			continue
		}
		summary := a.Summary
		if g.node != "node" {
			summary = strings.ReplaceAll(summary, "$labels.node", "$labels.instance")
		}
		r := rule{
			Alert:  a.Name,
			Expr:   g.selfExpr(a),
			Labels: g.alertLabels(nil, a.Severity),
			For:    durationString(a.For),
			Annotations: map[string]string{
				"summary":     summary,
				"runbook_url": RunbookURL(g.runbook, a.Name),
			},
		}
		grp.Rules = append(grp.Rules, r)
	}
	return grp
}
