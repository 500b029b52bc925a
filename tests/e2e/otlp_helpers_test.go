package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/testutil"
)

// --- the collector (tests/otelcol) ------------------------------------------

// otelCollector is the test distribution of the OpenTelemetry Collector:
// the otlp receiver and the agaobstest exporter, which appends one OTLP/JSON
// line per received batch to traces.jsonl, logs.jsonl and metrics.jsonl.
type otelCollector struct {
	bin, dir, addr, cfg string
	cmd                 *exec.Cmd
	stderr              *testutil.LockedBuffer
}

// otelcolBinary builds tests/otelcol (its own module) into a test folder.
func otelcolBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "otelcol")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(root, "tests/otelcol")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build tests/otelcol: %v\n%s", err, out)
	}
	return bin
}

// newOTLPCollector writes the collector's config (TLS when cert is set) and
// starts it.
func newOTLPCollector(t *testing.T, bin, cert, key string) *otelCollector {
	t.Helper()
	c := &otelCollector{bin: bin, dir: t.TempDir(), addr: testutil.FreeAddr(t)}
	tls := ""
	if cert != "" {
		tls = fmt.Sprintf("\n        tls: {cert_file: %s, key_file: %s}", cert, key)
	}
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s%s
exporters:
  agaobstest: {directory: %s, delay: 0s}
service:
  telemetry:
    metrics: {level: none}
  pipelines:
    traces:  {receivers: [otlp], exporters: [agaobstest]}
    logs:    {receivers: [otlp], exporters: [agaobstest]}
    metrics: {receivers: [otlp], exporters: [agaobstest]}
`, c.addr, tls, c.dir)
	c.cfg = filepath.Join(t.TempDir(), "otelcol.yaml")
	if err := os.WriteFile(c.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(t)
	return c
}

func (c *otelCollector) start(t *testing.T) {
	t.Helper()
	c.stderr = &testutil.LockedBuffer{}
	cmd := exec.Command(c.bin, "--config", c.cfg)
	cmd.Stderr, cmd.Stdout = c.stderr, c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.cmd = cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !testutil.WaitFor(60*time.Second, func() bool {
		return strings.Contains(c.stderr.String(), "Everything is ready")
	}) {
		t.Fatalf("collector did not start:\n%s", c.stderr.String())
	}
}

// stop ends the collector with SIGTERM.
func (c *otelCollector) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("collector did not stop:\n%s", c.stderr.String())
	}
}

// lines returns the JSON lines of one of the exporter's files.
func (c *otelCollector) lines(name string) [][]byte {
	b, _ := os.ReadFile(filepath.Join(c.dir, name))
	return completeLines(b)
}

// completeLines splits b into its non-blank lines, leaving out a last line
// that has no newline yet. The exporter writes each line with one write(2),
// but a read of a regular file can see that write half done (the file grows
// a page at a time); the line is read whole on the next poll.
func completeLines(b []byte) [][]byte {
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// --- OTLP/JSON, as pdata's JSON marshalers write it --------------------------
// ids are hex strings, 64-bit integers are strings.

type otlpValue struct {
	StringValue *string         `json:"stringValue"`
	IntValue    json.RawMessage `json:"intValue"`
	DoubleValue *float64        `json:"doubleValue"`
	BoolValue   *bool           `json:"boolValue"`
}

// String renders the value as Go would: 42, 1.5, true, text.
func (v otlpValue) String() string {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return strings.Trim(string(v.IntValue), `"`)
	case v.DoubleValue != nil:
		return strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	}
	return ""
}

type otlpKV struct {
	Key   string    `json:"key"`
	Value otlpValue `json:"value"`
}

type otlpAttrs []otlpKV

func (a otlpAttrs) Map() map[string]string {
	m := make(map[string]string, len(a))
	for _, kv := range a {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

type otlpResource struct {
	Attributes otlpAttrs `json:"attributes"`
}

type otlpSpan struct {
	TraceID    string    `json:"traceId"`
	SpanID     string    `json:"spanId"`
	Name       string    `json:"name"`
	Start      string    `json:"startTimeUnixNano"`
	End        string    `json:"endTimeUnixNano"`
	Attributes otlpAttrs `json:"attributes"`
	Status     struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
}

type otlpTraces struct {
	ResourceSpans []struct {
		Resource   otlpResource `json:"resource"`
		ScopeSpans []struct {
			Spans []otlpSpan `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type otlpLogRecord struct {
	EventName  string    `json:"eventName"`
	Attributes otlpAttrs `json:"attributes"`
	TraceID    string    `json:"traceId"`
	SpanID     string    `json:"spanId"`
}

type otlpLogs struct {
	ResourceLogs []struct {
		Resource  otlpResource `json:"resource"`
		ScopeLogs []struct {
			LogRecords []otlpLogRecord `json:"logRecords"`
		} `json:"scopeLogs"`
	} `json:"resourceLogs"`
}

type otlpNumberPoint struct {
	Attributes otlpAttrs       `json:"attributes"`
	AsInt      json.RawMessage `json:"asInt"`
	AsDouble   *float64        `json:"asDouble"`
	Time       string          `json:"timeUnixNano"`
}

type otlpMetric struct {
	Name string `json:"name"`
	Sum  *struct {
		DataPoints  []otlpNumberPoint `json:"dataPoints"`
		Temporality int               `json:"aggregationTemporality"`
		Monotonic   bool              `json:"isMonotonic"`
	} `json:"sum"`
	Gauge *struct {
		DataPoints []otlpNumberPoint `json:"dataPoints"`
	} `json:"gauge"`
}

type otlpMetrics struct {
	ResourceMetrics []struct {
		Resource     otlpResource `json:"resource"`
		ScopeMetrics []struct {
			Metrics []otlpMetric `json:"metrics"`
		} `json:"scopeMetrics"`
	} `json:"resourceMetrics"`
}

// otlpResSpan is a span with its resource's attributes.
type otlpResSpan struct {
	res  map[string]string
	span otlpSpan
	attr map[string]string
}

func (c *otelCollector) spans(t *testing.T) []otlpResSpan {
	var out []otlpResSpan
	for _, l := range c.lines("traces.jsonl") {
		var tr otlpTraces
		if err := json.Unmarshal(l, &tr); err != nil {
			t.Fatalf("traces.jsonl: %v: %.300s", err, l)
		}
		for _, rs := range tr.ResourceSpans {
			res := rs.Resource.Attributes.Map()
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, otlpResSpan{res: res, span: s, attr: s.Attributes.Map()})
				}
			}
		}
	}
	return out
}

type otlpResLog struct {
	res  map[string]string
	rec  otlpLogRecord
	attr map[string]string
}

func (c *otelCollector) logs(t *testing.T) []otlpResLog {
	var out []otlpResLog
	for _, l := range c.lines("logs.jsonl") {
		var lg otlpLogs
		if err := json.Unmarshal(l, &lg); err != nil {
			t.Fatalf("logs.jsonl: %v: %.300s", err, l)
		}
		for _, rl := range lg.ResourceLogs {
			res := rl.Resource.Attributes.Map()
			for _, sl := range rl.ScopeLogs {
				for _, r := range sl.LogRecords {
					out = append(out, otlpResLog{res: res, rec: r, attr: r.Attributes.Map()})
				}
			}
		}
	}
	return out
}

// otlpMetricExport is one resource's metrics of one export, in arrival order.
type otlpMetricExport struct {
	res     map[string]string
	metrics []otlpMetric
}

func (c *otelCollector) metrics(t *testing.T) []otlpMetricExport {
	var out []otlpMetricExport
	for _, l := range c.lines("metrics.jsonl") {
		var m otlpMetrics
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("metrics.jsonl: %v: %.300s", err, l)
		}
		for _, rm := range m.ResourceMetrics {
			e := otlpMetricExport{res: rm.Resource.Attributes.Map()}
			for _, sm := range rm.ScopeMetrics {
				e.metrics = append(e.metrics, sm.Metrics...)
			}
			out = append(out, e)
		}
	}
	return out
}

func otlpPointInt(p otlpNumberPoint) int64 {
	if p.AsInt != nil {
		n, _ := strconv.ParseInt(strings.Trim(string(p.AsInt), `"`), 10, 64)
		return n
	}
	if p.AsDouble != nil {
		return int64(*p.AsDouble)
	}
	return 0
}

// --- the agent ---------------------------------------------------------------

type otlpAgent struct {
	cmd         *exec.Cmd
	url, admin  string
	stderr      *testutil.LockedBuffer
	dir, db, st string
	extra       []string
}

// startOTLPAgent runs the agent with a state file (the audit cursor) and an
// admin listener (the audit API), plus extra flags.
func startOTLPAgent(t *testing.T, dir, db, state string, extra ...string) *otlpAgent {
	t.Helper()
	a := &otlpAgent{dir: dir, db: db, st: state, extra: extra}
	a.start(t)
	return a
}

func (a *otlpAgent) start(t *testing.T) {
	t.Helper()
	port := testutil.FreePort(t)
	a.admin = "127.0.0.1:" + testutil.FreePort(t)
	args := append([]string{"run", "--ring-dir", a.dir, "--state-path", a.st, "--audit-storage-path", a.db,
		"--admin-listen-address", a.admin, "--prometheus-host", "127.0.0.1", "--prometheus-port", port,
		"--otlp-enabled"}, a.extra...)
	cmd := exec.Command(agentBinary(t), args...)
	a.stderr = &testutil.LockedBuffer{}
	cmd.Stderr = a.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.cmd = cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	a.url = "http://127.0.0.1:" + port + "/metrics"
	if !testutil.WaitFor(60*time.Second, func() bool {
		resp, err := http.Get(a.url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		t.Fatalf("agent did not serve %s:\n%s", a.url, a.stderr.String())
	}
}

func (a *otlpAgent) kill() {
	a.cmd.Process.Kill()
	a.cmd.Wait()
}

func (a *otlpAgent) stop(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exit: %v\n%s", err, a.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not stop\n%s", a.stderr.String())
	}
}

func (a *otlpAgent) exposition() string {
	resp, err := http.Get(a.url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// value is the sum of the samples of family name whose labels contain every
// label in want (text exposition).
func (a *otlpAgent) value(name string, want ...string) float64 {
	total := 0.0
	for _, line := range strings.Split(a.exposition(), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(line, w) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			total += v
		}
	}
	return total
}

// auditRecords reads the store through the admin API (the agent holds it).
func (a *otlpAgent) auditRecords() ([]audit.Record, error) {
	resp, err := http.Get("http://" + a.admin + "/api/v1/audit?limit=0")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var p audit.Page
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return nil, err
	}
	return p.Records, nil
}

// --- Python producers --------------------------------------------------------

// otlpProducerScript is run by python3 with the stock client and the
// stand-in EventBus. It prints its pid and ring paths, then obeys lines on
// stdin ("forwards", "audit <n> <tag>", "exit"), answering "ok" to each.
// Forward i: layer i%3, applied when i is even, latency otlpLatency(i).
const otlpProducerScript = `
import json, os, sys
sys.path.insert(0, os.environ["STANDIN_DIR"])
import standin
from aga_observability import setup_observability, shutdown_observability

N = int(os.environ["OTLP_FORWARDS"])
R = int(os.environ["OTLP_RETRIEVALS"])

def latency(i):
    if i % 10 == 3:
        return float(1000 + 3 * (i % 97))
    return float(50 + i % 900)

bus = standin.EventBus()
stack = setup_observability(bus)
if stack is None:
    sys.exit("setup_observability failed")
p = stack.ring_paths
print(json.dumps({"pid": os.getpid(), "hot": p["hot"], "audit": p["audit"]}), flush=True)
for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "exit":
        break
    if cmd[0] == "forwards":
        for i in range(N):
            bus.emit("forward", {"layer_idx": i % 3, "aga_applied": i % 2 == 0, "gate_mean": 0.25,
                                 "entropy_mean": 0.5, "latency_us": latency(i)})
        for i in range(R):
            bus.emit("retrieval", {"layer_idx": i % 3, "results_count": 4, "injected_count": 2,
                                   "budget_remaining": 1, "ids": ["a"], "scores": [0.5]})
    elif cmd[0] == "audit":
        for j in range(int(cmd[1])):
            bus.emit("audit", {"operation": "register", "details": {"id": "%s-%d" % (cmd[2], j)},
                               "success": True, "error": None})
    print("ok", flush=True)
shutdown_observability()
`

// otlpLatency is the latency the script writes for forward i.
func otlpLatency(i int) float64 {
	if i%10 == 3 {
		return float64(1000 + 3*(i%97))
	}
	return float64(50 + i%900)
}

type otlpPyProducer struct {
	name, pod, ns string
	pid           int
	hot, auditR   string
	cmd           *exec.Cmd
	stdin         io.WriteCloser
	out           *bufio.Reader
	stderr        *testutil.LockedBuffer
	mu            sync.Mutex
}

func startOTLPPyProducer(t *testing.T, py, script, ringDir, name, pod, ns string, forwards, retrievals int) *otlpPyProducer {
	t.Helper()
	p := &otlpPyProducer{name: name, pod: pod, ns: ns, stderr: &testutil.LockedBuffer{}}
	cmd := exec.Command(py, script)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "clients/python"), "AGAOBS_RING_DIR="+ringDir,
		"AGAOBS_PRODUCER="+name, "POD_NAME="+pod, "POD_NAMESPACE="+ns, "STANDIN_DIR="+filepath.Join(root, "clients/python/tests"),
		"OTLP_FORWARDS="+strconv.Itoa(forwards), "OTLP_RETRIEVALS="+strconv.Itoa(retrievals))
	p.stdin, _ = cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p.out = bufio.NewReader(stdout)
	line, err := p.out.ReadString('\n')
	var hello struct {
		Pid        int
		Hot, Audit string
	}
	if err != nil || json.Unmarshal([]byte(line), &hello) != nil {
		t.Fatalf("producer %s: %q %v\n%s", name, line, err, p.stderr.String())
	}
	p.pid, p.hot, p.auditR = hello.Pid, hello.Hot, hello.Audit
	return p
}

// do sends one command and waits for its "ok".
func (p *otlpPyProducer) do(t *testing.T, cmd string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		t.Fatalf("producer %s: %v", p.name, err)
	}
	if line, err := p.out.ReadString('\n'); err != nil || line != "ok\n" {
		t.Fatalf("producer %s: %s: %q %v\n%s", p.name, cmd, line, err, p.stderr.String())
	}
}

func (p *otlpPyProducer) exit(t *testing.T) {
	t.Helper()
	io.WriteString(p.stdin, "exit\n")
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("producer %s: %v\n%s", p.name, err, p.stderr.String())
	}
}

// otlpWaitLive waits until the agent took the producer on.
func otlpWaitLive(t *testing.T, a *otlpAgent, names ...string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, func() bool {
		exp := a.exposition()
		for _, n := range names {
			if !otlpLiveRe(n).MatchString(exp) {
				return false
			}
		}
		return true
	}, "the agent did not take %v on", names)
}

func otlpLiveRe(name string) *regexp.Regexp {
	return regexp.MustCompile(`agaobs_producer_state\{[^}]*producer="` + regexp.QuoteMeta(name) + `"[^}]*state="live"[^}]*\} 1`)
}
