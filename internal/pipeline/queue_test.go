package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/testutil"
)

// recSink records the batches it is given; block, when set, holds Write
// until it is closed.
type recSink struct {
	name  string
	kinds KindMask
	block chan struct{}
	mu    sync.Mutex
	got   []Event
	addrs []*Event // the first event's address of every batch
	calls int
}

func (s *recSink) Name() string    { return s.name }
func (s *recSink) Kinds() KindMask { return s.kinds }
func (s *recSink) Write(_ context.Context, b []Event) error {
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.got = append(s.got, b...)
	s.addrs = append(s.addrs, &b[0])
	return nil
}

func (s *recSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, cond, "%s", what)
}

// Sinks that want every kind in a range read the consumer's storage
// itself: one copy of an event, however many sinks there are. A sink that
// wants only some kinds gets only those, in order.
func TestSinksShareEventsWithoutCopies(t *testing.T) {
	d := NewDispatcher(nil)
	a := &recSink{name: "a", kinds: AllKinds}
	b := &recSink{name: "b", kinds: AllKinds}
	audit := &recSink{name: "audit", kinds: KindAudit.Mask()}
	d.Register(a, SinkOptions{})
	d.Register(b, SinkOptions{})
	d.Register(audit, SinkOptions{Lossless: true})
	d.Start()
	for i := range 10 {
		k := KindForward
		if i%5 == 4 {
			k = KindAudit
		}
		d.Add(Event{Kind: k, TimeNs: int64(i + 1)})
	}
	d.Flush()
	d.Close()
	if a.count() != 10 || b.count() != 10 || audit.count() != 2 {
		t.Fatalf("got %d, %d, %d events, want 10, 10, 2", a.count(), b.count(), audit.count())
	}
	if a.addrs[0] != b.addrs[0] {
		t.Errorf("sinks a and b were given different copies of the batch")
	}
	if audit.addrs[0] == a.addrs[0] {
		t.Errorf("the audit sink was given the whole range, other kinds included")
	}
	for i, ev := range audit.got {
		if ev.Kind != KindAudit || ev.TimeNs != int64(5*i+5) {
			t.Errorf("audit sink event %d: %+v", i, ev)
		}
	}
	for i, ev := range a.got {
		if ev.TimeNs != int64(i+1) {
			t.Fatalf("sink a event %d out of order: %+v", i, ev)
		}
	}
}

// A full lossy queue drops exactly the excess, counts it, and never grows
// past its capacity; the events it kept are the first ones.
func TestQueueOverflowIsCountedExactly(t *testing.T) {
	d := NewDispatcher(nil)
	s := &recSink{name: "s", kinds: KindForward.Mask(), block: make(chan struct{})}
	d.Register(s, SinkOptions{QueueSize: 100})
	// Not started: nothing drains while the test fills the queue.
	for i := range 150 {
		d.Add(Event{Kind: KindForward, TimeNs: int64(i + 1)})
		if i%7 == 0 {
			d.Add(Event{Kind: KindStatus}) // not the sink's kind: never counted
		}
	}
	d.Flush()
	st := d.Stats()[0]
	if st.Depth != 100 || st.Dropped != 50 {
		t.Fatalf("depth %d dropped %d, want 100 and 50", st.Depth, st.Dropped)
	}
	if p := d.Pressure(); p != 1 {
		t.Errorf("pressure %v, want 1", p)
	}
	close(s.block)
	d.Start()
	d.Close()
	if s.count() != 100 || s.got[0].TimeNs != 1 || s.got[99].TimeNs != 100 {
		t.Fatalf("delivered %d events, first %d last %d", s.count(), s.got[0].TimeNs, s.got[len(s.got)-1].TimeNs)
	}
	for _, ev := range s.got {
		if ev.Kind != KindForward {
			t.Fatalf("sink got a %v event", ev.Kind)
		}
	}
}

// A sink that never returns pins a bounded amount of storage, however the
// events arrive: one event per Flush must not hold a chunk per event.
func TestStalledSinkPinsBoundedStorage(t *testing.T) {
	d := NewDispatcher(nil)
	s := &recSink{name: "stalled", kinds: AllKinds, block: make(chan struct{})}
	d.Register(s, SinkOptions{QueueSize: 2 * chunkEvents})
	fast := &recSink{name: "fast", kinds: AllKinds}
	d.Register(fast, SinkOptions{})
	d.Start()
	const n = 20 * chunkEvents
	for range n {
		d.Add(Event{Kind: KindForward})
		d.Flush()
	}
	waitFor(t, "the fast sink", func() bool { return fast.count() == n })
	q := d.queues[0]
	q.mu.Lock()
	chunks, depth := q.chunks, q.depth
	q.mu.Unlock()
	if chunks > q.maxChunks || depth > q.capacity {
		t.Errorf("stalled sink holds %d chunks (max %d), %d events (capacity %d)", chunks, q.maxChunks, depth, q.capacity)
	}
	st := d.Stats()[0]
	// In flight (one batch, blocked in Write) + queued + dropped = all.
	if st.Dropped == 0 || st.Dropped+uint64(st.Depth) > n {
		t.Errorf("stalled sink: dropped %d, depth %d of %d", st.Dropped, st.Depth, n)
	}
	close(s.block)
	d.Close()
	if got := uint64(s.count()) + st.Dropped; got != n {
		t.Errorf("delivered %d + dropped %d = %d, want %d", s.count(), st.Dropped, got, n)
	}
}

// Once the sinks keep up, storage is reused: adding, flushing and draining
// allocates nothing.
func TestChunksAreReused(t *testing.T) {
	d := NewDispatcher(nil)
	s := &recSink{name: "s", kinds: AllKinds}
	d.Register(s, SinkOptions{})
	q := d.queues[0]
	cycle := func() {
		for range 300 {
			ev := d.Reserve()
			ev.Kind = KindForward
			d.Commit()
		}
		d.Flush()
		d.drainOnce(q)
		s.mu.Lock()
		s.got, s.addrs = s.got[:0], s.addrs[:0]
		s.mu.Unlock()
	}
	for range 20 {
		cycle() // warm up: chunks, span lists, the sink's slices
	}
	if allocs := testing.AllocsPerRun(50, cycle); allocs > 0 {
		t.Errorf("%.1f allocations per cycle, want 0", allocs)
	}
}

// A sink with Linger is not woken at every Flush while its events are
// young; it is when they are old enough, when its queue is a quarter full,
// and when the consumer goes idle.
func TestLinger(t *testing.T) {
	d := NewDispatcher(nil)
	var now int64 = 1e9
	d.now = func() int64 { return now }
	s := &recSink{name: "s", kinds: AllKinds}
	d.Register(s, SinkOptions{QueueSize: 400, Linger: 10 * time.Millisecond})
	q := d.queues[0]
	woken := func() bool {
		select {
		case <-q.notify:
			return true
		default:
			return false
		}
	}
	d.Add(Event{Kind: KindForward})
	d.Flush()
	if woken() {
		t.Fatal("woken at once")
	}
	now += int64(5 * time.Millisecond)
	d.Add(Event{Kind: KindForward})
	d.Flush()
	if woken() {
		t.Fatal("woken before the linger passed")
	}
	now += int64(5 * time.Millisecond)
	d.Flush()
	if !woken() {
		t.Fatal("not woken when the oldest event is 10 ms old")
	}
	d.drainOnce(q)
	for range 99 {
		d.Add(Event{Kind: KindForward})
	}
	d.Flush()
	if woken() {
		t.Fatal("woken with 99 of 400 queued")
	}
	d.Add(Event{Kind: KindForward})
	d.Flush()
	if !woken() {
		t.Fatal("not woken with a quarter of the queue full")
	}
	d.drainOnce(q)
	d.Add(Event{Kind: KindForward})
	d.Flush()
	d.Idle()
	if !woken() {
		t.Fatal("Idle did not wake a sink with queued events")
	}
	if s.count() != 102 {
		t.Fatalf("sink got %d events, want 102", s.count())
	}
}

// A slot written but not committed (a record that did not decode) is
// zeroed before it is handed out again: nothing of it reaches a sink.
func TestReserveWithoutCommit(t *testing.T) {
	d := NewDispatcher(nil)
	s := &recSink{name: "s", kinds: AllKinds}
	d.Register(s, SinkOptions{})
	ev := d.Reserve()
	ev.Kind, ev.Seq, ev.Other = KindEvent, 99, &Other{Name: "half-decoded"}
	ev = d.Reserve()
	if ev.Seq != 0 || ev.Other != nil || ev.Kind != 0 {
		t.Fatalf("reused slot not zeroed: %+v", ev)
	}
	ev.Kind, ev.Seq = KindForward, 1
	d.Commit()
	d.Flush()
	d.drainOnce(d.queues[0])
	if len(s.got) != 1 || s.got[0].Seq != 1 || s.got[0].Other != nil {
		t.Fatalf("sink got %+v", s.got)
	}
}

// latBucket's octave from the bit length matches the halving loop it
// replaced, at every quarter-octave edge and between.
func TestLatBucketMatchesHalving(t *testing.T) {
	ref := func(d time.Duration) int {
		us := float64(d) / float64(time.Microsecond)
		if us <= 1 {
			return 0
		}
		b := 0
		for v := us; v >= 2; v /= 2 {
			b += 4
		}
		frac := us / float64(uint64(1)<<(b/4))
		switch {
		case frac >= 1.6818:
			b += 3
		case frac >= 1.4142:
			b += 2
		case frac >= 1.1892:
			b++
		}
		return min(b+1, 104)
	}
	for d := time.Duration(0); d < 100*time.Second; d = d*21/20 + 1 {
		for _, x := range []time.Duration{d - 1, d, d + 1} {
			if x < 0 {
				continue
			}
			if got, want := latBucket(x), ref(x); got != want {
				t.Fatalf("latBucket(%v) = %d, want %d", x, got, want)
			}
		}
	}
}

// At high rates a lingering sink wakes once a chunk's worth is queued, so
// it pins no more storage than a sink that does not linger.
func TestLingerWakesAtAChunk(t *testing.T) {
	d := NewDispatcher(nil)
	d.now = func() int64 { return 1e9 } // time stands still: only the depth can wake it
	d.Register(&recSink{name: "s", kinds: AllKinds}, SinkOptions{QueueSize: 1 << 16, Linger: time.Second})
	q := d.queues[0]
	for range chunkEvents - 1 {
		d.Add(Event{Kind: KindForward})
	}
	d.Flush()
	select {
	case <-q.notify:
		t.Fatal("woken before a chunk's worth")
	default:
	}
	d.Add(Event{Kind: KindForward})
	d.Flush()
	select {
	case <-q.notify:
	default:
		t.Fatalf("not woken with %d events queued", chunkEvents)
	}
}

// A stalled lossless sink whose events are sparse (one audit record per
// chunk of forwards) drops none of them while the consumer respects Room,
// and pins no chunk: it holds copies of its own events, so the others'
// storage is still reused.
func TestStalledLosslessSinkSparseEvents(t *testing.T) {
	d := NewDispatcher(nil)
	audit := &recSink{name: "audit", kinds: KindAudit.Mask(), block: make(chan struct{})}
	d.Register(audit, SinkOptions{QueueSize: 1000, Lossless: true})
	fast := &recSink{name: "fast", kinds: KindForward.Mask()}
	d.Register(fast, SinkOptions{})
	d.Start()
	const chunks = 200 // more chunks than a queue of 1000 events may pin
	audits := 0
	for i := range chunks {
		for range chunkEvents - 1 {
			d.Add(Event{Kind: KindForward})
		}
		d.Flush()
		if d.Room(KindAudit) > 0 {
			d.Add(Event{Kind: KindAudit, Seq: uint64(audits)})
			audits++
		}
		d.Flush()
		// The fast sink keeps up (it must not drop for this test's sake).
		waitFor(t, "the fast sink", func() bool { return fast.count() == (i+1)*(chunkEvents-1) })
	}
	st := d.Stats()[0]
	if st.Dropped != 0 {
		t.Fatalf("lossless sink dropped %d", st.Dropped)
	}
	if audits != chunks {
		t.Fatalf("Room let only %d of %d audit events in", audits, chunks)
	}
	if st.Depth == 0 {
		t.Fatalf("stalled sink's queue is empty: %+v", st)
	}
	q := d.queues[0]
	q.mu.Lock()
	pinned, spans := q.chunks, len(q.spans)
	q.mu.Unlock()
	if pinned != 0 || spans != 0 {
		t.Errorf("the stalled lossless sink pins %d chunks (%d spans)", pinned, spans)
	}
	close(audit.block)
	d.Close()
	if audit.count() != audits {
		t.Fatalf("audit sink got %d of %d", audit.count(), audits)
	}
	for i, ev := range audit.got {
		if ev.Seq != uint64(i) || ev.Kind != KindAudit {
			t.Fatalf("audit event %d: %+v", i, ev)
		}
	}
}

// A filtering sink that wants nothing of a range is neither queued nor
// woken; one that wants some events gets exactly those, and its depth
// counts only them.
func TestFilteredSinkNotWokenForNothing(t *testing.T) {
	d := NewDispatcher(nil)
	s := &recSink{name: "otlp", kinds: KindForward.Mask()}
	d.Register(s, SinkOptions{Filter: func(ev *Event) bool { return ev.Seq%1000 == 0 }})
	q := d.queues[0]
	for i := 1; i < 1000; i++ {
		d.Add(Event{Kind: KindForward, Seq: uint64(i)})
	}
	d.Flush()
	select {
	case <-q.notify:
		t.Fatal("woken for a range it filters out entirely")
	default:
	}
	if st := d.Stats()[0]; st.Depth != 0 {
		t.Fatalf("depth %d for nothing wanted", st.Depth)
	}
	for i := 1000; i < 3001; i++ {
		d.Add(Event{Kind: KindForward, Seq: uint64(i)})
	}
	d.Flush()
	if st := d.Stats()[0]; st.Depth != 3 {
		t.Fatalf("depth %d, want 3", st.Depth)
	}
	d.drainOnce(q)
	if len(s.got) != 3 || s.got[0].Seq != 1000 || s.got[2].Seq != 3000 {
		t.Fatalf("sink got %d events: %+v", len(s.got), s.got)
	}
}

// A span with kinds the sink does not want is copied into its scratch
// buffer; the copies are dropped once written, so later spans do not pay
// for clearing them again.
func TestViewScratchDroppedAfterWrite(t *testing.T) {
	d := NewDispatcher(nil)
	s := &recSink{name: "s", kinds: KindForward.Mask()}
	d.Register(s, SinkOptions{})
	q := d.queues[0]
	for i := range 100 {
		d.Add(Event{Kind: KindForward, TimeNs: int64(i + 1)})
		if i%10 == 0 {
			d.Add(Event{Kind: KindStatus, Status: &Status{}})
		}
	}
	d.Flush()
	d.drainOnce(q) // not started: the test drains
	if s.count() != 100 {
		t.Fatalf("delivered %d forwards, want 100", s.count())
	}
	if len(q.scratch) != 0 {
		t.Fatalf("the scratch buffer still holds %d copies after the write", len(q.scratch))
	}
	for i, ev := range q.scratch[:cap(q.scratch)] {
		if ev.Kind != 0 || ev.Status != nil || ev.TimeNs != 0 {
			t.Fatalf("scratch slot %d not cleared: %+v", i, ev)
		}
	}
}
