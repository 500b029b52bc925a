package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// producerEnv makes the test binary an audit producer (see TestMain).
const producerEnv = "AGAOBS_E2E_AUDIT_PRODUCER"

// producerResult is what the audit producer prints when it stops.
type producerResult struct {
	Committed []int `json:"committed"` // i of every record EmitAudit accepted
	Dropped   int   `json:"dropped"`   // records refused because the ring was full
}

// auditProducerMain writes audit records {"i": n} into a real audit ring
// in $AGAOBS_RING_DIR as fast as 20k/s allows until SIGTERM, then closes
// the ring and prints a producerResult.
func auditProducerMain() int {
	w, err := shm.CreateWriter(os.Getenv("AGAOBS_RING_DIR"), shm.WriterOptions{Class: shm.ClassAudit,
		Capacity: 1 << 16, AuditWait: 200 * time.Microsecond, Identity: shm.Identity{Producer: "crash-producer"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	var res producerResult
	tick := time.NewTicker(50 * time.Microsecond)
	lastBeat := time.Now()
	for i := 0; ; i++ {
		select {
		case <-stop:
			w.Close()
			_ = json.NewEncoder(os.Stdout).Encode(res)
			return 0
		case <-tick.C:
		}
		now := time.Now()
		obj := fmt.Sprintf(`{"operation":"register","details":{"i":%d,"id":"k-%d"},"success":true,"error":null,"timestamp":%f}`,
			i, i, float64(now.UnixNano())/1e9)
		if err := w.EmitAudit(now.UnixNano(), []byte(obj)); err != nil {
			res.Dropped++
		} else {
			res.Committed = append(res.Committed, i)
		}
		if now.Sub(lastBeat) > 100*time.Millisecond {
			w.Heartbeat()
			lastBeat = now
		}
	}
}

// auditAgent runs `agaobs-agent run` on dir with the audit store at db.
type auditAgent struct {
	cmd   *exec.Cmd
	admin string
	logs  *strings.Builder
	mu    *sync.Mutex
}

func startAuditAgent(t *testing.T, dir, db string, extra ...string) *auditAgent {
	t.Helper()
	admin := "127.0.0.1:" + testutil.FreePort(t)
	args := append([]string{"run", "--ring-dir", dir, "--state-path", filepath.Join(filepath.Dir(db), "state.db"),
		"--audit-storage-path", db, "--admin-listen-address", admin, "--prometheus-enabled=false",
		"--ring-poll-interval", "5ms", "--alert-enabled=false"}, extra...)
	cmd := exec.Command(agentBinary(t), args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &auditAgent{cmd: cmd, admin: admin, logs: &strings.Builder{}, mu: &sync.Mutex{}}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			a.mu.Lock()
			a.logs.WriteString(sc.Text() + "\n")
			a.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return a
}

func (a *auditAgent) head(t *testing.T) (h struct {
	Size      uint64 `json:"size"`
	Head      string `json:"head"`
	Writable  bool   `json:"writable"`
	LastError string `json:"last_error"`
	Pending   int64  `json:"pending"`
}, ok bool) {
	resp, err := http.Get("http://" + a.admin + "/api/v1/audit/head")
	if err != nil {
		return h, false
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h) == nil
}

func (a *auditAgent) count(t *testing.T, op string) int {
	resp, err := http.Get("http://" + a.admin + "/api/v1/audit?limit=0&operation=" + op)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var p audit.Page
	if json.NewDecoder(resp.Body).Decode(&p) != nil {
		return -1
	}
	return len(p.Records)
}

func (a *auditAgent) stop(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exit: %v\n%s", err, a.logText())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("agent did not stop\n%s", a.logText())
	}
}

func (a *auditAgent) logText() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

// checkExactlyOnce opens the store and checks it holds each committed i
// exactly once, gap records for every drop, and an intact chain.
func checkExactlyOnce(t *testing.T, db string, res producerResult) {
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
	lost := uint64(0)
	for _, r := range recs {
		switch {
		case r.Kind == audit.KindProducer && r.Producer == "crash-producer":
			var d struct{ I int }
			if err := json.Unmarshal(r.Details, &d); err != nil {
				t.Fatalf("record %d details %s", r.Seq, r.Details)
			}
			seen[d.I]++
		case r.Kind == audit.KindGap:
			lost += r.Lost
		}
	}
	var missing, dup []int
	for _, i := range res.Committed {
		if seen[i] == 0 {
			missing = append(missing, i)
		}
		if seen[i] > 1 {
			dup = append(dup, i)
		}
		delete(seen, i)
	}
	if len(missing) > 0 || len(dup) > 0 || len(seen) > 0 {
		t.Fatalf("store vs producer: %d committed; missing %v; duplicated %v; never committed %v",
			len(res.Committed), head(missing), head(dup), seen)
	}
	if lost != uint64(res.Dropped) {
		t.Fatalf("gap records account for %d lost records, the producer dropped %d", lost, res.Dropped)
	}
	if rep, err := st.Verify(nil); err != nil {
		t.Fatalf("verify: %v (%+v)", err, rep)
	}
}

func head(s []int) []int {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// The agent is SIGKILLed at random moments while a producer writes audit
// records; after the last restart the store holds exactly what the
// producer committed, once each, and the chain verifies.
func TestAuditSurvivesKill9(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	db := filepath.Join(tmp, "audit.db")
	prod := exec.Command(os.Args[0], "-test.run=^$")
	prod.Env = append(os.Environ(), producerEnv+"=1", "AGAOBS_RING_DIR="+dir)
	var out strings.Builder
	prod.Stdout, prod.Stderr = &out, &out
	if err := prod.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Process.Kill(); prod.Wait() })

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := 0
	for kills < 5 {
		a := startAuditAgent(t, dir, db)
		testutil.Eventually(t, 30*time.Second, func() bool { h, ok := a.head(t); return ok && h.Size > 0 },
			"agent did not start storing")
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		a.cmd.Process.Kill() // SIGKILL, at whatever instant
		a.cmd.Wait()
		kills++
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
	}
	a := startAuditAgent(t, dir, db)
	time.Sleep(500 * time.Millisecond)
	prod.Process.Signal(syscall.SIGTERM)
	if err := prod.Wait(); err != nil {
		t.Fatalf("producer: %v\n%s", err, out.String())
	}
	var res producerResult
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("producer output %q: %v", out.String(), err)
	}
	if len(res.Committed) < 1000 {
		t.Fatalf("producer committed only %d records", len(res.Committed))
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return a.count(t, "register") >= len(res.Committed) },
		"agent stored %d of %d records", a.count(t, "register"), len(res.Committed))
	a.stop(t)
	t.Logf("%d kills; producer committed %d, dropped %d", kills, len(res.Committed), res.Dropped)
	checkExactlyOnce(t, db, res)

	// The CLI agrees: verify exits 0 on the stopped agent's store.
	cmd := exec.Command(agentBinary(t), "audit", "verify", "--audit-storage-path", db, "--admin-listen-address", "")
	if b, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "OK ") {
		t.Fatalf("audit verify: %v\n%s", err, b)
	}
}

// The window kill -9 rarely hits, made certain: the agent stores records,
// dies, and the ring comes back as it was before the agent released them
// (the state after a crash between the store's commit and the ring's
// release). The restarted agent reads them again and stores none twice.
func TestAuditExactlyOnceAfterRedelivery(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	db := filepath.Join(tmp, "audit.db")
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: 1 << 16,
		Identity: shm.Identity{Producer: "crash-producer"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var res producerResult
	emit := func(from, to int) {
		for i := from; i < to; i++ {
			obj := fmt.Sprintf(`{"operation":"register","details":{"i":%d},"success":true,"error":null,"timestamp":%d}`, i, time.Now().Unix())
			if err := w.EmitAudit(time.Now().UnixNano(), []byte(obj)); err != nil {
				t.Fatal(err)
			}
			res.Committed = append(res.Committed, i)
		}
	}
	emit(0, 100)
	snapshot, err := os.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	a := startAuditAgent(t, dir, db)
	testutil.Eventually(t, 30*time.Second, func() bool { return a.count(t, "register") == 100 }, "first agent did not store 100 records")
	a.cmd.Process.Kill()
	a.cmd.Wait()
	// Put the ring back: nothing released, everything readable again.
	f, err := os.OpenFile(w.Path(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(snapshot, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a = startAuditAgent(t, dir, db)
	emit(100, 150) // after the re-read ones
	testutil.Eventually(t, 30*time.Second, func() bool { return a.count(t, "register") >= 150 },
		"second agent stored %d of 150", a.count(t, "register"))
	time.Sleep(300 * time.Millisecond) // a late duplicate would show now
	if n := a.count(t, "register"); n != 150 {
		t.Fatalf("%d register records stored, want 150 (the re-read 100 must not be stored twice)", n)
	}
	a.stop(t)
	checkExactlyOnce(t, db, res)
}

// The audit store's disk fills up: the agent says so (head API, metrics),
// keeps the audit ring unreleased, and when space returns stores exactly
// what the producer committed; what did not fit in the ring is a gap.
func TestAuditFullDiskRecovers(t *testing.T) {
	testutil.RequireRoot(t)
	dir, tmp := t.TempDir(), t.TempDir()
	disk := filepath.Join(tmp, "disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=2m"); err != nil {
		testutil.SkipOrFail(t, "cannot mount a tmpfs: "+err.Error())
	}
	t.Cleanup(func() { syscall.Unmount(disk, syscall.MNT_DETACH) })
	db := filepath.Join(disk, "audit.db")

	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: 1 << 16,
		AuditWait: 100 * time.Microsecond, Identity: shm.Identity{Producer: "crash-producer"}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var res producerResult
	stopProd, prodDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(prodDone)
		for i := 0; ; i++ {
			select {
			case <-stopProd:
				w.Close()
				return
			case <-time.After(500 * time.Microsecond):
			}
			obj := fmt.Sprintf(`{"operation":"register","details":{"i":%d,"pad":"%s"},"success":true,"error":null,"timestamp":%d}`,
				i, strings.Repeat("x", 64), time.Now().Unix())
			err := w.EmitAudit(time.Now().UnixNano(), []byte(obj))
			mu.Lock()
			if err != nil {
				res.Dropped++
			} else {
				res.Committed = append(res.Committed, i)
			}
			mu.Unlock()
			w.Heartbeat()
		}
	}()
	defer func() {
		select {
		case <-prodDone:
		default:
			close(stopProd)
			<-prodDone
		}
	}()

	port := testutil.FreePort(t)
	a := startAuditAgent(t, dir, db, "--prometheus-enabled=true", "--prometheus-host", "127.0.0.1", "--prometheus-port", port)
	metricsURL := "http://127.0.0.1:" + port + "/metrics"
	testutil.Eventually(t, 30*time.Second, func() bool { return a.count(t, "register") > 100 }, "agent did not start storing")

	// Fill the disk.
	filler, err := os.Create(filepath.Join(disk, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	filler.Close()
	testutil.Eventually(t, 30*time.Second, func() bool { h, ok := a.head(t); return ok && !h.Writable },
		"agent did not report the store unwritable")
	h, _ := a.head(t)
	if !strings.Contains(h.LastError, "no space left") {
		t.Errorf("last_error %q does not say why", h.LastError)
	}
	if m := series(scrape(t, metricsURL), "agaobs_audit_store_up", nil); m == nil || m.Gauge.GetValue() != 0 {
		t.Errorf("agaobs_audit_store_up = %v while the disk is full", m)
	}
	time.Sleep(1500 * time.Millisecond) // the ring fills; the producer drops
	mu.Lock()
	dropped := res.Dropped
	mu.Unlock()
	if dropped == 0 {
		t.Fatal("the producer never found its audit ring full: the agent released records it could not store")
	}

	// Space comes back: everything the ring held is stored.
	if err := os.Remove(filepath.Join(disk, "filler")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { h, ok := a.head(t); return ok && h.Writable },
		"store did not recover")
	time.Sleep(300 * time.Millisecond)
	close(stopProd)
	<-prodDone
	mu.Lock()
	final := res
	mu.Unlock()
	testutil.Eventually(t, 30*time.Second, func() bool { return a.count(t, "register") >= len(final.Committed) },
		"agent stored %d of %d after recovery", a.count(t, "register"), len(final.Committed))
	if m := series(scrape(t, metricsURL), "agaobs_audit_write_errors_total", nil); m == nil || m.Counter.GetValue() == 0 {
		t.Errorf("agaobs_audit_write_errors_total = %v after an outage", m)
	}
	if a.count(t, "audit_store_recovered") != 1 {
		t.Errorf("no audit_store_recovered record")
	}
	a.stop(t)
	t.Logf("committed %d, dropped %d while the disk was full", len(final.Committed), final.Dropped)
	checkExactlyOnce(t, db, final)
}

func runAgentCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(agentBinary(t), args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// The audit CLI against a running agent (through its admin API) and
// against the stopped agent's file; the sqlite alias.
func TestAuditCLIWhileAgentRuns(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	db := filepath.Join(tmp, "audit.db")
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: 1 << 16,
		Identity: shm.Identity{Producer: "cli-producer"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 30; i++ {
		op, ok, errv := "register", "true", "null"
		if i%3 == 0 {
			op, ok, errv = "unregister", "false", `"not found"`
		}
		obj := fmt.Sprintf(`{"operation":%q,"details":{"i":%d},"success":%s,"error":%s,"timestamp":%d}`, op, i, ok, errv, time.Now().Unix())
		if err := w.EmitAudit(time.Now().UnixNano(), []byte(obj)); err != nil {
			t.Fatal(err)
		}
	}
	a := startAuditAgent(t, dir, db, "--audit-storage-backend", "sqlite")
	testutil.Eventually(t, 30*time.Second, func() bool { return a.count(t, "register") == 20 && a.count(t, "unregister") == 10 },
		"agent did not store the 30 records")
	if n := strings.Count(a.logText(), "sqlite is a deprecated alias"); n != 1 {
		t.Errorf("%d deprecation warnings, want 1", n)
	}
	store := []string{"--audit-storage-backend", "sqlite", "--audit-storage-path", db, "--admin-listen-address", a.admin}

	// Through the agent.
	out, errOut, code := runAgentCLI(t, append([]string{"audit", "query", "--format", "jsonl", "--operation", "unregister", "--success", "false", "--limit", "4"}, store...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.Contains(errOut, "--cursor") {
		t.Fatalf("query: code %d, %d lines\n%s\n%s", code, len(lines), out, errOut)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"seq", "time", "producer", "operation", "details", "success", "error", "event_timestamp", "ring_epoch", "ring_seq", "hash"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("JSONL record lacks %q: %s", k, lines[0])
		}
	}
	if rec["producer"] != "cli-producer" || rec["error"] != "not found" || rec["success"] != false {
		t.Errorf("record %v", rec)
	}
	if _, ok := rec["details"].(map[string]any); !ok {
		t.Errorf("details is not an object: %v", rec["details"])
	}
	hint := strings.Split(strings.TrimSpace(errOut), "\n")
	cursor := strings.TrimPrefix(hint[len(hint)-1], "more records: --cursor ")
	out, errOut, code = runAgentCLI(t, append([]string{"audit", "query", "--format", "json", "--operation", "unregister", "--limit", "100", "--cursor", cursor}, store...)...)
	var page audit.Page
	if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil || len(page.Records) != 6 || page.NextCursor != "" {
		t.Fatalf("second page (cursor %q): code %d err %v: %d records, cursor %q\n%s", cursor, code, err, len(page.Records), page.NextCursor, errOut)
	}
	out, _, code = runAgentCLI(t, append([]string{"audit", "verify"}, store...)...)
	if code != 0 || !strings.Contains(out, "OK agent at "+a.admin) {
		t.Fatalf("verify through the agent: %d %s", code, out)
	}
	headOut, _, _ := runAgentCLI(t, append([]string{"audit", "head"}, store...)...)
	witness := strings.TrimSpace(headOut)
	if h, _ := a.head(t); h.Head != witness {
		t.Fatalf("audit head %q, API %q", witness, h.Head)
	}
	// Direct access while the agent holds the store: a clear error.
	_, errOut, code = runAgentCLI(t, "audit", "query", "--audit-storage-path", db, "--admin-listen-address", "", "--lock-timeout", "200ms")
	if code != 1 || !strings.Contains(errOut, "locked") {
		t.Fatalf("query of a locked store: code %d: %s", code, errOut)
	}
	a.stop(t)

	// The stopped agent's file.
	direct := []string{"--audit-storage-path", db, "--admin-listen-address", ""}
	out, _, code = runAgentCLI(t, append([]string{"audit", "export"}, direct...)...)
	h, _ := audit.ParseHead(witness)
	if n := strings.Count(out, "\n"); code != 0 || n < int(h.Size) {
		t.Fatalf("export: code %d, %d records, head was %d", code, n, h.Size)
	}
	out, _, code = runAgentCLI(t, append([]string{"audit", "query", "--format", "csv", "--producer", "cli-producer", "--limit", "0"}, direct...)...)
	if code != 0 || strings.Count(out, ",producer,cli-producer,") != 30 || !strings.HasPrefix(out, "seq,time,kind,producer,operation,details") {
		t.Fatalf("csv: code %d\n%s", code, out)
	}
	out, _, code = runAgentCLI(t, append([]string{"audit", "verify", "--expect-head", witness}, direct...)...)
	if code != 0 || !strings.HasPrefix(out, "OK ") {
		t.Fatalf("verify against the witness: %d %s", code, out)
	}
	out, _, code = runAgentCLI(t, append([]string{"audit", "compact"}, direct...)...)
	if code != 0 || !strings.HasPrefix(out, "compacted ") {
		t.Fatalf("compact: %d %s", code, out)
	}
	// A witness the store no longer reaches: the tail was cut.
	future := fmt.Sprintf("%d:%s", h.Size+1000, strings.Repeat("ab", 32))
	out, _, code = runAgentCLI(t, append([]string{"audit", "verify", "--expect-head", future}, direct...)...)
	if code != 1 || !strings.Contains(out, "truncated") {
		t.Fatalf("verify against a longer witness: %d %s", code, out)
	}
}
