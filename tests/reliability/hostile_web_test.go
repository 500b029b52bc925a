package reliability_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/testutil"
)

// hostileNofile is the agent's open-file limit in TestHostileWebClients:
// small enough that the flood would exhaust it many times over.
const hostileNofile = 256

// A local process floods the health port with keep-alive connections that
// each send one request and then hold, against the agent binary under
// RLIMIT_NOFILE 256 and a live producer writing hot and audit records.
// During the flood every listener (health, admin, metrics) answers a fresh
// request: the oldest idle connections are evicted and the cap, fitted to
// the limit, keeps descriptors for the rest of the agent. Afterwards the
// connections drain, the producer's rings were never taken for dead (its
// files are still there, live), and every audit record it committed is in
// the store exactly once.
//
// The producer part also depends on ring liveness not reading EMFILE from
// /proc as "process gone" (internal/rings); with the connection cap the
// agent should not reach EMFILE at all.
func TestHostileWebClients(t *testing.T) {
	prlimit := testutil.RequireTool(t, "prlimit")
	flood := size(2000, 20000)
	var bin testutil.Binary
	t.Cleanup(bin.Remove)
	r := &restartRig{bin: bin.Path(t, "../../cmd/agaobs-agent", "agaobs-agent"), dir: t.TempDir(), tmp: t.TempDir(),
		metrics: testutil.FreeAddr(t), admin: testutil.FreeAddr(t), producer: "hostile-web"}
	r.db = filepath.Join(r.tmp, "audit.db")
	healthAddr := testutil.FreeAddr(t)
	resultFile := filepath.Join(r.tmp, "producer.json")
	prod := startHelper(t, r.dir, r.producer, "restart", "AGAOBS_RESULT="+resultFile)
	hotPath, audPath := restartRingPath(t, r.dir, prod.pid, "hot"), restartRingPath(t, r.dir, prod.pid, "audit")
	r.hot, r.aud = openRestartRing(t, hotPath), openRestartRing(t, audPath)

	a := startLimitedAgent(t, r, prlimit, healthAddr)
	base := map[string]string{
		"health":  "http://" + healthAddr + "/livez",
		"admin":   "http://" + r.admin + "/api/v1/status",
		"metrics": "http://" + r.metrics + "/metrics",
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, u := range base {
			if _, err := probeOnce(u); err != nil {
				return false
			}
		}
		return true
	}, "agent listeners not answering:\n%s", r.logTail())
	testutil.Eventually(t, 30*time.Second, func() bool { return hostileRingsLive(r) == "live live" },
		"producer rings not live before the flood: %s", r.adminGet("/api/v1/rings"))

	// The flood, with fresh probes of every listener running alongside.
	p := newProber(base)
	p.start()
	fl := newFlooder(healthAddr, flood)
	fl.run()
	// Held for a few of the consumer's once-a-second liveness checks:
	// every slot of the health listener is an idle flood connection.
	for held := time.Now(); time.Since(held) < 3*time.Second; {
		p.round()
		if s := hostileRingsLive(r); s != "live live" {
			t.Errorf("during the flood the producer's rings are %q, want live", s)
		}
	}
	p.stop()
	fds := agentFDs(a)
	mfs, err := r.scrape()
	if err != nil {
		t.Fatalf("scrape during the flood: %v", err)
	}
	evicted := seriesValue(mfs, "agaobs_web_connections_evicted_total", "health")
	capHealth := seriesValue(mfs, "agaobs_web_max_connections", "health")
	fl.closeAll()

	if n, failed := p.results(); failed > 0 || n < 3 {
		t.Errorf("fresh requests during the flood: %d of %d failed (first: %s)\n%s", failed, n, p.firstErr(), r.logTail())
	}
	if capHealth <= 0 || capHealth >= hostileNofile/3 || evicted <= 0 {
		t.Errorf("health listener: cap %v (want fitted below %d/3), %v evicted of %d flood connections served",
			capHealth, hostileNofile, evicted, fl.ok.Load())
	}
	if !strings.Contains(readAll(a.log), "web_max_connections lowered") {
		t.Errorf("no warning that web_max_connections was fitted to RLIMIT_NOFILE %d", hostileNofile)
	}

	// Recovery: the flood's connections are gone from the agent, every
	// listener answers, the producer is still live.
	testutil.Eventually(t, 30*time.Second, func() bool {
		mfs, err := r.scrape()
		return err == nil && seriesValue(mfs, "agaobs_web_connections", "health") <= 1
	}, "health connections not released after the flood")
	for name, u := range base {
		if _, err := probeOnce(u); err != nil {
			t.Errorf("%s after the flood: %v", name, err)
		}
	}
	if s := hostileRingsLive(r); s != "live live" {
		t.Errorf("after the flood the producer's rings are %q, want live", s)
	}
	for _, path := range []string{hotPath, audPath} {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("live producer's ring deleted: %v", err)
		}
	}

	// Stop the producer; its rings drain; then the agent; then count.
	res := stopRestartProducer(t, prod, resultFile)
	testutil.Eventually(t, 30*time.Second, func() bool {
		au := r.aud.snap()
		return au.head == au.tail && au.headSeq == au.lastSeq
	}, "audit ring not drained after the producer closed it: %+v\n%s", r.aud.snap(), r.logTail())
	a.stop(t)
	dup, missing, extra, gaps := restartAuditOnce(t, r.db, r.producer, res.AuditCommitted)
	if dup != 0 || missing != 0 || extra != 0 || gaps != uint64(res.AuditDropped) {
		t.Errorf("audit store vs producer: %d committed; %d duplicated, %d missing, %d never committed; gap records say %d lost, producer dropped %d",
			len(res.AuditCommitted), dup, missing, extra, gaps, res.AuditDropped)
	}
	if t.Failed() {
		return
	}
	n, _ := p.results()
	slowest := p.slowest.Round(time.Millisecond)
	t.Logf("%d flood connections (%d served, %d failed, %d held at once); health cap %v, %v evicted; agent fds at the peak %d/%d; %d fresh probes, slowest %v; audit %d committed, %d dropped",
		flood, fl.ok.Load(), fl.failed.Load(), fl.hold, capHealth, evicted, fds, hostileNofile, n, slowest, len(res.AuditCommitted), res.AuditDropped)
	report(t, "keep-alive connection flood on the health port",
		fmt.Sprintf("agent under RLIMIT_NOFILE %d; %d keep-alive connections (one request each, then held); one producer at %d hot + %d audit records/s",
			hostileNofile, flood, restartHotRate, restartAuditRate),
		fmt.Sprintf("health, admin and metrics answered all %d fresh requests during the flood (slowest %v; health cap fitted to %v, %v idle connections evicted, agent ≤ %d fds); connections released after; producer rings kept live; audit: %d committed, 0 missing, 0 duplicated",
			n, slowest, capHealth, evicted, fds, len(res.AuditCommitted)))
}

// startLimitedAgent runs `agaobs-agent run` under prlimit --nofile.
func startLimitedAgent(t *testing.T, r *restartRig, prlimit, healthAddr string) *restartAgent {
	t.Helper()
	mhost, mport, _ := strings.Cut(r.metrics, ":")
	hhost, hport, _ := strings.Cut(healthAddr, ":")
	a := &restartAgent{log: filepath.Join(r.tmp, "agent.log"), done: make(chan struct{})}
	out, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	a.cmd = exec.Command(prlimit, fmt.Sprintf("--nofile=%d:%d", hostileNofile, hostileNofile), "--", r.bin, "run",
		"--ring-dir", r.dir, "--state-path", filepath.Join(r.tmp, "state.db"), "--audit-storage-path", r.db,
		"--prometheus-host", mhost, "--prometheus-port", mport, "--admin-listen-address", r.admin,
		"--health-host", hhost, "--health-port", hport, "--producer-retention", "1s", "--ring-remove-dead=true",
		"--gpu-enabled=false", "--bpf-enabled=false", "--log-enabled=false", "--alert-enabled=false")
	a.cmd.Stdout, a.cmd.Stderr = out, out
	a.started = time.Now()
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.done) }()
	r.agents = append(r.agents, a)
	t.Cleanup(func() { a.cmd.Process.Kill(); <-a.done })
	return a
}

// hostileRingsLive lists the states of the producer's rings ("live live"
// while both are consumed).
func hostileRingsLive(r *restartRig) string {
	var body struct {
		Rings []rings.RingInfo `json:"rings"`
	}
	if err := json.Unmarshal([]byte(r.adminGet("/api/v1/rings")), &body); err != nil {
		return "admin API: " + err.Error()
	}
	var states []string
	for _, ri := range body.Rings {
		if ri.Producer == r.producer {
			states = append(states, ri.State)
		}
	}
	return strings.Join(states, " ")
}

// seriesValue is the value of family name for listener (or -1).
func seriesValue(mfs map[string]*dto.MetricFamily, name, listener string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			if l.GetName() == "listener" && l.GetValue() == listener {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

// agentFDs counts the descriptors the agent process holds (prlimit execs
// it, so the pid is the agent's).
func agentFDs(a *restartAgent) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.cmd.Process.Pid))
	return len(ents)
}

func readAll(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// probeOnce makes one request on a new connection, as a kubelet probe does.
func probeOnce(url string) (int, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// prober requests every URL on fresh connections, round after round, in
// the background or on demand.
type prober struct {
	urls     map[string]string
	mu       sync.Mutex
	n, fails int
	first    string
	slowest  time.Duration // reported, not asserted
	stopc    chan struct{}
	done     chan struct{}
}

func newProber(urls map[string]string) *prober {
	return &prober{urls: urls, stopc: make(chan struct{}), done: make(chan struct{})}
}

func (p *prober) round() {
	for name, u := range p.urls {
		t0 := time.Now()
		_, err := probeOnce(u)
		p.mu.Lock()
		p.slowest = max(p.slowest, time.Since(t0))
		p.n++
		if err != nil {
			p.fails++
			if p.first == "" {
				p.first = name + ": " + err.Error()
			}
		}
		p.mu.Unlock()
	}
}

func (p *prober) start() {
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stopc:
				return
			default:
			}
			p.round()
		}
	}()
}

func (p *prober) stop() { close(p.stopc); <-p.done }

func (p *prober) results() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, p.fails
}

func (p *prober) firstErr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

// flooder opens total keep-alive connections that each send one request,
// read the reply and then hold, keeping at most hold of them open on this
// side (its own descriptor limit).
type flooder struct {
	addr        string
	total, hold int
	ok, failed  atomic.Int64
	mu          sync.Mutex
	held        []net.Conn
}

func newFlooder(addr string, total int) *flooder {
	hold := total
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(total)+1000 {
		hold = max(100, int(rl.Cur)-1000)
	}
	return &flooder{addr: addr, total: total, hold: hold}
}

func (f *flooder) run() {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(f.total) {
				c, err := f.one()
				if err != nil {
					f.failed.Add(1)
					continue
				}
				f.ok.Add(1)
				f.mu.Lock()
				f.held = append(f.held, c)
				if len(f.held) > f.hold {
					f.held[0].Close()
					f.held = f.held[1:]
				}
				f.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func (f *flooder) one() (net.Conn, error) {
	c, err := net.DialTimeout("tcp", f.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: flood\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetDeadline(time.Time{})
	return c, nil
}

func (f *flooder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.held {
		c.Close()
	}
	f.held = nil
}
