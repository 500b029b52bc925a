package alerting

import (
	"sort"
	"time"

	"github.com/agaobs/agaobs/internal/jsonfloat"
)

// AlertView is an active (pending or firing) or recently resolved alert.
type AlertView struct {
	RuleName   string            `json:"rule_name"`
	Producer   string            `json:"producer,omitempty"`
	State      string            `json:"state"`
	Severity   string            `json:"severity"`
	Metric     string            `json:"metric"`
	Value      jsonfloat.Float   `json:"value"`
	Threshold  jsonfloat.Float   `json:"threshold"`
	Message    string            `json:"message,omitempty"`
	ActiveAt   *time.Time        `json:"active_at,omitempty"`
	FiredAt    *time.Time        `json:"fired_at,omitempty"`
	ResolvedAt *time.Time        `json:"resolved_at,omitempty"`
	Labels     map[string]string `json:"labels"`
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Alerts returns the current alerts and the notification history, newest
// last, filtered like the seed's get_alerts: severity (empty: all), since
// (epoch seconds, inclusive; 0: all) and limit (the most recent n; 0: all).
func (e *Engine) Alerts(severity string, limit int, since float64) ([]AlertView, []HistoryEntry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var active []AlertView
	for _, r := range e.rules {
		if severity != "" && r.Severity != severity {
			continue
		}
		for _, a := range e.active[r.Name] {
			state := a.State.String()
			if a.State == StateInactive {
				state = "resolved"
			}
			active = append(active, AlertView{RuleName: r.Name, Producer: a.Producer, State: state, Severity: r.Severity,
				Metric: r.Metric, Value: jsonfloat.Float(a.Value), Threshold: jsonfloat.Float(r.forAlert(a).Threshold), Message: a.Message, ActiveAt: tp(a.ActiveAt),
				FiredAt: tp(a.FiredAt), ResolvedAt: tp(a.ResolvedAt), Labels: e.labels(r, a.Producer)})
		}
	}
	sort.Slice(active, func(i, j int) bool {
		if active[i].RuleName != active[j].RuleName {
			return active[i].RuleName < active[j].RuleName
		}
		return active[i].Producer < active[j].Producer
	})
	// History in time order: the ring starts at histNext once full.
	ordered := e.history
	if len(e.history) == historyLen {
		ordered = append(append([]HistoryEntry(nil), e.history[e.histNext:]...), e.history[:e.histNext]...)
	}
	var hist []HistoryEntry
	for _, h := range ordered {
		if (severity == "" || h.Severity == severity) && h.Timestamp >= since {
			hist = append(hist, h)
		}
	}
	if limit > 0 && len(hist) > limit {
		hist = hist[len(hist)-limit:]
	}
	return active, hist
}

// RuleView describes a rule and its current state.
type RuleView struct {
	Name          string                     `json:"name"`
	Metric        string                     `json:"metric"`
	Operator      string                     `json:"operator"`
	Threshold     float64                    `json:"threshold"`
	WindowSeconds float64                    `json:"window_seconds,omitempty"`
	Severity      string                     `json:"severity"`
	For           string                     `json:"for,omitempty"`
	KeepFiringFor string                     `json:"keep_firing_for,omitempty"`
	Cooldown      float64                    `json:"cooldown_seconds"`
	PerProducer   bool                       `json:"per_producer"`
	Labels        map[string]string          `json:"labels,omitempty"`
	State         string                     `json:"state"`
	Alerts        map[string]string          `json:"alerts,omitempty"` // target → state
	Values        map[string]jsonfloat.Float `json:"values,omitempty"` // target → last value
	Failures      uint64                     `json:"template_failures,omitempty"`
}

// Rules returns every rule (SLO burn alerts included) with its state:
// the worst state of its alerts.
func (e *Engine) Rules() []RuleView {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]RuleView, 0, len(e.rules))
	for _, r := range e.rules {
		v := RuleView{Name: r.Name, Metric: r.Metric, Operator: r.Operator, Threshold: r.Threshold, WindowSeconds: r.WindowSeconds,
			Severity: r.Severity, Cooldown: r.CooldownSeconds, PerProducer: r.PerProducer, Labels: r.Labels, Failures: e.failures[r.Name]}
		if r.For > 0 {
			v.For = r.For.String()
		}
		if r.KeepFiringFor > 0 {
			v.KeepFiringFor = r.KeepFiringFor.String()
		}
		worst := StateInactive
		for target, a := range e.active[r.Name] {
			if v.Alerts == nil {
				v.Alerts, v.Values = map[string]string{}, map[string]jsonfloat.Float{}
			}
			v.Alerts[target], v.Values[target] = a.State.String(), jsonfloat.Float(a.Value)
			worst = max(worst, a.State)
		}
		v.State = worst.String()
		out = append(out, v)
	}
	return out
}

// SLOBudget is one SLO's error budget left for one producer.
type SLOBudget struct {
	SLO       string
	Producer  string
	Objective float64
	Remaining float64 // share of the budget left over the period (< 0: exhausted)
}

// SLOBudgets returns every SLO's remaining error budget per producer as
// of the last evaluation (agaobs_slo_error_budget_remaining_ratio),
// sorted by SLO and producer.
func (e *Engine) SLOBudgets() []SLOBudget {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []SLOBudget
	for _, s := range e.slos {
		for p, ser := range s.series {
			if r, ok := ser.errorRatio(e.lastEvalSec, s.periodDuration()); ok {
				out = append(out, SLOBudget{SLO: s.Name, Producer: p, Objective: s.Objective, Remaining: 1 - r/s.budget})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].SLO != out[j].SLO {
			return out[i].SLO < out[j].SLO
		}
		return out[i].Producer < out[j].Producer
	})
	return out
}
