// Package e2e_test runs the real agent binary against real producers and
// checks what a user would see: exact Prometheus values, event log lines,
// and promtool's verdict on the exposition.
package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/testutil"
)

const root = "../.."

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
	if os.Getenv(producerEnv) != "" {
		os.Exit(auditProducerMain())
	}
	isolate()
	code := m.Run()
	agentBin.Remove()
	os.Exit(code)
}

func agentBinary(t testing.TB) string {
	return agentBin.Path(t, "../../cmd/agaobs-agent", "agaobs-agent")
}

// startAgent runs the agent binary until the test ends; it returns the
// metrics URL.
func startAgent(t testing.TB, args ...string) string {
	t.Helper()
	port := testutil.FreePort(t)
	args = append([]string{"run", "--state-path", "", "--audit-storage-path", filepath.Join(t.TempDir(), "audit.db"), "--admin-listen-address", "", "--prometheus-host", "127.0.0.1", "--prometheus-port", port}, args...)
	cmd := exec.Command(agentBinary(t), args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stderr)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://127.0.0.1:" + port + "/metrics"
	testutil.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, "agent did not serve %s", url)
	return url
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// series finds the metric of family name whose labels include want.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	if mf := mfs[name]; mf != nil {
		return testutil.FindSeries([]*dto.MetricFamily{mf}, name, want)
	}
	return nil
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{"producer": "e2e-py", "site": "lab"}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// The Python client with a stand-in EventBus writes a known sequence into
// real rings; the agent consumes them; /metrics shows exactly those values
// and the event log holds exactly the INFO-level lines.
func TestPythonToPrometheus(t *testing.T) {
	py := testutil.RequireTool(t, "python3")
	dir, tmp := t.TempDir(), t.TempDir()
	logFile := filepath.Join(tmp, "events.log")
	url := startAgent(t, "--ring-dir", dir, "--prometheus-labels", "site=lab", "--log-file", logFile)

	cmd := exec.Command(py, filepath.Join(root, "clients/python/tests/crosslang_producer.py"))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "clients/python"), "AGAOBS_RING_DIR="+dir, "AGAOBS_PRODUCER=e2e-py")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("producer: %v\n%s", err, out)
	}
	var mfs map[string]*dto.MetricFamily
	testutil.Eventually(t, 30*time.Second, func() bool {
		mfs = scrape(t, url)
		m := series(mfs, "agaobs_producer_up", lbl())
		return m != nil && m.Gauge.GetValue() == 0 && series(mfs, "aga_audit_operations_total", lbl("operation", "clear")) != nil
	}, "producer not consumed and closed")

	counters := map[string]float64{}
	for _, layer := range []string{"0", "1", "2"} {
		for _, applied := range []string{"true", "false"} {
			if m := series(mfs, "aga_forward_total", lbl("layer", layer, "applied", applied)); m != nil {
				counters[layer+"/"+applied] = m.Counter.GetValue()
			}
		}
	}
	// i = 0..9: layer i%3, applied when i is even.
	want := map[string]float64{"0/true": 2, "0/false": 2, "1/true": 1, "1/false": 2, "2/true": 2, "2/false": 1}
	if fmt.Sprint(counters) != fmt.Sprint(want) {
		t.Errorf("aga_forward_total %v, want %v", counters, want)
	}
	lat := series(mfs, "aga_forward_latency_us", lbl("layer", "0")).Histogram // 100, 103, 106, 109
	if lat.GetSampleCount() != 4 || lat.GetSampleSum() != 418 {
		t.Errorf("latency count %d sum %v", lat.GetSampleCount(), lat.GetSampleSum())
	}
	cum := map[float64]uint64{}
	for _, b := range lat.Bucket {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if cum[50] != 0 || cum[100] != 1 || cum[250] != 4 {
		t.Errorf("latency buckets %v", cum)
	}
	gate := series(mfs, "aga_gate_value", lbl("layer", "0")).Histogram // 0, 0.3, 0.6, 0.9
	cum = map[float64]uint64{}
	for _, b := range gate.Bucket {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if cum[0] != 1 || cum[0.2] != 1 || cum[0.3] != 2 || cum[0.6] != 3 || cum[0.9] != 4 || gate.GetSampleCount() != 4 {
		t.Errorf("gate buckets %v", cum)
	}
	if c := series(mfs, "aga_entropy_value", lbl("layer", "0")).Histogram.GetSampleCount(); c != 3 {
		t.Errorf("entropy observations %d, want 3 (0 is not observed)", c)
	}
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		m := series(mfs, name, labels)
		if m == nil {
			t.Errorf("no %s%v", name, labels)
			return
		}
		got := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	check("aga_retrieval_total", lbl("layer", "0"), 2)
	check("aga_retrieval_injected_total", lbl("layer", "0"), 3)
	check("aga_audit_operations_total", lbl("operation", "register", "success", "true"), 1)
	check("aga_audit_operations_total", lbl("operation", "unregister", "success", "true"), 1)
	check("aga_audit_operations_total", lbl("operation", "clear", "success", "true"), 1)
	check("aga_activation_rate", lbl(), 0.5)
	check("aga_producer_info", lbl("role", "crosslang_producer"), 1)
	if s := series(mfs, "aga_retrieval_score", lbl()).Histogram; s.GetSampleCount() != 3 || math.Abs(s.GetSampleSum()-2.4) > 1e-9 {
		t.Errorf("retrieval scores count %d sum %v", s.GetSampleCount(), s.GetSampleSum())
	}
	if m := series(mfs, "agaobs_ring_lost_total", lbl("class", "hot")); m == nil || m.Counter.GetValue() != 0 {
		t.Errorf("lost %v", m)
	}

	// Event log: INFO and above, so no forward lines.
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		for _, k := range []string{"forward", "retrieval", "audit", "custom"} {
			if strings.Contains(sc.Text(), `"event_type":"`+k+`"`) {
				kinds[k]++
			}
		}
	}
	if fmt.Sprint(kinds) != "map[audit:3 custom:1 retrieval:2]" {
		t.Errorf("event log lines by type %v:\n%s", kinds, b)
	}
}
