package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// FuzzLoadFile checks that Load never panics, that every error is an *Error,
// and that whatever Load accepts renders to YAML that loads back equal.
func FuzzLoadFile(f *testing.F) {
	for _, seed := range []string{
		"",
		"prometheus_port: 9100\n",
		"alert_rules:\n  - {name: a, metric: m, labels: &l {x: y}}\n  - {name: b, metric: m, labels: *l}\n",
		"slos:\n  - {name: a, objective: 0.9, sli: {type: latency, threshold_us: 5}}\n",
		"ring_allowed_uids: [0, 1000]\nprometheus_labels: {a: b}\nbpf_probes: {offcpu: true}\n",
		"producer_retention: 1h30m\nlog_level: debug\nstate_path: ''\n",
		"alertmanager_http_config: {follow_redirects: false, tls_config: {server_name: am}, basic_auth: {username: u}}\n",
		"a: &a [*a]\n",
		"- 1\n",
		"{",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		dir := t.TempDir()
		load := func(content string) (Config, error) {
			path := filepath.Join(dir, "agent.yaml")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			fs := pflag.NewFlagSet("fuzz", pflag.ContinueOnError)
			l := NewLoader(fs)
			if err := fs.Parse([]string{"--config", path}); err != nil {
				t.Fatal(err)
			}
			c, _, err := l.Load(nil)
			return c, err
		}
		c, err := load(data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			return
		}
		out, err := Render(c)
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		if strings.Contains(string(out), "<secret>") {
			return // an http_config secret is not rendered, so it cannot load back
		}
		c2, err := load(string(out))
		if err != nil {
			t.Fatalf("Load(Render()): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs in %v\n%s", Diff(c, c2), out)
		}
	})
}
