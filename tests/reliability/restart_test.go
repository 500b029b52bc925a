package reliability_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// Rates of the restart producer: steady, so every agent process finds both
// rings busy, and low enough for the 2-core VM with the race detector on.
const (
	restartHotRate   = 10000 // forward records/s
	restartAuditRate = 2000  // audit records/s
	// The hot ring holds ~7 s of records (56-byte frames): an agent that is
	// down for its restart never makes the producer drop.
	restartHotBytes   = 4 << 20
	restartAuditBytes = 1 << 20
)

// restartResult is what the restart producer writes to $AGAOBS_RESULT when
// it stops.
type restartResult struct {
	HotWritten     uint64 `json:"hot_written"`
	HotDropped     uint64 `json:"hot_dropped"`
	AuditCommitted []int  `json:"audit_committed"` // n of every record EmitAudit accepted
	AuditDropped   int    `json:"audit_dropped"`
}

// restartProducer writes forward records (GateMean = i, LatencyUs = 2i) to
// a hot ring and audit records {"n": i} to an audit ring of the same
// producer, at fixed rates, until SIGTERM; then it closes both rings and
// writes a restartResult.
func restartProducer() {
	dir := os.Getenv("AGAOBS_RING_DIR")
	id := shm.Identity{Producer: os.Getenv("AGAOBS_PRODUCER"), Role: "restart"}
	hot, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: restartHotBytes, Identity: id})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	aud, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: restartAuditBytes, Identity: id})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	fmt.Println("ready")
	var res restartResult
	start, lastBeat := time.Now(), time.Time{}
	tick := time.NewTicker(time.Millisecond)
	nHot, nAudit := 0, 0
	for {
		select {
		case <-stop:
			st := hot.Stats()
			res.HotWritten, res.HotDropped = st.Written, st.Dropped
			hot.Close()
			aud.Close()
			b, _ := json.Marshal(res)
			if err := os.WriteFile(os.Getenv("AGAOBS_RESULT"), b, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			return
		case <-tick.C:
		}
		// Catch up with the schedule, so a late tick does not lower the rate.
		now := time.Now()
		el := now.Sub(start).Seconds()
		for ; nHot < int(el*restartHotRate); nHot++ {
			f := shm.Forward{GateMean: float64(nHot), LatencyUs: 2 * float64(nHot), Layer: int32(nHot % 3), Fields: 31}
			_ = hot.EmitForward(now.UnixNano(), &f)
		}
		for ; nAudit < int(el*restartAuditRate); nAudit++ {
			obj := fmt.Sprintf(`{"operation":"register","details":{"n":%d},"success":true,"error":null,"timestamp":%f}`,
				nAudit, float64(now.UnixNano())/1e9)
			if aud.EmitAudit(now.UnixNano(), []byte(obj)) != nil {
				res.AuditDropped++
			} else {
				res.AuditCommitted = append(res.AuditCommitted, nAudit)
			}
		}
		if now.Sub(lastBeat) > 100*time.Millisecond {
			hot.Heartbeat()
			aud.Heartbeat()
			lastBeat = now
		}
	}
}

// restartRing maps a ring's header read-only, so the test can watch the
// producer's counters and the consumer's commit slot (ring-format §2)
// whether or not an agent is alive.
type restartRing struct {
	path string
	mem  []byte
}

// restartSnap is one consistent read of a restartRing.
type restartSnap struct {
	tail, lastSeq, dropped uint64 // producer block
	head, headSeq, lost    uint64 // the valid commit slot
}

func openRestartRing(t *testing.T, path string) *restartRing {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := syscall.Mmap(int(f.Fd()), 0, shm.HeaderSize, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	return &restartRing{path: path, mem: mem}
}

func (v *restartRing) u64(off int) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&v.mem[off])))
}

// snap reads the commit slot selected by commit_gen, again if the agent
// committed meanwhile (it writes the free slot, then flips commit_gen).
func (v *restartRing) snap() restartSnap {
	for {
		gen := v.u64(0x218)
		slot := 0x220 + 32*int(gen&1)
		s := restartSnap{tail: v.u64(0x100), lastSeq: v.u64(0x108), dropped: v.u64(0x118),
			head: v.u64(slot), headSeq: v.u64(slot + 8), lost: v.u64(slot + 16)}
		if v.u64(0x218) == gen {
			return s
		}
	}
}

// ringPath finds the producer's ring of class (hot or audit).
func restartRingPath(t *testing.T, dir string, pid int, class string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("agaobs-%d-*-%s.ring", pid, class)))
	if len(m) != 1 {
		t.Fatalf("%s ring of pid %d: %v", class, pid, m)
	}
	return m[0]
}

// restartAgent is one `agaobs-agent run` process of the test.
type restartAgent struct {
	cmd     *exec.Cmd
	log     string
	started time.Time
	done    chan struct{} // closed once the process is reaped
	err     error
}

func (a *restartAgent) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs the agent and reaps it: from then on nothing touches the
// rings' consumer blocks until the next agent starts.
func (a *restartAgent) kill() {
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// stop is the clean shutdown: SIGTERM, exit 0 within 20 s.
func (a *restartAgent) stop(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		if a.err != nil {
			t.Fatalf("agent exit: %v", a.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop within 20 s of SIGTERM")
	}
}

// restartRig is what every agent process of the test shares: the binary,
// the ring directory, the state and audit files, the listener addresses,
// and views of the producer's two rings.
type restartRig struct {
	bin, dir, tmp, db string
	metrics, admin    string
	producer          string
	hot, aud          *restartRing
	agents            []*restartAgent
	// What checkReleasedDurable has read of the store so far.
	chainSeq, storedSeq uint64
}

// start runs the next agent process (its output goes to agent-N.log).
func (r *restartRig) start(t *testing.T) *restartAgent {
	t.Helper()
	host, port, _ := strings.Cut(r.metrics, ":")
	a := &restartAgent{log: filepath.Join(r.tmp, fmt.Sprintf("agent-%d.log", len(r.agents))), done: make(chan struct{})}
	out, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	a.cmd = exec.Command(r.bin, "run", "--ring-dir", r.dir, "--state-path", filepath.Join(r.tmp, "state.db"),
		"--audit-storage-path", r.db, "--prometheus-host", host, "--prometheus-port", port,
		"--admin-listen-address", r.admin, "--health-enabled=false", "--gpu-enabled=false", "--bpf-enabled=false",
		"--log-enabled=false", "--alert-enabled=false")
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

// logTail is the end of the newest agent's log, for failure messages.
func (r *restartRig) logTail() string {
	if len(r.agents) == 0 {
		return ""
	}
	b, _ := os.ReadFile(r.agents[len(r.agents)-1].log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (r *restartRig) scrape() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + r.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// ringMetric is the value of a per-ring series of the producer.
func (r *restartRig) ringMetric(mfs map[string]*dto.MetricFamily, name, class string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	m := testutil.FindSeries([]*dto.MetricFamily{mf}, name, map[string]string{"producer": r.producer, "class": class})
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	default:
		return m.Gauge.GetValue(), true
	}
}

// checkHotCounter scrapes the running agent and checks its hot ring
// counter against the ring itself. base is the commit the process started
// from. Every record it released (commit slot now) it consumed itself, and
// it cannot have consumed more than the producer wrote after base: a
// process that re-read records committed before base, or carried an older
// process's total, breaks the upper bound. ok is false while the agent does
// not serve the series yet.
func (r *restartRig) checkHotCounter(t *testing.T, base restartSnap) (consumed float64, ok bool) {
	t.Helper()
	before := r.hot.snap()
	mfs, err := r.scrape()
	if err != nil {
		return 0, false
	}
	c, ok := r.ringMetric(mfs, "agaobs_ring_events_total", "hot")
	if !ok {
		return 0, false
	}
	after := r.hot.snap()
	lo := before.headSeq - base.headSeq - (before.lost - base.lost)
	hi := after.lastSeq - base.headSeq
	if c < float64(lo) || c > float64(hi) {
		t.Errorf("agent %d: agaobs_ring_events_total{class=hot} = %.0f, want within [%d released, %d written] since its start at seq %d",
			len(r.agents)-1, c, lo, hi, base.headSeq)
	}
	// Nothing is lost or corrupt at any time: the restarts never make the
	// producer drop, and a SIGKILL never leaves a torn record behind.
	for _, class := range []string{"hot", "audit"} {
		for _, name := range []string{"agaobs_ring_lost_total", "agaobs_ring_dropped_total", "agaobs_ring_corrupt_total"} {
			if v, _ := r.ringMetric(mfs, name, class); v != 0 {
				t.Errorf("agent %d: %s{class=%s} = %v, want 0", len(r.agents)-1, name, class, v)
			}
		}
	}
	return c, true
}

// checkReleasedDurable runs between a kill and the restart. It reads the
// dead agent's store and checks that the audit ring's commit slot (aud)
// released nothing the store does not hold: release only follows
// durability. It returns how many durable records the ring still holds,
// which the next agent reads again and the store must skip.
func (r *restartRig) checkReleasedDurable(t *testing.T, aud restartSnap) (redelivered uint64) {
	t.Helper()
	st, err := audit.OpenBolt(r.db, audit.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Query(audit.Filter{Producer: r.producer, After: r.chainSeq})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		r.chainSeq = rec.Seq
		if rec.Kind == audit.KindProducer {
			r.storedSeq = max(r.storedSeq, rec.RingSeq)
		}
	}
	// Seq 1 is the ring's HELLO, released without reaching the store.
	if aud.headSeq > max(r.storedSeq, 1) {
		t.Errorf("after kill %d the audit ring released up to seq %d, the store holds only up to %d",
			len(r.agents), aud.headSeq, r.storedSeq)
	}
	if r.storedSeq > aud.headSeq {
		return r.storedSeq - aud.headSeq
	}
	return 0
}

// waitResume waits until the new agent a has released hot records and
// made audit records durable past the previous commits, and has answered
// one scrape. It returns both times from exec and that first counter value.
func (r *restartRig) waitResume(t *testing.T, a *restartAgent, hot0, aud0 restartSnap) (hotAfter, auditAfter time.Duration, first float64) {
	t.Helper()
	scraped := false
	var lastTry time.Time
	for deadline := time.Now().Add(10 * time.Second); ; {
		if a.exited() {
			t.Fatalf("agent %d exited: %v\n%s", len(r.agents)-1, a.err, r.logTail())
		}
		if hotAfter == 0 && r.hot.snap().headSeq > hot0.headSeq {
			hotAfter = time.Since(a.started)
		}
		if auditAfter == 0 && r.aud.snap().headSeq > aud0.headSeq {
			auditAfter = time.Since(a.started)
		}
		// The earliest scrape shows where the counter starts.
		if !scraped && time.Since(lastTry) > 5*time.Millisecond {
			lastTry = time.Now()
			first, scraped = r.checkHotCounter(t, hot0)
		}
		if hotAfter > 0 && auditAfter > 0 && scraped {
			return hotAfter, auditAfter, first
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %d did not resume within 10 s: hot released %v, audit durable %v, scraped %v\n%s",
				len(r.agents)-1, hotAfter, auditAfter, scraped, r.logTail())
		}
		time.Sleep(time.Millisecond)
	}
}

// The agent SIGKILLed at random instants and restarted, while a producer
// writes a hot ring and an audit ring at steady rates. After every restart
// both rings resume (timed from exec), and the new process's hot counter
// starts from zero and only ever covers what was written after the
// previous process's last commit: hot records are not re-read. At the end
// both rings drain to empty, the audit store holds every audit record the
// producer committed exactly once, and the chain verifies.
func TestAgentRestart(t *testing.T) {
	restarts := size(3, 20)
	var bin testutil.Binary
	t.Cleanup(bin.Remove)
	r := &restartRig{bin: bin.Path(t, "../../cmd/agaobs-agent", "agaobs-agent"), dir: t.TempDir(), tmp: t.TempDir(),
		metrics: testutil.FreeAddr(t), admin: testutil.FreeAddr(t), producer: "restart-load"}
	r.db = filepath.Join(r.tmp, "audit.db")
	resultFile := filepath.Join(r.tmp, "producer.json")
	prod := startHelper(t, r.dir, r.producer, "restart", "AGAOBS_RESULT="+resultFile)
	r.hot = openRestartRing(t, restartRingPath(t, r.dir, prod.pid, "hot"))
	r.aud = openRestartRing(t, restartRingPath(t, r.dir, prod.pid, "audit"))

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 9))
	var hotResume, auditResume []time.Duration
	var firstCounts, lastCounts []float64
	samples, redelivered := 0, uint64(0)
	var base restartSnap // the hot commit the running agent started from
	for k := 0; ; k++ {
		// No agent runs now: these are the last process's final commits.
		hot0, aud0 := r.hot.snap(), r.aud.snap()
		base = hot0
		if k > 0 {
			redelivered += r.checkReleasedDurable(t, aud0)
		}
		a := r.start(t)
		h, au, first := r.waitResume(t, a, hot0, aud0)
		hotResume, auditResume, firstCounts = append(hotResume, h), append(auditResume, au), append(firstCounts, first)
		if k == restarts {
			break // the last agent drains and stops cleanly
		}
		deadline := time.Now().Add(time.Duration(200+rng.IntN(601)) * time.Millisecond)
		last := first
		for time.Now().Before(deadline) {
			if c, ok := r.checkHotCounter(t, hot0); ok {
				last = c
				samples++
			}
			time.Sleep(min(25*time.Millisecond, time.Until(deadline)))
		}
		lastCounts = append(lastCounts, last)
		a.kill()
	}
	last := r.agents[len(r.agents)-1]

	// Stop the producer cleanly: it closes both rings and says what it
	// committed.
	res := stopRestartProducer(t, prod, resultFile)

	// No ring stuck: both drain to empty (head == tail, every sequence
	// number accounted) within 5 s of the producer's close.
	t0 := time.Now()
	drained := func() bool {
		h, au := r.hot.snap(), r.aud.snap()
		return h.head == h.tail && h.headSeq == h.lastSeq && au.head == au.tail && au.headSeq == au.lastSeq
	}
	for !drained() && time.Since(t0) < 5*time.Second {
		time.Sleep(time.Millisecond)
	}
	if !drained() {
		t.Fatalf("rings not drained 5 s after the producer closed them: hot %+v, audit %+v\nrings: %s\naudit head: %s\n%s",
			r.hot.snap(), r.aud.snap(), r.adminGet("/api/v1/rings"), r.adminGet("/api/v1/audit/head"), r.logTail())
	}
	drain := time.Since(t0)
	hot, aud := r.hot.snap(), r.aud.snap()
	if res.HotDropped != 0 || hot.dropped != 0 || hot.lost != 0 {
		t.Errorf("hot ring: producer dropped %d (ring says %d), consumer lost %d; want 0: the restarts must not overflow a 4 MiB ring",
			res.HotDropped, hot.dropped, hot.lost)
	}
	if aud.lost != uint64(res.AuditDropped) {
		t.Errorf("audit ring: consumer lost %d, producer dropped %d", aud.lost, res.AuditDropped)
	}
	// The last process consumed exactly what was written after the commit
	// it started from: nothing twice, nothing skipped.
	c, _ := r.checkHotCounter(t, base)
	if want := float64(hot.lastSeq - base.headSeq); c != want {
		t.Errorf("last agent consumed %.0f hot records, %d were written after its start at seq %d", c, hot.lastSeq-base.headSeq, base.headSeq)
	}
	mfs, err := r.scrape()
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range []string{"hot", "audit"} {
		if v, ok := r.ringMetric(mfs, "agaobs_ring_fill_ratio", class); !ok || v != 0 {
			t.Errorf("agaobs_ring_fill_ratio{class=%s} = %v (present %v) after the drain, want 0", class, v, ok)
		}
	}
	// The producer's close is seen by the once-a-second housekeeping.
	testutil.Eventually(t, 30*time.Second, func() bool { return r.ringStates(t) == "closed closed" },
		"rings of %s not closed and empty: %s", r.producer, r.adminGet("/api/v1/rings"))
	last.stop(t)

	dup, missing, extra, gaps := restartAuditOnce(t, r.db, r.producer, res.AuditCommitted)
	if dup != 0 || missing != 0 || extra != 0 || gaps != uint64(res.AuditDropped) {
		t.Errorf("audit store vs producer: %d committed; %d duplicated, %d missing, %d never committed; gap records say %d lost, producer dropped %d",
			len(res.AuditCommitted), dup, missing, extra, gaps, res.AuditDropped)
	}
	if len(res.AuditCommitted) < restarts*restartAuditRate/10 || res.HotWritten < uint64(restarts*restartHotRate/10) {
		t.Errorf("too little load: %d audit records, %d hot records", len(res.AuditCommitted), res.HotWritten)
	}

	if t.Failed() {
		return // no RELIABILITY.md row for a failed run
	}
	sortDur := func(d []time.Duration) []time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d
	}
	hotResume, auditResume = sortDur(hotResume[1:]), sortDur(auditResume[1:]) // restarts only, not the first start
	maxFirst := 0.0
	for _, f := range firstCounts[1:] {
		maxFirst = max(maxFirst, f)
	}
	minLast := lastCounts[0]
	for _, l := range lastCounts {
		minLast = min(minLast, l)
	}
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	t.Logf("seed %d; %d restarts, %d counter samples; hot %d records, audit %d committed, %d dropped, %d durable ones read again after a kill; hot counter at first scrape ≤ %.0f (before each kill ≥ %.0f); drained in %v",
		seed, restarts, samples, res.HotWritten, len(res.AuditCommitted), res.AuditDropped, redelivered, maxFirst, minLast, ms(drain))
	t.Logf("restart → first hot release p50 %v max %v; → first durable audit p50 %v max %v",
		ms(hotResume[len(hotResume)/2]), ms(hotResume[len(hotResume)-1]), ms(auditResume[len(auditResume)/2]), ms(auditResume[len(auditResume)-1]))
	report(t, "agent SIGKILLed and restarted under load",
		fmt.Sprintf("%d restarts at random instants, 200–800 ms apart; one producer at %d hot + %d audit records/s (%d + %d)",
			restarts, restartHotRate, restartAuditRate, res.HotWritten, len(res.AuditCommitted)),
		fmt.Sprintf("audit: %d duplicated, %d missing, %d dropped (%d durable records read again after kills, stored once); hot: %d lost, each process's consumed counter starts at ≤ %.0f and never exceeds what was written after the previous commit; first consume p50 %v max %v after exec; both rings drained %v after the producer closed",
			dup, missing, res.AuditDropped, redelivered, hot.lost, maxFirst, ms(hotResume[len(hotResume)/2]), ms(hotResume[len(hotResume)-1]), ms(drain)))
}

// adminGet returns the body of an admin API GET, for failure messages.
func (r *restartRig) adminGet(path string) string {
	resp, err := http.Get("http://" + r.admin + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	io.Copy(&b, resp.Body)
	return b.String()
}

// ringStates lists the states of the producer's rings from the admin
// API, a drained ring as "closed", anything else with its fill ratio.
func (r *restartRig) ringStates(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + r.admin + "/api/v1/rings")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Rings []rings.RingInfo `json:"rings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, ri := range body.Rings {
		if ri.Producer != r.producer {
			continue
		}
		if ri.State == "closed" && ri.Fill == 0 {
			states = append(states, ri.State)
		} else {
			states = append(states, fmt.Sprintf("%s:%s(%s, fill %v)", ri.Class, ri.State, ri.Reason, ri.Fill))
		}
	}
	return strings.Join(states, " ")
}

// restartAuditOnce opens the stopped agent's store and counts, for the
// producer's records {"n": i}: committed ids stored more than once,
// committed ids missing, stored ids the producer never committed; and the
// records the gap records say were lost. The chain must verify.
func restartAuditOnce(t *testing.T, db, producer string, committed []int) (dup, missing, extra int, gaps uint64) {
	t.Helper()
	st, err := audit.OpenBolt(db, audit.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Query(audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, rec := range recs {
		if rec.Producer != producer {
			continue
		}
		switch rec.Kind {
		case audit.KindProducer:
			var d struct {
				N *int `json:"n"`
			}
			if err := json.Unmarshal(rec.Details, &d); err != nil || d.N == nil {
				t.Fatalf("record %d: details %s", rec.Seq, rec.Details)
			}
			seen[*d.N]++
		case audit.KindGap:
			gaps += rec.Lost
		}
	}
	for _, n := range committed {
		switch c := seen[n]; {
		case c == 0:
			missing++
		case c > 1:
			dup += c - 1
		}
		delete(seen, n)
	}
	extra = len(seen)
	if rep, err := st.Verify(nil); err != nil {
		t.Errorf("audit chain: %v (%+v)", err, rep)
	}
	return dup, missing, extra, gaps
}

// stopRestartProducer stops a "restart" producer cleanly (SIGTERM: it
// closes both rings) and reads what it committed.
func stopRestartProducer(t *testing.T, prod *helperProc, resultFile string) restartResult {
	t.Helper()
	prod.cmd.Process.Signal(syscall.SIGTERM)
	if err := prod.cmd.Wait(); err != nil {
		t.Fatalf("producer: %v", err)
	}
	var res restartResult
	b, err := os.ReadFile(resultFile)
	if err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err != nil {
		t.Fatalf("producer result: %v", err)
	}
	return res
}
