package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/selfmetrics"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// testRing is an audit ring in memory with n records, polled as the
// consumer polls it: every record Pending until acknowledged.
type testRing struct {
	ring *shm.Ring
	evs  []pipeline.Event
}

func newTestRing(t *testing.T, epoch uint64, n int, details func(i int) string) *testRing {
	t.Helper()
	const capacity = 1 << 16
	buf := make([]byte, shm.HeaderSize+capacity)
	w, err := shm.NewBufferWriter(buf, shm.WriterOptions{Class: shm.ClassAudit, Capacity: capacity, Epoch: epoch,
		Identity: shm.Identity{Producer: "p1"}, AuditWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	for i := 0; i < n; i++ {
		d := `{"i":` + fmt.Sprint(i) + `}`
		if details != nil {
			d = details(i)
		}
		obj := fmt.Sprintf(`{"operation":"op","details":%s,"success":true,"error":null,"timestamp":%f}`, d, float64(now)/1e9)
		if err := w.EmitAudit(now, []byte(obj)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := shm.NewRing(buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRing{ring: r}
	prod := pipeline.NewProducer("p1", "p1", 1, 1, "r", pipeline.Identity{Producer: "p1"})
	_, err = r.Poll(10*n+10, func(rec *shm.Record) shm.Disposition {
		var ev pipeline.Event
		if err := pipeline.Decode(rec, &ev); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if ev.Kind != pipeline.KindAudit {
			return shm.Done
		}
		ev.Producer, ev.RecvNs = prod, time.Now().UnixNano()
		ev.Ack, ev.Epoch = ackRecord(r, rec), r.Header().Epoch
		tr.evs = append(tr.evs, ev)
		return shm.Pending
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.evs) != n {
		t.Fatalf("polled %d audit records, want %d", len(tr.evs), n)
	}
	return tr
}

// released is the sequence number up to which the ring may free space.
func (r *testRing) released() uint64 { return r.ring.Commit().Seq }

// seqOf is the ring sequence number of the i-th audit record.
func (r *testRing) seqOf(i int) uint64 { return r.evs[i].Seq }

// flakyStore wraps a store: Append fails while fail is set and waits on
// gate when it is not nil.
type flakyStore struct {
	Store
	fail    atomic.Bool
	mu      sync.Mutex
	gate    chan struct{}
	entered atomic.Int32 // Append calls started
	batches []int
	at      []time.Time // when each stored batch's Append returned
}

func (f *flakyStore) Append(recs []*Record) ([]*Record, error) {
	f.entered.Add(1)
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if f.fail.Load() {
		return nil, errors.New("write /audit.db: no space left on device")
	}
	out, err := f.Store.Append(recs)
	f.mu.Lock()
	f.batches = append(f.batches, len(recs))
	f.at = append(f.at, time.Now())
	f.mu.Unlock()
	return out, err
}

func runWriter(t *testing.T, w *Writer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("writer did not stop")
		}
	}
}

// eventually waits for cond; the timeout is only an upper bound for a
// loaded machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, time.Minute, cond, "waiting for %s", what)
}

func producerRecords(t *testing.T, s Store) []Record {
	t.Helper()
	all, err := s.Query(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, r := range all {
		if r.Kind == KindProducer {
			out = append(out, r)
		}
	}
	return out
}

// Commits happen every BatchSize records or FlushInterval, and the ring
// releases a record only after the commit that stored it.
func TestWriterGroupCommitAcksAfterCommit(t *testing.T) {
	const interval = 300 * time.Millisecond
	fs := &flakyStore{Store: NewMemory()}
	w := NewWriter(WriterOptions{Store: fs, BatchSize: 4, FlushInterval: interval})
	stop := runWriter(t, w)
	defer stop()
	r := newTestRing(t, 0xaa, 10, nil)
	before := r.released()
	fs.mu.Lock()
	fs.gate = make(chan struct{})
	gate := fs.gate
	fs.mu.Unlock()
	written := time.Now()
	if err := w.Write(context.Background(), r.evs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first commit to wait in Append", func() bool { return fs.entered.Load() >= 1 })
	if got := r.released(); got != before {
		t.Fatalf("ring released seq %d before any commit finished (was %d)", got, before)
	}
	fs.mu.Lock()
	fs.gate = nil
	fs.mu.Unlock()
	close(gate)
	eventually(t, "the interval commit", func() bool { return r.released() == r.seqOf(9) })
	fs.mu.Lock()
	batches, at := fmt.Sprint(fs.batches), fs.at
	fs.mu.Unlock()
	if !strings.HasPrefix(batches, "[4 4 2") {
		t.Fatalf("commit sizes %s, want 4, 4, then 2", batches)
	}
	// The rest waited for the interval, which started after Write was
	// called: a lower bound, whatever the load.
	if waited := at[2].Sub(written); waited < interval {
		t.Fatalf("the last 2 records were committed %v after Write, before the %v interval", waited, interval)
	}
	if n := len(producerRecords(t, fs)); n != 10 {
		t.Fatalf("%d producer records stored, want 10", n)
	}
}

// A failing store holds everything (no ack), reports it, and catches up
// when it recovers; the outage is recorded.
func TestWriterStoreOutage(t *testing.T) {
	fs := &flakyStore{Store: NewMemory()}
	fs.fail.Store(true)
	w := NewWriter(WriterOptions{Store: fs, BatchSize: 100, FlushInterval: 10 * time.Millisecond})
	stop := runWriter(t, w)
	defer stop()
	r := newTestRing(t, 0xbb, 20, nil)
	before := r.released()
	if err := w.Write(context.Background(), r.evs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the store reported down", func() bool { ok, _, _ := w.Status(); return !ok })
	eventually(t, "a retry", func() bool { return gaugeValue(t, w, "agaobs_audit_write_errors_total", nil) >= 2 })
	ok, lastErr, pending := w.Status()
	if ok || !strings.Contains(lastErr, "no space left") || pending != 20 {
		t.Fatalf("status writable=%v err=%q pending=%d", ok, lastErr, pending)
	}
	if got := r.released(); got != before {
		t.Fatalf("ring released seq %d while the store was failing", got)
	}
	if v := gaugeValue(t, w, "agaobs_audit_store_up", nil); v != 0 {
		t.Fatalf("store_up %v while failing", v)
	}
	if v := gaugeValue(t, w, "agaobs_audit_write_errors_total", nil); v < 2 {
		t.Fatalf("write_errors_total %v, want retries counted", v)
	}
	fs.fail.Store(false)
	eventually(t, "catch-up", func() bool { return r.released() == r.seqOf(19) })
	if n := len(producerRecords(t, fs)); n != 20 {
		t.Fatalf("%d producer records after recovery, want 20", n)
	}
	rec, err := fs.Query(Filter{Operation: "audit_store_recovered"})
	if err != nil || len(rec) != 1 || !strings.Contains(string(rec[0].Details), "no space left") {
		t.Fatalf("recovery record: %+v %v", rec, err)
	}
	if ok, _, pending := w.Status(); !ok || pending != 0 {
		t.Fatalf("after recovery writable=%v pending=%d", ok, pending)
	}
}

// While shutting down, Write gives up at once on a failing store: the
// records stay in their rings for the next agent.
func TestWriterClosingDoesNotWaitForBrokenStore(t *testing.T) {
	fs := &flakyStore{Store: NewMemory()}
	fs.fail.Store(true)
	w := NewWriter(WriterOptions{Store: fs, BatchSize: 2, FlushInterval: 10 * time.Millisecond})
	stop := runWriter(t, w)
	defer stop()
	r := newTestRing(t, 0xcc, 6, nil)
	if err := w.Write(context.Background(), r.evs[:2]); err != nil { // fills the batch; Run stops reading
		t.Fatal(err)
	}
	eventually(t, "the store reported down", func() bool { ok, _, _ := w.Status(); return !ok })
	errc := make(chan error, 1)
	go func() { errc <- w.Write(context.Background(), r.evs[2:]) }()
	// The second Write has queued its 4 records and waits for Run.
	eventually(t, "the second Write to block", func() bool { _, _, pending := w.Status(); return pending == 6 })
	closing := time.Now()
	w.Closing()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Write succeeded into a writer that cannot store")
		}
		// A working store would get a 2 s grace; a broken one none.
		if el := time.Since(closing); el >= 2*time.Second {
			t.Fatalf("Write returned %v after Closing: it waited for a broken store", el)
		}
	case <-time.After(time.Minute):
		t.Fatal("Write still blocked a minute after Closing")
	}
}

// Gap records precede the record the producer lost audits before; agent
// lifecycle events become agent records with their details.
func TestWriterConvertsGapsAndAgentEvents(t *testing.T) {
	st := NewMemory()
	w := NewWriter(WriterOptions{Store: st, BatchSize: 1000, FlushInterval: 10 * time.Millisecond,
		RedactKeys: []string{"api_key"}})
	stop := runWriter(t, w)
	r := newTestRing(t, 0xdd, 2, func(i int) string { return `{"i":1,"auth":{"api_key":"s3cret","user":"u"}}` })
	r.evs[1].Audit.LostBefore = 3
	prod := r.evs[0].Producer
	now := time.Now().UnixNano()
	evs := append([]pipeline.Event{}, r.evs...)
	evs = append(evs,
		pipeline.Event{Kind: pipeline.KindLifecycle, Producer: prod, TimeNs: now,
			Lifecycle: &pipeline.Lifecycle{Type: pipeline.AuditGap, Ring: "/dev/shm/x", Class: pipeline.ClassAudit, Lost: 2}},
		pipeline.Event{Kind: pipeline.KindLifecycle, TimeNs: now,
			Lifecycle: &pipeline.Lifecycle{Type: pipeline.ConfigReloaded, Keys: []string{"alert_rules"}}},
		pipeline.Event{Kind: pipeline.KindLifecycle, TimeNs: now,
			Lifecycle: &pipeline.Lifecycle{Type: pipeline.AlertTransition, Details: map[string]any{"rule": "slo_latency_p99", "state": "firing", "producer": "tp0"}}},
	)
	if err := w.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "commit", func() bool { h, _ := st.Head(); return h.Size >= 6 })
	stop()
	all, _ := st.Query(Filter{Operation: ""})
	var got []string
	for _, rec := range all {
		if rec.Operation == "retention" {
			continue
		}
		got = append(got, fmt.Sprintf("%s/%s/lost=%d", rec.Kind, rec.Operation, rec.Lost))
		if strings.Contains(string(rec.Details), "s3cret") {
			t.Fatalf("redacted key stored: %s", rec.Details)
		}
	}
	want := "producer/op/lost=0 gap/audit_gap/lost=3 producer/op/lost=0 gap/audit_gap/lost=2 agent/config_reloaded/lost=0 agent/alert_transition/lost=0"
	if strings.Join(got, " ") != want {
		t.Fatalf("records\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	byOp := func(op string) Record {
		rs, _ := st.Query(Filter{Operation: op})
		return rs[len(rs)-1]
	}
	if a := byOp("alert_transition"); string(a.Details) != `{"producer":"tp0","rule":"slo_latency_p99","state":"firing"}` || a.Producer != "tp0" {
		t.Fatalf("alert transition %q details %s", a.Producer, a.Details)
	}
	if d := string(byOp("config_reloaded").Details); d != `{"keys":["alert_rules"]}` {
		t.Fatalf("config reload details %s", d)
	}
	if p := byOp("op"); p.Producer != "p1" || p.RingEpoch != "00000000000000dd" || p.RingSeq != r.seqOf(1) ||
		string(p.Details) != `{"auth":{"user":"u"},"i":1}` && string(p.Details) != `{"i":1,"auth":{"user":"u"}}` {
		t.Fatalf("producer record %+v details %s", p, p.Details)
	}
	if _, err := st.Verify(nil); err != nil {
		t.Fatal(err)
	}
}

// Retention runs when the writer starts: old days go, a checkpoint is
// written, and a run that removes nothing is still on the trail.
func TestWriterRetentionAtStart(t *testing.T) {
	st := NewMemory()
	old := time.Now().Add(-100 * 24 * time.Hour)
	var recs []*Record
	for i := 0; i < 5; i++ {
		recs = append(recs, &Record{Time: old, Kind: KindAgent, Operation: "old"})
	}
	if _, err := st.Append(recs); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(WriterOptions{Store: st, RetentionDays: 90})
	stop := runWriter(t, w)
	eventually(t, "retention", func() bool { return w.lastRetain.Load() > 0 })
	stop()
	all, _ := st.Query(Filter{})
	if len(all) != 1 || all[0].Kind != KindCheckpoint || !strings.Contains(string(all[0].Details), `"removed_records":5`) {
		t.Fatalf("after retention: %+v", all)
	}
	if _, err := st.Verify(nil); err != nil {
		t.Fatal(err)
	}
	w2 := NewWriter(WriterOptions{Store: st, RetentionDays: 90})
	stop = runWriter(t, w2)
	eventually(t, "second retention", func() bool { return w2.lastRetain.Load() > 0 })
	stop()
	if rs, _ := st.Query(Filter{Operation: "retention", After: all[0].Seq}); len(rs) != 1 || rs[0].Kind != KindAgent {
		t.Fatalf("a retention run that removed nothing is not recorded: %+v", rs)
	}
}

func TestWriterMetrics(t *testing.T) {
	st := NewMemory()
	w := NewWriter(WriterOptions{Store: st, BatchSize: 5, FlushInterval: 10 * time.Millisecond})
	stop := runWriter(t, w)
	r := newTestRing(t, 0xee, 7, nil)
	if err := w.Write(context.Background(), r.evs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "commit", func() bool { return r.released() == r.seqOf(6) })
	stop()
	if v := gaugeValue(t, w, "agaobs_audit_records_total", map[string]string{"operation": "op", "success": "true"}); v != 7 {
		t.Fatalf("records_total{op,true} = %v, want 7", v)
	}
	h, _ := st.Head()
	if v := gaugeValue(t, w, "agaobs_audit_head_size", nil); v != float64(h.Size) {
		t.Fatalf("head_size %v, want %d", v, h.Size)
	}
	if v := gaugeValue(t, w, "agaobs_audit_store_bytes", nil); v != float64(st.Size()) || v == 0 {
		t.Fatalf("store_bytes %v, want %d", v, st.Size())
	}
	if v := gaugeValue(t, w, "agaobs_audit_commit_duration_seconds", nil); v < 2 {
		t.Fatalf("commit_duration_seconds count %v, want >= 2", v)
	}
	if v := gaugeValue(t, w, "agaobs_audit_event_to_durable_seconds", nil); v != 7 {
		t.Fatalf("event_to_durable_seconds count %v, want 7", v)
	}
}

// gaugeValue gathers the writer's collector and returns the value (the
// sample count for histograms) of the series with these labels.
func gaugeValue(t *testing.T, w *Writer, name string, labels map[string]string) float64 {
	t.Helper()
	s := selfmetrics.NewSet()
	s.Add("audit", w.Collector())
	if err := selfmetrics.Check(s); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.Label {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// Lag is zero while nothing waits and grows while a failing store holds
// records.
func TestWriterLag(t *testing.T) {
	fs := &flakyStore{Store: NewMemory()}
	fs.fail.Store(true)
	w := NewWriter(WriterOptions{Store: fs, BatchSize: 10, FlushInterval: 10 * time.Millisecond})
	if l := w.Lag(time.Now().Add(time.Hour)); l != 0 {
		t.Fatalf("lag %v with nothing pending", l)
	}
	stop := runWriter(t, w)
	defer stop()
	r := newTestRing(t, 0xab, 3, nil)
	if err := w.Write(context.Background(), r.evs); err != nil {
		t.Fatal(err)
	}
	if l := w.Lag(time.Now().Add(time.Minute)); l < time.Minute {
		t.Fatalf("lag %v a minute after records started waiting", l)
	}
	fs.fail.Store(false)
	eventually(t, "commit", func() bool { return w.Lag(time.Now()) == 0 })
}

// ringAck plays the ring consumer's acknowledgement handle for a test ring.
type ringAck struct{ r *shm.Ring }

func (a ringAck) Acknowledge(t pipeline.AckToken) {
	a.r.Ack(shm.Checkpoint{End: t[0], Seq: t[1], Lost: t[2], Corrupt: t[3]})
}

func ackRecord(r *shm.Ring, rec *shm.Record) *pipeline.Ack {
	cp := rec.Checkpoint
	return pipeline.NewAck(ringAck{r}, pipeline.AckToken{cp.End, cp.Seq, cp.Lost, cp.Corrupt})
}

// TestWriterRecent: the writer keeps the newest RecentRecords stored
// records, newest first, across batches of any size.
func TestWriterRecent(t *testing.T) {
	w := NewWriter(WriterOptions{Store: NewMemory()})
	if got := w.Recent(); len(got) != 0 {
		t.Fatalf("recent before any commit: %v", got)
	}
	batch := func(from, n int) []*Record {
		out := make([]*Record, n)
		for i := range out {
			out[i] = &Record{Seq: uint64(from + i), Operation: "register", Hash: fmt.Sprint(from + i)}
		}
		return out
	}
	cases := []struct {
		name       string
		from, n    int
		wantNewest uint64
		wantLen    int
	}{
		{"first", 1, 3, 3, 3},
		{"one more", 4, 1, 4, 4},
		{"a big batch", 5, 50, 54, RecentRecords},
		{"after wrapping", 55, 7, 61, RecentRecords},
	}
	for _, c := range cases {
		w.counted(batch(c.from, c.n))
		got := w.Recent()
		if len(got) != c.wantLen || got[0].Seq != c.wantNewest {
			t.Fatalf("%s: %d records, newest %d; want %d, newest %d", c.name, len(got), got[0].Seq, c.wantLen, c.wantNewest)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq != got[i-1].Seq-1 {
				t.Fatalf("%s: not consecutive newest first: %d after %d", c.name, got[i].Seq, got[i-1].Seq)
			}
		}
	}
}
