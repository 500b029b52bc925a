// Package fleet_test proves agaobs on a fleet, on one machine: N simulated
// nodes (each a real agent process with its own node_name, rings, state,
// audit store and ports, and two real producer processes with the same
// producer names on every node) scraped by one real Prometheus that loads
// the generated rule file, every agent and Prometheus sending to one real
// Alertmanager. A scripted scenario checks that each alert fires for
// exactly the right (node, producer), that the agents' engines and
// Prometheus agree, and that Alertmanager shows one alert per condition.
// N is 3 in `make test` and 16 in `make e2e` (AGAOBS_FLEET_NODES).
package fleet_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

const root = "../.."

var agentBin testutil.Binary

// producerEnv makes the test binary a producer process (see producerMain).
const producerEnv = "AGAOBS_FLEET_PRODUCER"

func TestMain(m *testing.M) {
	if os.Getenv(producerEnv) != "" {
		os.Exit(producerMain())
	}
	code := m.Run()
	agentBin.Remove()
	os.Exit(code)
}

// producerMain writes forward events (~200/s, three layers) with the
// latency in the control file's first field (µs), a retrieval every tenth
// event, and every 500 ms a status snapshot with the KV utilization in
// the control file's second field and an audit record, until killed:
// every family of the dashboards gets data.
// The control file is re-read every 100 ms, so a test step is one write.
func producerMain() int {
	dir, name, control := os.Getenv("AGAOBS_RING_DIR"), os.Getenv("FLEET_PRODUCER_NAME"), os.Getenv("FLEET_CONTROL")
	id := shm.Identity{Producer: name, Role: "inference", Model: os.Getenv("FLEET_MODEL")}
	hot, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 20, Identity: id})
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	audit, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: 1 << 18, Identity: id, AuditWait: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	latency, util := 100.0, 0.5
	var lastRead, lastStatus time.Time
	for i := 0; ; i++ {
		now := time.Now()
		if now.Sub(lastRead) >= 100*time.Millisecond {
			lastRead = now
			if b, err := os.ReadFile(control); err == nil {
				f := strings.Fields(string(b))
				if len(f) >= 2 {
					latency, _ = strconv.ParseFloat(f[0], 64)
					util, _ = strconv.ParseFloat(f[1], 64)
				}
			}
		}
		f := shm.Forward{LatencyUs: latency, GateMean: 0.5, EntropyMean: 1.5, Layer: int32(i % 3),
			Fields: shm.FwdHasLatency | shm.FwdHasGate | shm.FwdHasEntropy | shm.FwdHasLayer | shm.FwdApplied}
		_ = hot.EmitForward(now.UnixNano(), &f)
		if i%10 == 0 {
			r := shm.Retrieval{Layer: int32(i % 3), ResultsCount: 5, InjectedCount: 2, BudgetRemaining: 10,
				Fields: shm.RetHasLayer | shm.RetHasResults | shm.RetHasInjected | shm.RetHasBudget}
			_ = hot.EmitRetrieval(now.UnixNano(), &r, []float64{0.9, 0.4}, []string{"k1", "k2"})
		}
		if now.Sub(lastStatus) >= 500*time.Millisecond {
			lastStatus = now
			_ = hot.EmitStatus(now.UnixNano(), []byte(fmt.Sprintf(
				`{"kv_store":{"count":%g,"max_slots":100,"utilization":%g,"pinned":3},"slot_change_rate":0.05}`, 100*util, util)))
			_ = audit.EmitAudit(now.UnixNano(), []byte(`{"operation":"register","details":{"id":"k1"},"success":true,"error":null}`))
			hot.Heartbeat()
			audit.Heartbeat()
		}
		// Pacing a producer process, not synchronizing a test.
		time.Sleep(5 * time.Millisecond)
	}
}

// node is one simulated node: an agent process with its own node_name,
// ring directory, state and audit store and ports, and two producers.
type node struct {
	name                   string
	dir, ringDir, auditDB  string
	config                 string
	metrics, admin, health string // host:port
	agent                  *exec.Cmd
	agentOut               *testutil.LockedBuffer
	producers              map[string]*producer
}

type producer struct {
	name, control string
	cmd           *exec.Cmd
}

// fleet is N nodes scraped by one Prometheus that loads the generated rule
// file, every agent and Prometheus sending to one Alertmanager.
type fleet struct {
	t          *testing.T
	nodes      []*node
	am, prom   string // base URLs
	ruleFile   string
	promOut    *testutil.LockedBuffer
	scrape     time.Duration
	gpuFixture string // host:port of node C's fake GPU exposition
	vm         string // base URL of VictoriaMetrics (Prometheus remote-writes to it)
}

// nodeNames are node-a, node-b, …, node-z, node-aa, ….
func nodeName(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('a'+(i-1)%26)) + s
	}
	return "node-" + s
}

// agentConfig is every node's config: the rules the agent's engine
// evaluates and `agaobs-agent rules` turns into the Prometheus file.
func agentConfig(am string) string {
	return fmt.Sprintf(`alert_use_default_rules: false
alert_eval_interval: 1s
alert_resend_interval: 5s
alertmanager_urls: [%s]
alert_rules:
  - name: fleet_latency_p99
    metric: latency_p99
    operator: ">"
    threshold: 1000
    window_seconds: 5
    severity: critical
    message: "p99 {value:.0f} us"
  - name: fleet_kv_pressure
    metric: knowledge_utilization
    operator: ">"
    threshold: 0.9
    window_seconds: 5
    severity: warning
    message: "kv at {value:.2f}"
# Never violated here (the 5 ms spike is still within 5 ms): its series feed the
# dashboards' SLO panels without adding burn-rate alerts to the scenario.
slos:
  - name: fleet_latency
    objective: 0.99
    sli: {type: latency, threshold_us: 5000}
`, am)
}

func startFleet(t *testing.T, n int) *fleet {
	t.Helper()
	bin := agentBin.Path(t, root+"/cmd/agaobs-agent", "agaobs-agent")
	promBin := testutil.RequireTool(t, "prometheus")
	f := &fleet{t: t, am: testutil.StartAlertmanager(t), scrape: time.Second}
	base := t.TempDir()
	for i := 0; i < n; i++ {
		nd := &node{name: nodeName(i), dir: filepath.Join(base, nodeName(i)), producers: map[string]*producer{}}
		nd.ringDir = filepath.Join(nd.dir, "rings")
		nd.auditDB = filepath.Join(nd.dir, "audit", "aga_audit.db")
		if err := os.MkdirAll(filepath.Dir(nd.auditDB), 0o755); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// Node A's audit store lives on a small tmpfs the scenario
			// fills (a full disk: the store becomes unwritable).
			mountTmpfs(t, filepath.Dir(nd.auditDB), "size=4m")
		}
		nd.config = filepath.Join(nd.dir, "agent.yaml")
		if err := os.WriteFile(nd.config, []byte(agentConfig(f.am)), 0o600); err != nil {
			t.Fatal(err)
		}
		nd.metrics, nd.admin, nd.health = testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
		f.nodes = append(f.nodes, nd)
		f.startAgent(bin, nd)
		for _, p := range []string{"inference-tp0", "inference-tp1"} {
			f.startProducer(nd, p)
		}
	}
	// One rule file for the fleet, generated from the same config.
	f.ruleFile = filepath.Join(base, "rules.yml")
	out, err := exec.Command(bin, "rules", "--config", f.nodes[0].config, "--scrape-interval", f.scrape.String(),
		"--out", f.ruleFile).CombinedOutput()
	if err != nil {
		t.Fatalf("agaobs-agent rules: %v\n%s", err, out)
	}
	f.gpuFixture = startGPUFixture(t)
	f.vm = startVictoriaMetrics(t)
	f.startPrometheus(promBin, base)
	return f
}

func (f *fleet) startAgent(bin string, nd *node) {
	t := f.t
	host, port := splitAddr(t, nd.metrics)
	hhost, hport := splitAddr(t, nd.health)
	cmd := exec.Command(bin, "run", "--config", nd.config, "--node-name", nd.name, "--ring-dir", nd.ringDir,
		"--state-path", filepath.Join(nd.dir, "state.db"), "--audit-storage-path", nd.auditDB,
		"--prometheus-host", host, "--prometheus-port", port, "--admin-listen-address", nd.admin,
		"--health-host", hhost, "--health-port", hport, "--gpu-enabled=false", "--bpf-enabled=false",
		"--log-enabled=false", "--producer-heartbeat-stale-seconds", "5")
	nd.agentOut = &testutil.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, nd.agentOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nd.agent = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("agent %s output:\n%s", nd.name, lastLines(nd.agentOut.String(), 30))
		}
	})
	testutil.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + nd.metrics + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "agent %s did not serve /metrics", nd.name)
}

func (f *fleet) startProducer(nd *node, name string) {
	t := f.t
	p := &producer{name: name, control: filepath.Join(nd.dir, name+".control")}
	f.setControl(p, 100, 0.5)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), producerEnv+"=1", "AGAOBS_RING_DIR="+nd.ringDir, "FLEET_PRODUCER_NAME="+name,
		"FLEET_CONTROL="+p.control, "FLEET_MODEL=llama-fleet")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	nd.producers[name] = p
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// setControl sets a producer's forward latency (µs) and KV utilization.
func (f *fleet) setControl(p *producer, latencyUs, util float64) {
	tmp := p.control + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%g %g\n", latencyUs, util)), 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.control); err != nil { // never a half-written file
		f.t.Fatal(err)
	}
}

func (f *fleet) startPrometheus(bin, base string) {
	t := f.t
	dir := filepath.Join(base, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	type sdGroup struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	var groups []sdGroup
	for _, nd := range f.nodes {
		groups = append(groups, sdGroup{Targets: []string{nd.metrics}})
	}
	gpuSD, _ := json.Marshal([]sdGroup{{Targets: []string{f.gpuFixture}, Labels: map[string]string{"node": f.nodes[2].name}}})
	gpuSDFile := filepath.Join(dir, "gpu.json")
	if err := os.WriteFile(gpuSDFile, gpuSD, 0o600); err != nil {
		t.Fatal(err)
	}
	sd, _ := json.Marshal(groups)
	sdFile := filepath.Join(dir, "targets.json")
	if err := os.WriteFile(sdFile, sd, 0o600); err != nil {
		t.Fatal(err)
	}
	amURL, _ := url.Parse(f.am)
	addr := testutil.FreeAddr(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
rule_files: [%[2]q]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%[3]q]
remote_write:
  - url: %[5]q
    queue_config: {batch_send_deadline: 1s}
scrape_configs:
  - job_name: agaobs-agent
    file_sd_configs:
      - files: [%[4]q]
        refresh_interval: 1s
  # Prometheus itself: head series and rule evaluation times for the report.
  - job_name: prometheus
    static_configs:
      - targets: [%[7]q]
  # Node C's GPUs: the GPU collector's golden exposition, XIDs now.
  - job_name: gpu-fixture
    file_sd_configs:
      - files: [%[6]q]
        refresh_interval: 1s
`, f.scrape, f.ruleFile, amURL.Host, sdFile, f.vm+"/api/v1/write", gpuSDFile, addr)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f.prom = "http://" + addr
	f.promOut = &testutil.LockedBuffer{}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = io.Discard, f.promOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", lastLines(f.promOut.String(), 30))
		}
	})
	testutil.Eventually(t, 30*time.Second, func() bool {
		v, err := f.query(`count(up{job="agaobs-agent"} == 1)`)
		return err == nil && len(v) == 1 && v[0].value == float64(len(f.nodes))
	}, "prometheus did not scrape the %d agents", len(f.nodes))
}

// sample is one element of an instant vector.
type sample struct {
	labels map[string]string
	value  float64
	at     time.Time
}

func (f *fleet) query(expr string) ([]sample, error) { return queryAt(f.prom, expr, time.Time{}) }

// queryAt runs an instant query against a Prometheus-compatible API (at
// the given time, or now when zero).
func queryAt(base, expr string, at time.Time) ([]sample, error) {
	q := url.Values{"query": {expr}}
	if !at.IsZero() {
		q.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	resp, err := http.Get(base + "/api/v1/query?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: %w", expr, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", expr, body.Error)
	}
	out := make([]sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		pts := r.Values // a range vector: every raw sample
		if len(pts) == 0 {
			pts = [][2]any{r.Value}
		}
		for _, pt := range pts {
			s, _ := pt[1].(string)
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: value %q", expr, s)
			}
			ts, _ := pt[0].(float64)
			out = append(out, sample{labels: r.Metric, value: v, at: time.UnixMilli(int64(math.Round(ts * 1000)))})
		}
	}
	return out, nil
}

// alertKey identifies an alert the same way on every side.
type alertKey struct{ name, node, producer string }

func (k alertKey) String() string { return k.name + "{" + k.node + "," + k.producer + "}" }

func keysOf(m map[alertKey]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

// agentFiring is what the agents' own engines have firing.
func (f *fleet) agentFiring() (map[alertKey]bool, error) {
	out := map[alertKey]bool{}
	for _, nd := range f.nodes {
		resp, err := http.Get("http://" + nd.admin + "/api/v1/alerts?limit=0")
		if err != nil {
			return nil, err
		}
		var body struct {
			Active []struct {
				RuleName string `json:"rule_name"`
				Producer string `json:"producer"`
				State    string `json:"state"`
			} `json:"active"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		for _, a := range body.Active {
			if a.State == "firing" {
				out[alertKey{a.RuleName, nd.name, a.Producer}] = true
			}
		}
	}
	return out, nil
}

// promFiring is what Prometheus has firing from the generated rules.
func (f *fleet) promFiring() (map[alertKey]bool, error) {
	v, err := f.query(`ALERTS{alertstate="firing"}`)
	if err != nil {
		return nil, err
	}
	out := map[alertKey]bool{}
	for _, s := range v {
		out[alertKey{s.labels["alertname"], s.labels["node"], s.labels["producer"]}] = true
	}
	return out, nil
}

// amAlert is an alert as Alertmanager's API v2 lists it.
type amAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
}

func (f *fleet) amAlerts() ([]amAlert, error) {
	resp, err := http.Get(f.am + "/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var as []amAlert
	return as, json.NewDecoder(resp.Body).Decode(&as)
}

func splitAddr(t *testing.T, addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// mountTmpfs mounts a tmpfs of the given options on dir until the test ends.
func mountTmpfs(t *testing.T, dir, opts string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// fillDisk writes a file into dir until the file system is full.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	fh, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := fh.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
	}
}

// startGPUFixture serves what the GPU collector of a node with two GPUs
// exports (its golden exposition, internal/gpu/testdata/xid.prom), with
// every XID's last time set to now: GPU 0 has a critical XID (79).
func startGPUFixture(t *testing.T) string {
	t.Helper()
	golden, err := os.ReadFile(filepath.Join(root, "internal/gpu/testdata/xid.prom"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		now := strconv.FormatInt(time.Now().Unix(), 10)
		var b strings.Builder
		for _, line := range strings.Split(string(golden), "\n") {
			if strings.HasPrefix(line, "agaobs_gpu_xid_last_seconds{") {
				line = line[:strings.LastIndexByte(line, ' ')+1] + now
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
		// The producer on this node that holds memory on GPU 0.
		b.WriteString("# TYPE agaobs_producer_gpu_memory_bytes gauge\n" +
			`agaobs_producer_gpu_memory_bytes{producer="inference-tp0",uuid="GPU-00000000-0000-0000-0000-000000000000"} 4.2e+10` + "\n")
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, strings.TrimSuffix(b.String(), "\n"))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// startVictoriaMetrics runs Debian's victoria-metrics, the long-term store
// a fleet outgrowing one Prometheus would remote-write to.
func startVictoriaMetrics(t *testing.T) string {
	t.Helper()
	bin := testutil.RequireTool(t, "victoria-metrics")
	addr := testutil.FreeAddr(t)
	out := &testutil.LockedBuffer{}
	cmd := exec.Command(bin, "-storageDataPath="+t.TempDir(), "-httpListenAddr="+addr, "-search.latencyOffset=1s",
		"-retentionPeriod=1d", "-loggerLevel=ERROR")
	cmd.Stdout, cmd.Stderr = io.Discard, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("victoria-metrics output:\n%s", lastLines(out.String(), 20))
		}
	})
	base := "http://" + addr
	testutil.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "victoria-metrics did not start on %s", addr)
	return base
}
