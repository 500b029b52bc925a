package promrules

import (
	"fmt"
	"strings"
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/schema"
)

// Fleet recording rules (group agaobs-fleet) are the only rules that
// aggregate across nodes. They are named level:metric:operations, the
// Prometheus convention: the level is the labels the result keeps
// (node_producer, node, model, model_slo), the metric the exported family
// (without _total), the operations what was computed over which window.
//
// node_producer rules sum a family's series per node and producer (over
// layers and the target's other labels); node rules sum those over a
// node's producers; model rules join them with <prefix>_producer_info's
// model label on (node, producer) and sum over every producer of the model
// on every node. model_slo rules are an SLO measured over every replica of
// a model: the good and total counts of all its producers pooled, not an
// average of their ratios.

const (
	fleetRateWindow  = time.Minute     // counter rates
	fleetRatioWindow = 5 * time.Minute // latency quantiles
)

// FleetRecord names a fleet recording rule: level:metric:operations.
func FleetRecord(level, metric, ops string) string { return level + ":" + metric + ":" + ops }

// fleetMetric is a counter family's name without _total, as recording
// rule names carry it.
func fleetMetric(name string) string { return strings.TrimSuffix(name, "_total") }

// FleetRecords lists the fleet recording rules Generate renders for the
// prefix, naming and SLO names, in order: for dashboards.
func FleetRecords(prefix string, naming schema.Naming, slos ...string) ([]string, error) {
	n, err := newNames(prefix, naming)
	if err != nil {
		return nil, err
	}
	g := newGenerator(n, Options{NodeLabel: true})
	var s []config.SLO
	for _, name := range slos {
		s = append(s, config.SLO{Name: name, Objective: 0.99, SLI: config.SLI{Type: "availability"}})
	}
	var out []string
	for _, r := range g.fleetGroup(s).Rules {
		out = append(out, r.Record)
	}
	return out, nil
}

// fleetGroup renders the fleet recording rules, with the fleet SLOs of
// slos (those the SLO groups could render).
func (g *generator) fleetGroup(slos []config.SLO) group {
	grp := group{Name: FleetGroup}
	add := func(record, expr string, labels map[string]string) {
		grp.Rules = append(grp.Rules, rule{Record: record, Expr: expr, Labels: labels})
	}
	n, np := g.node, g.node+", producer"
	fwd := g.names.Name(schema.FamForward)
	ret := g.names.Name(schema.FamRetrieval)
	lat := g.names.Name(famLatency)
	info := g.names.Name(schema.FamProducerInfo)
	fm, rm := fleetMetric(fwd), fleetMetric(ret)
	dm, em := fleetMetric(ringDroppedTotal), fleetMetric(ringEventsTotal)
	rw := g.rateDuration(fleetRateWindow, FleetGroup)
	qw := g.rateDuration(fleetRatioWindow, FleetGroup)
	rate, ratio := "rate"+durationString(fleetRateWindow), "ratio_rate"+durationString(fleetRateWindow)
	qrate := "rate" + durationString(fleetRatioWindow)

	// Per node and producer: the building blocks.
	np1 := func(metric, ops string) string { return FleetRecord("node_producer", metric, ops) }
	add(np1(fm, rate), fmt.Sprintf("sum by (%s) (rate(%s[%s]))", np, fwd, rw), nil)
	add(np1(fm+"_applied", rate), fmt.Sprintf(`sum by (%s) (rate(%s{applied="true"}[%s]))`, np, fwd, rw), nil)
	add(np1(rm, rate), fmt.Sprintf("sum by (%s) (rate(%s[%s]))", np, ret, rw), nil)
	add(np1(lat+"_bucket", qrate), fmt.Sprintf("sum by (%s, le) (rate(%s_bucket[%s]))", np, lat, qw), nil)
	add(np1(dm, rate), fmt.Sprintf("sum by (%s) (rate(%s{%s}[%s]))", np, ringDroppedTotal, hotRing, rw), nil)
	add(np1(em, rate), fmt.Sprintf("sum by (%s) (rate(%s{%s}[%s]))", np, ringEventsTotal, hotRing, rw), nil)

	// join attaches the model of each (node, producer) to a per-producer
	// result, for a sum by model. producer_info is 1; its last value over
	// the rate window, so one failed scrape of a node (every series of it
	// stale for an evaluation) does not drop the node from the model's sum
	// while its rates, over a range, still count it; topk keeps one model
	// per producer while a producer's name changes model within the window.
	join := func(expr string) string {
		return fmt.Sprintf("%s * on (%s) group_left (model) topk by (%s) (1, max by (%s, model) (last_over_time(%s[%s])))",
			expr, np, np, np, info, rw)
	}
	for _, level := range []struct {
		name, by string
		src      func(string) string // a node_producer record as the level sees it
	}{
		{"node", n, func(r string) string { return r }},
		{"model", "model", func(r string) string { return join(r) }},
	} {
		sum := func(metric, ops string, by ...string) string {
			return fmt.Sprintf("sum by (%s) (%s)", strings.Join(append([]string{level.by}, by...), ", "), level.src(np1(metric, ops)))
		}
		rec := func(metric, ops string) string { return FleetRecord(level.name, metric, ops) }
		add(rec(fm, rate), sum(fm, rate), nil)
		add(rec(fm+"_applied", ratio), sum(fm+"_applied", rate)+" / "+sum(fm, rate), nil)
		for _, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p99", 0.99}} {
			add(rec(lat, q.name+"_"+qrate), fmt.Sprintf("histogram_quantile(%s, %s)", promNumber(q.q), sum(lat+"_bucket", qrate, "le")), nil)
		}
		add(rec(rm, rate), sum(rm, rate), nil)
		add(rec(dm, ratio), fmt.Sprintf("%s / (%s + %s)", sum(dm, rate), sum(em, rate), sum(dm, rate)), nil)
	}

	// Fleet SLOs: per model, every replica's good and total counts pooled.
	for _, s := range slos {
		budget, _ := errorBudget(s.Objective)
		labels := map[string]string{"slo": s.Name}
		modelJoin := func(e string) string { return "sum by (model) (" + join(e) + ")" }
		for _, w := range sloWindowsOf(s) {
			expr, _, _ := g.sloRatio(s, w, np, modelJoin) // checked by sloGroup
			add(FleetRecord("model_slo", "sli_error", "ratio_rate"+durationString(w)), expr, labels)
		}
		sel := func(w time.Duration) string {
			return FleetRecord("model_slo", "sli_error", "ratio_rate"+durationString(w)) + `{slo="` + s.Name + `"}`
		}
		for _, w := range sloWindows() {
			add(FleetRecord("model_slo", "burn_rate", "ratio_rate"+durationString(w)), fmt.Sprintf("%s / %s", sel(w), budget), labels)
		}
		add(FleetRecord("model_slo", "error_budget_remaining", "ratio"), fmt.Sprintf("1 - (%s / %s)", sel(sloPeriod(s)), budget), labels)
	}
	return grp
}
