package dashboard

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agaobs/agaobs/internal/schema"
)

var update = flag.Bool("update", false, "rewrite the committed dashboards under dashboards/")

// committed are the dashboards under dashboards/: aga.json for the default
// naming, each other variant's file name says which.
var committed = []struct {
	file string
	opts Options
}{
	{"aga.json", Options{}},
	{"aga-conventional.json", Options{Naming: schema.Conventional}},
	{"aga-fleet.json", Options{Fleet: true}},
	{"aga-fleet-conventional.json", Options{Fleet: true, Naming: schema.Conventional}},
}

// kinds are every dashboard the generator makes, by naming and node label.
func kinds() []Options {
	var out []Options
	for _, fleet := range []bool{false, true} {
		for _, byInstance := range []bool{false, true} {
			for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
				out = append(out, Options{Fleet: fleet, ByInstance: byInstance, Naming: naming})
			}
		}
	}
	return out
}

func kindName(o Options) string {
	s := "node"
	if o.Fleet {
		s = "fleet"
	}
	s += "/" + string(o.Naming)
	if o.ByInstance {
		s += "/by-instance"
	}
	return s
}

func TestCommittedDashboards(t *testing.T) {
	for _, c := range committed {
		t.Run(c.file, func(t *testing.T) {
			want, err := Render(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("..", "..", "dashboards", c.file)
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (generate it: go test ./internal/dashboard -run TestCommittedDashboards -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s differs from the generator's output: go test ./internal/dashboard -run TestCommittedDashboards -update", path)
			}
		})
	}
}

func TestRenderOptions(t *testing.T) {
	cases := []struct {
		name    string
		opts    Options
		wantErr string
		check   func(t *testing.T, d Dashboard)
	}{
		{name: "defaults", check: func(t *testing.T, d Dashboard) {
			if d.Title != "AGA Observability" || d.Refresh != "30s" || d.UID != "agaobs-aga" || d.ID != nil || d.SchemaVersion != 39 {
				t.Errorf("title %q refresh %q uid %q id %v schema %d", d.Title, d.Refresh, d.UID, d.ID, d.SchemaVersion)
			}
		}},
		{name: "conventional uid", opts: Options{Naming: schema.Conventional}, check: func(t *testing.T, d Dashboard) {
			if d.UID != "agaobs-aga-conventional" {
				t.Errorf("uid %q", d.UID)
			}
		}},
		{name: "fleet defaults", opts: Options{Fleet: true}, check: func(t *testing.T, d Dashboard) {
			if d.Title != "AGA Fleet" || d.UID != "agaobs-aga-fleet" {
				t.Errorf("title %q uid %q", d.Title, d.UID)
			}
		}},
		{name: "fleet conventional uid", opts: Options{Fleet: true, Naming: schema.Conventional, Title: "Inference fleet"}, check: func(t *testing.T, d Dashboard) {
			if d.UID != "agaobs-aga-conventional-fleet" || d.Title != "Inference fleet" {
				t.Errorf("uid %q title %q", d.UID, d.Title)
			}
		}},
		{name: "by instance keeps the uid", opts: Options{ByInstance: true}, check: func(t *testing.T, d Dashboard) {
			if d.UID != "agaobs-aga" || d.Templating.List[1].Definition != "label_values(agaobs_build_info, instance)" {
				t.Errorf("uid %q, $node %q", d.UID, d.Templating.List[1].Definition)
			}
		}},
		{name: "prefix", opts: Options{Prefix: "llm"}, check: func(t *testing.T, d Dashboard) {
			if d.UID != "agaobs-llm" {
				t.Errorf("uid %q", d.UID)
			}
		}},
		{name: "long prefix uid within 40", opts: Options{Prefix: strings.Repeat("p", 60), Naming: schema.Conventional}, check: func(t *testing.T, d Dashboard) {
			if len(d.UID) > 40 {
				t.Errorf("uid %q longer than 40", d.UID)
			}
		}},
		{name: "long prefix fleet uid within 40 and distinct", opts: Options{Prefix: strings.Repeat("p", 60), Naming: schema.Conventional, Fleet: true}, check: func(t *testing.T, d Dashboard) {
			if len(d.UID) > 40 || d.UID == dashboardUID(strings.Repeat("p", 60), schema.Conventional, false) {
				t.Errorf("uid %q", d.UID)
			}
		}},
		{name: "title and refresh", opts: Options{Title: " GPU fleet ", Refresh: "1m"}, check: func(t *testing.T, d Dashboard) {
			if d.Title != "GPU fleet" || d.Refresh != "1m" {
				t.Errorf("title %q refresh %q", d.Title, d.Refresh)
			}
		}},
		{name: "refresh off", opts: Options{Refresh: "off"}, check: func(t *testing.T, d Dashboard) {
			if d.Refresh != "" {
				t.Errorf("refresh %q", d.Refresh)
			}
		}},
		{name: "bad prefix", opts: Options{Prefix: "1aga"}, wantErr: `prefix "1aga"`},
		{name: "bad naming", opts: Options{Naming: "modern"}, wantErr: `naming "modern"`},
		{name: "bad refresh", opts: Options{Refresh: "often"}, wantErr: `refresh "often"`},
		{name: "compound refresh", opts: Options{Refresh: "1h30m"}, wantErr: `refresh "1h30m"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Render(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if Queries(tc.opts) != nil {
					t.Error("Queries of invalid options not nil")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, decode(t, b))
		})
	}
}

func decode(t *testing.T, b []byte) Dashboard {
	t.Helper()
	var d Dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// The default output is the bare model; APIWrapper wraps the same model
// for POST /api/dashboards/db. Output is byte-stable.
func TestRenderShape(t *testing.T) {
	bare, err := Render(Options{})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Render(Options{})
	if !bytes.Equal(bare, again) {
		t.Fatal("Render is not deterministic")
	}
	if !bytes.HasSuffix(bare, []byte("}\n")) || !bytes.HasPrefix(bare, []byte("{\n  \"__inputs\"")) {
		t.Errorf("not 2-space indented JSON with a trailing newline: %q…", bare[:20])
	}
	wrapped, err := Render(Options{APIWrapper: true})
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		Dashboard json.RawMessage `json:"dashboard"`
		Overwrite *bool           `json:"overwrite"`
	}
	dec := json.NewDecoder(bytes.NewReader(wrapped))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		t.Fatal(err)
	}
	if w.Overwrite == nil || !*w.Overwrite {
		t.Error("overwrite is not true")
	}
	var a, b any
	json.Unmarshal(bare, &a)
	json.Unmarshal(w.Dashboard, &b)
	if !jsonEqual(a, b) {
		t.Error("wrapped dashboard differs from the bare one")
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// The layout, titles, units, variables, links and tables follow the
// dashboards' conventions in every kind.
func TestDashboardConventions(t *testing.T) {
	for _, o := range kinds() {
		t.Run(kindName(o), func(t *testing.T) {
			b, err := Render(o)
			if err != nil {
				t.Fatal(err)
			}
			d := decode(t, b)
			var rows []string
			ids := map[int]bool{}
			titles := map[string]bool{}
			occupied := map[[2]int]string{}
			for _, p := range d.Panels {
				if ids[p.ID] {
					t.Errorf("duplicate id %d", p.ID)
				}
				ids[p.ID] = true
				if titles[p.Title] {
					t.Errorf("duplicate title %q", p.Title)
				}
				titles[p.Title] = true
				g := p.GridPos
				if g.X < 0 || g.W < 1 || g.X+g.W > 24 || g.H < 1 {
					t.Errorf("%q: gridPos %+v off the grid", p.Title, g)
				}
				for x := g.X; x < g.X+g.W; x++ {
					for y := g.Y; y < g.Y+g.H; y++ {
						if other, ok := occupied[[2]int{x, y}]; ok {
							t.Fatalf("%q overlaps %q at %d,%d", p.Title, other, x, y)
						}
						occupied[[2]int{x, y}] = p.Title
					}
				}
				if !english(p.Title) {
					t.Errorf("title %q is not plain English", p.Title)
				}
				if p.Type == "row" {
					rows = append(rows, p.Title)
					continue
				}
				if p.Description == "" || !english(p.Description) {
					t.Errorf("%q: description %q", p.Title, p.Description)
				}
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.FieldConfig == nil || p.FieldConfig.Defaults.Unit == "" || len(p.Targets) == 0 {
					t.Errorf("%q: datasource, unit or targets missing", p.Title)
				}
				for i, tg := range p.Targets {
					if tg.Datasource.UID != "${datasource}" || tg.RefID != string(rune('A'+i)) {
						t.Errorf("%q: target datasource %q refId %q", p.Title, tg.Datasource.UID, tg.RefID)
					}
				}
				if p.Type == "table" {
					checkTable(t, o, p)
				}
			}
			want := []string{"Overview", "Forward performance", "Gate & entropy", "Retrieval", "Audit operations", "Alerts & SLOs", "GPU", "eBPF probes", "Agent"}
			wantVars := "datasource:datasource node:query producer:query layer:query"
			if o.Fleet {
				want = []string{"Fleet", "Producers", "Worst producers", "SLOs by model", "Agents and GPUs by node"}
				wantVars = "datasource:datasource node:query"
			}
			if strings.Join(rows, "|") != strings.Join(want, "|") {
				t.Errorf("rows %q, want %q", rows, want)
			}
			var vars []string
			for _, v := range d.Templating.List {
				vars = append(vars, v.Name+":"+v.Type)
			}
			if strings.Join(vars, " ") != wantVars {
				t.Errorf("variables %v", vars)
			}
			if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Templating.List[0].Current.Value != "${DS_PROMETHEUS}" {
				t.Errorf("UI import does not ask for the datasource: inputs %+v", d.Inputs)
			}
			// $node comes from a series every agent exports, producers or not.
			label := map[bool]string{false: "node", true: "instance"}[o.ByInstance]
			if v := d.Templating.List[1]; v.Definition != "label_values(agaobs_build_info, "+label+")" || v.AllValue != ".*" {
				t.Errorf("$node: %q, all %q", v.Definition, v.AllValue)
			}

			// Each dashboard links to the other, keeping time and variables.
			other := dashboardUID("aga", o.Naming, !o.Fleet)
			if len(d.Links) != 1 || d.Links[0].URL != "/d/"+other || !d.Links[0].KeepTime || !d.Links[0].IncludeVars {
				t.Errorf("links %+v, want one to /d/%s", d.Links, other)
			}

			wantUnit := map[schema.Naming]string{schema.Compat: "µs", schema.Conventional: "s"}[o.Naming]
			lat := familyName(t, schema.FamForwardLatency, o.Naming) + "_bucket"
			for _, p := range d.Panels {
				if p.Type == "row" || p.Type == "table" || !strings.Contains(p.Targets[0].Expr, lat) {
					continue
				}
				if u := p.FieldConfig.Defaults.Unit; u != wantUnit {
					t.Errorf("%q: unit %q, want %q", p.Title, u, wantUnit)
				}
			}
		})
	}
}

// checkTable checks a table's transformations and overrides against its
// targets: each names a value field a target makes, each shown value has
// a display name, and links go to the node dashboard with the row's node
// (and producer).
func checkTable(t *testing.T, o Options, p Panel) {
	t.Helper()
	fields := map[string]bool{}
	for i := range p.Targets {
		if !p.Targets[i].Instant || p.Targets[i].Format != "table" {
			t.Errorf("%q: target %d is not an instant table query", p.Title, i)
		}
		fields[valueField(i, len(p.Targets))] = true
	}
	var org OrganizeOptions
	for _, tr := range p.Transformations {
		if tr.ID == "organize" {
			remarshal(t, tr.Options, &org)
		}
	}
	if !org.ExcludeByName["Time"] {
		t.Errorf("%q: Time column shown", p.Title)
	}
	shown := map[string]bool{}
	for f := range org.IndexByName {
		if strings.HasPrefix(f, "Value") {
			if !fields[f] || org.ExcludeByName[f] {
				t.Errorf("%q: orders %s, not a shown value field of %d targets", p.Title, f, len(p.Targets))
			}
			shown[f] = true
		}
	}
	named, links := map[string]bool{}, 0
	for _, ov := range p.FieldConfig.Overrides {
		if ov.Matcher.ID != "byName" {
			t.Errorf("%q: matcher %+v", p.Title, ov.Matcher)
		}
		for _, pr := range ov.Properties {
			switch pr.ID {
			case "displayName":
				named[ov.Matcher.Options] = true
				if !fields[ov.Matcher.Options] {
					t.Errorf("%q: names %s, not a value field", p.Title, ov.Matcher.Options)
				}
			case "links":
				var ls []DataLink
				remarshal(t, pr.Value, &ls)
				for _, l := range ls {
					links++
					node := map[bool]string{false: "node", true: "instance"}[o.ByInstance]
					want := "/d/" + dashboardUID("aga", o.Naming, false) + "?var-datasource=${datasource}&var-node=${__data.fields." + node + "}&"
					if !strings.HasPrefix(l.URL, want) || !strings.HasSuffix(l.URL, "&${__url_time_range}") {
						t.Errorf("%q: link %q, want %s…&${__url_time_range}", p.Title, l.URL, want)
					}
					if ov.Matcher.Options == "producer" && !strings.Contains(l.URL, "&var-producer=${__data.fields.producer}&") {
						t.Errorf("%q: producer link %q without var-producer", p.Title, l.URL)
					}
				}
			}
		}
	}
	for f := range shown {
		if !named[f] {
			t.Errorf("%q: value field %s has no display name", p.Title, f)
		}
	}
	if o.Fleet && links == 0 {
		t.Errorf("%q: no links into the node dashboard", p.Title)
	}
}

func remarshal(t *testing.T, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// english accepts ASCII plus the few symbols the titles use (µ, →, …).
func english(s string) bool {
	for _, r := range s {
		if r > 0x7e && !strings.ContainsRune("µ→…×", r) {
			return false
		}
	}
	return true
}

var (
	// metricRe finds every metric a query reads (the agent's families all
	// start with aga_ or agaobs_ here) and what follows it.
	metricRe = regexp.MustCompile(`\b((?:aga|agaobs)_[a-zA-Z0-9_]+)(\{[^}]*\})?`)
	rangeRe  = regexp.MustCompile(`[}\w)]\[([^\]]*)\]`) // a range or subquery, not a regex class
	nodeRe   = regexp.MustCompile(`(?:^|[^$\w])node\b`) // the label, not $node
	instRe   = regexp.MustCompile(`\binstance\b`)
)

func TestQueriesConventions(t *testing.T) {
	for _, o := range kinds() {
		qs := Queries(o)
		min := map[bool]int{false: 40, true: 30}[o.Fleet]
		if len(qs) < min {
			t.Fatalf("%s: only %d queries", kindName(o), len(qs))
		}
		nodes := `node=~"$node"`
		if o.ByInstance {
			nodes = `instance=~"$node"`
		}
		for _, q := range qs {
			where := kindName(o) + " " + q.Panel + " " + q.RefID
			if q.Row == "" || q.Panel == "" || q.Expr == "" || q.RefID == "" {
				t.Errorf("%s: incomplete %+v", where, q)
			}
			// Every series a query reads is filtered by the selected nodes,
			// first: a node selection never shows another node's series.
			ms := metricRe.FindAllStringSubmatch(q.Expr, -1)
			if len(ms) == 0 {
				t.Errorf("%s: %s reads no agent series", where, q.Expr)
			}
			for _, m := range ms {
				if !strings.HasPrefix(m[2], "{"+nodes) {
					t.Errorf("%s: %s%s is not filtered by %s", where, m[1], m[2], nodes)
				}
			}
			// Nodes are told apart by one label: node, or instance
			// without prometheus_node_label; never joined on instance.
			if o.ByInstance && nodeRe.MatchString(q.Expr) {
				t.Errorf("%s: %s reads node by instance", where, q.Expr)
			}
			if !o.ByInstance && instRe.MatchString(q.Expr) {
				t.Errorf("%s: %s uses instance", where, q.Expr)
			}
			for _, r := range rangeRe.FindAllStringSubmatch(q.Expr, -1) {
				if r[1] != "$__rate_interval" && (r[1] != "$__range" || !q.Instant) {
					t.Errorf("%s: %s: range [%s] (want $__rate_interval, or $__range in an instant query)", where, q.Expr, r[1])
				}
			}
			if strings.Contains(q.Expr, "_bucket") && strings.Contains(q.Expr, "histogram_quantile") && !strings.Contains(q.Expr, "sum by (") {
				t.Errorf("%s: %s: quantile without sum by (le …)", where, q.Expr)
			}
			if o.Fleet {
				if strings.Contains(q.Expr, "$producer") || strings.Contains(q.Expr, "$layer") {
					t.Errorf("%s: %s: the fleet dashboard has no $producer or $layer", where, q.Expr)
				}
				continue
			}
			for _, fam := range []string{schema.FamForwardLatency, schema.FamGateValue, schema.FamEntropyValue, schema.FamForward, schema.FamRetrieval, schema.FamRetrievalInjected} {
				name := familyName(t, fam, o.Naming)
				if strings.Contains(q.Expr, name+"{") || strings.Contains(q.Expr, name+"_bucket{") {
					if !strings.Contains(q.Expr, `layer=~"$layer"`) {
						t.Errorf("%s: %s: layer family without $layer", where, q.Expr)
					}
				}
			}
		}
	}
	for _, c := range []struct {
		opts Options
		expr string
	}{
		// The seed's latency quantiles, now summed over layers, producers and nodes.
		{Options{}, `histogram_quantile(0.99, sum by (le) (rate(aga_forward_latency_us_bucket{node=~"$node",producer=~"$producer",layer=~"$layer"}[$__rate_interval])))`},
		{Options{Prefix: "llm", Naming: schema.Conventional}, `histogram_quantile(0.99, sum by (le, layer) (rate(llm_forward_latency_seconds_bucket{node=~"$node",producer=~"$producer",layer=~"$layer"}[$__rate_interval])))`},
		// Node-wide series carry the node label themselves: no join.
		{Options{}, `agaobs_gpu_utilization_ratio{node=~"$node"} * on (node, uuid) group_left (index) max by (node, uuid, index) (agaobs_gpu_info{node=~"$node"})`},
		{Options{ByInstance: true}, `sum by (instance, sink) (rate(agaobs_sink_dropped_total{instance=~"$node"}[$__rate_interval]))`},
		// Per producer: the same producer name on two nodes stays two series.
		{Options{}, `sum by (node, producer) (rate(aga_retrieval_total{node=~"$node",producer=~"$producer",layer=~"$layer"}[$__rate_interval]))`},
		// Fleet: per-model SLOs, the model joined from producer info on (node, producer).
		{Options{Fleet: true}, `min by (model, slo) (aga_slo_error_budget_remaining_ratio{node=~"$node"} * on (node, producer) group_left (model) max by (node, producer, model) (aga_producer_info{node=~"$node"}))`},
		{Options{Fleet: true, ByInstance: true}, `min by (model, slo) (aga_slo_error_budget_remaining_ratio{instance=~"$node"} * on (instance, producer) group_left (model) max by (instance, producer, model) (aga_producer_info{instance=~"$node"}))`},
		{Options{Fleet: true}, `topk(10, histogram_quantile(0.99, sum by (node, producer, le) (rate(aga_forward_latency_us_bucket{node=~"$node"}[$__rate_interval]))))`},
		{Options{Fleet: true}, `topk(10, sum by (node, producer) (rate(agaobs_ring_dropped_total{node=~"$node",class="hot"}[$__rate_interval])) / ` +
			`(sum by (node, producer) (rate(agaobs_ring_events_total{node=~"$node",class="hot"}[$__rate_interval])) + ` +
			`sum by (node, producer) (rate(agaobs_ring_dropped_total{node=~"$node",class="hot"}[$__rate_interval]))))`},
	} {
		if !hasExpr(Queries(c.opts), c.expr) {
			t.Errorf("%s: no query %s", kindName(c.opts), c.expr)
		}
	}
}

func hasExpr(qs []Query, expr string) bool {
	for _, q := range qs {
		if q.Expr == expr {
			return true
		}
	}
	return false
}

func familyName(t *testing.T, key string, naming schema.Naming) string {
	t.Helper()
	for _, f := range schema.Families() {
		if f.Key == key {
			return f.Name("aga", naming)
		}
	}
	t.Fatalf("no family %s", key)
	return ""
}
