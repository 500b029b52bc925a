package alerting

import (
	"time"

	"github.com/agaobs/agaobs/internal/config"
)

// StaticEvaluator runs threshold rules through the engine's state machine
// over values a caller supplies per producer, instead of windows of
// events: the replay benchmark's side-by-side run of the seed's rules on
// the same per-minute aggregates the detector sees.
type StaticEvaluator struct {
	rules  []*Rule
	active map[string]map[string]*Alert
}

// NewStaticEvaluator compiles rules; value returns a rule metric's value for
// a producer (ok false: no data).
func NewStaticEvaluator(rules []config.AlertRule, value func(metric, producer string) (float64, bool)) *StaticEvaluator {
	s := &StaticEvaluator{active: map[string]map[string]*Alert{}}
	for _, rc := range rules {
		r := &Rule{AlertRule: rc}
		r.Cond = func(target string, _ int64) (float64, bool, bool) {
			v, ok := value(r.Metric, target)
			return v, ok && compare(r.Operator, v, r.Threshold), ok
		}
		s.rules = append(s.rules, r)
		s.active[r.Name] = map[string]*Alert{}
	}
	return s
}

// Eval advances every rule for the producers at now and returns the state
// changes (pending, firing, resolved), as the engine's OnTransition would
// see them.
func (s *StaticEvaluator) Eval(now time.Time, producers []string) []AuditTransition {
	var out []AuditTransition
	for _, r := range s.rules {
		for _, tr := range evalRule(r, producers, s.active[r.Name], now) {
			if tr.Renotify {
				continue
			}
			out = append(out, AuditTransition{Rule: r.Name, Producer: tr.Alert.Producer, State: tr.Status,
				Severity: r.Severity, Metric: r.Metric, Value: tr.Alert.Value, Threshold: r.Threshold, At: now})
		}
	}
	return out
}
