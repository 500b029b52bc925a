package promrules

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/config"
)

// sloWindows are the error-ratio windows of the Google SRE workbook's
// multiwindow multi-burn-rate alerts (Sloth's google-30d windows); the SLO
// period is added to them.
func sloWindows() []time.Duration {
	return []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour, 72 * time.Hour}
}

// burnPair is one (short, long) window pair of a burn-rate alert: it fires
// when both windows burn the error budget factor times faster than the
// period allows.
type burnPair struct {
	factor      string
	short, long time.Duration
}

// sloErrorRecord names the error-ratio recording rule of window w.
func sloErrorRecord(w time.Duration) string { return "slo:sli_error:ratio_rate" + durationString(w) }

const sloBudgetRecord = "slo:error_budget_remaining:ratio"

func durationString(d time.Duration) string { return model.Duration(d).String() }

// sloGroup renders the recording rules and burn-rate alerts of s. skip is
// the reason when the SLI cannot be computed from exported series.
func (g *generator) sloGroup(s config.SLO) (grp group, skip string, err error) {
	if !isIdent(s.Name) {
		return group{}, "", fmt.Errorf("SLO name %q must match ^[a-zA-Z_][a-zA-Z0-9_]*$", s.Name)
	}
	if !(s.Objective > 0 && s.Objective < 1) {
		return group{}, "", fmt.Errorf("SLO %q: objective %v must be > 0 and < 1", s.Name, s.Objective)
	}
	period := time.Duration(s.Period)
	if period <= 0 {
		period = 30 * 24 * time.Hour
	}
	if period%time.Millisecond != 0 {
		return group{}, "", fmt.Errorf("SLO %q: period %v is finer than PromQL's millisecond resolution", s.Name, period)
	}
	budget, objectivePct := errorBudget(s.Objective)

	var ratio func(w string) string
	switch s.SLI.Type {
	case "latency":
		f := g.names.Family(famLatency)
		if !slices.Contains(f.Buckets, s.SLI.ThresholdUs) {
			return group{}, fmt.Sprintf("latency SLI threshold_us %v is not a forward latency bucket bound %v, so Prometheus cannot count the good forwards",
				s.SLI.ThresholdUs, f.Buckets), nil
		}
		// Divide as the exporter does, so the bound renders as the
		// exposed le value (1000/1e6 is the double the exporter prints
		// as 0.001).
		le := bucketMatcher(s.SLI.ThresholdUs / g.names.Divisor(famLatency))
		base := g.names.Name(famLatency)
		ratio = func(w string) string {
			return fmt.Sprintf("1 - (sum by (producer) (rate(%s_bucket{%s}[%s])) / sum by (producer) (rate(%s_count[%s])))",
				base, le, w, base, w)
		}
	case "availability":
		ratio = func(w string) string { return fmt.Sprintf("1 - avg_over_time(%s[%s])", producerAvailable, w) }
	default:
		return group{}, "", fmt.Errorf("SLO %q: unknown SLI type %q (want latency or availability)", s.Name, s.SLI.Type)
	}

	windows := sloWindows()
	if !slices.Contains(windows, period) {
		windows = append(windows, period)
		slices.Sort(windows)
	}
	sloLabel := map[string]string{"slo": s.Name}
	grp.Name = "agaobs-slo-" + s.Name
	for _, w := range windows {
		grp.Rules = append(grp.Rules, rule{Record: sloErrorRecord(w), Expr: ratio(durationString(w)), Labels: sloLabel})
	}
	sel := func(w time.Duration) string { return sloErrorRecord(w) + `{slo="` + s.Name + `"}` }
	grp.Rules = append(grp.Rules, rule{
		Record: sloBudgetRecord,
		Expr:   fmt.Sprintf("1 - (%s / %s)", sel(period), budget),
		Labels: sloLabel,
	})

	burn := func(pairs ...burnPair) string {
		parts := make([]string, len(pairs))
		for i, p := range pairs {
			parts[i] = fmt.Sprintf("(%s > %s * %s and %s > %s * %s)", sel(p.short), p.factor, budget, sel(p.long), p.factor, budget)
		}
		return strings.Join(parts, " or ")
	}
	what := fmt.Sprintf("SLO %s (objective %s%% over %s)", s.Name, objectivePct, durationString(period))
	for _, a := range []struct {
		severity, suffix, speed string
		pairs                   []burnPair
	}{
		{"critical", "burn_critical", "fast: over 14.4x the sustainable rate on 1h and 5m, or over 6x on 6h and 30m",
			[]burnPair{{"14.4", 5 * time.Minute, time.Hour}, {"6", 30 * time.Minute, 6 * time.Hour}}},
		{"warning", "burn_warning", "steadily: over 3x the sustainable rate on 1d and 2h, or over 1x on 3d and 6h",
			[]burnPair{{"3", 2 * time.Hour, 24 * time.Hour}, {"1", 6 * time.Hour, 72 * time.Hour}}},
	} {
		grp.Rules = append(grp.Rules, rule{
			Alert:  "slo_" + s.Name + "_" + a.suffix,
			Expr:   burn(a.pairs...),
			Labels: g.alertLabels(map[string]string{"slo": s.Name}, a.severity),
			Annotations: map[string]string{
				// $value is the short window's error ratio of the pair
				// that matched (the left-hand side of "and").
				"summary": templateLiteral(what+" is burning its error budget "+a.speed) +
					" (short-window error ratio {{ humanizePercentage $value }})",
			},
		})
	}
	return grp, "", nil
}

// errorBudget returns 1 - objective and objective*100 as decimal strings,
// computed exactly from the objective's shortest decimal form: 0.999 gives
// "0.001", where float arithmetic would give 0.0010000000000000009.
func errorBudget(objective float64) (budget, percent string) {
	o, _ := new(big.Rat).SetString(strconv.FormatFloat(objective, 'f', -1, 64))
	digits := 0
	if _, frac, ok := strings.Cut(strconv.FormatFloat(objective, 'f', -1, 64), "."); ok {
		digits = len(frac)
	}
	e := new(big.Rat).Sub(big.NewRat(1, 1), o)
	p := new(big.Rat).Mul(o, big.NewRat(100, 1))
	return trimDecimal(e.FloatString(digits)), trimDecimal(p.FloatString(digits))
}

func trimDecimal(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
