package pipeline

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/shm"
)

func rec(t shm.RecordType, body string) *shm.Record {
	return &shm.Record{Type: t, Seq: 7, TimeNs: 42, Body: []byte(body)}
}

func forwardBody(f shm.Forward) string {
	b := make([]byte, shm.ForwardBodyLen)
	shm.PutForward(b, &f)
	return string(b)
}

func TestDecode(t *testing.T) {
	retBody := make([]byte, shm.RetrievalBodyLen(2, []string{"a", "bc"}))
	shm.PutRetrieval(retBody, &shm.Retrieval{Layer: 1, ResultsCount: 4, InjectedCount: 2, Fields: 7}, []float64{0.9, 0.1}, []string{"a", "bc"})
	audit := "\x03\x00\x00\x00\x00\x00\x00\x00" + `{"operation":"register","details":{"id":"k"},"success":false,"error":"boom","timestamp":1.5}`
	cases := []struct {
		name  string
		rec   *shm.Record
		check func(t *testing.T, ev *Event)
		err   bool
	}{
		{"forward", rec(shm.TypeForward, forwardBody(shm.Forward{GateMean: 0.5, Layer: 2, Fields: 3})), func(t *testing.T, ev *Event) {
			g, hasG := ev.Forward.GateMean()
			if l, hasL := ev.Forward.LayerIdx(); ev.Kind != KindForward || g != 0.5 || !hasG || hasL || l != 0 || ev.Forward.layer != 2 || !ev.Forward.Applied() {
				t.Errorf("%+v", ev.Forward)
			}
		}, false},
		{"forward short", rec(shm.TypeForward, "abc"), nil, true},
		{"retrieval", rec(shm.TypeRetrieval, string(retBody)), func(t *testing.T, ev *Event) {
			r := ev.Retrieval
			if n, ok := r.InjectedCount(); n != 2 || !ok || r.Injected() != 2 || len(r.Scores) != 2 || r.Scores[0] != 0.9 || strings.Join(r.IDs, ",") != "a,bc" {
				t.Errorf("%+v", r)
			}
		}, false},
		{"audit", rec(shm.TypeAudit, audit), func(t *testing.T, ev *Event) {
			a := ev.Audit
			if a.Operation != "register" || a.Success || a.Error == nil || *a.Error != "boom" || a.LostBefore != 3 || string(a.Details) != `{"id":"k"}` || a.Timestamp != 1.5 {
				t.Errorf("%+v", a)
			}
		}, false},
		{"audit defaults", rec(shm.TypeAudit, "\x00\x00\x00\x00\x00\x00\x00\x00{}"), func(t *testing.T, ev *Event) {
			if ev.Audit.Operation != "unknown" || !ev.Audit.Success || string(ev.Audit.Details) != "{}" {
				t.Errorf("%+v", ev.Audit)
			}
		}, false},
		// Never corrupt: the audit trail stores it sanitized (auditdecode_test.go).
		{"audit bad json", rec(shm.TypeAudit, "\x00\x00\x00\x00\x00\x00\x00\x00{nope"), func(t *testing.T, ev *Event) {
			if ev.Kind != KindAudit || ev.Audit.EncodeError == "" || string(ev.Audit.Raw) != "{nope" {
				t.Errorf("%+v", ev.Audit)
			}
		}, false},
		{"event", rec(shm.TypeEvent, "\x06\x00custom{\"x\":1}"), func(t *testing.T, ev *Event) {
			if ev.Kind != KindEvent || ev.Other.Name != "custom" || string(ev.Other.Data) != `{"x":1}` {
				t.Errorf("%+v", ev.Other)
			}
		}, false},
		{"event bad json", rec(shm.TypeEvent, "\x01\x00x{"), nil, true},
		{"forward fallback", rec(shm.TypeEvent, "\x07\x00forward"+`{"gate_mean":0.25,"aga_applied":true,"layer_idx":"x","latency_us":12}`), func(t *testing.T, ev *Event) {
			f := ev.Forward
			g, _ := f.GateMean()
			lat, _ := f.Latency()
			if _, hasL := f.LayerIdx(); ev.Kind != KindForward || g != 0.25 || !f.Applied() || hasL || lat != 12 {
				t.Errorf("%+v", f)
			}
		}, false},
		{"retrieval fallback", rec(shm.TypeEvent, "\x09\x00retrieval"+`{"injected_count":2,"scores":[0.5],"ids":[1]}`), func(t *testing.T, ev *Event) {
			if ev.Kind != KindRetrieval || ev.Retrieval.Injected() != 2 || ev.Retrieval.IDs[0] != "1" {
				t.Errorf("%+v", ev.Retrieval)
			}
		}, false},
		{"status", rec(shm.TypeStatus, `{"kv_store":{"count":3,"utilization":0.5},"gate_system":{"finite":null}}`), func(t *testing.T, ev *Event) {
			s := ev.Status
			if *s.KVStore.Count != 3 || s.GateSystem.Finite != nil {
				t.Errorf("%+v", s)
			}
		}, false},
		{"hello", rec(shm.TypeHello, `{"producer":"p","model":"m"}`), func(t *testing.T, ev *Event) {
			if ev.Kind != KindHello {
				t.Errorf("%+v", ev)
			}
			if id, err := DecodeHello(rec(shm.TypeHello, `{"producer":"p","model":"m"}`), ev); err != nil || id.Model != "m" {
				t.Errorf("%+v %v", id, err)
			}
		}, false},
		{"hello no name", rec(shm.TypeHello, `{"model":"m"}`), nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			err := Decode(tc.rec, &ev)
			if tc.err {
				if !errors.Is(err, shm.ErrCorrupt) {
					t.Fatalf("err = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Seq != 7 || ev.TimeNs != 42 {
				t.Errorf("seq/time %d/%d", ev.Seq, ev.TimeNs)
			}
			tc.check(t, &ev)
		})
	}
}

// Decoding must not keep references into the ring: a body rewritten after
// Decode must not change the event.
func TestDecodeCopiesBodies(t *testing.T) {
	body := []byte("\x00\x00\x00\x00\x00\x00\x00\x00" + `{"operation":"op","details":{"a":1}}`)
	var ev Event
	if err := Decode(&shm.Record{Type: shm.TypeAudit, Body: body}, &ev); err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'X'
	}
	if ev.Audit.Operation != "op" || string(ev.Audit.Details) != `{"a":1}` || !strings.Contains(string(ev.Audit.Raw), `"op"`) {
		t.Fatalf("event aliases the ring: %+v", ev.Audit)
	}
}

// checkForwardDecode holds Decode's FORWARD fast path (field stores,
// cleanForward only for a non-finite value) to shm.DecodeForward: the same
// error, the same values, a non-finite one dropped with its has bit and
// marked invalid.
func checkForwardDecode(t *testing.T, body []byte, ev *Event, err error) {
	t.Helper()
	want, werr := shm.DecodeForward(body)
	if (err == nil) != (werr == nil) {
		t.Fatalf("Decode error %v, DecodeForward error %v", err, werr)
	}
	if err != nil {
		return
	}
	f := &ev.Forward
	if ev.Kind != KindForward || f.layer != want.Layer || f.Applied() != (want.Fields&1 != 0) {
		t.Fatalf("decoded %+v from %+v", *f, want)
	}
	for _, c := range []struct {
		name  string
		got   func() (float64, bool)
		v     float64
		bit   uint32
		field InvalidField
	}{
		{"gate", f.GateMean, want.GateMean, 1 << 1, InvalidGate},
		{"entropy", f.EntropyMean, want.EntropyMean, 1 << 2, InvalidEntropy},
		{"latency", f.LatencyUs, want.LatencyUs, 1 << 3, InvalidLatency},
	} {
		v, ok := c.got()
		has := want.Fields&c.bit != 0
		switch {
		case !Finite(c.v):
			if ok || v != 0 || ev.Invalid.Has(c.field) != has {
				t.Fatalf("%s: non-finite %v decoded as %v, %v (invalid %v)", c.name, c.v, v, ok, ev.Invalid)
			}
		case ok != has || math.Float64bits(v) != math.Float64bits(c.v) || ev.Invalid.Has(c.field):
			t.Fatalf("%s: %v, %v decoded from %v (has %v)", c.name, v, ok, c.v, has)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(uint16(shm.TypeForward), []byte(forwardBody(shm.Forward{Fields: 31})))
	f.Add(uint16(shm.TypeForward), []byte(forwardBody(shm.Forward{GateMean: math.NaN(), LatencyUs: math.Inf(1), Layer: -3, Fields: 15})))
	f.Add(uint16(shm.TypeForward), []byte(forwardBody(shm.Forward{EntropyMean: math.Inf(-1), Fields: 4})))
	f.Add(uint16(shm.TypeAudit), []byte("\x00\x00\x00\x00\x00\x00\x00\x00{\"operation\":\"x\"}"))
	f.Add(uint16(shm.TypeEvent), []byte("\x07\x00forward{\"gate_mean\":1e309}"))
	f.Add(uint16(shm.TypeStatus), []byte(`{"kv_store":{"count":"x"}}`))
	f.Add(uint16(shm.TypeRetrieval), []byte{})
	f.Fuzz(func(t *testing.T, typ uint16, body []byte) {
		var ev Event
		err := Decode(&shm.Record{Type: shm.RecordType(typ), Body: body}, &ev)
		if err != nil && !errors.Is(err, shm.ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		if shm.RecordType(typ) == shm.TypeForward {
			checkForwardDecode(t, body, &ev, err)
		}
	})
}

type slowSink struct {
	kinds   KindMask
	delay   time.Duration
	gate    chan struct{} // when set, Write waits until it is closed
	fail    bool
	panics  bool
	mu      sync.Mutex
	got     []uint64
	flushed atomic.Bool
}

func (s *slowSink) Name() string    { return "slow" }
func (s *slowSink) Kinds() KindMask { return s.kinds }
func (s *slowSink) Write(_ context.Context, b []Event) error {
	time.Sleep(s.delay)
	if s.gate != nil {
		<-s.gate
	}
	if s.panics {
		panic("boom")
	}
	s.mu.Lock()
	for _, ev := range b {
		s.got = append(s.got, ev.Seq)
	}
	s.mu.Unlock()
	if s.fail {
		return errors.New("disk on fire")
	}
	return nil
}
func (s *slowSink) Flush(context.Context) error { s.flushed.Store(true); return nil }

func TestSlowSinkNeverBlocksConsumer(t *testing.T) {
	// The slow sink is stuck in Write until the producer has added every
	// event: the loop finishing at all is the proof, not how long it took.
	slow := &slowSink{kinds: AllKinds, gate: make(chan struct{})}
	fast := NewCounter()
	d := NewDispatcher(nil)
	d.Register(slow, SinkOptions{QueueSize: 100})
	d.Register(fast, SinkOptions{QueueSize: 100000})
	d.Start()
	added := make(chan struct{})
	go func() {
		defer close(added)
		for i := 0; i < 10000; i++ {
			d.Add(Event{Kind: KindForward, Seq: uint64(i)})
			if i%100 == 99 {
				d.Flush()
			}
		}
	}()
	select {
	case <-added:
	case <-time.After(time.Minute):
		t.Fatal("the consumer is blocked by a sink stuck in Write")
	}
	close(slow.gate)
	d.Close()
	var slowDrops, fastDrops uint64
	for _, s := range d.Stats() {
		switch s.Name {
		case "slow":
			slowDrops = s.Dropped
		case "counter":
			fastDrops = s.Dropped
		}
	}
	slow.mu.Lock()
	got := len(slow.got)
	slow.mu.Unlock()
	if slowDrops == 0 || uint64(got)+slowDrops != 10000 {
		t.Errorf("slow sink: got %d dropped %d, want sum 10000 with drops", got, slowDrops)
	}
	if fastDrops != 0 || fast.Counts()[""]["forward"] != 10000 {
		t.Errorf("fast sink dropped %d, counted %v", fastDrops, fast.Counts())
	}
	if !slow.flushed.Load() {
		t.Error("Close did not flush the sink")
	}
}

func TestFailingAndPanickingSinksAreCounted(t *testing.T) {
	failing := &slowSink{kinds: AllKinds, fail: true}
	panicking := &slowSink{kinds: AllKinds, panics: true}
	d := NewDispatcher(nil)
	d.Register(failing, SinkOptions{})
	d.Register(panicking, SinkOptions{})
	d.Start()
	d.Add(Event{Kind: KindAudit})
	d.Flush()
	d.Close()
	for _, s := range d.Stats() {
		if s.Errors != 1 {
			t.Errorf("%s errors = %d, want 1", s.Name, s.Errors)
		}
	}
}

func TestKindFilterAndRoom(t *testing.T) {
	audit := &slowSink{kinds: KindAudit.Mask(), delay: time.Hour}
	d := NewDispatcher(nil)
	d.Register(audit, SinkOptions{QueueSize: 10, Lossless: true})
	if d.Room(KindAudit) != 10 || d.Room(KindForward) <= 10 {
		t.Fatalf("room audit %d forward %d", d.Room(KindAudit), d.Room(KindForward))
	}
	d.Add(Event{Kind: KindAudit})
	d.Add(Event{Kind: KindForward})
	if d.Room(KindAudit) != 8 {
		t.Fatalf("room counts pending events: %d", d.Room(KindAudit))
	}
	d.Flush()
	if d.Room(KindAudit) != 9 {
		t.Fatalf("after flush room %d, want 9 (forward filtered out)", d.Room(KindAudit))
	}
}

func TestLatencyHistogram(t *testing.T) {
	var h LatencyHistogram
	for i := 0; i < 99; i++ {
		h.Observe(100 * time.Microsecond)
	}
	h.Observe(3 * time.Millisecond)
	p50, p99, p100 := h.Quantile(0.5), h.Quantile(0.99), h.Quantile(1)
	if p50 < 100*time.Microsecond || p50 > 120*time.Microsecond {
		t.Errorf("p50 %v", p50)
	}
	if p99 != p50 || p100 != 3*time.Millisecond {
		t.Errorf("p99 %v p100 %v", p99, p100)
	}
}

// TestLatencyObserveBucket: ObserveBucket with LatencyBucket is Observe.
func TestLatencyObserveBucket(t *testing.T) {
	var a, b LatencyHistogram
	for _, d := range []time.Duration{-5, 0, 1, time.Microsecond, 1500 * time.Nanosecond, 3 * time.Millisecond, time.Hour} {
		a.Observe(d)
		b.ObserveBucket(LatencyBucket(d), max(d, 0))
	}
	if a != b {
		t.Fatalf("Observe %+v, ObserveBucket %+v", a, b)
	}
}
