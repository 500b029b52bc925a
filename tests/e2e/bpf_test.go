package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/testutil"
)

// bpfAgent runs the agent with eBPF on (flags win over TestMain's
// environment) and returns its metrics URL.
func bpfAgent(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	testutil.RequireBPF(t)
	return startAgent(t, append([]string{"--ring-dir", dir, "--bpf-enabled=true", "--bpf-require=true"}, extra...)...)
}

// waitSeries polls /metrics until name{labels} satisfies ok.
func waitSeries(t *testing.T, url string, timeout time.Duration, name string, labels map[string]string, ok func(*dto.Metric) bool) *dto.Metric {
	t.Helper()
	var m *dto.Metric
	deadline := time.Now().Add(timeout)
	for {
		m = series(scrape(t, url), name, labels)
		if m != nil && ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s%v = %v", timeout, name, labels, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// python_gc with Debian's python3.11 (USDT notes) running the Python
// client: N gc.collect() calls give at least N pauses for that producer.
func TestBPFPythonGC(t *testing.T) {
	py := "/usr/bin/python3.11"
	if _, err := os.Stat(py); err != nil {
		testutil.SkipOrFail(t, "Debian's /usr/bin/python3.11 (with USDT notes) is not installed")
	}
	dir := t.TempDir()
	url := bpfAgent(t, dir)
	cmd := exec.Command(py, filepath.Join(root, "clients/python/tests/gc_producer.py"), "50")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "clients/python"), "AGAOBS_RING_DIR="+dir, "AGAOBS_PRODUCER=py-gc")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	if line, _ := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("producer: %q", line)
	}
	ready := time.Now()
	waitSeries(t, url, 10*time.Second, "agaobs_bpf_probe_attached", map[string]string{"probe": "python_gc"},
		func(m *dto.Metric) bool { return m.Gauge.GetValue() >= 1 })
	// The bound is 2 s from the ring appearing; the scrape polling
	// and a loaded CI machine get 1 s of slack.
	if d := time.Since(ready); d > 3*time.Second {
		t.Errorf("python_gc attached %v after the producer started, want within ~2 s", d)
	} else {
		t.Logf("python_gc attached %v after the producer started", d.Round(10*time.Millisecond))
	}
	io.WriteString(stdin, "go\n")
	if line, _ := out.ReadString('\n'); line != "done\n" {
		t.Fatalf("producer: %q", line)
	}
	m := waitSeries(t, url, 5*time.Second, "agaobs_bpf_python_gc_pause_seconds", map[string]string{"producer": "py-gc"},
		func(m *dto.Metric) bool { return m.Histogram.GetSampleCount() >= 50 })
	t.Logf("%d GC pauses, %.3f ms mean", m.Histogram.GetSampleCount(), 1e3*m.Histogram.GetSampleSum()/float64(m.Histogram.GetSampleCount()))
	io.WriteString(stdin, "\n")
}

// Without privilege the agent stays up, reports eBPF unavailable with the
// reason, and its bpf health component says why.
func TestBPFUnprivileged(t *testing.T) {
	testutil.RequireRoot(t)
	setpriv := testutil.RequireTool(t, "setpriv")
	bin := agentBinary(t)
	// t.TempDir's parents are private to root; nobody needs a path it can walk.
	tmp, err := os.MkdirTemp("", "agaobs-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o777)
	dir := filepath.Join(tmp, "rings")
	port, hport := testutil.FreePort(t), testutil.FreePort(t)
	// A copy of the binary the nobody user can execute.
	exe := filepath.Join(tmp, "agaobs-agent")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		exe, "run", "--ring-dir", dir, "--state-path", "", "--audit-storage-path", filepath.Join(tmp, "audit.db"),
		"--admin-listen-address", "", "--prometheus-host", "127.0.0.1", "--prometheus-port", port,
		"--health-enabled=true", "--health-host", "127.0.0.1", "--health-port", hport, "--bpf-enabled=true")
	logs := &testutil.LockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://127.0.0.1:" + port + "/metrics"
	testutil.Eventually(t, 30*time.Second, func() bool {
		return series(scrape2(url), "agaobs_bpf_available", map[string]string{"reason": "not_permitted"}) != nil
	}, "agaobs_bpf_available{reason=\"not_permitted\"} never appeared; agent log:\n%s", logs)
	base := "http://127.0.0.1:" + hport
	code, d := getHealth(t, base)
	if code != 200 || componentStatus(d, "bpf") != "degraded" || !strings.Contains(fmt.Sprint(d.Components["bpf"]["reason"]), "CAP_SYS_ADMIN") {
		t.Fatalf("health %d %v", code, d.Components["bpf"])
	}
	if n := strings.Count(logs.String(), "eBPF unavailable"); n != 1 {
		t.Errorf("%d 'eBPF unavailable' log lines, want 1:\n%s", n, logs.String())
	}

	// bpf_require: the same run is fatal, exit 1 with the reason.
	req := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		exe, "run", "--ring-dir", dir, "--state-path", "", "--audit-storage-path", filepath.Join(tmp, "audit2.db"),
		"--admin-listen-address", "", "--prometheus-enabled=false", "--bpf-enabled=true", "--bpf-require=true")
	out, err := req.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "bpf_require") || !strings.Contains(string(out), "not_permitted") {
		t.Fatalf("bpf_require without privilege: %v\n%s", err, out)
	}
}

// scrape2 returns the metric families at url, or nil while the agent does not
// answer.
func scrape2(url string) map[string]*dto.MetricFamily {
	mfs, _ := testutil.Scrape(url)
	return mfs
}

// forward_marker: the Python client calls the marker library around each
// hooked module's forward; the agent's uprobes count exactly the calls.
func TestBPFForwardMarker(t *testing.T) {
	gcc := testutil.RequireTool(t, "gcc")
	py := testutil.RequireTool(t, "python3")
	lib := filepath.Join(t.TempDir(), "libagaobs_marker.so")
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-O2", "-I", filepath.Join(root, "clients/c/include"), "-o", lib,
		filepath.Join(root, "clients/c/marker/agaobs_marker.c")).CombinedOutput(); err != nil {
		t.Fatalf("build the marker: %v\n%s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(cfg, []byte("bpf_probes: {forward_marker: true}\n"), 0o600)
	dir := t.TempDir()
	url := bpfAgent(t, dir, "--config", cfg)
	const n = 40
	cmd := exec.Command(py, filepath.Join(root, "clients/python/tests/marker_producer.py"), fmt.Sprint(n))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "clients/python"), "AGAOBS_RING_DIR="+dir,
		"AGAOBS_PRODUCER=py-marker", "AGAOBS_FORWARD_MARKER=1", "AGAOBS_MARKER_LIB="+lib)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	if line, _ := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("producer: %q", line)
	}
	waitSeries(t, url, 10*time.Second, "agaobs_bpf_probe_attached", map[string]string{"probe": "forward_marker"},
		func(m *dto.Metric) bool { return m.Gauge.GetValue() >= 1 })
	io.WriteString(stdin, "go\n")
	if line, _ := out.ReadString('\n'); line != fmt.Sprintf("done %d %d\n", 2*n, 2*n) {
		t.Fatalf("producer: %q", line)
	}
	m := waitSeries(t, url, 5*time.Second, "agaobs_bpf_forward_latency_seconds", map[string]string{"producer": "py-marker"},
		func(m *dto.Metric) bool { return m.Histogram.GetSampleCount() >= 2*n })
	if c := m.Histogram.GetSampleCount(); c != 2*n {
		t.Fatalf("%d forwards measured, the producer made %d", c, 2*n)
	}
	t.Logf("%d forwards, mean %.1f µs (begin to end, uprobe traps included)", m.Histogram.GetSampleCount(),
		1e6*m.Histogram.GetSampleSum()/float64(m.Histogram.GetSampleCount()))
}
