package reliability_test

import (
	"bufio"
	"bytes"
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
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/testutil"
)

// hostileAgentBin is the agent binary of this file's tests, run as its own
// process so its RSS and CPU time are the agent's alone.
var hostileAgentBin testutil.Binary

// hostileAgent is an agent process with its three listeners.
type hostileAgent struct {
	cmd                             *exec.Cmd
	pid                             int
	metrics, health, admin, auditDB string
	log                             *testutil.LockedBuffer
	exited                          bool
}

func startHostileAgent(t *testing.T, ringDir string, extra ...string) *hostileAgent {
	t.Helper()
	return startWrappedAgent(t, ringDir, nil, extra...)
}

// startWrappedAgent runs the agent under wrap (e.g. prlimit and its flags).
func startWrappedAgent(t *testing.T, ringDir string, wrap []string, extra ...string) *hostileAgent {
	t.Helper()
	bin := hostileAgentBin.Path(t, "../../cmd/agaobs-agent", "agaobs-agent")
	tmp := t.TempDir()
	a := &hostileAgent{metrics: testutil.FreeAddr(t), health: testutil.FreeAddr(t), admin: testutil.FreeAddr(t),
		auditDB: filepath.Join(tmp, "aga_audit.db"), log: &testutil.LockedBuffer{}}
	host := func(addr string) string { h, _, _ := strings.Cut(addr, ":"); return h }
	port := func(addr string) string { _, p, _ := strings.Cut(addr, ":"); return p }
	args := append([]string{"run", "--ring-dir", ringDir,
		"--state-path", filepath.Join(tmp, "agaobs_state.db"), "--audit-storage-path", a.auditDB,
		"--prometheus-host", host(a.metrics), "--prometheus-port", port(a.metrics),
		"--health-enabled=true", "--health-host", host(a.health), "--health-port", port(a.health),
		"--admin-listen-address", a.admin, "--log-enabled=false",
		"--gpu-enabled=false", "--bpf-enabled=false", "--agent-log-level", "info"}, extra...)
	argv := append(append(append([]string{}, wrap...), bin), args...)
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Stderr = a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.pid = a.cmd.Process.Pid // prlimit execs the agent: same pid
	t.Cleanup(func() {
		if !a.exited {
			a.cmd.Process.Kill()
			a.cmd.Wait()
		}
	})
	testutil.Eventually(t, 30*time.Second, func() bool { _, err := a.scrape(); return err == nil }, "agent did not serve /metrics: %s", a.log)
	return a
}

// scrape parses /metrics in the text format with a fresh connection.
func (a *hostileAgent) scrape() (map[string]*dto.MetricFamily, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + a.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bytes.NewReader(body))
}

// getJSON decodes a GET of the admin API.
func (a *hostileAgent) getJSON(path string, v any) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + a.admin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// alive reports whether the agent is still the process started.
func (a *hostileAgent) alive() bool {
	return a.cmd.ProcessState == nil && syscall.Kill(a.pid, 0) == nil
}

// stop sends SIGTERM and waits (the audit store is then readable).
func (a *hostileAgent) stop(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		a.exited = true
		if err != nil {
			t.Errorf("agent exit: %v\n%s", err, a.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not stop within 30 s of SIGTERM")
	}
}

// shmDir is a ring directory on /dev/shm (tmpfs), where rings live on a
// node; a temporary directory where there is none.
func shmDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "agaobs-hostile-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// hold lets d pass: the length of an attack or of a measuring window,
// never a wait for something to happen.
func hold(d time.Duration) { <-time.After(d) }

// value is one series of a family whose labels include want (0 if none).
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	m := testutil.FindSeries([]*dto.MetricFamily{mfs[name]}, name, want)
	if m == nil {
		return 0
	}
	return m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
}

// junkChurn creates and unlinks files from a fixed set of names in dir
// until stop closes, as a hostile tenant with write access to the ring
// directory would; it returns how many files it created.
func junkChurn(dir string, names int, stop <-chan struct{}) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := filepath.Join(dir, fmt.Sprintf("junk-%d.ring", i%names))
			if os.WriteFile(p, []byte("junk"), 0o600) == nil {
				n.Add(1)
			}
			os.Remove(filepath.Join(dir, fmt.Sprintf("junk-%d.ring", (i+names/2)%names)))
		}
	}()
	return &n
}

// doorbellFlood writes to the agent's doorbell FIFO without pause until
// stop closes.
func doorbellFlood(t *testing.T, dir string, stop <-chan struct{}) {
	f, err := os.OpenFile(filepath.Join(dir, "agaobs.doorbell"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("doorbell: %v", err)
	}
	go func() {
		defer f.Close()
		b := []byte{1}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := f.Write(b); err != nil {
				hold(50 * time.Microsecond) // pipe full: the agent reads it, we keep pushing
			}
		}
	}()
}

// idleConns opens n keep-alive connections to addr, each sending one
// request and then holding the connection; it returns how many got an
// answer. Connections the agent closes are not reopened.
func idleConns(addr string, n int) (answered int, closeAll func()) {
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			continue
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answered++
		}
		c.SetDeadline(time.Time{})
	}
	return answered, func() {
		for _, c := range conns {
			c.Close()
		}
	}
}

// Junk ring files: 10 000 of them sit in the ring directory, then a tenant
// creates and unlinks 500 names in a loop. The agent examines each file
// once, its RSS grows by at most 10 MiB, it idles at under 1 % of a core
// beside them (asserted at full size), and the rejections cost one audit
// record and one log line per (uid, reason) and minute.
func TestJunkRingFiles(t *testing.T) {
	ringDir := shmDir(t)
	a := startHostileAgent(t, ringDir)
	rss0, err := procStatusKiB(a.pid)
	if err != nil {
		t.Fatal(err)
	}
	const junk = 10000
	for i := 0; i < junk; i++ {
		if err := os.WriteFile(filepath.Join(ringDir, fmt.Sprintf("static-%05d.ring", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		mfs, err := a.scrape()
		return err == nil && value(mfs, "agaobs_rings_rejected_total", map[string]string{"reason": "not_a_ring"}) >= junk
	}, "junk files not all rejected")
	// Idle beside the junk, once the rejections are through (their audit
	// record committed, the heap collected): CPU time over a window of
	// rescans, then RSS.
	hold(3 * time.Second)
	window := time.Duration(size(5, 30)) * time.Second
	cpu0, _ := procCPUTime(a.pid)
	t0 := time.Now()
	hold(window)
	cpu1, _ := procCPUTime(a.pid)
	idle := float64(cpu1-cpu0) / float64(time.Since(t0)) * 100
	rss1, _ := procStatusKiB(a.pid)
	growth := (rss1["VmRSS"] - rss0["VmRSS"]) / 1024

	// Churn: create and unlink 500 names for 10 s (3 s short).
	stop := make(chan struct{})
	churned := junkChurn(ringDir, 500, stop)
	hold(time.Duration(size(3, 10)) * time.Second)
	close(stop)
	mfs, err := a.scrape()
	if err != nil {
		t.Fatal(err)
	}
	rejected := value(mfs, "agaobs_rings_rejected_total", map[string]string{"reason": "not_a_ring"})
	if !a.alive() {
		t.Fatalf("agent died:\n%s", a.log)
	}
	a.stop(t)
	logLines := strings.Count(a.log.String(), "ring rejected")
	st, err := audit.OpenBolt(a.auditDB, audit.BoltOptions{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := audit.QueryPage(st, audit.Filter{Operation: "ring_rejected"})
	if err != nil {
		t.Fatal(err)
	}
	var counted float64
	for _, r := range page.Records {
		var d struct {
			Count float64 `json:"count"`
		}
		json.Unmarshal(r.Details, &d)
		counted += d.Count
	}
	// One key (this uid, not_a_ring): the first rejection at once, then
	// one summary a minute and one at shutdown; the run is shorter than
	// two minutes. Together they count every rejection.
	if len(page.Records) > 4 || logLines > 4 {
		t.Errorf("%d ring_rejected audit records and %d log lines for %.0f rejections", len(page.Records), logLines, rejected)
	}
	if counted < rejected {
		t.Errorf("audit records count %v rejections, the agent counted %v", counted, rejected)
	}
	if growth > 10 {
		t.Errorf("RSS grew %.1f MiB with %d junk files, want <= 10", growth, junk)
	}
	if full() && idle > 1 {
		t.Errorf("idle CPU beside %d junk files: %.2f %% of a core, want <= 1 %%", junk, idle)
	}
	report(t, "junk ring files in the ring directory", fmt.Sprintf("%d junk files, then %d created/unlinked over 500 names", junk, churned.Load()),
		fmt.Sprintf("RSS +%.1f MiB; idle CPU %.2f %% of a core; %.0f rejections → %d audit records, %d log lines; agent up", growth, idle, rejected, len(page.Records), logLines))
}

// Every attack at once beside two honest producers at 10 k events/s each:
// a producer truncating its ring again and again, a junk-file churner,
// 5 000 idle keep-alive connections (500 short), and a doorbell flooder.
// The honest producers lose nothing (counters and the audit trail exact),
// /metrics stays parseable, RSS stays <= 100 MiB and the agent never
// restarts. 5 minutes at full size, 30 s in make test.
func TestAllAttacksAtOnce(t *testing.T) {
	total := time.Duration(size(30, 300)) * time.Second
	ringDir := shmDir(t)
	a := startHostileAgent(t, ringDir)
	honest := []*soakProc{
		startSoakProducer(t, ringDir, "honest-0", 0, 10000),
		startSoakProducer(t, ringDir, "honest-1", 1, 10000),
	}
	stop := make(chan struct{})
	churned := junkChurn(ringDir, 500, stop)
	doorbellFlood(t, ringDir, stop)
	answered, closeConns := idleConns(a.health, size(500, 5000))
	defer closeConns()

	// The truncating producer: a new one as soon as the last is done.
	var truncations atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		modes := []string{"truncate-0", "truncate-half", "ftruncate-0", "ftruncate-half"}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "AGAOBS_RELIABILITY_HELPER=hostile-truncate", "AGAOBS_RING_DIR="+ringDir,
				"AGAOBS_PRODUCER=hostile", "AGAOBS_HOSTILE_MODE="+modes[i%len(modes)],
				fmt.Sprintf("AGAOBS_HOSTILE_DELAY=%dms", 5+i%50), "AGAOBS_HOSTILE_EXIT=1")
			out, _ := cmd.Output()
			if bytes.Contains(out, []byte("truncated")) {
				truncations.Add(1)
			}
		}
	}()

	var maxRSS float64
	var peakParts string
	var scrapeErrs []string
	scrapes := 0
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(start) < total {
		<-tick.C
		if !a.alive() {
			t.Fatalf("agent died after %v:\n%s", time.Since(start), a.log)
		}
		st, err := procStatusKiB(a.pid)
		if err == nil && st["VmRSS"]/1024 > maxRSS {
			maxRSS = st["VmRSS"] / 1024
			peakParts = fmt.Sprintf("anon %.1f, shmem %.1f, file %.1f MiB", st["RssAnon"]/1024, st["RssShmem"]/1024, st["RssFile"]/1024)
		}
		if _, err := a.scrape(); err != nil {
			scrapeErrs = append(scrapeErrs, err.Error())
		}
		scrapes++
	}
	close(stop)
	wg.Wait()
	closeConns()

	var want = map[string]soakStats{}
	for _, p := range honest {
		want[p.name] = p.finish(t)
	}
	var mfs map[string]*dto.MetricFamily
	var err error
	testutil.Eventually(t, 30*time.Second, func() bool {
		mfs, err = a.scrape()
		if err != nil {
			return false
		}
		for name, st := range want {
			got := value(mfs, "agaobs_ring_events_total", map[string]string{"producer": name, "class": "hot"}) +
				value(mfs, "agaobs_ring_events_total", map[string]string{"producer": name, "class": "audit"})
			if got < float64(st.HotWritten+st.AuditWritten) {
				return false
			}
		}
		return true
	}, "honest producers not fully consumed")
	quarantined := value(mfs, "agaobs_rings", map[string]string{"state": "quarantined"})
	if !a.alive() {
		t.Fatalf("agent died:\n%s", a.log)
	}
	a.stop(t)

	st, err := audit.OpenBolt(a.auditDB, audit.BoltOptions{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, s := range want {
		if s.HotDropped+s.AuditDropped != 0 || s.Errors != 0 {
			t.Errorf("%s dropped %d hot and %d audit records (errors %d)", name, s.HotDropped, s.AuditDropped, s.Errors)
		}
		got := value(mfs, "agaobs_ring_events_total", map[string]string{"producer": name, "class": "hot"}) +
			value(mfs, "agaobs_ring_events_total", map[string]string{"producer": name, "class": "audit"})
		if got != float64(s.HotWritten+s.AuditWritten) {
			t.Errorf("%s: agent consumed %.0f records, producer wrote %d", name, got, s.HotWritten+s.AuditWritten)
		}
		stored := 0
		page, err := audit.QueryPage(st, audit.Filter{Producer: name})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			if r.Kind == audit.KindProducer {
				stored++
			}
			if r.Kind == audit.KindGap {
				t.Errorf("%s: gap record %+v", name, r)
			}
		}
		if uint64(stored) != s.Audits {
			t.Errorf("%s: %d audit records stored, %d written", name, stored, s.Audits)
		}
	}
	if len(scrapeErrs) > 0 {
		t.Errorf("%d of %d scrapes failed during the attacks: %v", len(scrapeErrs), scrapes, scrapeErrs[:min(3, len(scrapeErrs))])
	}
	// RSS is a measurement: asserted at full size (make e2e), reported in
	// the shortened run, where a loaded machine starves the agent of CPU
	// and its backlog, not its design, sets the peak.
	if maxRSS > 100 {
		if full() {
			t.Errorf("agent RSS peaked at %.1f MiB (%s), want <= 100", maxRSS, peakParts)
		} else {
			t.Logf("agent RSS peaked at %.1f MiB (%s); the 100 MiB bound is asserted at full size", maxRSS, peakParts)
		}
	}
	if truncations.Load() == 0 || quarantined == 0 {
		t.Errorf("truncating producer: %d truncations, %v rings quarantined", truncations.Load(), quarantined)
	}
	report(t, "every attack at once beside two honest producers",
		fmt.Sprintf("%v; 2 × 10 k events/s honest; %d ring truncations; %d junk files churned; %d idle connections (%d answered); doorbell flood",
			total, truncations.Load(), churned.Load(), size(500, 5000), answered),
		fmt.Sprintf("honest producers: 0 lost, audit exact; %d/%d scrapes parsed; RSS peak %.1f MiB (%s); %.0f rings quarantined; agent never restarted",
			scrapes-len(scrapeErrs), scrapes, maxRSS, peakParts, quarantined))
}

// The agent out of file descriptors (RLIMIT_NOFILE 96, while 40 producers
// need 80 ring descriptors): procfs reads fail with EMFILE. No live
// producer is declared dead, no ring file is deleted, rings that could not
// be opened wait and are consumed once descriptors free up, and every
// producer's records and audit records arrive exactly once.
func TestDescriptorExhaustion(t *testing.T) {
	prlimit := testutil.RequireTool(t, "prlimit")
	ringDir := shmDir(t)
	a := startWrappedAgent(t, ringDir, []string{prlimit, "--nofile=96", "--"}, "--producer-retention", "0s")
	const n = 40
	var procs []*soakProc
	for i := 0; i < n; i++ {
		procs = append(procs, startSoakProducer(t, ringDir, fmt.Sprintf("fd-%02d", i), 2+i, 1000))
	}
	var mfs map[string]*dto.MetricFamily
	testutil.Eventually(t, 60*time.Second, func() bool {
		var err error
		mfs, err = a.scrape()
		return err == nil && value(mfs, "agaobs_producer_check_errors_total", nil) >= 3
	}, "the agent never ran out of descriptors (no inconclusive liveness checks):\n%s", a.log)
	files, _ := filepath.Glob(filepath.Join(ringDir, "*.ring"))
	if len(files) != 2*n {
		t.Fatalf("%d ring files while all %d producers live, want %d", len(files), n, 2*n)
	}
	// Out of descriptors for a while: producers keep writing (audit
	// records included) into rings the agent holds and rings it waits on.
	hold(time.Duration(size(5, 30)) * time.Second)
	files, _ = filepath.Glob(filepath.Join(ringDir, "*.ring"))
	if len(files) != 2*n {
		t.Fatalf("%d ring files while all %d producers live, want %d", len(files), n, 2*n)
	}
	checkErrs := value(mfs, "agaobs_producer_check_errors_total", nil)
	emfile := strings.Contains(a.log.String(), "too many open files")

	// The first half finishes (clean close; accepted first, they hold the
	// descriptors): the rings that waited are then opened and consumed
	// while their producers still run. A ring whose producer exits before
	// the agent could verify its owner stays unverifiable, by design.
	want := map[string]soakStats{}
	for _, p := range procs[:n/2] {
		want[p.name] = p.finish(t)
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		var err error
		if mfs, err = a.scrape(); err != nil {
			return false
		}
		for _, p := range procs[n/2:] {
			for _, class := range []string{"hot", "audit"} {
				if testutil.FindSeries([]*dto.MetricFamily{mfs["agaobs_ring_events_total"]}, "agaobs_ring_events_total",
					map[string]string{"producer": p.name, "class": class}) == nil {
					return false
				}
			}
		}
		return true
	}, "waiting rings not accepted once descriptors freed")
	for _, p := range procs[n/2:] {
		want[p.name] = p.finish(t)
	}
	// Consumed records per producer from the agent's event counter (the
	// metrics drop a forgotten producer's series; the counter keeps them).
	var short []string
	for deadline := time.Now().Add(60 * time.Second); ; {
		var status struct {
			Counts map[string]map[string]uint64 `json:"event_counts"`
		}
		if err := a.getJSON("/api/v1/status", &status); err == nil {
			short = short[:0]
			for name, st := range want {
				var got uint64
				for kind, n := range status.Counts[name] {
					if kind != "lifecycle" {
						got += n
					}
				}
				if got != st.HotWritten+st.AuditWritten {
					short = append(short, fmt.Sprintf("%s %d/%d", name, got, st.HotWritten+st.AuditWritten))
				}
			}
			if len(short) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every producer's records were consumed (consumed/written): %s\n%s", strings.Join(short, ", "), a.log)
		}
		hold(100 * time.Millisecond) // polling the admin API
	}
	a.stop(t)
	st, err := audit.OpenBolt(a.auditDB, audit.BoltOptions{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	died, err := audit.QueryPage(st, audit.Filter{Operation: "producer_died"})
	if err != nil {
		t.Fatal(err)
	}
	if len(died.Records) != 0 {
		t.Errorf("%d producers declared dead, none died: %+v", len(died.Records), died.Records[0])
	}
	var audits, stored uint64
	for name, s := range want {
		audits += s.Audits
		page, _ := audit.QueryPage(st, audit.Filter{Producer: name})
		for _, r := range page.Records {
			switch r.Kind {
			case audit.KindProducer:
				stored++
			case audit.KindGap:
				t.Errorf("%s: gap %+v", name, r)
			}
		}
	}
	if stored != audits {
		t.Errorf("%d audit records stored, %d written", stored, audits)
	}
	report(t, "agent out of file descriptors", fmt.Sprintf("RLIMIT_NOFILE 96, %d producers (%d ring descriptors wanted), 1 k events/s each", n, 2*n),
		fmt.Sprintf("%.0f inconclusive liveness checks (EMFILE in the log: %v); 0 producers declared dead; %d/%d ring files kept; waiting rings consumed once descriptors freed; %d/%d audit records stored, 0 gaps",
			checkErrs, emfile, len(files), 2*n, stored, audits))
}

// A local user writes to the doorbell FIFO without pause (before the
// rate limit this kept the agent at ~54 % of a core): the agent wakes at
// most once per ring_poll_interval and stays near idle. Asserted at full
// size (CPU time over 30 s); measured and reported in make test.
func TestDoorbellFlood(t *testing.T) {
	ringDir := shmDir(t)
	a := startHostileAgent(t, ringDir)
	window := time.Duration(size(3, 30)) * time.Second
	cpu0, _ := procCPUTime(a.pid)
	t0 := time.Now()
	hold(window)
	idle := float64(mustCPU(t, a.pid)-cpu0) / float64(time.Since(t0)) * 100

	stop := make(chan struct{})
	doorbellFlood(t, ringDir, stop)
	cpu1 := mustCPU(t, a.pid)
	t1 := time.Now()
	hold(window)
	flooded := float64(mustCPU(t, a.pid)-cpu1) / float64(time.Since(t1)) * 100
	close(stop)
	if !a.alive() {
		t.Fatalf("agent died:\n%s", a.log)
	}
	if full() && flooded > 5 {
		t.Errorf("agent CPU under a doorbell flood: %.2f %% of a core (idle %.2f %%), want <= 5 %%", flooded, idle)
	}
	report(t, "doorbell flood", fmt.Sprintf("a local user writing the doorbell FIFO without pause for %v", window),
		fmt.Sprintf("agent CPU %.2f %% of a core (idle %.2f %% before); wake-ups limited to one per ring_poll_interval", flooded, idle))
}

func mustCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	d, err := procCPUTime(pid)
	if err != nil {
		t.Fatalf("agent CPU time: %v", err)
	}
	return d
}
