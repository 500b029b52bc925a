package dashboard

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/agaobs/agaobs/internal/agent"
)

// family is one exported metric family as the agent's references list it.
type family struct {
	histogram bool
	labels    map[string]bool
}

// exported collects the families the agent exports (prefix aga): the
// README metrics reference (agent.MetricsReference) and the GPU and eBPF
// tables of docs/health.md and docs/ebpf.md, which tests of their own keep
// in sync with the collectors.
func exported(t *testing.T) map[string]family {
	t.Helper()
	text := agent.MetricsReference()
	for _, doc := range []string{"health.md", "ebpf.md"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", doc))
		if err != nil {
			t.Fatal(err)
		}
		text += "\n" + string(b)
	}
	fams := map[string]family{}
	name := regexp.MustCompile("^`((?:aga|agaobs)_[a-z0-9_]+)`$")
	for _, line := range strings.Split(text, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 6 {
			continue
		}
		cells = cells[1 : len(cells)-1]
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		m := name.FindStringSubmatch(cells[0])
		if m == nil {
			continue
		}
		names := []string{m[1]}
		typ, labels := cells[1], cells[2]
		if len(cells) == 5 { // AGA table: compat | conventional | type | labels | meaning
			if c := name.FindStringSubmatch(cells[1]); c != nil {
				names = append(names, c[1])
			}
			typ, labels = cells[2], cells[3]
		}
		f := family{histogram: strings.HasPrefix(typ, "histogram"), labels: map[string]bool{}}
		for _, l := range strings.Split(labels, ",") {
			if l = strings.TrimSpace(strings.SplitN(l, "(", 2)[0]); l != "" {
				f.labels[l] = true
			}
		}
		for _, n := range names {
			fams[n] = f
		}
	}
	if len(fams) < 60 {
		t.Fatalf("only %d families found in the references", len(fams))
	}
	return fams
}

var (
	selectorRe = regexp.MustCompile(`\b((?:aga|agaobs)_[a-zA-Z0-9_]+)(\{[^}]*\})?`)
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
)

// Every metric a panel or variable of either dashboard reads is one the
// agent exports, every _bucket series belongs to a histogram, and every
// label a selector matches is one of the family's labels, or node (on
// every series the agent exposes) or instance (the scrape target). On the
// node dashboard, every series with a producer label is filtered by
// $producer.
func TestQueriesReadExportedSeries(t *testing.T) {
	fams := exported(t)
	used := map[string]bool{}
	for _, o := range kinds() {
		naming := kindName(o)
		var exprs []string
		for _, q := range Queries(o) {
			exprs = append(exprs, q.Panel+"\x00"+q.Expr)
		}
		n, err := newNames("aga", o.Naming, o.ByInstance)
		if err != nil {
			t.Fatal(err)
		}
		vars := variables(n)
		if o.Fleet {
			vars = fleetVariables(n)
		}
		for _, v := range vars {
			if q, ok := v.Query.(VariableQuery); ok {
				exprs = append(exprs, "variable "+v.Name+"\x00"+q.Query)
			}
		}
		for _, pe := range exprs {
			panel, expr, _ := strings.Cut(pe, "\x00")
			for _, m := range selectorRe.FindAllStringSubmatch(expr, -1) {
				metric, sel := m[1], m[2]
				base, isBucket := strings.CutSuffix(metric, "_bucket")
				f, ok := fams[base]
				if !ok {
					f, ok = fams[metric]
					base, isBucket = metric, false
				}
				if !ok {
					t.Errorf("%s %q: %s is not exported by the agent", naming, panel, metric)
					continue
				}
				used[base] = true
				if isBucket && !f.histogram {
					t.Errorf("%s %q: %s is not a histogram", naming, panel, base)
				}
				for _, lm := range matcherRe.FindAllStringSubmatch(sel, -1) {
					if !f.labels[lm[1]] && lm[1] != labelNode && lm[1] != labelInstance {
						t.Errorf("%s %q: %s has no label %q (labels %v)", naming, panel, base, lm[1], keys(f.labels))
					}
				}
				if f.labels["producer"] && !o.Fleet && !strings.HasPrefix(panel, "variable ") && !strings.Contains(sel, `producer=~"$producer`) {
					t.Errorf("%s %q: %s%s is not filtered by $producer", naming, panel, metric, sel)
				}
			}
		}
	}
	if len(used) < 30 {
		t.Errorf("only %d families used: %v", len(used), keys(used))
	}
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
