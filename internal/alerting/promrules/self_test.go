package promrules

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"
)

// Every self alert is in the rule file with a for, the node label, a
// runbook_url under the configured base, and a section in
// docs/runbooks.md (meaning, impact, first checks, fix) and a row in
// docs/alerting.md.
func TestSelfAlertsDocumented(t *testing.T) {
	runbooks, err := os.ReadFile("../../../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	alerting, err := os.ReadFile("../../../docs/alerting.md")
	if err != nil {
		t.Fatal(err)
	}
	const base = "https://wiki.example/agaobs/runbooks"
	out, _, err := Generate(Options{NodeLabel: true, RunbookBaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	var file ruleFile
	if err := yamlv3.Unmarshal(out, &file); err != nil {
		t.Fatal(err)
	}
	var self group
	for _, g := range file.Groups {
		if g.Name == SelfGroup {
			self = g
		}
	}
	sections := strings.Split(string(runbooks), "\n## ")
	for i, a := range SelfAlerts() {
		if i >= len(self.Rules) || self.Rules[i].Alert != a.Name {
			t.Fatalf("rule %d of %s is not %s", i, SelfGroup, a.Name)
		}
		r := self.Rules[i]
		if d, err := time.ParseDuration(r.For); err != nil || d <= 0 || d != a.For {
			t.Errorf("%s: for %q", a.Name, r.For)
		}
		if r.Labels["severity"] != a.Severity || !strings.Contains(r.Expr, "by (node") {
			t.Errorf("%s: labels %v, expr %s", a.Name, r.Labels, r.Expr)
		}
		if want := base + "#" + strings.ToLower(a.Name); r.Annotations["runbook_url"] != want || r.Annotations["summary"] == "" {
			t.Errorf("%s: annotations %v, want runbook_url %s", a.Name, r.Annotations, want)
		}
		var section string
		for _, s := range sections {
			if strings.HasPrefix(s, a.Name+"\n") {
				section = s
			}
		}
		for _, part := range []string{"**Meaning.**", "**Impact.**", "**First checks.**", "**Fix.**"} {
			if !strings.Contains(section, part) {
				t.Errorf("docs/runbooks.md: section %s lacks %s", a.Name, part)
			}
		}
		if !strings.Contains(string(alerting), "| `"+a.Name+"` | "+a.Severity+" | "+r.For+" |") {
			t.Errorf("docs/alerting.md: no row for %s (%s, for %s)", a.Name, a.Severity, r.For)
		}
	}
	if len(self.Rules) != len(SelfAlerts()) {
		t.Errorf("%d self rules, want %d", len(self.Rules), len(SelfAlerts()))
	}
}

// The critical XIDs are those docs/health.md names (internal/gpu's
// criticalXID, which this package cannot import).
func TestCriticalXIDsMatchHealthDoc(t *testing.T) {
	health, err := os.ReadFile("../../../docs/health.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Critical codes ([0-9, ]+) make`).FindSubmatch(health)
	if m == nil {
		t.Fatal("docs/health.md no longer lists the critical codes")
	}
	if got := strings.ReplaceAll(string(m[1]), ", ", "|"); got != criticalXIDs {
		t.Errorf("docs/health.md lists %s, the rules use %s", got, criticalXIDs)
	}
}

// The XID window follows gpu_xid_window; the agent-down job --agent-job.
func TestSelfAlertOptions(t *testing.T) {
	out, _, err := Generate(Options{NodeLabel: true, GPUXIDWindow: 30 * time.Minute, AgentJob: "agents"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`xid=~"48|62|64|74|79|95|119|120"}) < 1800`, `up{job="agents",node!=""}`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lacks %s", want)
		}
	}
	out, _, err = Generate(Options{NodeLabel: false})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`max by (instance) (up{job="agaobs-agent"}) == 0`, "Producer {{ $labels.producer }} on {{ $labels.instance }} died"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("instance mode lacks %s", want)
		}
	}
}
