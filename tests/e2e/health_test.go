package e2e_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/testutil"
)

// healthAgent runs the agent binary with its health listener on a free
// port (GPU collection off) and returns the health base URL.
func healthAgent(t *testing.T, dir string, extra ...string) string {
	base, _ := healthAgentCmd(t, dir, filepath.Join(t.TempDir(), "audit.db"), extra...)
	return base
}

func healthAgentCmd(t *testing.T, dir, db string, extra ...string) (string, *exec.Cmd) {
	t.Helper()
	port := testutil.FreePort(t)
	args := append([]string{"run", "--ring-dir", dir, "--state-path", "", "--audit-storage-path", db,
		"--admin-listen-address", "", "--prometheus-enabled=false", "--health-host", "127.0.0.1", "--health-port", port,
		"--health-enabled=true", "--gpu-enabled=false"}, extra...)
	cmd := exec.Command(agentBinary(t), args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stderr)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://127.0.0.1:" + port
	testutil.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/livez")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, "health listener did not come up")
	return base, cmd
}

// pyProducer starts clients/python/tests/health_producer.py SCENARIO and
// waits for its "ready".
func pyProducer(t *testing.T, dir, name, scenario string, env ...string) *exec.Cmd {
	t.Helper()
	py := testutil.RequireTool(t, "python3")
	cmd := exec.Command(py, filepath.Join(root, "clients/python/tests/health_producer.py"), scenario)
	cmd.Env = append(append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "clients/python"), "AGAOBS_RING_DIR="+dir,
		"AGAOBS_PRODUCER="+name), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("producer %s: %q", scenario, line)
	}
	return cmd
}

type healthDoc struct {
	Status     string                    `json:"status"`
	Components map[string]map[string]any `json:"components"`
	Timestamp  float64                   `json:"timestamp"`
}

func getHealth(t *testing.T, base string) (int, healthDoc) {
	t.Helper()
	resp, err := http.Get(base + "/health?source=e2e")
	if err != nil {
		return 0, healthDoc{}
	}
	defer resp.Body.Close()
	var d healthDoc
	json.NewDecoder(resp.Body).Decode(&d)
	return resp.StatusCode, d
}

func componentStatus(d healthDoc, name string) string {
	if c, ok := d.Components[name]; ok {
		s, _ := c["status"].(string)
		return s
	}
	return ""
}

// waitComponent polls /health until component has status want, and
// returns the last answer.
func waitComponent(t *testing.T, base, component, want string, timeout time.Duration) (int, healthDoc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, d := getHealth(t, base)
		if componentStatus(d, component) == want {
			return code, d
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v %s is not %s: %v", timeout, component, want, d.Components[component])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Health computed from real rings written by the Python client with a
// stand-in aga-core plugin.
func TestHealthFromPythonProducers(t *testing.T) {
	t.Run("healthy with GPU and BPF disabled", func(t *testing.T) {
		dir := t.TempDir()
		base := healthAgent(t, dir)
		pyProducer(t, dir, "py-ok", "healthy")
		code, d := waitComponent(t, base, "py-ok/kv_store", "healthy", 10*time.Second)
		if code != 200 || d.Status != "healthy" {
			t.Fatalf("%d %+v", code, d)
		}
		for name, want := range map[string]string{"gpu": "disabled", "bpf": "disabled", "audit": "healthy", "alerting": "healthy",
			"pipeline": "healthy", "py-ok/liveness": "healthy", "py-ok/ring": "healthy", "py-ok/attachment": "healthy",
			"py-ok/gate_system": "healthy", "py-ok/retriever": "healthy"} {
			if got := componentStatus(d, name); got != want {
				t.Errorf("%s: %q, want %q (%v)", name, got, want, d.Components[name])
			}
		}
	})
	t.Run("kv utilization 0.96 is degraded with 200", func(t *testing.T) {
		dir := t.TempDir()
		base := healthAgent(t, dir)
		pyProducer(t, dir, "py-kv", "kv96")
		code, d := waitComponent(t, base, "py-kv/kv_store", "degraded", 10*time.Second)
		if code != 200 || d.Status != "degraded" || d.Components["py-kv/kv_store"]["utilization"] != 0.96 {
			t.Fatalf("%d %s %v", code, d.Status, d.Components["py-kv/kv_store"])
		}
	})
	t.Run("non-finite gate is unhealthy with 503", func(t *testing.T) {
		dir := t.TempDir()
		base := healthAgent(t, dir)
		pyProducer(t, dir, "py-nan", "nan")
		code, d := waitComponent(t, base, "py-nan/gate_system", "unhealthy", 10*time.Second)
		if code != 503 || d.Status != "unhealthy" {
			t.Fatalf("%d %s", code, d.Status)
		}
	})
	t.Run("SIGKILLed producer is 503 within 6 s", func(t *testing.T) {
		dir := t.TempDir()
		db := filepath.Join(t.TempDir(), "audit.db")
		base, agent := healthAgentCmd(t, dir, db)
		p := pyProducer(t, dir, "py-kill", "healthy")
		waitComponent(t, base, "py-kill/liveness", "healthy", 10*time.Second)
		p.Process.Signal(syscall.SIGKILL)
		killed := time.Now()
		if code, _ := waitComponent(t, base, "py-kill/liveness", "unhealthy", 6*time.Second); code != 503 {
			t.Fatalf("HTTP %d with an unhealthy producer", code)
		}
		t.Logf("503 %.1fs after SIGKILL", time.Since(killed).Seconds())
		// The transition is on the audit trail.
		time.Sleep(1500 * time.Millisecond) // the next health evaluation, then a commit
		agent.Process.Signal(syscall.SIGTERM)
		agent.Wait()
		st, err := audit.OpenBolt(db, audit.BoltOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		recs, _ := st.Query(audit.Filter{Operation: "health_transition", Producer: "py-kill"})
		found := false
		for _, r := range recs {
			found = found || strings.Contains(string(r.Details), `"component":"py-kill/liveness"`) && strings.Contains(string(r.Details), `"to":"unhealthy"`)
		}
		if !found {
			t.Fatalf("no health_transition to unhealthy for py-kill/liveness on the audit trail: %+v", recs)
		}
	})
	t.Run("clean close does not worsen the status", func(t *testing.T) {
		dir := t.TempDir()
		base := healthAgent(t, dir)
		p := pyProducer(t, dir, "py-close", "healthy")
		p.Process.Signal(syscall.SIGTERM)
		p.Wait()
		code, d := waitComponent(t, base, "py-close/liveness", "closed", 6*time.Second)
		if code != 200 || d.Status != "healthy" {
			t.Fatalf("%d %s", code, d.Status)
		}
	})
	t.Run("full but draining ring stays healthy", func(t *testing.T) {
		dir := t.TempDir()
		base := healthAgent(t, dir, "--ring-poll-interval", "40ms")
		pyProducer(t, dir, "py-burst", "burst", "AGAOBS_RING_HOT_BYTES=4096")
		maxFill := 0.0
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			_, d := getHealth(t, base)
			if c := d.Components["py-burst/ring"]; c != nil {
				if s := c["status"]; s != "healthy" {
					t.Fatalf("ring %v", c)
				}
				if f, _ := c["hot_fill_ratio"].(float64); f > maxFill {
					maxFill = f
				}
			}
			time.Sleep(7 * time.Millisecond)
		}
		if maxFill < 0.3 {
			t.Fatalf("the ring never filled (max fill %.2f): the test proves nothing", maxFill)
		}
		t.Logf("max hot ring fill seen %.2f", maxFill)
	})
}
