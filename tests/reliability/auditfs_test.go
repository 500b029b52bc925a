package reliability_test

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// afsAgent is an in-process agent a test can stop in the middle (the
// read-only case restarts it, as an operator must after repairing the
// file system), with its health and metrics listeners on loopback.
type afsAgent struct {
	*agent.Agent
	health, metrics string
	stop            func() error
}

func startAFSAgent(t *testing.T, ringDir, db string) *afsAgent {
	t.Helper()
	cfg := config.Default()
	tmp := t.TempDir()
	cfg.RingDir, cfg.StatePath, cfg.AuditStoragePath = ringDir, filepath.Join(tmp, "state.db"), db
	// Only what the test reads: health, metrics and the store itself.
	cfg.AdminListenAddress = ""
	cfg.GPUEnabled, cfg.BPFEnabled, cfg.LogEnabled, cfg.AlertEnabled = false, false, false, false
	metricsAddr, healthAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	host, port, _ := net.SplitHostPort(metricsAddr)
	cfg.PrometheusEnabled, cfg.PrometheusHost = true, host
	cfg.PrometheusPort, _ = strconv.Atoi(port)
	host, port, _ = net.SplitHostPort(healthAddr)
	cfg.HealthEnabled, cfg.HealthHost = true, host
	cfg.HealthPort, _ = strconv.Atoi(port)
	a, err := agent.New(cfg, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return &afsAgent{Agent: a, health: "http://" + healthAddr, metrics: "http://" + metricsAddr + "/metrics", stop: stop}
}

// auditHealth is GET /health/audit: the HTTP status and the component.
func (a *afsAgent) auditHealth() (int, map[string]any) {
	resp, err := http.Get(a.health + "/health/audit")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var c map[string]any
	if json.NewDecoder(resp.Body).Decode(&c) != nil {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, c
}

// readyz is the HTTP status of GET /readyz.
func (a *afsAgent) readyz() int {
	resp, err := http.Get(a.health + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// metric scrapes /metrics over HTTP and returns the value of an
// unlabelled gauge or counter (ok false when absent).
func (a *afsAgent) metric(t *testing.T, name string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(a.metrics)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	mf := mfs[name]
	if mf == nil || len(mf.Metric) == 0 {
		return 0, false
	}
	m := mf.Metric[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	}
	return 0, false
}

// afsProducer writes audit records with unique ids into a small audit
// ring and remembers exactly which ones the ring took and how many it
// refused.
type afsProducer struct {
	w         *shm.Writer
	prefix    string
	mu        sync.Mutex
	committed []string
	dropped   int
	stopped   chan struct{}
	done      chan struct{}
}

const afsRingBytes = 1 << 16 // ~300 records: full within a fraction of a second

func startAFSProducer(t *testing.T, dir, prefix string) *afsProducer {
	t.Helper()
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: afsRingBytes,
		AuditWait: 100 * time.Microsecond, Identity: shm.Identity{Producer: "auditfs"}})
	if err != nil {
		t.Fatal(err)
	}
	p := &afsProducer{w: w, prefix: prefix, stopped: make(chan struct{}), done: make(chan struct{})}
	pad := strings.Repeat("x", 96)
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stopped:
				// Closing publishes the final loss counter, so drops after
				// the last committed record still become a gap record.
				w.Close()
				return
			case <-time.After(500 * time.Microsecond):
			}
			id := fmt.Sprintf("%s-%d", prefix, i)
			now := time.Now()
			obj := fmt.Sprintf(`{"operation":"register","details":{"id":%q,"pad":%q},"success":true,"error":null,"timestamp":%f}`,
				id, pad, float64(now.UnixNano())/1e9)
			err := w.EmitAudit(now.UnixNano(), []byte(obj))
			p.mu.Lock()
			if err == nil {
				p.committed = append(p.committed, id)
			} else if errors.Is(err, shm.ErrFull) {
				p.dropped++
			}
			p.mu.Unlock()
			w.Heartbeat()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *afsProducer) stop() {
	select {
	case <-p.stopped:
	default:
		close(p.stopped)
	}
	<-p.done
}

func (p *afsProducer) counts() (committed, dropped int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.committed), p.dropped
}

// afsStored counts the producer's stored records by id, and the records
// its gap records say were lost.
func afsStored(t *testing.T, st audit.Store) (ids map[string]int, gaps int, lost uint64) {
	t.Helper()
	recs, err := st.Query(audit.Filter{Producer: "auditfs"})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	ids = map[string]int{}
	for _, r := range recs {
		switch r.Kind {
		case audit.KindProducer:
			var d struct{ ID string }
			if err := json.Unmarshal(r.Details, &d); err != nil {
				t.Fatalf("record %d details %s", r.Seq, r.Details)
			}
			ids[d.ID]++
		case audit.KindGap:
			gaps++
			lost += r.Lost
		}
	}
	return ids, gaps, lost
}

// afsFS is one way the audit store's file system fails and recovers.
type afsFS struct {
	name string
	// mount prepares the file system and returns its mount point.
	mount func(t *testing.T) string
	// fail breaks it under the running agent.
	fail func(t *testing.T, dir string)
	// recover repairs it; restart says the agent had to be stopped for
	// that and must be started again.
	recover func(t *testing.T, dir string, a *afsAgent) (restart bool)
	// errText is what the agent must say the error is.
	errText string
}

// The audit store's file system fills up (2 MiB tmpfs) or turns read-only
// (ext4 on a loop device, remounted read-only by the kernel after a
// file-system error) while a producer writes audit records: the agent
// reports it in health (/health/audit 503 with the error, /readyz failing)
// and metrics (agaobs_audit_store_up 0, agaobs_audit_write_errors_total
// rising), the audit ring is held (its head stops, the producer finds it
// full and drops), and once the store recovers every record the ring took
// is stored exactly once and the drops are gap records whose counts add up
// to exactly the producer's drops.
//
// Read-only cannot recover in place on Linux: `mount -o remount,ro` is
// refused (EBUSY) while the agent holds the store open for writing, and
// ext4's error remount (what makes a disk read-only in production) is
// sticky until the file system is unmounted. So that case does what an
// operator does: stop the agent, fsck, mount read-write, start it again;
// the records the ring held meanwhile are stored by the new agent.
func TestAuditStoreFilesystemFault(t *testing.T) {
	testutil.RequireRoot(t)
	for _, fs := range []afsFS{afsFull(), afsReadOnly()} {
		t.Run(fs.name, func(t *testing.T) { testAuditStoreFault(t, fs) })
	}
}

func afsFull() afsFS {
	return afsFS{
		name:    "full",
		errText: "no space left on device",
		mount: func(t *testing.T) string {
			dir := t.TempDir()
			if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
				testutil.SkipOrFail(t, "cannot mount a tmpfs: "+err.Error())
			}
			t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
			return dir
		},
		fail: func(t *testing.T, dir string) {
			f, err := os.Create(filepath.Join(dir, "filler"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			chunk := make([]byte, 4096)
			for {
				if _, err := f.Write(chunk); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("filling the disk: %v", err)
					}
					return
				}
			}
		},
		recover: func(t *testing.T, dir string, _ *afsAgent) bool {
			if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
				t.Fatal(err)
			}
			return false
		},
	}
}

func afsReadOnly() afsFS {
	var img, loop string
	run := func(t *testing.T, name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	// attach puts the image on a loop device and mounts it with
	// errors=remount-ro, what production ext4 mounts use: a file-system
	// error turns it read-only under every open file.
	attach := func(t *testing.T, dir string) {
		t.Helper()
		out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
		if err != nil {
			testutil.SkipOrFail(t, fmt.Sprintf("no loop device: %v: %s", err, out))
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
		if err := syscall.Mount(dev, dir, "ext4", 0, "errors=remount-ro"); err != nil {
			testutil.SkipOrFail(t, "cannot mount ext4 on "+dev+": "+err.Error())
		}
		loop = dev
	}
	return afsFS{
		name:    "read-only",
		errText: "read-only file system",
		mount: func(t *testing.T) string {
			for _, tool := range []string{"losetup", "mkfs.ext4", "e2fsck"} {
				testutil.RequireTool(t, tool)
			}
			img = filepath.Join(t.TempDir(), "audit.img")
			run(t, "truncate", "-s", "16M", img)
			run(t, "mkfs.ext4", "-q", "-F", img)
			dir := t.TempDir()
			attach(t, dir)
			t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
			if _, err := os.Stat(afsTrigger(loop)); err != nil {
				testutil.SkipOrFail(t, "ext4 has no trigger_fs_error: "+err.Error())
			}
			return dir
		},
		fail: func(t *testing.T, dir string) {
			if err := os.WriteFile(afsTrigger(loop), []byte("1"), 0); err != nil {
				t.Fatal(err)
			}
		},
		recover: func(t *testing.T, dir string, a *afsAgent) bool {
			// The operator's repair: stop the agent, unmount, fsck, mount.
			if err := a.stop(); err != nil {
				t.Fatalf("agent stop with a read-only store: %v", err)
			}
			if err := syscall.Unmount(dir, 0); err != nil {
				t.Fatalf("unmount after the agent stopped (a file left open?): %v", err)
			}
			// fsck and mount a copy of the image: a mount namespace
			// created meanwhile (any unshare on the machine, other tests
			// included) holds its own copy of the mount and so keeps the
			// read-only superblock, and the device, busy.
			fixed := img + ".fixed"
			run(t, "cp", "--sparse=always", img, fixed)
			img = fixed
			// Exit 1: errors corrected (the one the kernel recorded).
			if out, err := exec.Command("e2fsck", "-fy", img).CombinedOutput(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 {
					t.Fatalf("e2fsck: %v\n%s", err, out)
				}
			}
			attach(t, dir)
			return true
		},
	}
}

func afsTrigger(loop string) string {
	return filepath.Join("/sys/fs/ext4", filepath.Base(loop), "trigger_fs_error")
}

func testAuditStoreFault(t *testing.T, fs afsFS) {
	start := time.Now()
	disk := fs.mount(t)
	db := filepath.Join(disk, "audit.db")
	ringDir := t.TempDir()
	a := startAFSAgent(t, ringDir, db)
	p := startAFSProducer(t, ringDir, fs.name)
	ringPath := p.w.Path()
	testutil.Eventually(t, 30*time.Second, func() bool {
		ids, _, _ := afsStored(t, a.AuditStore())
		return len(ids) >= 200
	}, "the agent did not start storing audit records")
	if code, c := a.auditHealth(); code != http.StatusOK || c["status"] != "healthy" {
		t.Fatalf("/health/audit before the fault: %d %v", code, c)
	}
	errsBefore, _ := a.metric(t, "agaobs_audit_write_errors_total")

	// The fault.
	fs.fail(t, disk)
	failedAt := time.Now()
	var comp map[string]any
	testutil.Eventually(t, 30*time.Second, func() bool {
		var code int
		code, comp = a.auditHealth()
		return code == http.StatusServiceUnavailable && comp["status"] == "unhealthy"
	}, "/health/audit did not report the failing store: %v", comp)
	detected := time.Since(failedAt)
	if e, _ := comp["error"].(string); !strings.Contains(e, fs.errText) || comp["writable"] != false {
		t.Errorf("/health/audit does not say why: %v", comp)
	}
	if code := a.readyz(); code != http.StatusInternalServerError {
		t.Errorf("/readyz %d with an unwritable audit store, want 500", code)
	}
	if up, ok := a.metric(t, "agaobs_audit_store_up"); !ok || up != 0 {
		t.Errorf("agaobs_audit_store_up = %v (present %v) while the store fails", up, ok)
	}
	errsDown, _ := a.metric(t, "agaobs_audit_write_errors_total")
	if errsDown <= errsBefore {
		t.Errorf("agaobs_audit_write_errors_total %v → %v: the failures were not counted", errsBefore, errsDown)
	}

	// Held: the ring keeps what the store could not take. Its head stops
	// (nothing is released unstored), it fills, and the producer drops.
	time.Sleep(300 * time.Millisecond) // acks of commits that made it before the fault
	before, err := shm.InspectRing(ringPath)
	if err != nil {
		t.Fatal(err)
	}
	passes0, hold0 := a.Consumer().Passes(), time.Now()
	_, dropped0 := p.counts()
	hold := time.Duration(size(1500, 10000)) * time.Millisecond
	time.Sleep(hold)
	after, err := shm.InspectRing(ringPath)
	if err != nil {
		t.Fatal(err)
	}
	passRate := float64(a.Consumer().Passes()-passes0) / time.Since(hold0).Seconds()
	_, droppedDown := p.counts()
	if after.Stats.Head != before.Stats.Head {
		t.Errorf("audit ring head moved %d → %d while the store could not write: unstored records released", before.Stats.Head, after.Stats.Head)
	}
	if fill := float64(after.Stats.Tail-after.Stats.Head) / afsRingBytes; fill < 0.9 {
		t.Errorf("audit ring %.0f%% full after %v of outage: records were taken out of it", 100*fill, hold)
	}
	if droppedDown <= dropped0 {
		t.Errorf("the producer never found its audit ring full (%d drops)", droppedDown)
	}
	if up, _ := a.metric(t, "agaobs_audit_store_up"); up != 0 {
		t.Errorf("agaobs_audit_store_up = %v during the outage", up)
	}
	// A held ring has unread records the sink has no room for: the
	// consumer must keep polling at its pace (~300-900 passes/s here),
	// not spin on it.
	if passRate > 5000 {
		t.Errorf("the consumer made %.0f passes/s while the audit ring was held: it spins", passRate)
	}
	t.Logf("%s: detected after %v; ring head held at %d, %.0f%% full; %d producer drops; consumer %.0f passes/s while held",
		fs.name, detected.Round(time.Millisecond), after.Stats.Head, 100*float64(after.Stats.Tail-after.Stats.Head)/afsRingBytes, droppedDown, passRate)

	// Recovery.
	recoverAt := time.Now()
	restarted := fs.recover(t, disk, a)
	if restarted {
		a = startAFSAgent(t, ringDir, db)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		code, c := a.auditHealth()
		return code == http.StatusOK && c["status"] == "healthy"
	}, "/health/audit did not recover")
	recovered := time.Since(recoverAt)
	if up, _ := a.metric(t, "agaobs_audit_store_up"); up != 1 {
		t.Errorf("agaobs_audit_store_up = %v after recovery", up)
	}
	time.Sleep(300 * time.Millisecond) // records after the outage carry its loss
	p.stop()
	p.mu.Lock()
	committed, dropped := append([]string(nil), p.committed...), p.dropped
	p.mu.Unlock()
	if st := p.w.Stats(); st.Dropped != uint64(dropped) {
		t.Fatalf("producer counted %d drops, its ring %d", dropped, st.Dropped)
	}
	var ids map[string]int
	testutil.Eventually(t, 30*time.Second, func() bool {
		ids, _, _ = afsStored(t, a.AuditStore())
		return len(ids) >= len(committed)
	}, "stored %d of %d committed records after recovery", len(ids), len(committed))
	time.Sleep(300 * time.Millisecond) // a late duplicate or gap would show now
	ids, gaps, lost := afsStored(t, a.AuditStore())
	var missing, dup []string
	for _, id := range committed {
		switch ids[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			dup = append(dup, id)
		}
		delete(ids, id)
	}
	if len(missing)+len(dup)+len(ids) > 0 {
		t.Fatalf("store vs producer: %d committed; missing %d %v; duplicated %d %v; never committed %v",
			len(committed), len(missing), afsHead(missing), len(dup), afsHead(dup), ids)
	}
	if lost != uint64(dropped) || gaps == 0 {
		t.Fatalf("%d gap records account for %d lost records; the producer dropped %d", gaps, lost, dropped)
	}
	if rep, err := a.AuditStore().Verify(nil); err != nil {
		t.Fatalf("verify after recovery: %v (%+v)", err, rep)
	}
	if !restarted {
		recs, err := a.AuditStore().Query(audit.Filter{Operation: "audit_store_recovered"})
		if err != nil || len(recs) != 1 {
			t.Fatalf("audit_store_recovered records: %d (%v)", len(recs), err)
		}
		t.Logf("audit_store_recovered %s", recs[0].Details)
	}
	t.Logf("%s: %d records committed by the producer, all stored once; %d dropped = %d lost in %d gap record(s); recovered %v after the repair; %v in all",
		fs.name, len(committed), dropped, lost, gaps, recovered.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	how := "freed in place"
	if restarted {
		how = "agent stopped, fsck, mounted rw, agent restarted"
	}
	report(t, "audit store file system "+fs.name, fmt.Sprintf("%d audit records at ~1.5k/s into a 64 KiB audit ring; store failing for ≥ %v", len(committed)+dropped, hold),
		fmt.Sprintf("/health/audit 503 with %q after %v, /readyz 500, agaobs_audit_store_up 0, write errors %v → %v; ring head held (ring %.0f%% full), %d drops; after recovery (%s) all %d committed records stored once, %d drops recorded in %d gap record(s) with the exact count, chain verifies",
			fs.errText, detected.Round(time.Millisecond), errsBefore, errsDown, 100*float64(after.Stats.Tail-after.Stats.Head)/afsRingBytes, dropped,
			how, len(committed), dropped, gaps))
}

func afsHead(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}
