package rings

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// A liveness check that cannot read procfs (EMFILE, EACCES, a read error)
// keeps the producer: its rings are neither finished nor unlinked. Only
// "no such process" ends it.
func TestInconclusiveLivenessKeepsProducer(t *testing.T) {
	dir := t.TempDir()
	fake := t.TempDir()
	_, pid := startHelper(t, dir, "steady", 100, nil, false)
	link := filepath.Join(fake, strconv.Itoa(pid))
	if err := os.Symlink(fmt.Sprintf("/proc/%d", pid), link); err != nil {
		t.Fatal(err)
	}
	h := startConsumerWith(t, dir, Tunables{Retention: 0, RemoveDead: true}, fake, time.Millisecond)
	testutil.Eventually(t, 30*time.Second, func() bool { return h.rec.count(pipeline.KindForward, "steady") == 100 }, "forwards not delivered")
	hot, _ := ringInfo(h, "steady", "hot")

	// procfs now answers with an error that is not ENOENT/ESRCH.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(link, "stat"), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return h.c.Counters().CheckErrors >= 3 }, "no inconclusive checks counted")
	if ev := h.rec.lifecycle(pipeline.ProducerDied, "steady"); ev != nil {
		t.Fatal("a live producer was declared dead on an unreadable procfs")
	}
	if _, err := os.Stat(hot.Path); err != nil {
		t.Fatalf("ring file of a live producer: %v", err)
	}
	if ri, _ := ringInfo(h, "steady", "hot"); ri.State != "live" {
		t.Fatalf("state %q, want live", ri.State)
	}

	// The process "goes away" (ENOENT): now it is dead, and its files go.
	if err := os.RemoveAll(link); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return h.rec.lifecycle(pipeline.ProducerDied, "steady") != nil }, "death not detected")
	testutil.Eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(hot.Path)
		return os.IsNotExist(err)
	}, "dead producer's ring not removed")
}

// A producer that closed its rings but whose process lives on keeps its
// ring files: they are never unlinked while the owner exists.
func TestRingFileKeptWhileOwnerLives(t *testing.T) {
	dir := t.TempDir()
	h := startConsumer(t, dir, Tunables{Retention: 0, RemoveDead: true}, nil, true)
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 4096, Identity: shm.Identity{Producer: "inproc"}})
	if err != nil {
		t.Fatal(err)
	}
	path := w.Path()
	_ = w.EmitForward(time.Now().UnixNano(), &shm.Forward{})
	testutil.Eventually(t, 30*time.Second, func() bool { return h.rec.count(pipeline.KindForward, "inproc") == 1 }, "not consumed")
	w.Close()
	// Forgetting and retiring happen in one housekeeping, before the
	// lifecycle event reaches the sinks.
	testutil.Eventually(t, 30*time.Second, func() bool { return h.rec.lifecycle(pipeline.ProducerForgotten, "inproc") != nil }, "not forgotten")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ring file unlinked while its owner (this process) runs: %v", err)
	}
}

// Junk ring files are examined once: a rescan costs no stat, no open, no
// log line and no audit record per unchanged (name, inode), and their
// rejections reach the sinks as one summary per (uid, reason) and minute.
func TestJunkFilesExaminedOnceAndAggregated(t *testing.T) {
	dir := t.TempDir()
	const junk = 2000
	for i := 0; i < junk; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("junk-%d.ring", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := startConsumer(t, dir, Tunables{RescanInterval: time.Hour}, nil, true)
	testutil.Eventually(t, 30*time.Second, func() bool { return h.c.Counters().Rejected[rejNotRing] == junk }, "junk not rejected: %+v", h.c.Counters())
	examined := h.c.examined.Load()
	if examined != junk {
		t.Fatalf("examined %d files, want %d", examined, junk)
	}
	// Directory changes trigger rescans; none re-examines the junk.
	scans := h.c.scans.Load()
	for i := 0; i < 5; i++ {
		p := filepath.Join(dir, fmt.Sprintf("touch-%d", i))
		os.WriteFile(p, nil, 0o600)
		want := scans + uint64(i) + 1
		testutil.Eventually(t, 30*time.Second, func() bool { return h.c.scans.Load() >= want }, "no rescan after a directory change")
	}
	if n := h.c.examined.Load(); n != examined {
		t.Fatalf("rescans examined %d more files", n-examined)
	}
	n := 0
	h.rec.mu.Lock()
	for _, ev := range h.rec.evs {
		if ev.Kind == pipeline.KindLifecycle && ev.Lifecycle.Type == pipeline.RingRejected {
			n++
		}
	}
	h.rec.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d ring_rejected events for %d junk files of one uid and reason, want 1 (then a summary per minute)", n, junk)
	}
	if c := h.c.Counters(); c.Candidates != junk || c.Untracked != 0 {
		t.Fatalf("candidates %d untracked %d", c.Candidates, c.Untracked)
	}
}

func TestRejectionSummaries(t *testing.T) {
	r := newRejections()
	t0 := time.Unix(1000, 0)
	emitted := 0
	for i := 0; i < 1000; i++ {
		if _, ok := r.add(t0.Add(time.Duration(i)*50*time.Millisecond), 1000, rejNotRing, "p", "file size 0"); ok {
			emitted++
		}
	}
	if _, ok := r.add(t0, 1001, rejNotRing, "q", "x"); ok {
		emitted++
	}
	if emitted != 2 {
		t.Fatalf("emitted %d at once, want the first of each key (2)", emitted)
	}
	// 1000 adds span 50 s: nothing is due before the minute.
	if d := r.due(t0.Add(59 * time.Second)); len(d) != 0 {
		t.Fatalf("due early: %+v", d)
	}
	d := r.due(t0.Add(time.Minute))
	if len(d) != 1 || d[0].Details["count"] != uint64(999) || d[0].Details["uid"] != uint32(1000) {
		t.Fatalf("summary %+v", d)
	}
	if d := r.due(t0.Add(2 * time.Minute)); len(d) != 0 {
		t.Fatalf("empty keys reported: %+v", d)
	}
	if got := r.totals()[rejNotRing]; got != 1001 {
		t.Fatalf("total %d", got)
	}
	// Quiet keys are forgotten; the table is bounded.
	r.due(t0.Add(5 * time.Minute))
	if len(r.keys) != 0 {
		t.Fatalf("%d keys kept", len(r.keys))
	}
	for uid := uint32(0); uid < 3*maxRejectKeys; uid++ {
		r.add(t0, uid, rejNotRing, "p", "r")
	}
	if len(r.keys) > maxRejectKeys+1 {
		t.Fatalf("%d keys, cap %d", len(r.keys), maxRejectKeys)
	}
}

// ring_max_producers bounds the live producers of one uid; a ring turned
// away is accepted once the uid has room again.
func TestProducerCapPerUID(t *testing.T) {
	dir := t.TempDir()
	h := startConsumer(t, dir, Tunables{Retention: time.Hour, MaxProducersPerUID: 2}, nil, true)
	a, _ := startHelper(t, dir, "a", 1, nil, false)
	startHelper(t, dir, "b", 1, nil, false)
	testutil.Eventually(t, 30*time.Second, func() bool {
		return h.rec.count(pipeline.KindForward, "a") == 1 && h.rec.count(pipeline.KindForward, "b") == 1
	}, "first two producers not consumed")
	startHelper(t, dir, "c", 1, nil, false)
	testutil.Eventually(t, 30*time.Second, func() bool { return h.c.Counters().Rejected[rejProducerLimit] >= 2 }, "third producer not capped: %+v", h.c.Counters())
	if h.rec.count(pipeline.KindForward, "c") != 0 {
		t.Fatal("capped producer consumed")
	}
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	testutil.Eventually(t, 30*time.Second, func() bool { return h.rec.count(pipeline.KindForward, "c") == 1 }, "capped producer not accepted after another ended")
}

// A flood of doorbell pokes wakes the consumer at most once per
// ring_poll_interval.
func TestDoorbellFloodRateLimited(t *testing.T) {
	dir := t.TempDir()
	h := startConsumerWith(t, dir, Tunables{}, "", 50*time.Millisecond)
	testutil.Eventually(t, 30*time.Second, func() bool { return h.c.Passes() > 0 }, "consumer not started")
	f, err := os.OpenFile(filepath.Join(dir, shm.DoorbellName), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := h.c.doorbell.wakes.Load()
	start := time.Now()
	writes := 0
	for time.Since(start) < 500*time.Millisecond {
		if _, err := f.Write([]byte{1}); err == nil {
			writes++
		}
	}
	elapsed := time.Since(start)
	wakes := h.c.doorbell.wakes.Load() - before
	// An upper bound: a loaded machine only makes fewer wake-ups.
	if limit := uint64(elapsed/(50*time.Millisecond)) + 2; wakes > limit {
		t.Fatalf("%d pokes gave %d wake-ups in %v, want <= %d", writes, wakes, elapsed, limit)
	}
	if wakes == 0 {
		t.Fatal("no wake-up at all")
	}
}

// A uid that starts and ends producers in a loop keeps at most
// maxEndedPerUID of them for producer_retention; older ones are forgotten
// at once, so their state in every sink goes with them.
func TestEndedProducersBoundedPerUID(t *testing.T) {
	dir := t.TempDir()
	h := startConsumer(t, dir, Tunables{Retention: time.Hour}, nil, true)
	const n = maxEndedPerUID + 6
	var lastClosed, lastForgotten int
	for i := 0; i < n; i++ {
		w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 4096, Instance: uint32(i), Identity: shm.Identity{Producer: fmt.Sprintf("short-%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	ok := testutil.WaitFor(30*time.Second, func() bool {
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		closed, forgotten := 0, 0
		for _, ev := range h.rec.evs {
			if ev.Kind == pipeline.KindLifecycle {
				switch ev.Lifecycle.Type {
				case pipeline.ProducerClosed:
					closed++
				case pipeline.ProducerForgotten:
					forgotten++
				}
			}
		}
		lastClosed, lastForgotten = closed, forgotten
		return closed == n && forgotten == n-maxEndedPerUID
	})
	if !ok {
		t.Fatalf("ended producers not bounded (or a forgotten ring taken for a new one): %d closed, %d forgotten", lastClosed, lastForgotten)
	}
	h.c.mu.RLock()
	kept := len(h.c.producers)
	h.c.mu.RUnlock()
	if kept != maxEndedPerUID {
		t.Fatalf("%d producers kept, want %d", kept, maxEndedPerUID)
	}
}
