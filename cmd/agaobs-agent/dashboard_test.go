package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDashboardCommand(t *testing.T) {
	committed, err := os.ReadFile("../../dashboards/aga.json")
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := os.ReadFile("../../dashboards/aga-fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		wrapped bool
		want    []string // substrings of the dashboard JSON
		lacks   []string // absent from it
		exact   []byte   // whole output, when set
	}{
		{name: "default is the committed bare model", exact: committed},
		{name: "fleet is the committed fleet model", args: []string{"--fleet"}, exact: fleet},
		{name: "fleet conventional", args: []string{"--fleet", "--prometheus-naming", "conventional"},
			want: []string{`"uid": "agaobs-aga-conventional-fleet"`, `"title": "AGA Fleet"`, "aga_forward_latency_seconds_bucket", `"url": "/d/agaobs-aga-conventional?`}},
		// Without the node label, nodes are told apart by instance.
		{name: "no node label", args: []string{"--prometheus-node-label=false"},
			want:  []string{`label_values(agaobs_build_info, instance)`, `instance=~\"$node\"`},
			lacks: []string{`node=~\"$node\"`, "by (node"}},
		{name: "fleet without node label", args: []string{"--fleet", "--prometheus-node-label=false"},
			want:  []string{`instance=~\"$node\"`, "${__data.fields.instance}", "on (instance, producer) group_left (model)"},
			lacks: []string{`node=~\"$node\"`, "${__data.fields.node}"}},
		{name: "api wrapper", args: []string{"--api-wrapper"}, wrapped: true, want: []string{`"uid": "agaobs-aga"`}},
		{name: "prefix and naming", args: []string{"--prometheus-prefix", "llm", "--prometheus-naming", "conventional"},
			want: []string{`"uid": "agaobs-llm-conventional"`, "llm_forward_latency_seconds_bucket", "llm_knowledge_items", `"unit": "s"`}},
		{name: "title and refresh", args: []string{"--title", "Fleet", "--refresh", "1m"}, want: []string{`"title": "Fleet"`, `"refresh": "1m"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, append([]string{"dashboard"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if tc.exact != nil && out != string(tc.exact) {
				t.Fatal("output differs from the committed dashboard")
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal([]byte(out), &top); err != nil {
				t.Fatal(err)
			}
			body := out
			if tc.wrapped {
				if len(top) != 2 || string(top["overwrite"]) != "true" || top["dashboard"] == nil {
					t.Fatalf("wrapper keys %v", keysOf(top))
				}
				body = string(top["dashboard"])
				top = nil
				json.Unmarshal([]byte(body), &top)
			} else if top["dashboard"] != nil || top["overwrite"] != nil {
				t.Fatal("bare output is wrapped")
			}
			if top["uid"] == nil || top["panels"] == nil {
				t.Fatalf("not a dashboard model: keys %v", keysOf(top))
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("output lacks %s", w)
				}
			}
			for _, w := range tc.lacks {
				if strings.Contains(body, w) {
					t.Errorf("output has %s", w)
				}
			}
		})
	}
}

func TestDashboardCommandOutFileAndErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agaobs.yaml")
	os.WriteFile(cfg, []byte("prometheus_prefix: vllm\n"), 0o600)
	out := filepath.Join(dir, "d.json")
	code, stdout, stderr := runCLI(t, "dashboard", "--config", cfg, "--out", out)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), "vllm_forward_latency_us_bucket") || !strings.HasSuffix(string(b), "}\n") {
		t.Fatalf("file from --config prefix: %v\n%.200s", err, b)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--refresh", "often"}, 2, `refresh "often"`},
		{[]string{"--fleet", "--refresh", "often"}, 2, `refresh "often"`},
		{[]string{"--fleet=maybe"}, 2, "fleet"},
		{[]string{"--prometheus-naming", "modern"}, 2, "prometheus_naming"},
		{[]string{"--out", filepath.Join(dir, "missing", "d.json")}, 1, "no such file"},
	} {
		code, _, stderr := runCLI(t, append([]string{"dashboard"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

func keysOf(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
