package dashboard

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
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

// The layout, titles, units, variables and queries follow the dashboard's
// conventions in both namings.
func TestDashboardConventions(t *testing.T) {
	for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
		t.Run(string(naming), func(t *testing.T) {
			b, err := Render(Options{Naming: naming})
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
				for _, tg := range p.Targets {
					if tg.Datasource.UID != "${datasource}" {
						t.Errorf("%q: target datasource %q", p.Title, tg.Datasource.UID)
					}
				}
			}
			want := []string{"Overview", "Forward performance", "Gate & entropy", "Retrieval", "Audit operations", "Alerts & SLOs", "GPU", "eBPF probes", "Agent"}
			if strings.Join(rows, "|") != strings.Join(want, "|") {
				t.Errorf("rows %q, want %q", rows, want)
			}
			var vars []string
			for _, v := range d.Templating.List {
				vars = append(vars, v.Name+":"+v.Type)
			}
			if strings.Join(vars, " ") != "datasource:datasource node:query producer:query layer:query" {
				t.Errorf("variables %v", vars)
			}
			if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Templating.List[0].Current.Value != "${DS_PROMETHEUS}" {
				t.Errorf("UI import does not ask for the datasource: inputs %+v", d.Inputs)
			}

			wantUnit := map[schema.Naming]string{schema.Compat: "µs", schema.Conventional: "s"}[naming]
			for _, p := range d.Panels {
				if strings.HasPrefix(p.Title, "Forward latency (") || strings.HasPrefix(p.Title, "Forward latency P99") {
					if u := p.FieldConfig.Defaults.Unit; u != wantUnit {
						t.Errorf("%q: unit %q, want %q", p.Title, u, wantUnit)
					}
				}
			}
		})
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

func TestQueriesConventions(t *testing.T) {
	for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
		qs := Queries(Options{Naming: naming})
		if len(qs) < 40 {
			t.Fatalf("%s: only %d queries", naming, len(qs))
		}
		for _, q := range qs {
			where := string(naming) + " " + q.Panel
			if q.Row == "" || q.Panel == "" || q.Expr == "" {
				t.Errorf("%s: incomplete %+v", where, q)
			}
			// Every query is scoped to the selected producers or nodes.
			if !strings.Contains(q.Expr, `producer=~"$producer`) && !strings.Contains(q.Expr, `node=~"$node"`) {
				t.Errorf("%s: %s filters neither producer nor node", where, q.Expr)
			}
			if strings.Contains(q.Expr, "rate(") || strings.Contains(q.Expr, "increase(") {
				if !strings.Contains(q.Expr, "[$__rate_interval]") {
					t.Errorf("%s: %s: rate without $__rate_interval", where, q.Expr)
				}
			}
			if strings.Contains(q.Expr, "_bucket") && strings.Contains(q.Expr, "histogram_quantile") && !strings.Contains(q.Expr, "sum by (") {
				t.Errorf("%s: %s: quantile without sum by (le …)", where, q.Expr)
			}
			for _, fam := range []string{schema.FamForwardLatency, schema.FamGateValue, schema.FamEntropyValue, schema.FamForward, schema.FamRetrieval, schema.FamRetrievalInjected} {
				f, _ := familyByKey(fam)
				if strings.Contains(q.Expr, f.Name("aga", naming)+"{") || strings.Contains(q.Expr, f.Name("aga", naming)+"_bucket{") {
					if !strings.Contains(q.Expr, `layer=~"$layer"`) {
						t.Errorf("%s: %s: layer family without $layer", where, q.Expr)
					}
				}
			}
		}
	}
	// The seed's latency quantiles, now summed over layers and producers.
	want := `histogram_quantile(0.99, sum by (le) (rate(aga_forward_latency_us_bucket{producer=~"$producer",layer=~"$layer"}[$__rate_interval])))`
	if !hasExpr(Queries(Options{}), want) {
		t.Errorf("no query %s", want)
	}
	want = `histogram_quantile(0.99, sum by (le, layer) (rate(llm_forward_latency_seconds_bucket{producer=~"$producer",layer=~"$layer"}[$__rate_interval])))`
	if !hasExpr(Queries(Options{Prefix: "llm", Naming: schema.Conventional}), want) {
		t.Errorf("no query %s", want)
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

func familyByKey(key string) (schema.Family, bool) {
	for _, f := range schema.Families() {
		if f.Key == key {
			return f, true
		}
	}
	return schema.Family{}, false
}
