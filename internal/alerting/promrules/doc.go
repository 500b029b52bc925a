// Package promrules owns the Prometheus rule file that `agaobs-agent rules`
// prints: the translation of the agent's alert rules (config.AlertRule) and
// SLOs (config.SLO) into PromQL alerting and recording rules over the
// metrics the agent exports, so users can evaluate the same rules in their
// own Prometheus. It also owns the four seed default rules and how they merge
// with custom rules, because the generated file and the agent's engine must
// start from the same rule set.
//
// # The contract with the agent's engine
//
// Every rule metric (schema.RuleMetrics) maps to one PromQL expression that
// computes what the agent computes over window_seconds: histogram quantiles
// from the forward latency buckets, ratio means from histogram _sum/_count,
// rates of the forward and ring counters, the last value of the status
// gauges. Per-producer rules aggregate by node and producer; node-wide
// rules (per_producer: false) by node. retrieval_failure_rate
// needs the retrieval result counts, which are not exported, so it is
// reported as Skipped instead of being approximated. cooldown_seconds has no
// rule-file equivalent (Alertmanager's repeat_interval plays that role) and
// is not rendered.
//
// SLOs follow the Sloth convention: recording rules
// slo:sli_error:ratio_rate<window>{slo="<name>"} for 5m, 30m, 1h, 2h, 6h,
// 1d, 3d and the SLO period, slo:error_budget_remaining:ratio, and the
// Google SRE workbook's multiwindow multi-burn-rate alerts
// slo_<name>_burn_critical (14.4x over 1h/5m, 6x over 6h/30m) and
// slo_<name>_burn_warning (3x over 1d/2h, 1x over 3d/6h). BurnAlerts and
// BurnMessage define them for the engine too: an alert reports the first
// pair that holds (value, threshold, summary) under the same labels.
//
// # Many nodes, one Prometheus
//
// Every rule but those of group agaobs-fleet keeps nodes apart: it
// aggregates by node (Options.NodeLabel; by instance without it), producer
// and the prometheus_labels (Options.SeriesLabels), so a rule-file alert
// has the label set of the agent's own alert and Alertmanager merges the
// two. agaobs-self holds the agent's own alerts (SelfAlerts, with
// runbook_url annotations into docs/runbooks.md), agaobs-fleet the
// recording rules per node and per model (level:metric:operations), the
// only ones declared to aggregate across nodes. rate() windows shorter
// than 4 scrape intervals (Options.ScrapeInterval) are widened, and the
// file's header says which.
//
// # Messages
//
// Rule messages are Python format strings (the seed's message.format(value=,
// threshold=, metric=, name=)). They become Go templates in the summary
// annotation using only functions Prometheus templates provide; the table
// at the top of message.go says what is kept exactly and what is
// approximated.
package promrules
