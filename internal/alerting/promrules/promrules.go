package promrules

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/schema"
)

// Options selects what Generate renders.
type Options struct {
	Prefix      string             // prometheus_prefix; empty means "aga"
	Naming      schema.Naming      // prometheus_naming; empty means compat
	Rules       []config.AlertRule // the effective rules (see EffectiveRules)
	SLOs        []config.SLO
	ExtraLabels map[string]string // added to every alert's labels
	// NodeLabel is prometheus_node_label: every series carries
	// node=<node_name>, and every rule aggregates by node. False: rules
	// tell the agents apart by Prometheus's instance label instead (the
	// alerts then differ from the agent's own, which carry node).
	NodeLabel bool
	// ScrapeInterval is how often Prometheus scrapes the agents; rate()
	// and increase() windows shorter than 4 scrape intervals are widened
	// to 4 intervals (a rate needs two samples in its window, and four
	// tolerate a missed scrape). Zero means DefaultScrapeInterval.
	ScrapeInterval time.Duration
	// RunbookBaseURL is where the runbook_url annotations of the agent's
	// own alerts point, followed by #<anchor>; empty means
	// DefaultRunbookBaseURL.
	RunbookBaseURL string
	// GPUXIDWindow is gpu_xid_window: how long a critical XID keeps
	// AgaobsGPUXidCritical firing. Zero means 10m, the key's default.
	GPUXIDWindow time.Duration
	// SeriesLabels are the names of prometheus_labels, which every series
	// carries and the agent's own alerts carry too: the alert and SLO
	// rules keep them (aggregating by node, producer and these), so an
	// alert from Prometheus has the agent's label set. Fleet rules drop
	// them.
	SeriesLabels []string
	// AgentJob is the Prometheus job label of the agents' scrape targets,
	// read by AgaobsAgentDown (up{job=...}); empty means DefaultAgentJob.
	AgentJob string
}

// Defaults of Options.
const (
	DefaultScrapeInterval = 15 * time.Second
	DefaultRunbookBaseURL = "https://github.com/agaobs/agaobs/blob/main/docs/runbooks.md"
	DefaultAgentJob       = "agaobs-agent"
	defaultXIDWindow      = 10 * time.Minute
)

// Skipped is a rule or SLO Generate left out, and why.
type Skipped struct{ Rule, Reason string }

// Rule groups. Every group but FleetGroup keeps its results per node (and
// producer); FleetGroup is the one declared to aggregate across nodes.
const (
	AlertsGroup = "agaobs-alerts"
	SLOGroup    = "agaobs-slo-" // + the SLO's name
	SelfGroup   = "agaobs-self"
	FleetGroup  = "agaobs-fleet"
)

// ruleFile is Prometheus's rule file format (model/rulefmt), in the field
// order promtool and the Prometheus docs use.
type ruleFile struct {
	Groups []group `yaml:"groups"`
}

type group struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

type rule struct {
	Record        string            `yaml:"record,omitempty"`
	Alert         string            `yaml:"alert,omitempty"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for,omitempty"`
	KeepFiringFor string            `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
}

// generator holds what every rule of one Generate call shares.
type generator struct {
	names names
	extra map[string]string
	// node is the label that tells agents apart: "node" or "instance".
	node      string
	minRange  time.Duration // 4 × the scrape interval
	scrape    time.Duration
	runbook   string
	xidWindow time.Duration
	agentJob  string
	keep      []string // SeriesLabels
	// widened lists the rate windows widened to minRange, for the file's
	// header comment.
	widened []string
}

func newGenerator(n names, opts Options) *generator {
	g := &generator{names: n, extra: opts.ExtraLabels, node: "instance", scrape: opts.ScrapeInterval,
		runbook: opts.RunbookBaseURL, xidWindow: opts.GPUXIDWindow, agentJob: opts.AgentJob, keep: opts.SeriesLabels}
	if opts.NodeLabel {
		g.node = "node"
	}
	if g.scrape <= 0 {
		g.scrape = DefaultScrapeInterval
	}
	g.minRange = 4 * g.scrape
	if g.runbook == "" {
		g.runbook = DefaultRunbookBaseURL
	}
	if g.xidWindow <= 0 {
		g.xidWindow = defaultXIDWindow
	}
	if g.agentJob == "" {
		g.agentJob = DefaultAgentJob
	}
	return g
}

// by is the grouping of a per-producer (node and producer) or node-wide
// (node) result, with the series labels.
func (g *generator) by(perProducer bool) string {
	if perProducer {
		return g.grouping("producer")
	}
	return g.grouping()
}

// grouping is the node label, then labels, then the series labels.
func (g *generator) grouping(labels ...string) string {
	return strings.Join(append(append([]string{g.node}, labels...), g.keep...), ", ")
}

// rateRange renders the window of a rate() or increase() over seconds,
// widened to 4 scrape intervals; what names the rule in the header's list
// of widened windows.
func (g *generator) rateRange(seconds float64, what string) string {
	w, _ := promRange(seconds)
	if lo := g.minRange.Seconds(); seconds < lo {
		to, _ := promRange(lo)
		g.widen(fmt.Sprintf("%s: %s -> %s", what, w, to))
		return to
	}
	return w
}

// widen records a widened window once.
func (g *generator) widen(what string) {
	if !slices.Contains(g.widened, what) {
		g.widened = append(g.widened, what)
	}
}

// rateDuration is rateRange for a time.Duration, rendered as Prometheus
// renders durations (5m, 1h).
func (g *generator) rateDuration(d time.Duration, what string) string {
	if d < g.minRange {
		g.widen(fmt.Sprintf("%s: %s -> %s", what, durationString(d), durationString(g.minRange)))
		d = g.minRange
	}
	return durationString(d)
}

// Generate renders a Prometheus rule file (YAML): the alert rules in group
// agaobs-alerts, each SLO's recording rules and burn-rate alerts in group
// agaobs-slo-<name>, the agent's own alerts in agaobs-self and the
// recording rules that aggregate over nodes (per node, per model) in
// agaobs-fleet. Every rule outside agaobs-fleet keeps nodes apart (by node,
// or by instance without NodeLabel). Rules and SLOs that PromQL cannot
// express over the exported series are left out and reported in skipped;
// the file names them in a comment too. Options that configuration
// validation would reject (an unknown metric or operator, a non-positive
// window, a bad label name) are errors.
func Generate(opts Options) (yaml []byte, skipped []Skipped, err error) {
	if opts.Prefix == "" {
		opts.Prefix = "aga"
	}
	if !isIdent(opts.Prefix) {
		return nil, nil, fmt.Errorf("promrules: prefix %q must match ^[a-zA-Z_][a-zA-Z0-9_]*$", opts.Prefix)
	}
	switch opts.Naming {
	case "":
		opts.Naming = schema.Compat
	case schema.Compat, schema.Conventional:
	default:
		return nil, nil, fmt.Errorf("promrules: unknown naming %q (want compat or conventional)", opts.Naming)
	}
	for _, k := range slices.Sorted(maps.Keys(opts.ExtraLabels)) {
		if !isIdent(k) || strings.HasPrefix(k, "__") {
			return nil, nil, fmt.Errorf("promrules: extra label name %q is not a valid label name", k)
		}
	}
	for _, k := range opts.SeriesLabels {
		if !isIdent(k) || strings.HasPrefix(k, "__") || slices.Contains([]string{"node", "instance", "producer", "le", "slo", "model", "uuid"}, k) {
			return nil, nil, fmt.Errorf("promrules: series label %q is not a valid label name, or one the rules set", k)
		}
	}
	if opts.ScrapeInterval < 0 || opts.ScrapeInterval%time.Millisecond != 0 {
		return nil, nil, fmt.Errorf("promrules: scrape interval %v must be >= 0 and a whole number of milliseconds", opts.ScrapeInterval)
	}
	if opts.GPUXIDWindow < 0 || opts.GPUXIDWindow%time.Millisecond != 0 {
		return nil, nil, fmt.Errorf("promrules: GPU XID window %v must be >= 0 and a whole number of milliseconds", opts.GPUXIDWindow)
	}
	n, err := newNames(opts.Prefix, opts.Naming)
	if err != nil {
		return nil, nil, fmt.Errorf("promrules: %w", err)
	}
	g := newGenerator(n, opts)

	var file ruleFile
	alerts := group{Name: AlertsGroup}
	anomalies := group{Name: AnomalyGroup}
	recorded := map[string]bool{}
	names := map[string]bool{}
	for _, r := range opts.Rules {
		names[r.Name] = true
		if schema.RuleMetric(r.Metric).Detector() {
			rs, skip := g.anomalyRules(r, detectorThreshold)
			if skip != "" {
				skipped = append(skipped, Skipped{Rule: r.Name, Reason: skip})
				continue
			}
			for _, x := range rs {
				// Rules on one signal share its recording rules.
				if x.Record != "" && recorded[x.Record] {
					continue
				}
				recorded[x.Record] = x.Record != ""
				anomalies.Rules = append(anomalies.Rules, x)
			}
			continue
		}
		ar, skip, err := g.alertRule(r)
		if err != nil {
			return nil, nil, fmt.Errorf("promrules: rule %q: %w", r.Name, err)
		}
		if skip != "" {
			skipped = append(skipped, Skipped{Rule: r.Name, Reason: skip})
			continue
		}
		alerts.Rules = append(alerts.Rules, ar)
	}
	if len(alerts.Rules) > 0 {
		file.Groups = append(file.Groups, alerts)
	}
	if len(anomalies.Rules) > 0 {
		file.Groups = append(file.Groups, anomalies)
	}
	var slos []config.SLO
	for _, s := range opts.SLOs {
		grp, skip, err := g.sloGroup(s)
		if err != nil {
			return nil, nil, fmt.Errorf("promrules: %w", err)
		}
		if skip != "" {
			skipped = append(skipped, Skipped{Rule: s.Name, Reason: "SLO: " + skip})
			continue
		}
		file.Groups = append(file.Groups, grp)
		slos = append(slos, s)
	}
	// A configured rule named like one of the agent's own alerts replaces
	// it, in the rule file as in the agent.
	file.Groups = append(file.Groups, g.selfGroup(names))
	file.Groups = append(file.Groups, g.fleetGroup(slos))

	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Prometheus rules generated by `agaobs-agent rules` (prometheus_prefix %s, prometheus_naming %s).\n",
		opts.Prefix, opts.Naming)
	if g.node == "node" {
		buf.WriteString("# Agents are told apart by their node label (prometheus_node_label: true); only group " + FleetGroup + "\n" +
			"# aggregates across nodes.\n")
	} else {
		buf.WriteString("# Agents are told apart by instance (prometheus_node_label: false); only group " + FleetGroup + "\n" +
			"# aggregates across instances. Alerts carry instance, the agent's own carry node: they do not deduplicate.\n")
	}
	if len(g.widened) > 0 {
		fmt.Fprintf(&buf, "# rate() windows below 4 scrape intervals (scrape interval %s) are widened to %s:\n",
			durationString(g.scrape), durationString(g.minRange))
		for _, w := range g.widened {
			fmt.Fprintf(&buf, "#   %s\n", oneLine(w))
		}
	}
	if len(skipped) > 0 {
		buf.WriteString("# Left out (the agent still evaluates them):\n")
		for _, s := range skipped {
			fmt.Fprintf(&buf, "#   %s: %s\n", oneLine(s.Rule), oneLine(s.Reason))
		}
	}
	enc := yamlv3.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(file); err != nil {
		return nil, nil, fmt.Errorf("promrules: encode rule file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, nil, fmt.Errorf("promrules: encode rule file: %w", err)
	}
	return buf.Bytes(), skipped, nil
}

// alertRule renders one alert rule. skip is the reason when the rule cannot
// be expressed; the rule is then left out.
func (g *generator) alertRule(r config.AlertRule) (rule, string, error) {
	// Prometheus 2 requires alert names to be metric names; an agent rule
	// name may be any string.
	if !isMetricName(r.Name) {
		return rule{}, fmt.Sprintf("rule name %q is not a valid Prometheus alert name (^[a-zA-Z_:][a-zA-Z0-9_:]*$)", r.Name), nil
	}
	op := r.Operator
	if op == "" {
		op = ">"
	}
	if !slices.Contains([]string{">", "<", ">=", "<=", "==", "!="}, op) {
		return rule{}, "", fmt.Errorf("unknown operator %q (want one of > < >= <= == !=)", r.Operator)
	}
	r.Operator = op
	if !(r.WindowSeconds > 0) {
		return rule{}, "", fmt.Errorf("window_seconds %v must be > 0", r.WindowSeconds)
	}
	for _, set := range []map[string]string{r.Labels, r.Annotations} {
		for _, k := range slices.Sorted(maps.Keys(set)) {
			if !isIdent(k) || strings.HasPrefix(k, "__") {
				return rule{}, "", fmt.Errorf("label or annotation name %q is not a valid label name", k)
			}
		}
	}
	mark := len(g.widened)
	me, skip, err := g.ruleMetricExpr(r.Metric, r.WindowSeconds, r.PerProducer, r.Name)
	if err != nil || skip != "" {
		g.widened = g.widened[:mark]
		return rule{}, skip, err
	}

	expr := fmt.Sprintf("%s %s %s", me.expr, op, promNumber(r.Threshold/me.div))
	if tail, ok := g.latencyTail(r); ok {
		expr = fmt.Sprintf("%s >= %s and %s", me.expr, promNumber(r.Threshold/me.div), tail)
	}
	out := rule{
		Alert:  r.Name,
		Expr:   expr,
		Labels: g.alertLabels(r.Labels, r.Severity),
		Annotations: map[string]string{
			"summary": summary(r, me.div),
		},
	}
	maps.Copy(out.Annotations, r.Annotations)
	if r.For > 0 {
		out.For = r.For.String()
	}
	if r.KeepFiringFor > 0 {
		out.KeepFiringFor = r.KeepFiringFor.String()
	}
	// Prometheus expands labels and annotations as templates and rejects
	// the whole file if one does not parse; leave out just this rule.
	for _, set := range []map[string]string{out.Labels, out.Annotations} {
		for _, k := range slices.Sorted(maps.Keys(set)) {
			if err := checkTemplate(set[k]); err != nil {
				g.widened = g.widened[:mark]
				return rule{}, fmt.Sprintf("%s is not a valid Prometheus template: %v", k, err), nil
			}
		}
	}
	return out, "", nil
}

// alertLabels returns an alert's labels: the extra labels, then the rule's
// own, then severity, each overriding the previous.
func (g *generator) alertLabels(own map[string]string, severity string) map[string]string {
	labels := maps.Clone(g.extra)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, own)
	if severity != "" {
		labels["severity"] = severity
	}
	return labels
}

// isIdent reports whether s matches ^[a-zA-Z_][a-zA-Z0-9_]*$ (a label name).
func isIdent(s string) bool { return isName(s, false) }

// isMetricName reports whether s matches ^[a-zA-Z_:][a-zA-Z0-9_:]*$.
func isMetricName(s string) bool { return isName(s, true) }

func isName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		ok := b == '_' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (colon && b == ':') || (i > 0 && b >= '0' && b <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// oneLine keeps a YAML comment on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
