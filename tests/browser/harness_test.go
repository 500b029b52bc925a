package browser

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

const root = "../.."

var agentBin testutil.Binary

var update = flag.Bool("update", false, "also copy the screenshot .e2e/live.png to docs/live.png")

// producerEnv makes the test binary a producer process (see producerMain).
const producerEnv = "AGAOBS_BROWSER_PRODUCER"

func TestMain(m *testing.M) {
	if os.Getenv(producerEnv) != "" {
		os.Exit(producerMain())
	}
	code := m.Run()
	agentBin.Remove()
	os.Exit(code)
}

// full reports whether wall-clock goals are asserted (make e2e), as
// tests/reliability does; otherwise they are only measured and logged.
func full() bool { return os.Getenv("AGAOBS_E2E_FULL") == "1" }

// producerMain writes forward events (~200/s, three layers) with the
// latency in the control file's first field (µs), a retrieval every tenth
// event, and every 500 ms a status snapshot with the KV utilization in the
// control file's second field, an audit record and heartbeats, until
// killed. The control file is re-read every 100 ms, so a test step is one
// write; when the latency changes, the wall time of the first event at the
// new latency goes to the switch file ("LATENCY UNIXNANO"), so the test
// knows in which second the change lands.
func producerMain() int {
	dir, name := os.Getenv("AGAOBS_RING_DIR"), os.Getenv("BROWSER_PRODUCER_NAME")
	control, switched := os.Getenv("BROWSER_CONTROL"), os.Getenv("BROWSER_SWITCHED")
	id := shm.Identity{Producer: name, Role: "inference", Model: "llama-live-8b", Pod: name + "-pod", Namespace: "inference"}
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
	ppid := os.Getppid() // the test: when it is gone, so is this producer
	latency, util := 100.0, 0.5
	if err := writeFileAtomic(switched, fmt.Sprintf("%g %d\n", latency, time.Now().UnixNano())); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	var lastRead, lastStatus time.Time
	for i := 0; ; i++ {
		now := time.Now()
		if now.Sub(lastRead) >= 100*time.Millisecond {
			lastRead = now
			if os.Getppid() != ppid {
				return 0
			}
			if b, err := os.ReadFile(control); err == nil {
				if f := strings.Fields(string(b)); len(f) >= 2 {
					l, err1 := strconv.ParseFloat(f[0], 64)
					u, err2 := strconv.ParseFloat(f[1], 64)
					if err1 == nil && err2 == nil {
						util = u
						if l != latency {
							latency = l
							_ = writeFileAtomic(switched, fmt.Sprintf("%g %d\n", latency, now.UnixNano()))
						}
					}
				}
			}
		}
		// A little spread below the set latency, so p50 and p99 differ and
		// a 5000 µs spike stays within the SLO's 5000 µs.
		lat := latency * (0.8 + 0.2*float64(i%10)/10)
		f := shm.Forward{LatencyUs: lat, GateMean: 0.5 + 0.05*float64(i%5), EntropyMean: 1.5, Layer: int32(i % 3),
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

// writeFileAtomic writes path through a rename, so a reader never sees a
// half-written file.
func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// producer is one producer process.
type producer struct {
	name, control, switched string
	cmd                     *exec.Cmd
}

func startProducer(t *testing.T, dir, ringDir, name string) *producer {
	t.Helper()
	p := &producer{name: name, control: filepath.Join(dir, name+".control"), switched: filepath.Join(dir, name+".switched")}
	if err := writeFileAtomic(p.control, "100 0.5\n"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), producerEnv+"=1", "AGAOBS_RING_DIR="+ringDir, "BROWSER_PRODUCER_NAME="+name,
		"BROWSER_CONTROL="+p.control, "BROWSER_SWITCHED="+p.switched)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // a killed test leaves no producer
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return p
}

// setLatency sets the producer's forward latency (µs) and returns the wall
// time of its first event at that latency.
func (p *producer) setLatency(t *testing.T, us float64) time.Time {
	t.Helper()
	if err := writeFileAtomic(p.control, fmt.Sprintf("%g 0.5\n", us)); err != nil {
		t.Fatal(err)
	}
	var at time.Time
	testutil.Eventually(t, 30*time.Second, func() bool {
		b, err := os.ReadFile(p.switched)
		if err != nil {
			return false
		}
		f := strings.Fields(string(b))
		if len(f) != 2 {
			return false
		}
		l, _ := strconv.ParseFloat(f[0], 64)
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		at = time.Unix(0, ns)
		return l == us
	}, "producer %s did not switch to %g µs", p.name, us)
	return at
}

// agentProc is the agent binary, restartable on the same addresses, state
// and audit store.
type agentProc struct {
	args                   []string
	bin                    string
	metrics, admin, health string // host:port
	mu                     sync.Mutex
	cmd                    *exec.Cmd
	out                    *testutil.LockedBuffer
	waitErr                chan error
}

// agentConfig is the agent's config file: one alert rule the spike
// scenario fires and clears (the default rules are off, so nothing else
// fires on the spike), and an SLO that is never violated (a row in the
// page's SLO table).
const agentConfig = `alert_use_default_rules: false
alert_eval_interval: 500ms
alert_rules:
  - name: live_p99
    metric: latency_p99
    operator: ">"
    threshold: 2000
    window_seconds: 2
    for: 0s
    severity: critical
    message: "p99 {value:.0f} us over {threshold:.0f} us"
slos:
  - name: live_latency
    objective: 0.99
    sli: {type: latency, threshold_us: 5000}
`

func newAgent(t *testing.T, dir, ringDir string) *agentProc {
	t.Helper()
	a := &agentProc{bin: agentBin.Path(t, root+"/cmd/agaobs-agent", "agaobs-agent"),
		metrics: testutil.FreeAddr(t), admin: testutil.FreeAddr(t), health: testutil.FreeAddr(t), out: &testutil.LockedBuffer{}}
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(agentConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	auditDB := filepath.Join(dir, "audit", "aga_audit.db")
	if err := os.MkdirAll(filepath.Dir(auditDB), 0o755); err != nil {
		t.Fatal(err)
	}
	host, port := splitAddr(t, a.metrics)
	hhost, hport := splitAddr(t, a.health)
	a.args = []string{"run", "--config", cfg, "--node-name", "gpu-node-17", "--ring-dir", ringDir,
		"--state-path", filepath.Join(dir, "state.db"), "--audit-storage-path", auditDB,
		"--prometheus-host", host, "--prometheus-port", port, "--admin-listen-address", a.admin,
		"--health-host", hhost, "--health-port", hport, "--gpu-enabled=false", "--bpf-enabled=false",
		"--log-enabled=false", "--producer-heartbeat-stale-seconds", "5"}
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() {
			t.Logf("agent output (last 40 lines):\n%s", lastLines(a.out.String(), 40))
		}
	})
	return a
}

func splitAddr(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// start runs the agent and waits until /metrics and /ui/ answer.
func (a *agentProc) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(a.bin, a.args...)
	cmd.Stdout, cmd.Stderr = io.Discard, a.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // a killed test leaves no agent
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	a.mu.Lock()
	a.cmd, a.waitErr = cmd, waitErr
	a.mu.Unlock()
	for _, u := range []string{"http://" + a.metrics + "/metrics", "http://" + a.admin + "/ui/"} {
		var exited error
		ok := testutil.WaitFor(30*time.Second, func() bool {
			select {
			case err := <-waitErr:
				exited = fmt.Errorf("agent exited: %v", err)
				waitErr <- err // for stop
				return true
			default:
			}
			resp, err := http.Get(u)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		if exited != nil || !ok {
			t.Fatalf("agent did not serve %s (%v):\n%s", u, exited, lastLines(a.out.String(), 20))
		}
	}
}

// stop sends SIGTERM and waits for the agent to exit (SIGKILL after 30 s).
func (a *agentProc) stop(t *testing.T) {
	a.mu.Lock()
	cmd, waitErr := a.cmd, a.waitErr
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-waitErr:
		if err != nil {
			t.Logf("agent exited: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("agent did not exit within 30 s of SIGTERM; killing it")
		_ = cmd.Process.Kill()
		<-waitErr
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// metricSum sums the values of family name's series whose labels include
// want (counters, gauges and untyped).
func metricSum(url, name string, want map[string]string) (float64, error) {
	mfs, err := testutil.Scrape(url)
	if err != nil {
		return 0, err
	}
	mf := mfs[name]
	if mf == nil {
		return 0, fmt.Errorf("%s: no family %s", url, name)
	}
	sum := 0.0
next:
	for _, m := range mf.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
					break
				}
			}
			if !found {
				continue next
			}
		}
		sum += value(m)
	}
	return sum, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}
