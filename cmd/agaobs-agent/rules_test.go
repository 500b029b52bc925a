package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `agaobs-agent rules` takes prometheus_node_label, prometheus_labels and
// gpu_xid_window from the configuration and the scrape interval, runbook
// base and agent job from its flags.
func TestRulesCommandOptions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	byNode := write("node.yaml", "prometheus_labels: {cluster: c1}\ngpu_xid_window: 20m\n")
	byInstance := write("instance.yaml", "prometheus_node_label: false\n")
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		want    []string
		notWant []string
	}{
		{"defaults", []string{"--config", byNode},
			0, []string{"sum by (node, producer, cluster) (rate(aga_forward_latency_us_bucket{", "< 1200\n", `up{job="agaobs-agent",node!=""}`,
				"runbook_url: https://github.com/agaobs/agaobs/blob/main/docs/runbooks.md#agaobsagentdown",
				"#   slo_latency_critical: 30s -> 60s", "- name: agaobs-fleet"},
			[]string{"by (instance"}},
		{"instance, flags", []string{"--config", byInstance, "--scrape-interval", "30s", "--runbook-base-url", "https://wiki/rb", "--agent-job", "agents"},
			0, []string{"by (instance, producer, le)", "widened to 2m", "#   slo_latency_p99: 60s -> 120s", "https://wiki/rb#agaobsproducerdied",
				`max by (instance) (up{job="agents"}) == 0`},
			[]string{"by (node"}},
		{"bad scrape interval", []string{"--config", byNode, "--scrape-interval", "0s"}, 2, nil, nil},
	} {
		code, out, stderr := runCLI(t, append([]string{"rules"}, tc.args...)...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (%s)", tc.name, code, tc.code, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q", tc.name, w)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(out, w) {
				t.Errorf("%s: output has %q", tc.name, w)
			}
		}
	}
}
