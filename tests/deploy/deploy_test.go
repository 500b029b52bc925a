// Package deploy checks the deployment files under deploy/ and the
// Dockerfile: the systemd unit passes systemd-analyze verify and its
// capability set suffices for the agent; the output of `kustomize build` of
// deploy/kubernetes and deploy/node-problem-detector (kustomize's own
// library) decodes strictly into the Kubernetes and prometheus-operator API
// types and agrees with the agent's configuration; the ConfigMaps generated
// from the plain config files carry a content hash the DaemonSets follow; the
// image carries the release tag; and the manifests the agent renders (the
// PrometheusRule, the dashboard ConfigMap) equal what it produces now.
// `go test ./tests/deploy -run TestKubernetesGenerated -update` rewrites those
// two; the config files themselves are edited by hand.
package deploy

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite prometheusrule.yaml and dashboard-configmap.yaml under deploy/kubernetes from the agent")

var agentBin testutil.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	agentBin.Remove()
	os.Exit(code)
}

// root is the repository root, seen from this package.
const root = "../.."

func repoPath(parts ...string) string {
	return filepath.Join(append([]string{root}, parts...)...)
}

// agentBinary builds cmd/agaobs-agent once per test process.
func agentBinary(t testing.TB) string {
	t.Helper()
	return agentBin.Path(t, "../../cmd/agaobs-agent", "agaobs-agent")
}

func readFile(t testing.TB, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadConfig loads an agent configuration file with the agent's own loader
// (as `agaobs-agent --config path` does), with env as the only environment.
// It fails the test on an error or a warning.
func loadConfig(t testing.TB, path string, env []string) config.Config {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	l := config.NewLoader(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	cfg, warns, err := l.Load(env)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range warns {
		t.Errorf("%s: warning: %s", path, w)
	}
	return cfg
}

// cleanEnv is the environment of the agent processes the tests start: no
// AGAOBS_* variable of the developer's shell leaks into them.
func cleanEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	if h := os.Getenv("HOME"); h != "" {
		env = append(env, "HOME="+h)
	}
	return env
}

// capabilities is the eBPF and procfs capability set both deployments grant,
// without the CAP_ prefix (the Kubernetes spelling).
var capabilities = []string{"BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]int, len(a))
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s] == 0 {
			return false
		}
		seen[s]--
	}
	return true
}

// lines splits output into trimmed, non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
