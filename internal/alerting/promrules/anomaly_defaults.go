package promrules

import (
	"time"

	"github.com/agaobs/agaobs/internal/config"
)

// AnomalyRules returns the default anomaly rules (anomaly_enabled) as
// fresh values. They are apart from the seed's four: alert_use_default_rules
// does not switch them.
func AnomalyRules() []config.AlertRule {
	defs := []struct {
		name, metric, signal, direction string
		forDur                          time.Duration
		message                         string
	}{
		{"anomaly_latency_regression", "anomaly", "latency_p99", "up", time.Minute,
			"Latency regression: p99 {value:.0f}µs against a learned {baseline:.0f}µs (score {score:.1f}, layer {layer})"},
		{"anomaly_gate_collapse", "anomaly", "gate_mean", "down", 2 * time.Minute,
			"Gate collapse: gate mean {value:.3f} against a learned {baseline:.3f} (score {score:.1f}, layer {layer})"},
		{"anomaly_retrieval_starvation", "anomaly", "retrieval_results", "down", 3 * time.Minute,
			"Retrieval starvation: {value:.2f} results per call against a learned {baseline:.2f} (score {score:.1f})"},
		{"anomaly_straggler_rank", "straggler", "latency_p99", "", 3 * time.Minute,
			"Straggler rank: p99 {value:.0f}µs is {ratio:.2f}x its peers' median {peers:.0f}µs (score {score:.1f})"},
	}
	out := make([]config.AlertRule, len(defs))
	for i, d := range defs {
		out[i].SetDefaults()
		out[i].Name, out[i].Metric, out[i].Signal, out[i].Direction = d.name, d.metric, d.signal, d.direction
		out[i].Sensitivity, out[i].For, out[i].Message = "medium", config.Duration(d.forDur), d.message
	}
	return out
}

// AllRules is every rule the agent evaluates for cfg: EffectiveRules, then
// the default anomaly rules (with anomaly_enabled) that no configured rule
// replaces by name.
func AllRules(cfg config.Config) []config.AlertRule {
	out := EffectiveRules(cfg.AlertUseDefaultRules, cfg.AlertRules)
	if !cfg.AnomalyEnabled {
		return out
	}
	taken := make(map[string]bool, len(out))
	for _, r := range out {
		taken[r.Name] = true
	}
	for _, r := range AnomalyRules() {
		if !taken[r.Name] {
			out = append(out, r)
		}
	}
	return out
}
