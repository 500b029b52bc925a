package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func testIdentity() Identity { return Identity{Producer: "test-tp0", Role: "test"} }

// newTestPair returns a writer and a reader over one heap buffer.
func newTestPair(t testing.TB, class Class, capacity uint64, mod func(*WriterOptions)) (*Writer, *Ring, []byte) {
	t.Helper()
	opts := WriterOptions{Class: class, Capacity: capacity, Identity: testIdentity(), PID: 1, StartTimeTicks: 1}
	if mod != nil {
		mod(&opts)
	}
	buf := make([]byte, HeaderSize+capacity)
	w, err := NewBufferWriter(buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRing(buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w, r, buf
}

// drain polls until the ring is empty and returns copies of the records.
func drain(t testing.TB, r *Ring) []Record {
	t.Helper()
	var out []Record
	for {
		res, err := r.Poll(64, func(rec *Record) Disposition {
			c := *rec
			c.Body = append([]byte(nil), rec.Body...)
			out = append(out, c)
			return Done
		})
		if err != nil {
			t.Fatal(err)
		}
		r.Commit()
		if !res.More {
			return out
		}
	}
}

func TestRoundTripEveryType(t *testing.T) {
	w, r, _ := newTestPair(t, ClassHot, 1<<16, nil)
	fwd := Forward{GateMean: 0.1, EntropyMean: 4.5, LatencyUs: 250.5, Layer: 31, Fields: FwdApplied | FwdHasGate | FwdHasEntropy | FwdHasLatency | FwdHasLayer}
	must(t, w.EmitForward(10, &fwd))
	ret := Retrieval{Layer: 1, ResultsCount: 5, InjectedCount: 2, BudgetRemaining: -3, Fields: 15}
	must(t, w.EmitRetrieval(20, &ret, []float64{0.5, 0.25}, []string{"id-a", "ид-б"}))
	must(t, w.emitEvent(30, "custom", []byte(`{"k":1}`)))
	must(t, w.EmitStatus(40, []byte(`{"bound":false}`)))
	recs := drain(t, r)
	if len(recs) != 5 {
		t.Fatalf("got %d records, want 5 (hello + 4)", len(recs))
	}
	wantTypes := []RecordType{TypeHello, TypeForward, TypeRetrieval, TypeEvent, TypeStatus}
	for i, rec := range recs {
		if rec.Type != wantTypes[i] || rec.Seq != uint64(i+1) {
			t.Errorf("record %d: type %v seq %d, want %v seq %d", i, rec.Type, rec.Seq, wantTypes[i], i+1)
		}
	}
	if id, err := ParseIdentity(recs[0].Body); err != nil || id.Producer != "test-tp0" {
		t.Errorf("hello identity %+v, %v", id, err)
	}
	got, err := DecodeForward(recs[1].Body)
	if err != nil || got != fwd || recs[1].TimeNs != 10 {
		t.Errorf("forward = %+v (%v) at %d, want %+v at 10", got, err, recs[1].TimeNs, fwd)
	}
	v, err := DecodeRetrieval(recs[2].Body)
	if err != nil || v.Retrieval != ret || v.NumScores() != 2 || v.Score(1) != 0.25 {
		t.Errorf("retrieval = %+v, %v", v, err)
	}
	var ids []string
	v.EachID(func(b []byte) { ids = append(ids, string(b)) })
	if strings.Join(ids, ",") != "id-a,ид-б" {
		t.Errorf("ids = %q", ids)
	}
	name, data, err := DecodeEvent(recs[3].Body)
	if err != nil || string(name) != "custom" || string(data) != `{"k":1}` {
		t.Errorf("event = %q %q %v", name, data, err)
	}
	if string(recs[4].Body) != `{"bound":false}` {
		t.Errorf("status = %q", recs[4].Body)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWrapWithPadding(t *testing.T) {
	w, r, buf := newTestPair(t, ClassHot, 4096, nil)
	drain(t, r) // hello
	sawPadding := false
	next := 0
	for round := 0; round < 40; round++ {
		// Variable-size events so wraps land at different offsets.
		for i := 0; i < 7; i++ {
			data := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, next, strings.Repeat("x", (next*37)%300))
			must(t, w.emitEvent(int64(next), "e", []byte(data)))
			next++
		}
		tail := atomic.LoadUint64((*uint64)(ptr(buf, offTail)))
		if tail&(4096-1) < 400 && tail > 4096 {
			sawPadding = true
		}
		recs := drain(t, r)
		if len(recs) != 7 {
			t.Fatalf("round %d: %d records, want 7", round, len(recs))
		}
		for i, rec := range recs {
			want := next - 7 + i
			_, data, err := DecodeEvent(rec.Body)
			if err != nil || !strings.HasPrefix(string(data), fmt.Sprintf(`{"n":%d,`, want)) {
				t.Fatalf("round %d record %d: %q %v", round, i, data, err)
			}
		}
	}
	if !sawPadding {
		t.Fatal("test never wrapped")
	}
	if s := r.Stats(); s.Lost != 0 || s.Corrupt != 0 {
		t.Errorf("lost %d corrupt %d, want 0", s.Lost, s.Corrupt)
	}
}

func TestHotFullDropsEqualGaps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close bool
	}{{"next-commit", false}, {"close", true}} {
		t.Run(tc.name, func(t *testing.T) {
			w, r, _ := newTestPair(t, ClassHot, 4096, nil)
			f := Forward{Fields: FwdHasLayer}
			var dropped int
			start := time.Now()
			for i := 0; i < 200; i++ {
				if err := w.EmitForward(int64(i), &f); errors.Is(err, ErrFull) {
					dropped++
				}
			}
			if time.Since(start) > 50*time.Millisecond {
				t.Errorf("hot writer blocked: 200 emits took %v", time.Since(start))
			}
			ret := Retrieval{}
			_ = w.EmitRetrieval(1, &ret, nil, nil) // dropped too: counted per type
			dropped++
			if dropped < 100 {
				t.Fatalf("only %d drops; ring should have filled", dropped)
			}
			drain(t, r)
			if tc.close {
				w.markClosed(1)
				r.Finish()
			} else {
				must(t, w.EmitForward(999, &f))
				drain(t, r)
			}
			s := r.Stats()
			if s.Dropped != uint64(dropped) || s.Lost != s.Dropped {
				t.Errorf("dropped %d (counted %d), lost %d: want all equal", s.Dropped, dropped, s.Lost)
			}
			if s.DroppedByType[TypeForward] != uint64(dropped-1) || s.DroppedByType[TypeRetrieval] != 1 {
				t.Errorf("dropped by type forward=%d retrieval=%d", s.DroppedByType[TypeForward], s.DroppedByType[TypeRetrieval])
			}
		})
	}
}

func TestAuditBoundedWaitAndLostBefore(t *testing.T) {
	wait := 2 * time.Millisecond
	w, r, _ := newTestPair(t, ClassAudit, 4096, func(o *WriterOptions) { o.AuditWait = wait })
	obj := []byte(`{"operation":"register","details":{"id":"` + strings.Repeat("k", 400) + `"},"success":true,"error":null,"timestamp":1.5}`)
	n := 0
	for ; ; n++ {
		start := time.Now()
		err := w.EmitAudit(int64(n), obj)
		if errors.Is(err, ErrFull) {
			el := time.Since(start)
			if el < wait || el > wait+50*time.Millisecond {
				t.Errorf("full audit ring waited %v, want about %v", el, wait)
			}
			break
		}
		must(t, err)
	}
	// One more drop, then free space: the next record carries lost_before.
	_ = w.EmitAudit(0, obj)
	var recs []Record
	for {
		res, err := r.Poll(100, func(rec *Record) Disposition {
			c := *rec
			c.Body = append([]byte(nil), rec.Body...)
			recs = append(recs, c)
			return Pending
		})
		must(t, err)
		for _, rec := range recs[len(recs)-res.Records:] {
			r.Ack(rec.Checkpoint)
		}
		r.Commit()
		if !res.More {
			break
		}
	}
	must(t, w.EmitAudit(7, obj))
	var last Record
	_, err := r.Poll(10, func(rec *Record) Disposition {
		last = *rec
		last.Body = append([]byte(nil), rec.Body...)
		return Done
	})
	must(t, err)
	lost, _, err := decodeAudit(last.Body)
	must(t, err)
	s := r.Stats()
	// Dropped: the first ErrFull and the one before the drain.
	if s.Dropped != 2 || lost != 2 || s.Lost != 2 {
		t.Errorf("dropped %d, lost_before %d, lost %d: want 2 each", s.Dropped, lost, s.Lost)
	}
}

// chanDoorbell reports each poke on a channel without blocking.
type chanDoorbell chan struct{}

func (d chanDoorbell) Poke() {
	select {
	case d <- struct{}{}:
	default:
	}
}

func TestAuditWaitSucceedsWhenConsumerReleases(t *testing.T) {
	bell := make(chanDoorbell, 1)
	// Filled without waiting; then the wait is only an upper bound.
	w, r, _ := newTestPair(t, ClassAudit, 4096, func(o *WriterOptions) { o.AuditWait = -1; o.Doorbell = bell })
	obj := []byte(`{"operation":"x","details":{"pad":"` + strings.Repeat("p", 900) + `"}}`)
	for w.EmitAudit(0, obj) == nil {
	}
	start := w.Stats().Dropped
	w.opts.AuditWait = time.Minute
	r.SetSleeping(1) // a waiting audit writer pokes a sleeping consumer
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-bell // the writer is waiting for space
		// Consumer releases everything (an audit ring needs acks).
		for {
			res, _ := r.Poll(100, func(rec *Record) Disposition { return Done })
			r.Commit()
			if !res.More {
				return
			}
		}
	}()
	err := w.EmitAudit(1, obj)
	<-done
	if err != nil || w.Stats().Dropped != start {
		t.Fatalf("audit emit during release: %v, dropped %d→%d", err, start, w.Stats().Dropped)
	}
}

func TestAuditHeadWaitsForAck(t *testing.T) {
	w, r, buf := newTestPair(t, ClassAudit, 1<<14, nil)
	for i := 0; i < 5; i++ {
		must(t, w.EmitAudit(int64(i), []byte(fmt.Sprintf(`{"operation":"op%d"}`, i))))
	}
	var cps []Checkpoint
	_, err := r.Poll(100, func(rec *Record) Disposition {
		if rec.Type != TypeAudit {
			return Done
		}
		cps = append(cps, rec.Checkpoint)
		return Pending
	})
	must(t, err)
	head := func() uint64 { return atomic.LoadUint64((*uint64)(ptr(buf, offHead))) }
	r.Commit()
	if head() != 0 {
		t.Fatalf("audit head released to %d before any ack", head())
	}
	r.Ack(cps[0])
	r.Ack(cps[1])
	r.Commit()
	if head() != cps[1].End {
		t.Fatalf("head %d after 2 acks, want %d", head(), cps[1].End)
	}
	// Restart: a new consumer re-reads the three unacknowledged records.
	r2, err := NewRing(buf, nil)
	must(t, err)
	var seqs []uint64
	_, err = r2.Poll(100, func(rec *Record) Disposition { seqs = append(seqs, rec.Seq); return Pending })
	must(t, err)
	if fmt.Sprint(seqs) != fmt.Sprint([]uint64{cps[2].Seq, cps[3].Seq, cps[4].Seq}) {
		t.Errorf("after restart re-read %v", seqs)
	}
}

func TestHotRestartDoesNotReRead(t *testing.T) {
	w, r, buf := newTestPair(t, ClassHot, 4096, nil)
	f := Forward{}
	for i := 0; i < 10; i++ {
		must(t, w.EmitForward(int64(i), &f))
	}
	if n := len(drain(t, r)); n != 11 {
		t.Fatalf("first consumer read %d", n)
	}
	for i := 0; i < 3; i++ {
		must(t, w.EmitForward(int64(i), &f))
	}
	// Crash between the slot commit and the head store: head lags the slot.
	atomic.StoreUint64((*uint64)(ptr(buf, offHead)), 0)
	r2, err := NewRing(buf, nil)
	must(t, err)
	recs := drain(t, r2)
	if len(recs) != 3 || recs[0].Seq != 12 {
		t.Fatalf("restarted consumer read %d records starting at seq %d, want 3 from 12", len(recs), recs[0].Seq)
	}
	// Crash after head_seq was known but before head moved: records with
	// seq ≤ head_seq are skipped, not double counted.
	gen := atomic.LoadUint64((*uint64)(ptr(buf, offCommitGen)))
	slot := offCommitSlot0 + int(gen&1)*commitSlotLen
	binary.LittleEndian.PutUint64(buf[slot:], 0) // head 0, head_seq stays 14
	r3, err := NewRing(buf, nil)
	must(t, err)
	if recs := drain(t, r3); len(recs) != 0 {
		t.Fatalf("replayed %d already-consumed records", len(recs))
	}
	if s := r3.Stats(); s.Lost != 0 {
		t.Errorf("lost %d after replay", s.Lost)
	}
}

func TestCorruptFrameResumesAtTail(t *testing.T) {
	w, r, buf := newTestPair(t, ClassHot, 8192, nil)
	drain(t, r)
	f := Forward{Fields: FwdHasLayer, Layer: 1}
	for i := 0; i < 3; i++ {
		must(t, w.EmitForward(int64(i), &f))
	}
	// Smash the length of the first forward record.
	off := HeaderSize + int(r.read)
	binary.LittleEndian.PutUint32(buf[off:], 5)
	if n := len(drain(t, r)); n != 0 {
		t.Fatalf("decoded %d records from a corrupt span", n)
	}
	f.Layer = 2
	must(t, w.EmitForward(9, &f))
	recs := drain(t, r)
	if len(recs) != 1 {
		t.Fatalf("after resync read %d records, want 1", len(recs))
	}
	if got, _ := DecodeForward(recs[0].Body); got.Layer != 2 {
		t.Errorf("resynced record layer %d", got.Layer)
	}
	if s := r.Stats(); s.Corrupt != 1 || s.Lost != 3 {
		t.Errorf("corrupt %d lost %d, want 1 and 3 (the skipped records)", s.Corrupt, s.Lost)
	}
}

func TestQuarantine(t *testing.T) {
	w, r, buf := newTestPair(t, ClassHot, 4096, nil)
	drain(t, r)
	atomic.StoreUint64((*uint64)(ptr(buf, offTail)), 8)
	_, err := r.Poll(10, func(*Record) Disposition { return Done })
	if !errors.Is(err, errQuarantined) || !strings.Contains(r.Quarantined(), "backwards") {
		t.Fatalf("err %v, reason %q", err, r.Quarantined())
	}
	_ = w
}

func TestHeaderValidation(t *testing.T) {
	_, _, good := newTestPair(t, ClassHot, 4096, nil)
	le := binary.LittleEndian
	cases := []struct {
		name   string
		mutate func(b []byte)
		want   string
		init   bool
	}{
		{"ok", func([]byte) {}, "", false},
		{"initialising", func(b []byte) { le.PutUint64(b[offMagic:], 0) }, "initialising", true},
		{"magic", func(b []byte) { b[0] = 'X' }, "bad magic", false},
		{"major", func(b []byte) { le.PutUint16(b[offVersionMajor:], 2) }, "unsupported version 2", false},
		{"minor is fine", func(b []byte) { le.PutUint16(b[offVersionMinor:], 9) }, "", false},
		{"header size", func(b []byte) { le.PutUint32(b[offHeaderSize:], 100) }, "header_size", false},
		{"class", func(b []byte) { le.PutUint32(b[offClass:], 3) }, "ring class", false},
		{"capacity", func(b []byte) { le.PutUint64(b[offCapacity:], 5000) }, "data_capacity", false},
		{"max record", func(b []byte) { le.PutUint32(b[offMaxRecordLen:], 4096) }, "max_record_len", false},
		{"epoch", func(b []byte) { le.PutUint64(b[offEpoch:], 0) }, "ring_epoch", false},
		{"identity len", func(b []byte) { le.PutUint32(b[offIdentityLen:], 4000) }, "identity", false},
		{"identity json", func(b []byte) { b[identityOffset] = '[' }, "identity", false},
		{"size", nil, "file size", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			if tc.mutate == nil {
				b = b[:len(b)-8]
			} else {
				tc.mutate(b)
			}
			_, err := NewRing(b, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var he *HeaderError
			if !errors.As(err, &he) || !strings.Contains(he.Reason, tc.want) || he.Initialising != tc.init {
				t.Fatalf("err = %v, want reason containing %q (initialising=%v)", err, tc.want, tc.init)
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	w, r, _ := newTestPair(t, ClassAudit, 4096, func(o *WriterOptions) { o.MaxRecordLen = 256 })
	big := []byte(`{"operation":"register","details":{"blob":"` + strings.Repeat("z", 1000) + `"},"success":true}`)
	must(t, w.EmitAudit(1, big))
	hw, hr, _ := newTestPair(t, ClassHot, 4096, func(o *WriterOptions) { o.MaxRecordLen = 128 })
	ret := Retrieval{}
	must(t, hw.EmitRetrieval(1, &ret, []float64{1}, []string{strings.Repeat("a", 40), strings.Repeat("b", 40), "c"}))
	recs := drain(t, r)
	last := recs[len(recs)-1]
	_, obj, _ := decodeAudit(last.Body)
	if last.Flags&flagTruncated == 0 || !strings.Contains(string(obj), `"_truncated":true`) || !strings.Contains(string(obj), `"operation":"register"`) {
		t.Errorf("truncated audit flags %d body %s", last.Flags, obj)
	}
	hrecs := drain(t, hr)
	v, err := DecodeRetrieval(hrecs[len(hrecs)-1].Body)
	if err != nil || v.NumIDs() != 1 || hrecs[len(hrecs)-1].Flags&flagTruncated == 0 {
		t.Errorf("truncated retrieval ids %d flags %d err %v", v.NumIDs(), hrecs[len(hrecs)-1].Flags, err)
	}
}

func TestConcurrentWritersSerialise(t *testing.T) {
	w, r, _ := newTestPair(t, ClassHot, 1<<20, nil)
	const per = 2000
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func(g int) {
			f := Forward{Layer: int32(g)}
			for i := 0; i < per; i++ {
				_ = w.EmitForward(int64(i), &f)
			}
			done <- struct{}{}
		}(g)
	}
	var n int
	stop := false
	for !stop {
		select {
		case <-done:
			per4 := 1
			for per4 < 4 {
				<-done
				per4++
			}
			stop = true
		default:
		}
		n += len(drain(t, r))
	}
	n += len(drain(t, r))
	if n != 4*per+1 || r.Stats().Lost != 0 {
		t.Fatalf("read %d records (lost %d), want %d", n, r.Stats().Lost, 4*per+1)
	}
}

// ForwardValues is DecodeForward without the struct: the same values and
// the same refusals.
func TestForwardValuesMatchesDecodeForward(t *testing.T) {
	body := make([]byte, ForwardBodyLen)
	PutForward(body, &Forward{GateMean: 0.25, EntropyMean: math.NaN(), LatencyUs: -1, Layer: -7, Fields: 0xdeadbeef})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"forward", body},
		{"short", body[:ForwardBodyLen-1]},
		{"long", append(append([]byte(nil), body...), 0)},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := DecodeForward(tc.b)
			gate, entropy, latency, layer, fields, ok := ForwardValues(tc.b)
			if ok != (err == nil) {
				t.Fatalf("ok %v, DecodeForward error %v", ok, err)
			}
			got := Forward{GateMean: gate, EntropyMean: entropy, LatencyUs: latency, Layer: layer, Fields: fields}
			if ok && (math.Float64bits(got.GateMean) != math.Float64bits(want.GateMean) ||
				math.Float64bits(got.EntropyMean) != math.Float64bits(want.EntropyMean) ||
				math.Float64bits(got.LatencyUs) != math.Float64bits(want.LatencyUs) || got.Layer != want.Layer || got.Fields != want.Fields) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}
