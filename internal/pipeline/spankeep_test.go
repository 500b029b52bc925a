package pipeline

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestTraceIDsDeterministicAndDistinct(t *testing.T) {
	seen := map[[16]byte]bool{}
	spans := map[[8]byte]bool{}
	for _, epoch := range []uint64{0, 1, 0xdeadbeef, math.MaxUint64} {
		for seq := uint64(0); seq < 20000; seq++ {
			id := TraceID(epoch, seq)
			if id != TraceID(epoch, seq) || SpanID(epoch, seq) != SpanID(epoch, seq) {
				t.Fatal("not deterministic")
			}
			if id == ([16]byte{}) || SpanID(epoch, seq) == ([8]byte{}) {
				t.Fatalf("zero id for %d/%d", epoch, seq)
			}
			if seen[id] || spans[SpanID(epoch, seq)] {
				t.Fatalf("id repeated at %d/%d", epoch, seq)
			}
			seen[id], spans[SpanID(epoch, seq)] = true, true
		}
	}
}

// The head-sampled fraction of consecutive records is within a binomial
// bound (5 standard deviations) of the rate.
func TestHeadSampledFraction(t *testing.T) {
	const n = 200000
	for _, rate := range []float64{0.001, 0.01, 0.25, 0.5} {
		k := 0
		for seq := uint64(1); seq <= n; seq++ {
			if HeadSampled(TraceID(42, seq), rate) {
				k++
			}
		}
		sd := math.Sqrt(n * rate * (1 - rate))
		if math.Abs(float64(k)-n*rate) > 5*sd {
			t.Errorf("rate %g: %d of %d sampled, want %.0f ± %.0f", rate, k, n, n*rate, 5*sd)
		}
	}
	id := TraceID(1, 2)
	if !HeadSampled(id, 1) || HeadSampled(id, 0) || HeadSampled(id, math.NaN()) {
		t.Error("rate 1 keeps all, rate 0 and NaN none")
	}
}

func fwd(p *Producer, seq uint64, sec int64, latencyUs float64) *Event {
	return &Event{Kind: KindForward, Producer: p, Epoch: 7, Seq: seq, TimeNs: sec * 1e9,
		Forward: Forward{}.WithLatency(latencyUs)}
}

func alert(producer, rule, metric, state string) *Event {
	return &Event{Kind: KindAgent, Lifecycle: &Lifecycle{Type: AlertTransition,
		Details: map[string]any{"rule": rule, "producer": producer, "metric": metric, "state": state}}}
}

func TestSpanKeeper(t *testing.T) {
	p := NewProducer("tp0", "k", 1, 1, "r", Identity{Producer: "tp0"})
	q := NewProducer("tp1", "k2", 2, 2, "r2", Identity{Producer: "tp1"})
	latency := func(m string) bool { return m == "latency_p99" }
	k := NewSpanKeeper(SpanKeepOptions{SampleRate: 0, SlowUs: 1000, MaxPerSecond: 3, LatencyMetric: latency})
	steps := []struct {
		ev   *Event
		want SpanReason
	}{
		{fwd(p, 1, 10, 999), SpanDropped},
		{fwd(p, 2, 10, 1000), SpanSlow},
		{fwd(p, 3, 10, 0), SpanDropped}, // no latency observed
		{alert("tp0", "slo_latency_p99", "latency_p99", "firing"), SpanDropped},
		{alert("tp0", "high_utilization", "knowledge_utilization", "firing"), SpanDropped},
		{fwd(p, 4, 10, 10), SpanAlert},
		{fwd(q, 5, 10, 10), SpanDropped}, // another producer
		{&Event{Kind: KindAudit, Producer: p, TimeNs: 10e9, Audit: &Audit{}}, SpanAudit},
		{fwd(p, 6, 10, 5000), SpanCapped}, // the fourth kept span in second 10
		{fwd(p, 7, 11, 5000), SpanSlow},   // a new second
		{alert("tp0", "slo_latency_p99", "latency_p99", "resolved"), SpanDropped},
		{fwd(p, 8, 11, 10), SpanDropped},
		{alert("", "fleet_latency", "latency_p99", "firing"), SpanDropped}, // over every producer
		{fwd(q, 9, 11, 10), SpanAlert},
	}
	for i, s := range steps {
		k.Observe(s.ev)
		got := SpanDropped
		if s.ev.Kind != KindAgent {
			got = k.Decide(s.ev)
		}
		if got != s.want {
			t.Errorf("step %d (%v seq %d): %v, want %v", i, s.ev.Kind, s.ev.Seq, got, s.want)
		}
	}
	// Two keepers fed the same events decide the same (the metrics and the
	// OTLP sink agree on which slow forwards have spans).
	a := NewSpanKeeper(SpanKeepOptions{SampleRate: 0.3, SlowUs: 500, MaxPerSecond: 50, LatencyMetric: latency})
	b := NewSpanKeeper(SpanKeepOptions{SampleRate: 0.3, SlowUs: 500, MaxPerSecond: 50, LatencyMetric: latency})
	for seq := uint64(0); seq < 5000; seq++ {
		ev := fwd(p, seq, int64(seq/100), float64(seq%1000))
		if a.Decide(ev) != b.Decide(ev) {
			t.Fatalf("keepers disagree at %d", seq)
		}
	}
}

// TestStampMatchesDecide: Stamp over ranges (its fast path for dropped
// forwards included) decides what Decide and Observe decide event by
// event, through slow, sampled, capped and alert-kept forwards, alerts
// firing and resolving, retrievals and audits, at several sample rates.
func TestStampMatchesDecide(t *testing.T) {
	latency := func(m string) bool { return m == "latency_p99" }
	prods := []*Producer{NewProducer("tp0", "k", 1, 1, "r", Identity{Producer: "tp0"}),
		NewProducer("tp1", "k2", 2, 2, "r2", Identity{Producer: "tp1"}), nil}
	for _, opts := range []SpanKeepOptions{
		{SampleRate: 0.001, SlowUs: 1000, MaxPerSecond: 1000, LatencyMetric: latency},
		{SampleRate: 0.3, SlowUs: 500, MaxPerSecond: 20, LatencyMetric: latency},
		{SampleRate: 1, MaxPerSecond: 0, LatencyMetric: latency},
		{SampleRate: 0, SlowUs: 0},
	} {
		rnd := rand.New(rand.NewPCG(uint64(opts.MaxPerSecond), 9))
		var evs []Event
		for seq := uint64(1); seq <= 20000; seq++ {
			p := prods[rnd.IntN(len(prods))]
			ev := fwd(prods[0], seq, int64(seq/300), float64(rnd.IntN(1500)))
			ev.Producer, ev.Epoch = p, uint64(rnd.IntN(3))
			switch r := rnd.IntN(100); {
			case r < 2:
				name := ""
				if p != nil {
					name = p.Name
				}
				state := "firing"
				if rnd.IntN(2) == 0 {
					state = "resolved"
				}
				ev = alert(name, "slo_latency_p99", "latency_p99", state)
			case r < 8:
				ev.Kind, ev.Forward, ev.Retrieval = KindRetrieval, Forward{}, &Retrieval{}
			case r < 10:
				ev.Kind, ev.Forward, ev.Audit = KindAudit, Forward{}, &Audit{}
			case r < 20:
				ev.Forward = Forward{}.WithGate(0.5) // no latency
			}
			evs = append(evs, *ev)
		}
		one, batch := NewSpanKeeper(opts), NewSpanKeeper(opts)
		want := make([]SpanReason, len(evs))
		for i := range evs {
			ev := evs[i]
			one.Observe(&ev)
			if ev.Kind != KindAgent {
				want[i] = one.Decide(&ev)
			}
		}
		for lo := 0; lo < len(evs); {
			hi := min(len(evs), lo+1+rnd.IntN(700))
			batch.Stamp(evs[lo:hi])
			lo = hi
		}
		kept := 0
		for i := range evs {
			if evs[i].Kind != KindAgent && evs[i].Span != want[i] {
				t.Fatalf("%+v: event %d (%v): Stamp %v, Decide %v", opts, i, evs[i].Kind, evs[i].Span, want[i])
			}
			if want[i].Kept() {
				kept++
			}
		}
		if opts.SampleRate > 0 && kept == 0 {
			t.Fatalf("%+v: nothing kept: the test exercises nothing", opts)
		}
	}
}

// recordingSink keeps what it is given.
type recordingSink struct {
	mu  sync.Mutex
	got []Event
}

func (s *recordingSink) Name() string    { return "recording" }
func (s *recordingSink) Kinds() KindMask { return AllKinds }
func (s *recordingSink) Write(_ context.Context, b []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, b...)
	return nil
}

// The dispatcher stamps the keeper's decision once, alert transitions
// feeding it in order with the records, and a sink's filter leaves events
// out of its queue.
func TestDispatcherStampsSpanDecision(t *testing.T) {
	p := NewProducer("tp0", "k", 1, 1, "r", Identity{Producer: "tp0"})
	d := NewDispatcher(nil)
	d.SetSpanKeeper(NewSpanKeeper(SpanKeepOptions{SlowUs: 1000, MaxPerSecond: 100, LatencyMetric: func(m string) bool { return m == "latency_p99" }}))
	all, kept := &recordingSink{}, &recordingSink{}
	d.Register(all, SinkOptions{})
	d.Register(kept, SinkOptions{Filter: func(ev *Event) bool { return ev.Span.Kept() }})
	d.Start()
	d.Add(*fwd(p, 1, 10, 5))
	d.Add(*fwd(p, 2, 10, 5000))
	d.Flush()
	// Published events follow the ring events of their flush.
	d.Publish(*alert("tp0", "slo_latency_p99", "latency_p99", "firing"))
	d.Flush()
	d.Add(*fwd(p, 3, 10, 5))
	d.Flush()
	d.Close()
	want := map[uint64]SpanReason{1: SpanDropped, 2: SpanSlow, 3: SpanAlert}
	n := 0
	for _, ev := range all.got {
		if ev.Kind == KindForward {
			n++
			if ev.Span != want[ev.Seq] {
				t.Errorf("seq %d stamped %v, want %v", ev.Seq, ev.Span, want[ev.Seq])
			}
		}
	}
	if n != 3 || len(kept.got) != 2 || kept.got[0].Seq != 2 || kept.got[1].Seq != 3 {
		t.Errorf("all %d forwards, filtered sink got %d events", n, len(kept.got))
	}
}

// The keeper's sampling (which caches per ring and reads half the id) is
// HeadSampled on the whole trace id, across rings.
func TestKeeperSamplingIsHeadSampled(t *testing.T) {
	p := NewProducer("tp0", "k", 1, 1, "r", Identity{Producer: "tp0"})
	k := NewSpanKeeper(SpanKeepOptions{SampleRate: 0.3})
	for i := uint64(0); i < 20000; i++ {
		ev := fwd(p, i, 1, 5)
		ev.Epoch = []uint64{7, 7, 9, 0, math.MaxUint64}[i%5]
		want := HeadSampled(TraceID(ev.Epoch, ev.Seq), 0.3)
		if got := k.Decide(ev) == SpanSampled; got != want {
			t.Fatalf("epoch %d seq %d: keeper %v, HeadSampled %v", ev.Epoch, ev.Seq, got, want)
		}
	}
}

// BenchmarkSpanKeeperDecide: the dispatcher's span decision (Stamp) with
// OTLP traces on (default sampling 0.001, cap 1000/s, slow at 1 ms), over
// forwards of one ring.
func BenchmarkSpanKeeperDecide(b *testing.B) {
	k := NewSpanKeeper(SpanKeepOptions{SampleRate: 0.001, SlowUs: 1000, MaxPerSecond: 1000})
	p := NewProducer("tp0", "tp0", 1, 1, "r", Identity{Producer: "tp0"})
	evs := make([]Event, 1024)
	for i := range evs {
		evs[i] = Event{Kind: KindForward, Producer: p, Epoch: 0x1234, Seq: uint64(i + 1), TimeNs: int64(i) * 1000,
			Forward: Forward{}.WithLatency(180).WithGate(0.5)}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(evs) {
		k.Stamp(evs[:min(len(evs), b.N-i)])
	}
}
