package architecture

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/agaobs/agaobs/"

// role is what a package is in the picture of docs/architecture.md.
type role int

const (
	sink      role = iota // consumes events: the default for a package not listed below
	leaf                  // imports nothing of the project
	library               // small helpers, no knowledge of rings or sinks
	ringLayer             // the mapping layer and its consumer
	pipe                  // the event model, decode and dispatch
	collector             // node-level sources of self-metrics
	generator             // builds artefacts from the schema (dashboards)
	producer              // producer-side code (the demo)
	wiring                // the one place that builds and connects everything
	command               // cmd/...
	test                  // tests/...: may import anything
)

var roleNames = map[role]string{sink: "sink", leaf: "leaf", library: "library", ringLayer: "ring layer",
	pipe: "pipeline", collector: "collector", generator: "generator", producer: "producer side",
	wiring: "wiring", command: "command", test: "test"}

// roles lists every package that is not a sink. A new package under
// internal/ is a sink unless it is added here: a new sink is checked
// without anyone remembering to list it.
var roles = map[string]role{
	"internal/shm":         ringLayer,
	"internal/rings":       ringLayer,
	"internal/pipeline":    pipe,
	"internal/schema":      leaf,
	"internal/selfmetrics": library,
	"internal/jsonfloat":   leaf,
	"internal/config":      library,
	"internal/state":       library,
	"internal/web":         library,
	"internal/pyfmt":       library,
	"internal/testutil":    library,
	"internal/gpu":         collector,
	"internal/probes":      collector,
	"internal/dashboard":   generator,
	"internal/demo":        producer,
	"internal/agent":       wiring,
	// The anomaly detector's model is arithmetic on aggregates; its replay
	// benchmark wires an alert engine to a simulated world.
	"internal/alerting/anomaly":        library,
	"internal/alerting/anomaly/replay": wiring,
}

func roleOf(pkg string) role {
	if r, ok := roles[pkg]; ok {
		return r
	}
	switch {
	case strings.HasPrefix(pkg, "cmd/"):
		return command
	case strings.HasPrefix(pkg, "tests/"):
		return test
	}
	return sink
}

// violation returns why from → to is not allowed ("" when it is).
func violation(from, to string) string {
	if strings.HasPrefix(to, from+"/") {
		return "" // a package may import its own subpackages
	}
	rf, rt := roleOf(from), roleOf(to)
	switch {
	case rt == command || rt == test:
		return "nothing imports a command or a test package"
	case rt == wiring && rf != command && rf != test:
		return "only cmd/ wires the agent"
	}
	switch rf {
	case command, test, wiring:
		return ""
	case leaf:
		return "a leaf package imports nothing of the project"
	case library:
		if rt == leaf || rt == library {
			return ""
		}
		return "a library imports only leaves and libraries"
	case ringLayer:
		if from == "internal/shm" {
			return "internal/shm imports nothing of the project"
		}
		if rt == ringLayer || rt == pipe || rt == leaf || rt == library {
			return ""
		}
		return "the ring layer hands events to the pipeline and knows no sink or collector"
	case pipe:
		if to == "internal/shm" || rt == leaf {
			return "" // decode reads ring records
		}
		return "the pipeline knows only the ring format and leaves"
	case sink:
		switch rt {
		case pipe, leaf, library:
			return ""
		case ringLayer:
			return "a sink reads events and snapshots from internal/pipeline, never the ring layer"
		case sink:
			return "a sink does not import another sink"
		}
		return "a sink imports only internal/pipeline, leaves and libraries"
	case collector, generator:
		if rt == leaf || rt == library || (rf == collector && rt == pipe) {
			return ""
		}
		return "a " + roleNames[rf] + " imports no sink and no ring layer"
	case producer:
		if rt == sink || rt == collector || rt == generator {
			return "the producer side imports no sink or collector"
		}
		return ""
	}
	return "unknown role"
}

// imports reads the module's packages and their project imports from
// `go list` (non-test imports: tests may build events however they like).
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	edges := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		from := strings.TrimPrefix(f[0], module)
		edges[from] = nil
		for _, imp := range f[1:] {
			if to, ok := strings.CutPrefix(imp, module); ok {
				edges[from] = append(edges[from], to)
			}
		}
	}
	return edges
}

func check(edges map[string][]string) []string {
	var bad []string
	for from, tos := range edges {
		for _, to := range tos {
			if why := violation(from, to); why != "" {
				bad = append(bad, fmt.Sprintf("%s → %s (%s → %s): %s", from, to, roleNames[roleOf(from)], roleNames[roleOf(to)], why))
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// TestImports enforces the package picture of docs/architecture.md.
func TestImports(t *testing.T) {
	edges := imports(t)
	for pkg := range roles {
		if _, ok := edges[pkg]; !ok {
			t.Errorf("roles lists %s, which is not a package any more", pkg)
		}
	}
	for _, v := range check(edges) {
		t.Error(v)
	}
	// The known sinks are sinks (a typo in roles would silently exempt one).
	for _, s := range []string{"internal/metrics", "internal/eventlog", "internal/alerting", "internal/alerting/notify",
		"internal/alerting/promrules", "internal/audit", "internal/health"} {
		if _, ok := edges[s]; !ok {
			t.Errorf("sink %s not found", s)
		} else if roleOf(s) != sink {
			t.Errorf("%s is listed as %s, want sink", s, roleNames[roleOf(s)])
		}
	}
}

// Every edge issue 13 removed fails the check again if it comes back,
// and the message names it.
func TestImportsRejectsRemovedEdges(t *testing.T) {
	for _, e := range [][2]string{
		{"internal/metrics", "internal/shm"},
		{"internal/eventlog", "internal/shm"},
		{"internal/alerting", "internal/shm"},
		{"internal/audit", "internal/shm"},
		{"internal/metrics", "internal/rings"},
		{"internal/health", "internal/rings"},
		{"internal/alerting", "internal/rings"},
		{"internal/alerting/promrules", "internal/metrics"},
		{"internal/alerting", "internal/metrics"},
		{"internal/audit", "internal/metrics"},
		{"internal/health", "internal/metrics"},
		{"internal/gpu", "internal/metrics"},
		{"internal/dashboard", "internal/metrics"},
		{"internal/shm", "internal/pipeline"},
		{"internal/rings", "internal/metrics"},
		{"internal/schema", "internal/pipeline"},
		{"internal/probes", "internal/audit"},
		{"internal/newsink", "internal/rings"}, // a future sink, listed nowhere
		{"internal/newsink", "internal/eventlog"},
		{"internal/health", "internal/agent"},
		{"internal/demo", "internal/metrics"},
	} {
		bad := check(map[string][]string{e[0]: {e[1]}})
		if len(bad) != 1 || !strings.HasPrefix(bad[0], e[0]+" → "+e[1]+" ") {
			t.Errorf("%s → %s: got %q, want one violation naming the edge", e[0], e[1], bad)
		}
	}
	for _, e := range [][2]string{
		{"internal/alerting", "internal/alerting/notify"}, // own subpackage
		{"internal/metrics", "internal/pipeline"},
		{"internal/metrics", "internal/schema"},
		{"internal/newsink", "internal/pipeline"},
		{"internal/pipeline", "internal/shm"},
		{"internal/rings", "internal/pipeline"},
		{"internal/demo", "internal/shm"},
		{"internal/agent", "internal/rings"},
		{"cmd/agaobs-agent", "internal/agent"},
	} {
		if bad := check(map[string][]string{e[0]: {e[1]}}); len(bad) != 0 {
			t.Errorf("%s → %s is allowed, got %q", e[0], e[1], bad)
		}
	}
}
