package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestConfigErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("ring_dir: /tmp/x\n\nprometheus_prot: 9090\n"), 0o600)
	badValue := filepath.Join(dir, "badvalue.yaml")
	os.WriteFile(badValue, []byte("ring_poll_interval: fast\n"), 0o600)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown file key", []string{"config", "print", "--config", bad}, []string{`line 3`, `"prometheus_prot"`}},
		{"bad file value", []string{"run", "--config", badValue}, []string{`line 1`, `"ring_poll_interval"`}},
		{"bad flag value", []string{"rings", "--ring-hot-bytes", "1000"}, []string{`"ring_hot_bytes"`, "power of two"}},
		{"unknown flag", []string{"demo", "--no-such-flag"}, []string{"unknown flag: --no-such-flag"}},
		{"unknown command", []string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{"config without print", []string{"config"}, []string{"config: missing command"}},
		{"unknown audit command", []string{"audit", "frob"}, []string{`audit: unknown command "frob"`}},
		{"argument to a leaf", []string{"rules", "extra"}, []string{`unexpected argument "extra"`}},
		{"bad format", []string{"rings", "--format", "xml"}, []string{"--format"}},
		// Every numeric key has an upper bound, named in the error.
		{"huge gomaxprocs", []string{"run", "--agent-gomaxprocs", "100000"}, []string{`"agent_gomaxprocs"`, "between 0 and 1024"}},
		{"huge sink queue", []string{"run", "--sink-queue-size", "99999999999"}, []string{`"sink_queue_size"`, "between 16 and 16777216"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not contain %q", stderr, w)
				}
			}
		})
	}
}

func TestEnvPrecedenceAndConfigPrint(t *testing.T) {
	t.Setenv("AGAOBS_RING_DIR", "/from/env")
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("ring_dir: /from/file\nprometheus_port: 9191\n"), 0o600)
	code, out, _ := runCLI(t, "config", "print", "--config", cfgFile)
	if code != 0 || !strings.Contains(out, "ring_dir: /from/env") || !strings.Contains(out, "prometheus_port: 9191") {
		t.Fatalf("env over file: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "config", "print", "--config", cfgFile, "--ring-dir", "/from/flag")
	if code != 0 || !strings.Contains(out, "ring_dir: /from/flag") {
		t.Fatalf("flag over env: exit %d\n%s", code, out)
	}
}

func TestListenerBindFailureNamesAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	code, _, stderr := runCLI(t, "run", "--ring-dir", t.TempDir(), "--state-path", "", "--audit-storage-path", filepath.Join(t.TempDir(), "audit.db"), "--prometheus-enabled=false", "--admin-listen-address", addr)
	if code != 1 || !strings.Contains(stderr, "cannot bind "+addr) {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}, {"run", "--version"}, {"audit", "verify", "--version"}} {
		code, out, _ := runCLI(t, args...)
		if code != 0 || !strings.HasPrefix(out, "agaobs-agent, version dev (branch: ") {
			t.Errorf("%v: exit %d %q", args, code, out)
		}
		for _, want := range []string{"revision: ", "build date: ", "go version:  " + runtime.Version(), "platform:    " + runtime.GOOS} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: %q lacks %q", args, out, want)
			}
		}
	}
}

func TestRingsFromFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 4096, Identity: shm.Identity{Producer: "cli-test"}})
	if err != nil {
		t.Fatal(err)
	}
	f := shm.Forward{}
	for i := 0; i < 200; i++ {
		w.EmitForward(1, &f) // overflows the 4 KiB ring: drops
	}
	closed, _ := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: 4096, Instance: 1, Identity: shm.Identity{Producer: "cli-closed"}})
	closed.Close()
	os.WriteFile(filepath.Join(dir, "broken.ring"), []byte("x"), 0o600)
	code, out, stderr := runCLI(t, "rings", "--ring-dir", dir, "--admin-listen-address", "")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"# source: files in " + dir, "cli-test", "hot", "live", "cli-closed", "closed", "rejected"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "rings", "--ring-dir", dir, "--admin-listen-address", "", "--format", "json")
	var resp agent.RingsResponse
	if code != 0 || json.Unmarshal([]byte(out), &resp) != nil || len(resp.Rings) != 3 {
		t.Fatalf("json: exit %d %s", code, out)
	}
	for _, r := range resp.Rings {
		if r.Producer == "cli-test" && (r.Dropped == 0 || r.Written+r.Dropped != 201) {
			t.Errorf("cli-test counters %+v", r)
		}
	}
	w.Close()
}

// The process-level tests share one binary, built on first use.
var agentBin testutil.Binary

// isolate keeps agents started by these tests off the health port 8080
// (packages run in parallel) and off NVML, which this machine lacks; tests
// of health and GPU pass flags, which win over the environment.
func isolate() {
	for k, v := range map[string]string{"AGAOBS_HEALTH_ENABLED": "false", "AGAOBS_GPU_ENABLED": "false", "AGAOBS_BPF_ENABLED": "false"} {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
}

func TestMain(m *testing.M) {
	isolate()
	code := m.Run()
	agentBin.Remove()
	os.Exit(code)
}

func agentBinary(t *testing.T) string { return agentBin.Path(t, ".", "agaobs-agent") }

func port(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// logWatcher collects an agent's stderr lines.
type logWatcher struct {
	mu      sync.Mutex
	lines   []string
	partial []byte // the line being written
}

func (l *logWatcher) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *logWatcher) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func startAgent(t *testing.T, args ...string) (*exec.Cmd, *logWatcher) {
	t.Helper()
	cmd := exec.Command(agentBinary(t), args...)
	lw := &logWatcher{}
	// A writer, not StderrPipe: Wait then returns only after every line
	// was copied, so a check after Wait sees the agent's last lines.
	cmd.Stderr = lw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, lw
}

// Write collects whole lines.
func (l *logWatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func TestAgentProcessRingsQueryAndSIGHUPReload(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	admin := testutil.FreeAddr(t)
	cfgFile := filepath.Join(tmp, "agent.yaml")
	os.WriteFile(cfgFile, []byte("producer_retention: 5m\n"), 0o600)
	cmd, logs := startAgent(t, "run", "--config", cfgFile, "--ring-dir", dir, "--state-path", filepath.Join(tmp, "s.db"), "--audit-storage-path", filepath.Join(tmp, "audit.db"), "--admin-listen-address", admin,
		"--prometheus-host", "127.0.0.1", "--prometheus-port", port(t, testutil.FreeAddr(t)))
	testutil.Eventually(t, 5*time.Second, func() bool { return logs.has("agaobs-agent started") }, "agent did not start")

	w, _ := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 4096, Identity: shm.Identity{Producer: "via-agent"}})
	defer w.Close()
	testutil.Eventually(t, 5*time.Second, func() bool {
		_, out, _ := runCLI(t, "rings", "--ring-dir", dir, "--admin-listen-address", admin)
		return strings.Contains(out, "# source: agent at "+admin) && strings.Contains(out, "via-agent")
	}, "rings did not come from the running agent")

	os.WriteFile(cfgFile, []byte("producer_retention: 1m\nhealth_port: 9999\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 5*time.Second, func() bool {
		return logs.has("config reloaded") && logs.has("producer_retention") && logs.has("take effect only after a restart")
	}, "reload not logged: %v", logs.snapshot())
	os.WriteFile(cfgFile, []byte("producer_retention: never\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 5*time.Second, func() bool { return logs.has("config reload rejected") && logs.has(`never`) }, "bad reload not rejected")
	if cmd.ProcessState != nil {
		t.Fatal("agent exited on a bad reload")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v", err)
	}
	if !logs.has("agent stopped") {
		t.Error("no clean shutdown log")
	}
	_ = fmt.Sprint()
}

// The demo: two producer processes, drops on the overloaded rank that equal
// its sequence gaps, and a SIGKILLed rank that is detected and restarted
// under its old name.
func TestDemoProcess(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	admin := testutil.FreeAddr(t)
	cmd, logs := startAgent(t, "demo", "--ring-dir", dir, "--state-path", filepath.Join(tmp, "s.db"), "--audit-storage-path", filepath.Join(tmp, "audit.db"), "--admin-listen-address", admin,
		"--prometheus-host", "127.0.0.1", "--prometheus-port", port(t, testutil.FreeAddr(t)), "--kill-first", "3s", "--speed", "10")
	defer func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() }()
	testutil.Eventually(t, 20*time.Second, func() bool {
		return logs.has("producer died without closing") && logs.has("taken over by a new producer")
	}, "victim not killed and taken over: %v", logs.snapshot())
	var rr agent.RingsResponse
	testutil.Eventually(t, 15*time.Second, func() bool {
		_, out, _ := runCLI(t, "rings", "--ring-dir", dir, "--admin-listen-address", admin, "--format", "json")
		if json.Unmarshal([]byte(out), &rr) != nil {
			return false
		}
		live, dropped := 0, false
		for _, r := range rr.Rings {
			if r.State == "live" {
				live++
			}
			if r.Producer == "demo-worker-tp1" && r.Class == "hot" && r.Dropped > 0 && r.Lost == r.Dropped {
				dropped = true
			}
		}
		return live == 4 && dropped
	}, "demo rings: %+v", rr.Rings)
}

// `agaobs-agent rules` prints a rule file promtool accepts, and names the
// rules it cannot express.
func TestRulesCommand(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool")
	cfgFile := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(cfgFile, []byte(`alert_rules:
  - {name: failing, metric: retrieval_failure_rate, threshold: 0.5}
  - {name: slow_node, metric: latency_p95, threshold: 2500, per_producer: false, for: 1m}
slos:
  - {name: lat, objective: 0.999, sli: {type: latency, threshold_us: 1000}}
  - {name: up, objective: 0.99, sli: {type: availability}}
`), 0o600)
	out := filepath.Join(t.TempDir(), "rules.yml")
	code, _, stderr := runCLI(t, "rules", "--config", cfgFile, "--out", out)
	if code != 0 || !strings.Contains(stderr, "rule failing not expressible") {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	b, _ := os.ReadFile(out)
	for _, want := range []string{"alert: slo_latency_p99", "alert: slow_node", "alert: slo_lat_burn_critical", "alert: slo_up_burn_warning", "record: slo:sli_error:ratio_rate5m"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rule file lacks %q", want)
		}
	}
	if res, err := exec.Command(promtool, "check", "rules", out).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, res)
	}
}

// Bad audit usage exits 2 with the reason; a missing store exits 1.
func TestAuditUsageErrors(t *testing.T) {
	db := filepath.Join(t.TempDir(), "none.db")
	store := []string{"--audit-storage-path", db, "--admin-listen-address", ""}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", []string{"audit"}, 2, "missing command"},
		{"unknown command", []string{"audit", "shred"}, 2, `unknown command "shred"`},
		{"bad format", append([]string{"audit", "query", "--format", "xml"}, store...), 2, `"xml" is not one of`},
		{"bad since", append([]string{"audit", "query", "--since", "yesterday"}, store...), 2, "since:"},
		{"bad success", append([]string{"audit", "query", "--success", "maybe"}, store...), 2, "success:"},
		{"bad witness", append([]string{"audit", "verify", "--expect-head", "12"}, store...), 2, "--expect-head"},
		{"compact file backend", append([]string{"audit", "compact", "--audit-storage-backend", "file"}, store...), 2, "needs no compaction"},
		{"missing store", append([]string{"audit", "query"}, store...), 1, "none.db"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, stderr, tc.want)
			}
		})
	}
}

// A CA file that holds no certificate exits 2 naming the key.
func TestOTLPBadCAExits2(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("not a certificate"), 0o600)
	code, _, stderr := runCLI(t, "run", "--ring-dir", t.TempDir(), "--state-path", "", "--audit-storage-path", filepath.Join(t.TempDir(), "a.db"),
		"--prometheus-enabled=false", "--health-enabled=false", "--admin-listen-address", "", "--otlp-enabled", "--otlp-tls-ca-file", ca)
	if code != 2 || !strings.Contains(stderr, "otlp_tls_ca_file") || !strings.Contains(stderr, "no PEM certificate") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
