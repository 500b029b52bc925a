package pipeline

import (
	"context"
	"sync"
	"testing"
	"unsafe"

	"github.com/agaobs/agaobs/internal/shm"
)

// The observation rules live in the accessors: every sink that aggregates
// (metrics, alerting, anything added later) calls them, so this table is
// the one place the rules are tested.
func TestForwardObservationRules(t *testing.T) {
	// The observed values (with their ok) and the layer counted under.
	type obs struct {
		lat, gate, ent float64
		latOK, gateOK  bool
		entOK          bool
		layer          int32
	}
	for _, tc := range []struct {
		name string
		f    Forward
		want obs
	}{
		{"nothing carried", Forward{}, obs{}},
		{"latency 0 is not observed", Forward{}.WithLatency(0), obs{}},
		{"negative latency is not observed", Forward{}.WithLatency(-3), obs{lat: -3}},
		{"latency > 0", Forward{}.WithLatency(12.5), obs{lat: 12.5, latOK: true}},
		{"entropy 0 is not observed", Forward{}.WithEntropy(0), obs{}},
		{"entropy > 0", Forward{}.WithEntropy(2), obs{ent: 2, entOK: true}},
		{"gate 0 is observed when carried", Forward{}.WithGate(0), obs{gateOK: true}},
		{"gate", Forward{}.WithGate(0.7), obs{gate: 0.7, gateOK: true}},
		{"missing layer counts as 0", Forward{layer: 9}, obs{}},
		{"layer", Forward{}.WithLayer(31), obs{layer: 31}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			var got obs
			got.lat, got.latOK = f.Latency()
			got.gate, got.gateOK = f.Gate()
			got.ent, got.entOK = f.Entropy()
			got.layer = f.Layer()
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	f := Forward{}.WithApplied(true).WithApplied(false)
	if f.Applied() {
		t.Error("WithApplied(false) kept the bit")
	}
	// Carried values are what the producer wrote, observed or not.
	f = Forward{}.WithLatency(0).WithEntropy(-1)
	if v, ok := f.LatencyUs(); !ok || v != 0 {
		t.Errorf("carried latency %v %v", v, ok)
	}
	if v, ok := f.EntropyMean(); !ok || v != -1 {
		t.Errorf("carried entropy %v %v", v, ok)
	}
}

func TestRetrievalCounts(t *testing.T) {
	for _, tc := range []struct {
		name              string
		r                 Retrieval
		layer             int32
		results, injected int64
	}{
		{"nothing carried", Retrieval{layer: 4, results: 3, injected: 2}, 0, 0, 0},
		{"carried", Retrieval{}.WithLayer(4).WithResults(3).WithInjected(2), 4, 3, 2},
		{"negative counts count as 0", Retrieval{}.WithResults(-3).WithInjected(-1), 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if l, r, i := tc.r.Layer(), tc.r.Results(), tc.r.Injected(); l != tc.layer || r != tc.results || i != tc.injected {
				t.Errorf("layer %d results %d injected %d, want %d %d %d", l, r, i, tc.layer, tc.results, tc.injected)
			}
		})
	}
}

// The pipeline's bits are the ring format's: a decoded FORWARD or
// RETRIEVAL body keeps exactly the fields the producer set, and bits the
// format does not define are dropped.
func TestDecodeKeepsEachField(t *testing.T) {
	for bit := uint32(1); bit < 1<<8; bit <<= 1 {
		var ev Event
		in := shm.Forward{GateMean: 0.5, EntropyMean: 1.5, LatencyUs: 7, Layer: 3, Fields: bit}
		if err := Decode(rec(shm.TypeForward, forwardBody(in)), &ev); err != nil {
			t.Fatal(err)
		}
		f := &ev.Forward
		_, g := f.GateMean()
		_, e := f.EntropyMean()
		_, l := f.LatencyUs()
		_, y := f.LayerIdx()
		got := [5]bool{f.Applied(), g, e, l, y}
		want := [5]bool{bit == shm.FwdApplied, bit == shm.FwdHasGate, bit == shm.FwdHasEntropy, bit == shm.FwdHasLatency, bit == shm.FwdHasLayer}
		if got != want {
			t.Errorf("forward bit %#x: got %v, want %v", bit, got, want)
		}
		body := make([]byte, shm.RetrievalBodyLen(0, nil))
		shm.PutRetrieval(body, &shm.Retrieval{Layer: 1, ResultsCount: 2, InjectedCount: 3, BudgetRemaining: 4, Fields: bit}, nil, nil)
		if err := Decode(rec(shm.TypeRetrieval, string(body)), &ev); err != nil {
			t.Fatal(err)
		}
		r := ev.Retrieval
		_, a := r.LayerIdx()
		_, b := r.ResultsCount()
		_, c := r.InjectedCount()
		_, d := r.BudgetRemaining()
		rgot := [4]bool{a, b, c, d}
		rwant := [4]bool{bit == shm.RetHasLayer, bit == shm.RetHasResults, bit == shm.RetHasInjected, bit == shm.RetHasBudget}
		if rgot != rwant {
			t.Errorf("retrieval bit %#x: got %v, want %v", bit, rgot, rwant)
		}
	}
}

type kindSink struct {
	name  string
	kinds KindMask
	mu    sync.Mutex
	got   []Event
}

func (s *kindSink) Name() string    { return s.name }
func (s *kindSink) Kinds() KindMask { return s.kinds }
func (s *kindSink) Write(_ context.Context, b []Event) error {
	s.mu.Lock()
	s.got = append(s.got, b...)
	s.mu.Unlock()
	return nil
}

// Publish is safe from many goroutines, wakes the flushing side, is
// bounded (drops counted) and delivers only to sinks that want KindAgent.
func TestPublish(t *testing.T) {
	d := NewDispatcher(nil)
	agentSink := &kindSink{name: "agent", kinds: KindAgent.Mask()}
	lifeSink := &kindSink{name: "life", kinds: KindLifecycle.Mask() | KindForward.Mask()}
	d.Register(agentSink, SinkOptions{QueueSize: 2 * MaxPublished})
	d.Register(lifeSink, SinkOptions{})
	var wakes sync.WaitGroup
	woken := 0
	var wmu sync.Mutex
	d.SetWake(func() { wmu.Lock(); woken++; wmu.Unlock() })
	d.Start()

	const goroutines, each = 4, MaxPublished/4 + 10 // 40 more than fit
	for g := 0; g < goroutines; g++ {
		wakes.Add(1)
		go func() {
			defer wakes.Done()
			for i := 0; i < each; i++ {
				d.Publish(Event{Kind: KindAgent, Seq: uint64(g*each + i), Lifecycle: &Lifecycle{Type: ConfigReloaded}})
			}
		}()
	}
	wakes.Wait()
	pub, dropped := d.AgentEventStats()
	if pub != MaxPublished || dropped != goroutines*each-MaxPublished {
		t.Fatalf("published %d dropped %d, want %d and %d", pub, dropped, MaxPublished, goroutines*each-MaxPublished)
	}
	if woken != MaxPublished {
		t.Errorf("woken %d times, want once per accepted event (%d)", woken, MaxPublished)
	}
	d.Add(Event{Kind: KindForward})
	d.Flush()
	if !d.Publish(Event{Kind: KindAgent}) {
		t.Fatal("Publish refused after a flush emptied the entry")
	}
	d.Close()
	if len(agentSink.got) != MaxPublished+1 {
		t.Errorf("agent sink got %d events, want %d", len(agentSink.got), MaxPublished+1)
	}
	for _, ev := range lifeSink.got {
		if ev.Kind != KindForward {
			t.Fatalf("a sink that does not subscribe to KindAgent got %v", ev.Kind)
		}
	}
	if len(lifeSink.got) != 1 {
		t.Errorf("forward sink got %d events, want 1", len(lifeSink.got))
	}
}

// An agent event never takes the place of a ring's audit record in a full
// lossless queue: published events wait for room.
func TestPublishLeavesRoomForAudit(t *testing.T) {
	d := NewDispatcher(nil)
	gate := make(chan struct{})
	audit := &blockingSink{kindSink: kindSink{name: "audit", kinds: KindAudit.Mask() | KindAgent.Mask()}, gate: gate, entered: make(chan struct{})}
	d.Register(audit, SinkOptions{QueueSize: 4, Lossless: true})
	d.Start()
	// The sink's goroutine holds the first batch until gate opens.
	d.Add(Event{Kind: KindAudit})
	d.Flush()
	<-audit.entered
	for range 4 {
		d.Add(Event{Kind: KindAudit})
	}
	d.Publish(Event{Kind: KindAgent})
	d.Flush() // four audit records fill the queue; the agent event waits
	if st := d.Stats()[0]; st.Dropped != 0 || st.Depth != 4 {
		t.Fatalf("depth %d dropped %d, want 4 and 0", st.Depth, st.Dropped)
	}
	close(gate)
	// Close flushes once more: whether the sink has made room by then is
	// a race, so the agent event is either delivered or counted as
	// dropped, never both, never lost, and never instead of a record.
	d.Close()
	var audits, agents int
	for _, ev := range audit.got {
		switch ev.Kind {
		case KindAudit:
			audits++
		case KindAgent:
			agents++
		}
	}
	_, dropped := d.AgentEventStats()
	if audits != 5 || agents+int(dropped) != 1 {
		t.Errorf("audit sink got %d audit records and %d agent events, %d agent events dropped at close; want 5 records and the agent event delivered or dropped", audits, agents, dropped)
	}
}

type blockingSink struct {
	kindSink
	gate    chan struct{}
	once    sync.Once
	entered chan struct{}
}

func (s *blockingSink) Write(ctx context.Context, b []Event) error {
	s.once.Do(func() { close(s.entered) })
	<-s.gate
	return s.kindSink.Write(ctx, b)
}

// One drop rate: health, the alert engine and the generated Prometheus
// rule all divide drops by records offered (consumed + dropped).
func TestDropRate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		base, cur DropCounts
		rate      float64
		ok        bool
	}{
		{"nothing offered", DropCounts{5, 1}, DropCounts{5, 1}, 0, false},
		{"no drops", DropCounts{0, 0}, DropCounts{100, 0}, 0, true},
		{"a quarter dropped", DropCounts{100, 10}, DropCounts{130, 20}, 0.25, true},
		{"counter went backwards", DropCounts{100, 10}, DropCounts{50, 20}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rate, ok := 0.0, false
			if d, since := tc.cur.Since(tc.base); since {
				rate, ok = d.Rate()
			}
			if rate != tc.rate || ok != tc.ok {
				t.Errorf("rate %v %v, want %v %v", rate, ok, tc.rate, tc.ok)
			}
		})
	}
	p := ProducerStatus{Name: "p", Rings: []RingStatus{
		{Class: ClassHot, Consumed: 90, Dropped: 10, Written: 1000},
		{Class: ClassAudit, Consumed: 5, Dropped: 7},
	}}
	if d := p.Drops(); d != (DropCounts{90, 10}) {
		t.Errorf("drops %+v: only the hot ring's consumed and dropped count", d)
	}
}

// Events are copied into every interested sink's queue: past 128 bytes
// the copies cost the full pipeline ~7 % (BENCHMARKS.md, "Event size").
func TestEventSize(t *testing.T) {
	if n := unsafe.Sizeof(Event{}); n > 128 {
		t.Errorf("pipeline.Event is %d bytes; keep it at 128 or less", n)
	}
}
