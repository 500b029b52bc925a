package alerting

import (
	"fmt"
	"math"
	"time"

	"github.com/agaobs/agaobs/internal/config"
)

// State is an alert's state, ordered so that a larger state is worse.
type State int

// States, as Prometheus's.
const (
	// StateInactive: not active, or resolved (kept for resolvedRetention).
	StateInactive State = iota
	// StatePending: the condition holds, waiting for `for` to pass.
	StatePending
	// StateFiring: the condition held for `for`.
	StateFiring
)

func (s State) String() string {
	switch s {
	case StateInactive:
		return "inactive"
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	}
	panic(fmt.Sprintf("unknown alert state %d", int(s)))
}

// Alert is one alert instance: a rule for one producer (or the node).
// Zero times mean "not set".
type Alert struct {
	Rule            string
	Producer        string // "" for node-wide rules
	State           State
	Value           float64
	ActiveAt        time.Time // condition first true in this episode
	FiredAt         time.Time
	ResolvedAt      time.Time
	LastSentAt      time.Time // last firing notification (cooldown)
	KeepFiringSince time.Time // condition false while firing, keep_firing_for running
	Message         string
	// Variant is the index in the rule's Variants of the variant that
	// held last (an SLO burn alert's window pair); 0 for other rules.
	Variant int `json:",omitempty"`
}

// Rule is a compiled alert rule: its config plus how to evaluate it.
type Rule struct {
	config.AlertRule
	// Cond evaluates the rule for one target at time now. ok is false when
	// there is no data, which ends an episode like a false condition.
	Cond func(target string, now int64) (value float64, cond, ok bool)
	// Fingerprint identifies the rule's definition: a reload keeps the
	// state of rules whose fingerprint did not change.
	Fingerprint string
	// Variants, when set, are the ways the condition can hold, each with
	// its own threshold and message (an SLO burn alert's window pairs);
	// Variant says which one holds for a target, and is asked while Cond
	// holds. The alert's labels are the same whichever variant holds.
	Variants []Variant
	Variant  func(target string, now int64) int
}

// Variant is one way a rule's condition can hold.
type Variant struct {
	Threshold float64
	Message   string
}

// forAlert is r as alert a sees it: with the threshold and message of the
// variant that held for it.
func (r *Rule) forAlert(a *Alert) *Rule {
	if a == nil || a.Variant < 0 || a.Variant >= len(r.Variants) {
		return r
	}
	c := *r
	c.Threshold, c.Message = r.Variants[a.Variant].Threshold, r.Variants[a.Variant].Message
	return &c
}

// compare applies a rule operator; == and != compare with the seed's
// 1e-9 tolerance.
func compare(op string, v, t float64) bool {
	switch op {
	case ">":
		return v > t
	case "<":
		return v < t
	case ">=":
		return v >= t
	case "<=":
		return v <= t
	case "==":
		return math.Abs(v-t) < 1e-9
	case "!=":
		return math.Abs(v-t) >= 1e-9
	}
	return false
}

// Transition is a notification-worthy change of one alert.
type Transition struct {
	Alert Alert
	// Status is "firing" or "resolved"; "pending" (a condition that has
	// to hold for `for`) only reaches the audit trail, not notifiers.
	Status string
	// Renotify is set for a repeated notification of a still-firing
	// alert (cooldown_seconds elapsed).
	Renotify bool
}

// resolvedRetention keeps resolved alerts visible (API, metrics) for a
// while after they resolve, as Prometheus does, so that (1) a consumer
// polling less often still sees the resolution and (2) a flapping alert's
// history stays readable.
const resolvedRetention = 15 * time.Minute

// evalRule advances every alert of one rule at time now for the given
// targets and returns the transitions. active is the rule's alert set,
// keyed by target; it is updated in place. It never reads the clock.
func evalRule(r *Rule, targets []string, active map[string]*Alert, now time.Time) []Transition {
	var out []Transition
	sec := now.Unix()
	seen := make(map[string]bool, len(targets))
	for _, target := range targets {
		seen[target] = true
		v, cond, ok := r.Cond(target, sec)
		a := active[target]
		if ok && cond {
			variant := 0
			if r.Variant != nil {
				variant = r.Variant(target, sec)
			}
			if a == nil || a.State == StateInactive {
				a = &Alert{Rule: r.Name, Producer: target, State: StatePending, ActiveAt: now, Value: v, Variant: variant}
				active[target] = a
				if r.For > 0 {
					out = append(out, Transition{Alert: *a, Status: "pending"})
				}
			}
			a.Value = v
			a.KeepFiringSince = time.Time{}
			a.Variant = variant
			if a.State == StatePending && now.Sub(a.ActiveAt) >= time.Duration(r.For) {
				a.State, a.FiredAt, a.LastSentAt = StateFiring, now, now
				out = append(out, Transition{Alert: *a, Status: "firing"})
			} else if a.State == StateFiring && now.Sub(a.LastSentAt) >= time.Duration(r.CooldownSeconds*float64(time.Second)) {
				a.LastSentAt = now
				out = append(out, Transition{Alert: *a, Status: "firing", Renotify: true})
			}
			continue
		}
		if ok {
			a = active[target]
			if a != nil {
				a.Value = v
			}
		}
		out = append(out, endEpisode(r, active, target, now)...)
	}
	// Targets that went away (a forgotten producer) end their episodes.
	for target := range active {
		if !seen[target] {
			out = append(out, endEpisode(r, active, target, now)...)
		}
	}
	for target, a := range active {
		if a.State == StateInactive && now.Sub(a.ResolvedAt) >= resolvedRetention {
			delete(active, target)
		}
	}
	return out
}

// endEpisode handles a false condition (or no data) for one target.
func endEpisode(r *Rule, active map[string]*Alert, target string, now time.Time) []Transition {
	a := active[target]
	switch {
	case a == nil || a.State == StateInactive:
		return nil
	case a.State == StatePending:
		delete(active, target)
		return nil
	}
	if r.KeepFiringFor > 0 {
		if a.KeepFiringSince.IsZero() {
			a.KeepFiringSince = now
		}
		if now.Sub(a.KeepFiringSince) < time.Duration(r.KeepFiringFor) {
			return nil
		}
	}
	a.State, a.ResolvedAt, a.KeepFiringSince = StateInactive, now, time.Time{}
	return []Transition{{Alert: *a, Status: "resolved"}}
}
