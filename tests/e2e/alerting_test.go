package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func amAlerts(t *testing.T, base string) []amAlert {
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var as []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatal(err)
	}
	return as
}

// The agent pushes a per-producer alert to a real Alertmanager while a Go
// producer writes, and resolves it when the producer stops.
func TestAgentToAlertmanager(t *testing.T) {
	am := testutil.StartAlertmanager(t)
	dir, tmp := t.TempDir(), t.TempDir()
	cfgFile := filepath.Join(tmp, "agent.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`alert_use_default_rules: false
alert_rules:
  - name: e2e_busy
    metric: forward_rate
    threshold: 0
    window_seconds: 2
    severity: critical
    message: "{{ $labels.producer }} forwards at {value:.0f}/s"
    labels: {team: e2e}
alertmanager_urls: [%s]
`, am)), 0o600)
	metricsURL := startAgent(t, "--config", cfgFile, "--ring-dir", dir)
	t.Setenv("NODE_NAME", "")

	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 16, Identity: shm.Identity{Producer: "e2e-go"}})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		f := shm.Forward{LatencyUs: 100, Fields: shm.FwdHasLatency}
		for {
			select {
			case <-stop:
				w.Close()
				return
			case <-time.After(20 * time.Millisecond):
				w.EmitForward(time.Now().UnixNano(), &f)
				w.Heartbeat()
			}
		}
	}()
	var got amAlert
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, a := range amAlerts(t, am) {
			if a.Labels["alertname"] == "e2e_busy" {
				got = a
				return true
			}
		}
		return false
	}, "alert not in Alertmanager")
	host, _ := os.Hostname()
	if got.Labels["producer"] != "e2e-go" || got.Labels["severity"] != "critical" || got.Labels["team"] != "e2e" || got.Labels["node"] != host ||
		!strings.HasPrefix(got.Annotations["summary"], "e2e-go forwards at ") {
		t.Errorf("alert in Alertmanager: %+v", got)
	}
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `aga_alerts{alertname="e2e_busy",alertstate="firing",node="`+host+`",producer="e2e-go",severity="critical"} 1`) {
		t.Errorf("/metrics lacks the firing alert")
	}
	close(stop)
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, a := range amAlerts(t, am) {
			if a.Labels["alertname"] == "e2e_busy" {
				return false
			}
		}
		return true
	}, "alert not resolved in Alertmanager")
}

// The demo fires every default rule within 60 s of start.
func TestDemoFiresDefaultRules(t *testing.T) {
	port := testutil.FreePort(t)
	admin := "127.0.0.1:" + testutil.FreePort(t)
	cmd := exec.Command(agentBinary(t), "demo", "--ring-dir", t.TempDir(), "--state-path", "", "--audit-storage-path", filepath.Join(t.TempDir(), "audit.db"), "--admin-listen-address", admin,
		"--prometheus-host", "127.0.0.1", "--prometheus-port", port)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	want := []string{"slo_latency_p99", "slo_latency_critical", "high_utilization", "slot_thrashing"}
	fired := map[string]time.Duration{}
	missing := func() int {
		n := 0
		for _, r := range want {
			if _, ok := fired[r]; !ok {
				n++
			}
		}
		return n
	}
	// The demo's SLOs fire too: wait for the wanted rules, not a count.
	for time.Since(start) < 60*time.Second && missing() > 0 {
		time.Sleep(500 * time.Millisecond)
		resp, err := http.Get("http://" + admin + "/api/v1/alerts?limit=0")
		if err != nil {
			continue
		}
		var body struct {
			History []struct {
				RuleName string `json:"rule_name"`
				Status   string `json:"status"`
			} `json:"history"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		for _, h := range body.History {
			if _, seen := fired[h.RuleName]; !seen && h.Status == "firing" {
				fired[h.RuleName] = time.Since(start).Round(time.Second)
			}
		}
	}
	for _, r := range want {
		if _, ok := fired[r]; !ok {
			t.Errorf("%s did not fire within 60 s", r)
		}
	}
	t.Logf("default rules fired after %v", fired)
}
