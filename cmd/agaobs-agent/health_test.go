package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/health"
)

// agentHealth serves what the agent serves for these components; readyErr
// fails the readyz check "audit".
func agentHealth(path string, comps map[string]health.Component, readyErr error) http.Handler {
	return health.New(health.Options{
		Path:    path,
		Sources: []health.Source{health.SourceFunc(func(time.Time) map[string]health.Component { return comps })},
		Livez:   []health.Check{{Name: "ping", Fn: func(context.Context) error { return nil }}},
		Readyz:  []health.Check{{Name: "audit", Fn: func(context.Context) error { return readyErr }}},
	}).Handler()
}

func comps(kv ...string) map[string]health.Component {
	m := map[string]health.Component{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = health.Component{Status: health.Status(kv[i+1])}
	}
	return m
}

// probeCLI runs the health subcommand and checks the node-problem-detector
// contract: exactly one line on stdout, whatever the outcome.
func probeCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"health"}, args...)...)
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("stdout is not exactly one line: %q", out)
	}
	if code == 0 && errOut != "" {
		t.Errorf("exit 0 with stderr %q", errOut)
	}
	return code, strings.TrimSuffix(out, "\n"), errOut
}

func TestHealthProbeExitCodes(t *testing.T) {
	degraded := map[string]health.Component{
		"gpu":          {Status: health.Healthy},
		"tp0/kv_store": {Status: health.Degraded, Fields: map[string]any{"utilization": 0.96}},
		"bpf":          {Status: health.Disabled},
		"tp1/liveness": {Status: health.Closed},
	}
	unhealthy := map[string]health.Component{
		"gpu":          {Status: health.Unhealthy, Fields: map[string]any{"error": "xid 79 on GPU 0"}},
		"tp0/kv_store": {Status: health.Degraded},
		"tp1/liveness": {Status: health.Unhealthy, Fields: map[string]any{"reason": "heartbeat 12s old"}},
		"audit":        {Status: health.Unhealthy},
	}
	many := comps("a", "unhealthy", "b", "unhealthy", "c", "unhealthy", "d", "unhealthy", "e", "unhealthy")
	raw := func(code int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			w.Write([]byte(body))
		})
	}
	cases := []struct {
		name    string
		handler http.Handler
		args    []string
		code    int
		want    string // prefix of the line
	}{
		{"healthy", agentHealth("/health", comps("gpu", "healthy", "tp0/kv_store", "healthy"), nil), nil, 0, "OK: agent healthy"},
		{"no components", agentHealth("/health", nil, nil), nil, 0, "OK: agent healthy"},
		{"only disabled and closed", agentHealth("/health", comps("bpf", "disabled", "tp1/liveness", "closed"), nil), nil, 0, "OK: agent healthy"},
		{"degraded", agentHealth("/health", degraded, nil), nil, 0, "DEGRADED: agent degraded: tp0/kv_store"},
		{"degraded strict", agentHealth("/health", degraded, nil), []string{"--strict"}, 1, "DEGRADED: agent degraded: tp0/kv_store"},
		{"unhealthy lists reasons", agentHealth("/health", unhealthy, nil), nil, 1,
			"UNHEALTHY: agent unhealthy: audit, gpu (xid 79 on GPU 0), tp1/liveness (heartbeat 12s old)"},
		{"unhealthy lists the first few", agentHealth("/health", many, nil), nil, 1, "UNHEALTHY: agent unhealthy: a, b, c, +2 more"},
		{"component degraded", agentHealth("/health", unhealthy, nil), []string{"--check", "tp0/kv_store"}, 0, "DEGRADED: tp0/kv_store degraded"},
		{"component degraded strict", agentHealth("/health", unhealthy, nil), []string{"--check", "tp0/kv_store", "--strict"}, 1, "DEGRADED: tp0/kv_store degraded"},
		{"component unhealthy", agentHealth("/health", unhealthy, nil), []string{"--check", "gpu"}, 1, "UNHEALTHY: gpu unhealthy: xid 79 on GPU 0"},
		{"component ok while agent unhealthy", agentHealth("/health", comps("gpu", "healthy", "x", "unhealthy"), nil), []string{"--check", "gpu"}, 0, "OK: gpu healthy"},
		{"component disabled", agentHealth("/health", degraded, nil), []string{"--check", "bpf"}, 0, "OK: bpf disabled"},
		{"component closed", agentHealth("/health", degraded, nil), []string{"--check", "tp1/liveness", "--strict"}, 0, "OK: tp1/liveness closed"},
		{"component unknown", agentHealth("/health", degraded, nil), []string{"--check", "nosuch"}, 2, `UNKNOWN: the agent reports no component "nosuch"`},
		{"livez ok", agentHealth("/health", unhealthy, nil), []string{"--check", "livez"}, 0, "OK: livez ok"},
		{"readyz failing", agentHealth("/health", nil, errors.New("store locked")), []string{"--check", "readyz"}, 1, "UNHEALTHY: readyz failed: audit failed: store locked"},
		{"readyz ok", agentHealth("/health", nil, nil), []string{"--check", "readyz"}, 0, "OK: readyz ok"},
		{"livez 404", raw(404, "404 page not found"), []string{"--check", "livez"}, 2, "UNKNOWN: HTTP 404 Not Found"},
		{"garbage body", raw(200, "<html>hello</html>"), nil, 2, "UNKNOWN: HTTP 200 with a body that is not the health JSON"},
		{"garbage 503 body", raw(503, "upstream unavailable"), nil, 2, "UNKNOWN: HTTP 503 with a body"},
		{"garbage component body", raw(200, "[1,2]"), []string{"--check", "gpu"}, 2, "UNKNOWN: HTTP 200 with a body that is not a JSON object"},
		{"JSON without status", raw(200, `{"components":{}}`), nil, 2, "UNKNOWN: no status for agent"},
		{"unknown status", raw(200, `{"status":"starting"}`), nil, 2, "UNKNOWN: agent reports status starting"},
		{"server error", raw(500, `{"status":"healthy"}`), nil, 2, "UNKNOWN: HTTP 500 Internal Server Error"},
		{"health path 404", raw(404, "nope"), nil, 2, "UNKNOWN: HTTP 404 Not Found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			code, line, stderr := probeCLI(t, append([]string{"--url", srv.URL}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (line %q, stderr %q)", code, tc.code, line, stderr)
			}
			if !strings.HasPrefix(line, tc.want) {
				t.Errorf("line %q, want prefix %q", line, tc.want)
			}
		})
	}
}

func TestHealthProbeBasicAuth(t *testing.T) {
	inner := agentHealth("/health", comps("gpu", "healthy"), nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "npd" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="agaobs"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "pw")
	os.WriteFile(good, []byte("  s3cret\n"), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("wrong\n"), 0o600)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no credentials", nil, 2, "UNKNOWN: HTTP 401 Unauthorized, give --user and --password-file"},
		{"credentials", []string{"--user", "npd", "--password-file", good}, 0, "OK: agent healthy"},
		{"component with credentials", []string{"--check", "gpu", "--user", "npd", "--password-file", good}, 0, "OK: gpu healthy"},
		{"wrong password", []string{"--user", "npd", "--password-file", bad}, 2, "UNKNOWN: HTTP 401 Unauthorized ("},
		{"password file without user", []string{"--password-file", good}, 2, "UNKNOWN: --password-file needs --user"},
		{"user without password file", []string{"--user", "npd"}, 2, "UNKNOWN: --user needs --password-file"},
		{"missing password file", []string{"--user", "npd", "--password-file", filepath.Join(dir, "none")}, 2, "UNKNOWN: --password-file: open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, line, _ := probeCLI(t, append([]string{"--url", srv.URL}, tc.args...)...)
			if code != tc.code || !strings.HasPrefix(line, tc.want) {
				t.Errorf("exit %d %q, want %d %q", code, line, tc.code, tc.want)
			}
		})
	}
}

func TestHealthProbeTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(agentHealth("/health", comps("gpu", "healthy"), nil))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case's handshake error is expected
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"trusted with --ca-file", []string{"--ca-file", ca}, 0, "OK: agent healthy"},
		{"component with --ca-file", []string{"--ca-file", ca, "--check", "gpu"}, 0, "OK: gpu healthy"},
		{"untrusted", nil, 2, "UNKNOWN: tls: failed to verify certificate"},
		{"ca file without certificates", []string{"--ca-file", notPEM}, 2, "UNKNOWN: --ca-file " + notPEM + ": no PEM certificate"},
		{"missing ca file", []string{"--ca-file", filepath.Join(dir, "none")}, 2, "UNKNOWN: --ca-file: open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, line, _ := probeCLI(t, append([]string{"--url", srv.URL}, tc.args...)...)
			if code != tc.code || !strings.HasPrefix(line, tc.want) {
				t.Errorf("exit %d %q, want %d %q", code, line, tc.code, tc.want)
			}
		})
	}
}

func TestHealthProbeUnreachableAndTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	code, line, _ := probeCLI(t, "--url", "http://"+addr)
	if code != 2 || !strings.HasPrefix(line, "UNKNOWN: ") || !strings.Contains(line, "connection refused") {
		t.Errorf("unreachable: exit %d %q, want 2 and connection refused", code, line)
	}

	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: the handler returns, then the server closes
	start := time.Now()
	code, line, _ = probeCLI(t, "--url", srv.URL, "--timeout", "200ms")
	if code != 2 || !strings.HasPrefix(line, "UNKNOWN: no answer within 200ms") {
		t.Errorf("timeout: exit %d %q", code, line)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("timeout took %v", el)
	}

	for _, args := range [][]string{
		{"--url", "ftp://127.0.0.1:1"},
		{"--url", "127.0.0.1:8080"},
		{"--timeout", "0s", "--url", "http://" + addr},
		{"--no-such-flag"},
		{"--health-port", "70000"},
	} {
		if code, line, _ := probeCLI(t, args...); code != 2 || !strings.HasPrefix(line, "UNKNOWN: ") {
			t.Errorf("%q: exit %d %q, want 2 UNKNOWN", args, code, line)
		}
	}
}

// Without --url the probe targets 127.0.0.1:<health_port><health_path>
// from the usual configuration flags, environment and file.
func TestHealthProbeDefaultURLFromConfig(t *testing.T) {
	t.Setenv("AGAOBS_HEALTH_ENABLED", "true") // TestMain turns it off for agents
	srv := httptest.NewServer(agentHealth("/hz", comps("gpu", "unhealthy", "tp0/ring", "healthy"), nil))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	code, line, _ := probeCLI(t, "--health-port", port, "--health-path", "/hz", "--health-host", "127.0.0.1", "--check", "tp0/ring")
	if code != 0 || line != "OK: tp0/ring healthy" {
		t.Errorf("flags: exit %d %q", code, line)
	}
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(cfg, []byte("health_port: "+port+"\nhealth_path: /hz\nhealth_host: 0.0.0.0\n"), 0o600)
	code, line, _ = probeCLI(t, "--config", cfg)
	if code != 1 || !strings.HasPrefix(line, "UNHEALTHY: agent unhealthy: gpu") {
		t.Errorf("config file: exit %d %q", code, line)
	}
	t.Setenv("AGAOBS_HEALTH_PORT", port)
	t.Setenv("AGAOBS_HEALTH_PATH", "/hz")
	if code, line, _ = probeCLI(t, "--check", "livez"); code != 0 || line != "OK: livez ok" {
		t.Errorf("environment: exit %d %q", code, line)
	}
	code, line, _ = probeCLI(t, "--health-enabled=false")
	if code != 2 || !strings.Contains(line, "health_enabled: false") {
		t.Errorf("disabled endpoint: exit %d %q", code, line)
	}
}

func TestHealthProbeHelp(t *testing.T) {
	code, out, errOut := runCLI(t, "health", "--help")
	if code != 0 || errOut != "" || !strings.Contains(out, "--password-file") {
		t.Errorf("help: exit %d stdout %q stderr %q", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "help"); code != 0 || !strings.Contains(out, "\n  health ") {
		t.Errorf("usage does not list health: %d %q", code, out)
	}
}

// npdConfig is the part of node-problem-detector's custom plugin monitor
// configuration (pkg/custompluginmonitor/types) the deploy file uses.
type npdConfig struct {
	Plugin       string `json:"plugin"`
	PluginConfig struct {
		InvokeInterval  string `json:"invoke_interval"`
		Timeout         string `json:"timeout"`
		MaxOutputLength int    `json:"max_output_length"`
		Concurrency     int    `json:"concurrency"`
		MessageUpdate   bool   `json:"enable_message_change_based_condition_update"`
		SkipInitial     bool   `json:"skip_initial_status"`
	} `json:"pluginConfig"`
	Source           string `json:"source"`
	MetricsReporting *bool  `json:"metricsReporting"`
	Conditions       []struct {
		Type    string `json:"type"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"conditions"`
	Rules []struct {
		Type      string   `json:"type"`
		Condition string   `json:"condition"`
		Reason    string   `json:"reason"`
		Path      string   `json:"path"`
		Args      []string `json:"args"`
		Timeout   string   `json:"timeout"`
	} `json:"rules"`
}

// npdPlugins are the shipped plugin configs and the environment each runs
// with: NODE_IP from the downward API for the agent's DaemonSet, nothing
// for a systemd agent probed on the loopback address.
var npdPlugins = []struct {
	file, nodeIP string
}{
	{"agaobs-health-plugin.json", "127.0.0.1"},
	{"agaobs-health-plugin-systemd.json", ""},
}

// The shipped NPD plugin configs are valid as NPD validates them, and each
// rule's command line, exactly as shipped but for the port of its --url, is
// one the probe accepts and judges as intended. (tests/deploy checks that
// the port is the one the agent's deployment exposes.)
func TestNPDPluginConfig(t *testing.T) {
	for _, pl := range npdPlugins {
		t.Run(pl.file, func(t *testing.T) {
			if pl.nodeIP != "" {
				t.Setenv("NODE_IP", pl.nodeIP)
			}
			checkNPDPlugin(t, pl.file)
		})
	}
}

func checkNPDPlugin(t *testing.T, file string) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "node-problem-detector", file))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a misspelt key would silently take NPD's default
	var cfg npdConfig
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Plugin != "custom" || cfg.Source != "agaobs-health" {
		t.Errorf("plugin %q source %q", cfg.Plugin, cfg.Source)
	}
	global, err := time.ParseDuration(cfg.PluginConfig.Timeout)
	if err != nil || global != 10*time.Second {
		t.Errorf("pluginConfig.timeout %q", cfg.PluginConfig.Timeout)
	}
	if d, err := time.ParseDuration(cfg.PluginConfig.InvokeInterval); err != nil || d != 30*time.Second {
		t.Errorf("invoke_interval %q", cfg.PluginConfig.InvokeInterval)
	}
	if cfg.PluginConfig.MaxOutputLength != 80 || cfg.PluginConfig.Concurrency != 1 {
		t.Errorf("max_output_length %d concurrency %d", cfg.PluginConfig.MaxOutputLength, cfg.PluginConfig.Concurrency)
	}
	defaults := map[string]string{}
	for _, c := range cfg.Conditions {
		if c.Reason == "" || c.Message == "" {
			t.Errorf("condition %q lacks a default reason or message", c.Type)
		}
		defaults[c.Type] = c.Reason
	}
	if _, ok := defaults["AGAUnhealthy"]; !ok || len(defaults) != 2 {
		t.Errorf("conditions %v, want AGAUnhealthy and GPUUnhealthy", defaults)
	}
	if _, ok := defaults["GPUUnhealthy"]; !ok {
		t.Errorf("conditions %v, want GPUUnhealthy", defaults)
	}
	rules := map[string][]string{} // condition → args
	for _, r := range cfg.Rules {
		if r.Type != "permanent" {
			t.Errorf("rule %q: type %q, want permanent", r.Condition, r.Type)
		}
		if def, ok := defaults[r.Condition]; !ok || r.Reason == "" || r.Reason == def {
			t.Errorf("rule %q: no such condition, or reason %q empty or the default's", r.Condition, r.Reason)
		}
		if r.Path != "/usr/local/bin/agaobs-agent" || len(r.Args) == 0 || r.Args[0] != "health" {
			t.Errorf("rule %q runs %s %q, want /usr/local/bin/agaobs-agent health ...", r.Condition, r.Path, r.Args)
		}
		d, err := time.ParseDuration(r.Timeout)
		if err != nil || d > global || d <= probeTimeout {
			t.Errorf("rule %q: timeout %q must be <= the plugin's %v and > the probe's %v", r.Condition, r.Timeout, global, probeTimeout)
		}
		rules[r.Condition] = r.Args
	}
	if len(rules) != 2 {
		t.Fatalf("rules for %d conditions, want 2", len(rules))
	}

	stopped := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	states := []struct {
		name     string
		comps    map[string]health.Component
		aga, gpu int // expected exit codes of the two rules
	}{
		{"healthy", comps("gpu", "healthy", "tp0/kv_store", "healthy"), 0, 0},
		{"degraded producer", comps("gpu", "healthy", "tp0/kv_store", "degraded"), 1, 0},
		{"unhealthy GPU", comps("gpu", "unhealthy", "tp0/kv_store", "healthy"), 1, 1},
		{"GPU monitoring off", comps("gpu", "disabled", "tp0/kv_store", "healthy"), 0, 0},
		{"agent stopped", nil, 2, 2},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			addr := stopped
			if st.comps != nil {
				srv := httptest.NewServer(agentHealth("/health", st.comps, nil))
				defer srv.Close()
				addr = srv.Listener.Addr().String()
			}
			_, port, _ := net.SplitHostPort(addr)
			for cond, want := range map[string]int{"AGAUnhealthy": st.aga, "GPUUnhealthy": st.gpu} {
				args := withURLPort(t, rules[cond][1:], port)
				code, line, _ := probeCLI(t, args...)
				if code != want {
					t.Errorf("%s rule (health %s): exit %d %q, want %d", cond, strings.Join(args, " "), code, line, want)
				}
			}
		})
	}
}

// withURLPort is a rule's args with the port of its one --url replaced: the
// rest of the URL (its host, ${NODE_IP} included) is used as shipped.
func withURLPort(t *testing.T, args []string, port string) []string {
	t.Helper()
	out := append([]string{}, args...)
	n := 0
	for i, a := range out {
		if a == "--url" && i+1 < len(out) {
			u := out[i+1]
			c := strings.LastIndex(u, ":")
			if c < 0 || !strings.Contains(u[:c], "//") {
				t.Fatalf("--url %q has no port", u)
			}
			out[i+1] = u[:c+1] + port
			n++
		} else if strings.HasPrefix(a, "--url") {
			t.Fatalf("write --url and its value as two args, not %q", a)
		}
	}
	if n != 1 {
		t.Fatalf("args %q: want one --url (NPD cannot rely on the probe's default address), have %d", args, n)
	}
	return out
}

// ${NAME} in --url is replaced from the environment; an IPv6 address is
// bracketed; an unset or empty variable is an error naming it.
func TestExpandURL(t *testing.T) {
	env := map[string]string{"NODE_IP": "10.1.2.3", "NODE_IP6": "fd00::7", "EMPTY": "", "PORT": "9501", "MAPPED": "::ffff:10.0.0.1"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct{ in, want, err string }{
		{"", "", ""},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"http://${NODE_IP}:9501", "http://10.1.2.3:9501", ""},
		{"https://${NODE_IP}:${PORT}/", "https://10.1.2.3:9501/", ""},
		{"http://${NODE_IP6}:9501", "http://[fd00::7]:9501", ""},
		{"http://[${NODE_IP6}]:9501", "http://[fd00::7]:9501", ""},
		{"${NODE_IP6}", "[fd00::7]", ""},
		{"http://${MAPPED}:9501", "http://[::ffff:10.0.0.1]:9501", ""},
		{"http://$NODE_IP:9501", "http://$NODE_IP:9501", ""}, // only ${NAME}
		{"http://${1X}:9501", "http://${1X}:9501", ""},
		{"http://${NOPE}:9501", "", "environment variable NOPE unset or empty"},
		{"http://${EMPTY}:${NOPE}", "", "environment variable EMPTY, NOPE unset or empty"},
	}
	for _, c := range cases {
		got, err := expandURL(c.in, lookup)
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) || !strings.Contains(err.Error(), c.in) {
				t.Errorf("expandURL(%q) = %q, %v; want error %q naming the URL", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("expandURL(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// The probe expands --url from its environment (NPD passes its own to the
// rule) and reports an unset variable as Unknown, naming it within the 80
// characters NPD keeps.
func TestHealthProbeURLFromEnv(t *testing.T) {
	srv := httptest.NewServer(agentHealth("/health", comps("gpu", "healthy"), nil))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	t.Setenv("NODE_IP", "127.0.0.1")
	if code, line, _ := probeCLI(t, "--url", "http://${NODE_IP}:"+port, "--check", "gpu"); code != 0 || line != "OK: gpu healthy" {
		t.Errorf("NODE_IP=127.0.0.1: exit %d %q, want 0 OK: gpu healthy", code, line)
	}
	os.Unsetenv("NODE_IP") // t.Setenv restores it
	code, line, _ := probeCLI(t, "--url", "http://${NODE_IP}:"+port)
	if want := "UNKNOWN: environment variable NODE_IP unset or empty"; code != 2 || !strings.HasPrefix(line, want) || len(want) > 80 {
		t.Errorf("NODE_IP unset: exit %d %q, want 2 %q", code, line, want)
	}
}
