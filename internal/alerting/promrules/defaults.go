package promrules

import (
	"maps"

	"github.com/agaobs/agaobs/internal/config"
)

// DefaultRules returns the four seed rules (alert_use_default_rules) as
// fresh values, so callers may modify them. The messages are the seed's,
// translated to English.
func DefaultRules() []config.AlertRule {
	seed := []struct {
		name, metric string
		threshold    float64
		window       float64
		severity     string
		cooldown     float64
		message      string
	}{
		{"slo_latency_p99", "latency_p99", 1000, 60, "warning", 300,
			"SLO violation: P99 latency {value:.1f}µs exceeds {threshold:.0f}µs"},
		{"slo_latency_critical", "latency_p99", 5000, 30, "critical", 60,
			"Critical: P99 latency {value:.1f}µs far above the {threshold:.0f}µs threshold"},
		{"high_utilization", "knowledge_utilization", 0.95, 60, "warning", 600,
			"KVStore utilization too high: {value:.1%}, evictions likely"},
		{"slot_thrashing", "slot_change_rate", 0.5, 30, "warning", 120,
			"Slot thrashing risk: change rate {value:.2f} above {threshold:.2f}"},
	}
	out := make([]config.AlertRule, len(seed))
	for i, s := range seed {
		// SetDefaults first so fields the seed does not name (operator,
		// per_producer, ...) carry the same defaults as a rule read from a
		// file.
		out[i].SetDefaults()
		out[i].Name, out[i].Metric, out[i].Operator = s.name, s.metric, ">"
		out[i].Threshold, out[i].WindowSeconds = s.threshold, s.window
		out[i].Severity, out[i].CooldownSeconds, out[i].Message = s.severity, s.cooldown, s.message
		out[i].PerProducer = true
	}
	return out
}

// EffectiveRules returns the rules the agent evaluates: the default rules
// when useDefaults is set, then the custom rules in order. A custom rule
// named like a default replaces that default in place, so the defaults keep
// their position whether or not the user overrides one. The result shares
// no maps with custom.
func EffectiveRules(useDefaults bool, custom []config.AlertRule) []config.AlertRule {
	var out []config.AlertRule
	if useDefaults {
		out = DefaultRules()
	}
	index := make(map[string]int, len(out))
	for i, r := range out {
		index[r.Name] = i
	}
	for _, r := range custom {
		r.Labels, r.Annotations = maps.Clone(r.Labels), maps.Clone(r.Annotations)
		if i, ok := index[r.Name]; ok {
			out[i] = r
			continue
		}
		out = append(out, r)
	}
	return out
}
