package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"

	"github.com/agaobs/agaobs/internal/schema"
)

// Defaults of Options.
const (
	defaultPrefix     = "aga"
	defaultTitle      = "AGA Observability"
	defaultFleetTitle = "AGA Fleet"
	defaultRefresh    = "30s"
)

// Options select the dashboard, the metric names and the presentation.
type Options struct {
	Prefix  string        // prometheus_prefix (default "aga")
	Naming  schema.Naming // prometheus_naming (default schema.Compat)
	Fleet   bool          // the fleet dashboard instead of the node dashboard
	Title   string        // default "AGA Observability", "AGA Fleet" with Fleet
	Refresh string        // default "30s"; "off" disables auto-refresh
	// ByInstance tells nodes apart by the scrape target's instance label
	// instead of node: for agents with prometheus_node_label: false.
	// $node then lists instances.
	ByInstance bool
	APIWrapper bool // {"dashboard": ..., "overwrite": true}
}

// Query is one panel target's PromQL expression, with Grafana's template
// variables ($producer, $layer, $node, $__rate_interval, $__range) left in.
type Query struct {
	Panel, Row, Expr, Legend string
	RefID                    string // the target's refId: A, B, …
	Instant                  bool   // an instant query (tables); else a range query
}

var (
	identRe   = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	refreshRe = regexp.MustCompile(`^[1-9][0-9]*(s|m|h|d)$`)
)

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if o.Naming == "" {
		o.Naming = schema.Compat
	}
	if o.Title = strings.TrimSpace(o.Title); o.Title == "" {
		o.Title = defaultTitle
		if o.Fleet {
			o.Title = defaultFleetTitle
		}
	}
	if o.Refresh == "" {
		o.Refresh = defaultRefresh
	}
	return o
}

func (o Options) validate() error {
	if !identRe.MatchString(o.Prefix) {
		return fmt.Errorf("prefix %q: must match %s", o.Prefix, identRe)
	}
	if o.Naming != schema.Compat && o.Naming != schema.Conventional {
		return fmt.Errorf("naming %q: not %s or %s", o.Naming, schema.Compat, schema.Conventional)
	}
	if o.Refresh != "off" && !refreshRe.MatchString(o.Refresh) {
		return fmt.Errorf("refresh %q: want a Grafana interval such as 30s, 1m, 1h, or off", o.Refresh)
	}
	return nil
}

// Render returns the dashboard JSON (2-space indent, trailing newline),
// deterministic.
func Render(opts Options) ([]byte, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	d, err := build(opts)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	var v any = d
	if opts.APIWrapper {
		v = apiWrapper{Dashboard: d, Overwrite: true}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep PromQL's < > & readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("dashboard: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// Queries lists every panel target's expression with the panel title (for
// the proof test and docs), in dashboard order. Invalid options yield nil.
func Queries(opts Options) []Query {
	opts = opts.withDefaults()
	if opts.validate() != nil {
		return nil
	}
	d, err := build(opts)
	if err != nil {
		return nil
	}
	var qs []Query
	row := ""
	for _, p := range d.Panels {
		if p.Type == "row" {
			row = p.Title
			continue
		}
		for _, t := range p.Targets {
			qs = append(qs, Query{Panel: p.Title, Row: row, Expr: t.Expr, Legend: t.LegendFormat, RefID: t.RefID, Instant: t.Instant})
		}
	}
	return qs
}

// dashboardUID is the dashboard's stable uid: agaobs-<prefix>, plus -conventional
// for conventional naming, plus -fleet for the fleet dashboard, so variants
// imported side by side don't collide.
func dashboardUID(prefix string, naming schema.Naming, fleet bool) string {
	uid := "agaobs-" + prefix
	if naming == schema.Conventional {
		uid += "-conventional"
	}
	if fleet {
		uid += "-fleet"
	}
	// Grafana caps uids at 40 characters; a hash keeps long prefixes distinct.
	if len(uid) > 40 {
		h := fnv.New32a()
		h.Write([]byte(uid))
		uid = fmt.Sprintf("%s-%08x", uid[:31], h.Sum32())
	}
	return uid
}

// build assembles the dashboard model for validated options.
func build(opts Options) (*Dashboard, error) {
	n, err := newNames(opts.Prefix, opts.Naming, opts.ByInstance)
	if err != nil {
		return nil, err
	}
	refresh := opts.Refresh
	if refresh == "off" {
		refresh = ""
	}
	nodeUID, fleetUID := dashboardUID(opts.Prefix, opts.Naming, false), dashboardUID(opts.Prefix, opts.Naming, true)
	nodes := "the node label every series carries (prometheus_node_label)"
	if opts.ByInstance {
		nodes = "the scrape target's instance (prometheus_node_label: false)"
	}
	d := &Dashboard{
		Inputs: []Input{{Name: "DS_PROMETHEUS", Label: "Prometheus", Description: "The Prometheus that scrapes agaobs-agent",
			Type: "datasource", PluginID: "prometheus", PluginName: "Prometheus"}},
		Requires: []Require{
			{Type: "grafana", ID: "grafana", Name: "Grafana", Version: "10.0.0"},
			{Type: "panel", ID: "heatmap", Name: "Heatmap", Version: ""},
			{Type: "datasource", ID: "prometheus", Name: "Prometheus", Version: "1.0.0"},
			{Type: "panel", ID: "stat", Name: "Stat", Version: ""},
			{Type: "panel", ID: "table", Name: "Table", Version: ""},
			{Type: "panel", ID: "timeseries", Name: "Time series", Version: ""},
		},
		Annotations: Annotations{List: []Annotation{{BuiltIn: 1, Datasource: DatasourceRef{Type: "grafana", UID: "-- Grafana --"},
			Enable: true, Hide: true, IconColor: "rgba(0, 211, 255, 1)", Name: "Annotations & Alerts", Type: "dashboard"}}},
		Description: fmt.Sprintf("agaobs-agent: AGA inference metrics, alerts, GPUs, eBPF probes and the agent itself, per node "+
			"(prometheus_prefix %s, prometheus_naming %s; nodes told apart by %s). Generated by `agaobs-agent dashboard`; edit the generator, not this JSON.",
			opts.Prefix, opts.Naming, nodes),
		Editable:     true,
		GraphTooltip: 1, // shared crosshair across panels
		Links: []Link{{Icon: "dashboard", IncludeVars: true, KeepTime: true, Tags: []string{}, Title: "Fleet",
			Tooltip: "Every node and producer at a glance", Type: "link", URL: "/d/" + fleetUID}},
		Panels:        panels(n),
		Refresh:       refresh,
		SchemaVersion: 39,
		Tags:          []string{"aga", "agaobs", "llm", "observability"},
		Templating:    Templating{List: variables(n)},
		Time:          TimeRange{From: "now-1h", To: "now"},
		Timezone:      "browser",
		Title:         opts.Title,
		UID:           nodeUID,
		Version:       1,
	}
	if opts.Fleet {
		d.Description = fmt.Sprintf("agaobs-agent across a fleet: every node and producer, the worst producers, SLOs by model and the agents' health "+
			"(prometheus_prefix %s, prometheus_naming %s; nodes told apart by %s). Raw series only: no recording rules needed. "+
			"Generated by `agaobs-agent dashboard --fleet`; edit the generator, not this JSON.", opts.Prefix, opts.Naming, nodes)
		d.Links = []Link{{Icon: "dashboard", IncludeVars: true, KeepTime: true, Tags: []string{}, Title: "Node",
			Tooltip: "One node's producers, GPUs, eBPF probes and agent", Type: "link", URL: "/d/" + nodeUID}}
		d.Panels = fleetPanels(n, nodeUID)
		d.Tags = []string{"aga", "agaobs", "fleet", "llm", "observability"}
		d.Templating = Templating{List: fleetVariables(n)}
		d.UID = fleetUID
	}
	return d, nil
}

// variables are $datasource, then $node, $producer (following $node) and
// $layer (following $producer).
func variables(n names) []Variable {
	producer := queryVar("producer", "Producer", "Producers on the selected nodes.",
		"label_values("+n.info()+", producer)", 1)
	layer := queryVar("layer", "Layer", "Hooked layers of the selected producers.",
		"label_values("+n.sel(n.aga(schema.FamForward), producerMatch)+", layer)", 3)
	layer.AllValue = ".*" // a 96-layer model would otherwise give a 96-way regex
	return []Variable{datasourceVar(), nodeVar(n), producer, layer}
}

// fleetVariables are $datasource and $node.
func fleetVariables(n names) []Variable { return []Variable{datasourceVar(), nodeVar(n)} }

// datasourceVar is $datasource: the UI import replaces ${DS_PROMETHEUS}
// with the chosen datasource; file provisioning leaves it, and Grafana
// then selects the first Prometheus datasource.
func datasourceVar() Variable {
	return Variable{Current: Current{Selected: false, Text: "${DS_PROMETHEUS}", Value: "${DS_PROMETHEUS}"},
		Description: "The Prometheus that scrapes agaobs-agent.", Label: "Data source", Name: "datasource",
		Options: []struct{}{}, Query: "prometheus", Refresh: 1, Type: "datasource"}
}

// nodeVar is $node: every node with an agent (agaobs_build_info, which
// every agent exports, producers or not).
func nodeVar(n names) Variable {
	desc := "Nodes with an agent (the node label of " + mBuildInfo + ")."
	if n.node == labelInstance {
		desc = "Agents by scrape target (the instance label of " + mBuildInfo + "; prometheus_node_label: false)."
	}
	v := queryVar("node", "Node", desc, "label_values("+mBuildInfo+", "+n.node+")", 1)
	// .* rather than every value joined: cheaper on a large fleet.
	v.AllValue = ".*"
	return v
}

// queryVar is a multi-value label_values variable with "All", refreshed
// when the time range changes.
func queryVar(name, label, desc, q string, sort int) Variable {
	ds := promDatasource()
	all := Current{Selected: true, Text: []string{"All"}, Value: []string{"$__all"}}
	return Variable{Current: all, Datasource: &ds, Definition: q, Description: desc, IncludeAll: true, Label: label, Multi: true,
		Name: name, Options: []struct{}{}, Query: VariableQuery{QryType: 1, Query: q, RefID: "PrometheusVariableQueryEditor-VariableQuery"},
		Refresh: 2, Sort: sort, Type: "query"}
}
