package alerting

import (
	"fmt"
	"time"

	"github.com/agaobs/agaobs/internal/alerting/promrules"
	"github.com/agaobs/agaobs/internal/config"
)

// SLOWindows are the burn-rate windows exported and used by the
// multi-window multi-burn-rate alerts (Google SRE workbook, Sloth).
func SLOWindows() []time.Duration {
	return []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour, 72 * time.Hour}
}

// windowName renders a window the way the recording rules name it.
func windowName(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

// minuteSlots covers the longest burn window (3 days) at one-minute
// resolution; the period (30 days by default) is kept in hourly slots.
const minuteSlots = 3 * 24 * 60

type slot struct {
	ID    int64   `json:"i"` // minute or hour number since the epoch
	Good  float64 `json:"g,omitempty"`
	Total float64 `json:"t,omitempty"`
}

// sloSeries counts good and total events of one SLO for one producer.
// Memory is fixed: 4320 minute slots plus one slot per hour of the period.
type sloSeries struct {
	Minutes []slot `json:"minutes"`
	Hours   []slot `json:"hours"`
}

func newSLOSeries(period time.Duration) *sloSeries {
	hours := int(period/time.Hour) + 1
	return &sloSeries{Minutes: make([]slot, minuteSlots), Hours: make([]slot, hours)}
}

func (s *sloSeries) add(sec int64, good, total float64) {
	for _, ring := range []struct {
		slots []slot
		id    int64
	}{{s.Minutes, sec / 60}, {s.Hours, sec / 3600}} {
		sl := &ring.slots[ring.id%int64(len(ring.slots))]
		if sl.ID != ring.id {
			*sl = slot{ID: ring.id}
		}
		sl.Good += good
		sl.Total += total
	}
}

// errorRatio is 1 − good/total over the last d (minute resolution up to
// three days, hourly beyond); ok is false without events.
func (s *sloSeries) errorRatio(sec int64, d time.Duration) (float64, bool) {
	slots, id, n := s.Minutes, sec/60, int64(d/time.Minute)
	if d > time.Duration(minuteSlots)*time.Minute {
		slots, id, n = s.Hours, sec/3600, int64(d/time.Hour)
	}
	var good, total float64
	for _, sl := range slots {
		if sl.ID > id-n && sl.ID <= id {
			good += sl.Good
			total += sl.Total
		}
	}
	if total == 0 {
		return 0, false
	}
	return 1 - good/total, true
}

// slo is a configured SLO with its per-producer series.
type slo struct {
	config.SLO
	budget float64 // 1 − objective
	series map[string]*sloSeries
}

func (s *slo) key() string {
	return fmt.Sprintf("%s|%g|%s|%s|%g", s.Name, s.Objective, s.Period, s.SLI.Type, s.SLI.ThresholdUs)
}

func (s *slo) periodDuration() time.Duration { return time.Duration(s.Period) }

func (s *slo) seriesFor(producer string) *sloSeries {
	ser := s.series[producer]
	if ser == nil {
		ser = newSLOSeries(time.Duration(s.Period))
		s.series[producer] = ser
	}
	return ser
}

// burn is the burn rate over d: error ratio / (1 − objective).
func (s *slo) burn(producer string, sec int64, d time.Duration) (float64, bool) {
	ser := s.series[producer]
	if ser == nil {
		return 0, false
	}
	r, ok := ser.errorRatio(sec, d)
	return r / s.budget, ok
}

// sloRules expands an SLO into its two burn-rate alerts, the pairs of
// promrules.BurnAlerts (Sloth's google 30d windows): critical when 2 % of
// the budget burns in an hour (14.4x over 1h and 5m) or 5 % in six hours
// (6x over 6h and 30m); warning when 10 % burns in a day (3x over 1d and
// 2h) or three days (1x over 3d and 6h). Both windows of a pair must
// agree, so a short spike that is already over does not page. The pairs
// are the rule's variants: the first that holds is the one the alert
// reports, with the burn rate over its long window as the value and its
// factor as the threshold, as the generated Prometheus rule does; the
// labels do not depend on it.
func sloRules(s *slo) []*Rule {
	var out []*Rule
	for _, a := range promrules.BurnAlerts() {
		pairs := a.Pairs
		r := &Rule{AlertRule: config.AlertRule{
			Name: promrules.BurnAlertName(s.Name, a.Severity), Metric: "slo_burn_rate", Operator: ">",
			Threshold: pairs[0].Factor, Severity: a.Severity, CooldownSeconds: 300, PerProducer: true,
			Message: promrules.BurnMessage(s.SLO, pairs[0]),
			Labels:  map[string]string{"slo": s.Name},
		}}
		for _, p := range pairs {
			r.Variants = append(r.Variants, Variant{Threshold: p.Factor, Message: promrules.BurnMessage(s.SLO, p)})
		}
		r.Fingerprint = s.key() + "|" + a.Severity
		// holds returns the first pair that holds, its long window's burn
		// rate, and whether any long window has data.
		holds := func(producer string, sec int64) (pair int, long float64, any bool) {
			for i, p := range pairs {
				l, okL := s.burn(producer, sec, p.Long)
				short, okS := s.burn(producer, sec, p.Short)
				any = any || okL
				if okL && okS && l > p.Factor && short > p.Factor {
					return i, l, any
				}
			}
			long, _ = s.burn(producer, sec, pairs[0].Long)
			return -1, long, any
		}
		r.Cond = func(producer string, sec int64) (float64, bool, bool) {
			i, v, any := holds(producer, sec)
			return v, i >= 0, any
		}
		r.Variant = func(producer string, sec int64) int {
			i, _, _ := holds(producer, sec)
			return max(i, 0)
		}
		out = append(out, r)
	}
	return out
}
