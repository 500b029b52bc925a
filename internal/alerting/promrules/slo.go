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

// BurnPair is one window pair of a multiwindow multi-burn-rate alert: it
// holds when the error budget burns more than Factor times the sustainable
// rate over both the long and the short window (the short one confirms the
// burn is still going on).
type BurnPair struct {
	Long, Short time.Duration
	Factor      float64
}

// BurnAlert is one of an SLO's two burn-rate alerts.
type BurnAlert struct {
	Severity string
	// Pairs are checked in order; the first that holds is the one the
	// alert reports (its value, threshold and message).
	Pairs []BurnPair
}

// BurnAlerts are the Google SRE workbook's alerts for a 30-day budget
// (Sloth's google-30d): critical when 2 % of the budget burns in an hour
// (14.4x over 1h and 5m) or 5 % in six hours (6x over 6h and 30m); warning
// when 10 % burns in a day (3x over 1d and 2h) or three days (1x over 3d
// and 6h). The agent's engine and the rule file both evaluate these.
func BurnAlerts() []BurnAlert {
	return []BurnAlert{
		{"critical", []BurnPair{{time.Hour, 5 * time.Minute, 14.4}, {6 * time.Hour, 30 * time.Minute, 6}}},
		{"warning", []BurnPair{{24 * time.Hour, 2 * time.Hour, 3}, {72 * time.Hour, 6 * time.Hour, 1}}},
	}
}

// BurnAlertName is the alertname of an SLO's burn-rate alert.
func BurnAlertName(slo, severity string) string { return "slo_" + slo + "_burn_" + severity }

// BurnMessage is the summary of s's burn-rate alert when pair p fired, as
// a Python format string whose {value} is the burn rate over p's long
// window: the agent renders it, the rule file translates it, so both say
// the same thing.
func BurnMessage(s config.SLO, p BurnPair) string {
	_, pct := errorBudget(s.Objective)
	return fmt.Sprintf("SLO %s (objective %s%% over %s): error budget burning {value:.1f}x the sustainable rate over %s, confirmed over %s (threshold %sx)",
		s.Name, pct, durationString(sloPeriod(s)), durationString(p.Long), durationString(p.Short), promNumber(p.Factor))
}

// sloPeriod is s's period, 30 days when unset.
func sloPeriod(s config.SLO) time.Duration {
	if p := time.Duration(s.Period); p > 0 {
		return p
	}
	return 30 * 24 * time.Hour
}

// sloErrorRecord names the error-ratio recording rule of window w.
func sloErrorRecord(w time.Duration) string { return "slo:sli_error:ratio_rate" + durationString(w) }

const sloBudgetRecord = "slo:error_budget_remaining:ratio"

func durationString(d time.Duration) string { return model.Duration(d).String() }

// sloRatio returns the PromQL of s's error ratio over window w from the
// good and total counts summed by (by): the per-producer SLO rules use
// those sums as they are (node, producer and the series labels); the
// fleet rules sum by (node, producer), join producer_info's model and sum
// by model (join). skip is the reason when the SLI cannot be computed from
// exported series.
func (g *generator) sloRatio(s config.SLO, w time.Duration, by string, join func(string) string) (expr, skip string, err error) {
	switch s.SLI.Type {
	case "latency":
		f := g.names.Family(famLatency)
		if !slices.Contains(f.Buckets, s.SLI.ThresholdUs) {
			return "", fmt.Sprintf("latency SLI threshold_us %v is not a forward latency bucket bound %v, so Prometheus cannot count the good forwards",
				s.SLI.ThresholdUs, f.Buckets), nil
		}
		// Divide as the exporter does, so the bound renders as the
		// exposed le value (1000/1e6 is the double the exporter prints
		// as 0.001).
		le := bucketMatcher(s.SLI.ThresholdUs / g.names.Divisor(famLatency))
		base := g.names.Name(famLatency)
		rw := g.rateDuration(w, "SLO "+s.Name)
		good := fmt.Sprintf("sum by (%s) (rate(%s_bucket{%s}[%s]))", by, base, le, rw)
		total := fmt.Sprintf("sum by (%s) (rate(%s_count[%s]))", by, base, rw)
		return fmt.Sprintf("1 - (%s / %s)", join(good), join(total)), "", nil
	case "availability":
		ws := durationString(w)
		good := fmt.Sprintf("sum by (%s) (sum_over_time(%s[%s]))", by, producerAvailable, ws)
		total := fmt.Sprintf("sum by (%s) (count_over_time(%s[%s]))", by, producerAvailable, ws)
		return fmt.Sprintf("1 - (%s / %s)", join(good), join(total)), "", nil
	}
	return "", "", fmt.Errorf("SLO %q: unknown SLI type %q (want latency or availability)", s.Name, s.SLI.Type)
}

// checkSLO validates what configuration validation would reject.
func checkSLO(s config.SLO) error {
	if !isIdent(s.Name) {
		return fmt.Errorf("SLO name %q must match ^[a-zA-Z_][a-zA-Z0-9_]*$", s.Name)
	}
	if !(s.Objective > 0 && s.Objective < 1) {
		return fmt.Errorf("SLO %q: objective %v must be > 0 and < 1", s.Name, s.Objective)
	}
	if sloPeriod(s)%time.Millisecond != 0 {
		return fmt.Errorf("SLO %q: period %v is finer than PromQL's millisecond resolution", s.Name, sloPeriod(s))
	}
	return nil
}

// sloWindowsOf are the burn windows plus s's period, sorted.
func sloWindowsOf(s config.SLO) []time.Duration {
	windows := sloWindows()
	if p := sloPeriod(s); !slices.Contains(windows, p) {
		windows = append(windows, p)
		slices.Sort(windows)
	}
	return windows
}

// sloGroup renders the recording rules and burn-rate alerts of s. skip is
// the reason when the SLI cannot be computed from exported series.
func (g *generator) sloGroup(s config.SLO) (grp group, skip string, err error) {
	if err := checkSLO(s); err != nil {
		return group{}, "", err
	}
	period := sloPeriod(s)
	budget, _ := errorBudget(s.Objective)
	mark := len(g.widened)
	sloLabel := map[string]string{"slo": s.Name}
	grp.Name = SLOGroup + s.Name
	for _, w := range sloWindowsOf(s) {
		expr, skip, err := g.sloRatio(s, w, g.by(true), func(e string) string { return e })
		if err != nil || skip != "" {
			g.widened = g.widened[:mark]
			return group{}, skip, err
		}
		grp.Rules = append(grp.Rules, rule{Record: sloErrorRecord(w), Expr: expr, Labels: sloLabel})
	}
	sel := func(w time.Duration) string { return sloErrorRecord(w) + `{slo="` + s.Name + `"}` }
	grp.Rules = append(grp.Rules, rule{
		Record: sloBudgetRecord,
		Expr:   fmt.Sprintf("1 - (%s / %s)", sel(period), budget),
		Labels: sloLabel,
	})

	// One alert per severity. Its pairs are or-ed in order, so the value
	// is the burn rate over the long window of the first pair that holds,
	// as in the agent; the summary names that pair (a template that asks
	// Prometheus whether the earlier pairs hold for the alert's node and
	// producer). The labels are the same whichever pair fired, so
	// Alertmanager merges the alert with the agent's own.
	cond := func(p BurnPair, match string) string {
		return fmt.Sprintf("%s%s / %s > %s and %s%s / %s > %s",
			sloErrorRecord(p.Long), match, budget, promNumber(p.Factor), sloErrorRecord(p.Short), match, budget, promNumber(p.Factor))
	}
	for _, a := range BurnAlerts() {
		parts := make([]string, len(a.Pairs))
		for i, p := range a.Pairs {
			parts[i] = "(" + cond(p, `{slo="`+s.Name+`"}`) + ")"
		}
		grp.Rules = append(grp.Rules, rule{
			Alert:       BurnAlertName(s.Name, a.Severity),
			Expr:        strings.Join(parts, " or "),
			Labels:      g.alertLabels(map[string]string{"slo": s.Name}, a.Severity),
			Annotations: map[string]string{"summary": g.burnSummary(s, a.Pairs, cond)},
		})
	}
	return grp, "", nil
}

// burnSummary is the summary template of a burn-rate alert: BurnMessage
// of the first pair whose condition holds for the alert's node and
// producer (asked with query), the last pair's when no earlier one does.
func (g *generator) burnSummary(s config.SLO, pairs []BurnPair, cond func(BurnPair, string) string) string {
	msg := func(p BurnPair) string {
		t, ok := translateMessage(BurnMessage(s, p), config.AlertRule{}, 1)
		if !ok {
			panic("promrules: untranslatable burn message " + BurnMessage(s, p)) // a constant format
		}
		return t
	}
	// %[1]q and %[2]q: the node and producer label values, quoted as PromQL
	// (Go) strings.
	match := fmt.Sprintf(`{slo="%s",%s=%%[1]q,producer=%%[2]q}`, s.Name, g.node)
	var b strings.Builder
	for i, p := range pairs[:len(pairs)-1] {
		kw := "if"
		if i > 0 {
			kw = "else if"
		}
		fmt.Fprintf(&b, "{{ %s printf `%s` $labels.%s $labels.producer | query }}%s", kw, cond(p, match), g.node, msg(p))
	}
	if len(pairs) == 1 {
		return msg(pairs[0])
	}
	fmt.Fprintf(&b, "{{ else }}%s{{ end }}", msg(pairs[len(pairs)-1]))
	return b.String()
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
