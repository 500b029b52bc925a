package live

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

func fwd(p *pipeline.Producer, layer int32, latUs, gate, ent float64) pipeline.Event {
	f := pipeline.Forward{}.WithApplied(true).WithLatency(latUs).WithGate(gate).WithEntropy(ent).WithLayer(layer)
	return pipeline.Event{Kind: pipeline.KindForward, Producer: p, Forward: f}
}

func ret(p *pipeline.Producer, results, injected int32) pipeline.Event {
	r := pipeline.Retrieval{}.WithResults(results).WithInjected(injected)
	return pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p, Retrieval: &r}
}

func status(p *pipeline.Producer, util, slots float64) pipeline.Event {
	return pipeline.Event{Kind: pipeline.KindStatus, Producer: p,
		Status: &pipeline.Status{KVStore: &pipeline.KVStoreStatus{Utilization: &util}, SlotChangeRate: &slots}}
}

func isNull(v float32) bool { return math.IsNaN(float64(v)) }

// within checks a histogram quantile: the bucket's upper bound, at most
// 19 % above the true value and never below it.
func within(got float32, want float64) bool {
	return float64(got) >= want*0.999 && float64(got) <= want*1.19
}

func TestTrackSeconds(t *testing.T) {
	p := pipeline.NewProducer("tp0", "k", 1, 1, "r", pipeline.Identity{})
	tr := newTrack("tp0", 10, 4)
	// Second 100: 100 forwards (latency 100 µs, one of 5000 µs), gate
	// 0.2/0.4, two retrievals, a status.
	for i := range 100 {
		lat := 100.0
		if i == 99 {
			lat = 5000
		}
		g := 0.2
		if i%2 == 1 {
			g = 0.4
		}
		ev := fwd(p, 3, lat, g, 1.5)
		tr.observe(&ev)
	}
	for _, ev := range []pipeline.Event{ret(p, 4, 1), ret(p, 6, 3), status(p, 0.75, 2)} {
		tr.observe(&ev)
	}
	tr.close(100, true, 10)
	// Seconds 101-102: nothing arrives but the producer is there; 103:
	// gone (no rings); 105: back (104 skipped).
	tr.close(101, true, 15)
	tr.close(102, true, 15)
	tr.close(103, false, -1)
	tr.close(105, true, 20)

	cases := []struct {
		name   string
		series int
		sec    int64
		want   float64 // NaN: null
	}{
		{"rate", sRate, 100, 100},
		{"p50", sP50, 100, 100},
		{"p99", sP99, 100, 100}, // nearest rank 99 of 100: the 99th smallest
		{"gate", sGate, 100, 0.3},
		{"entropy", sEntropy, 100, 1.5},
		{"results", sRetResults, 100, 5},
		{"injected", sRetInjected, 100, 2},
		{"kv", sKVUtil, 100, 0.75},
		{"slots", sSlotChanges, 100, 2},
		{"drops unknown before", sDrops, 100, math.NaN()},
		{"idle rate", sRate, 101, 0},
		{"idle latency", sP99, 101, math.NaN()},
		{"sticky kv", sKVUtil, 102, 0.75},
		{"drops", sDrops, 101, 5},
		{"no drops", sDrops, 102, 0},
		{"absent rate", sRate, 103, math.NaN()},
		{"absent kv cleared", sKVUtil, 105, math.NaN()},
		{"skipped", sRate, 104, math.NaN()},
		{"back", sRate, 105, 0},
		{"future", sRate, 106, math.NaN()},
		{"too old", sRate, 95, math.NaN()},
	}
	for _, c := range cases {
		got := tr.at(c.series, c.sec)
		switch {
		case math.IsNaN(c.want):
			if !isNull(got) {
				t.Errorf("%s: %s at %d = %v, want null", c.name, seriesNames[c.series], c.sec, got)
			}
		case c.series == sP50 || c.series == sP99:
			if !within(got, c.want) {
				t.Errorf("%s: %s at %d = %v, want the bucket of %v", c.name, seriesNames[c.series], c.sec, got, c.want)
			}
		case math.Abs(float64(got)-c.want) > 1e-6:
			t.Errorf("%s: %s at %d = %v, want %v", c.name, seriesNames[c.series], c.sec, got, c.want)
		}
	}
	if v := tr.layerAt(tr.slotOf[3], 100); !within(v, 100) {
		t.Errorf("layer 3 p99 at 100 = %v", v)
	}
	if v := tr.layerAt(tr.slotOf[3], 101); !isNull(v) {
		t.Errorf("layer 3 p99 at 101 = %v, want null", v)
	}

	// Ten seconds later the ring has wrapped: second 100 is gone, and a
	// jump beyond the window leaves no stale entry behind.
	tr.close(130, true, 20)
	for s := int64(121); s < 130; s++ {
		if v := tr.at(sRate, s); !isNull(v) {
			t.Errorf("after a jump, rate at %d = %v, want null", s, v)
		}
	}
	if v := tr.at(sRate, 100); !isNull(v) {
		t.Errorf("rate at 100 after wrapping = %v, want null", v)
	}
	// A clock stepping back changes nothing.
	tr.close(129, true, 20)
	if tr.lastT != 130 {
		t.Errorf("lastT = %d after a step back", tr.lastT)
	}
}

func TestTrackLayerCap(t *testing.T) {
	p := pipeline.NewProducer("tp0", "k", 1, 1, "r", pipeline.Identity{})
	tr := newTrack("tp0", 5, 3)
	// Hostile layer indices: negative, huge, more than the cap.
	for _, l := range []int32{40, -7, 2, math.MaxInt32, 5, 2} {
		ev := fwd(p, l, float64(1000+int(l)%1000), 0, 0)
		tr.observe(&ev)
	}
	tr.close(10, true, 0)
	want := []string{"-7", "2", "40", "other"}
	if len(tr.ids) != len(want) {
		t.Fatalf("ids %v, want %v", tr.ids, want)
	}
	for i := range want {
		if tr.ids[i] != want[i] {
			t.Fatalf("ids %v, want %v", tr.ids, want)
		}
	}
	if got := len(tr.slotOf); got != 3 {
		t.Errorf("%d layers with their own slot, want 3", got)
	}
	if v := tr.layerAt(tr.width-1, 10); isNull(v) {
		t.Error("other has no value: the layers beyond the cap were lost")
	}
}

func TestTrackMemoryBound(t *testing.T) {
	// The docs' figure: under 2 MiB per producer at 96 layers, and at the
	// largest layer cap.
	for _, layers := range []int{96, MaxLayers} {
		if b := trackBytes(DefaultHistory, layers); b > 2<<20 {
			t.Errorf("%d layers: %d bytes per producer", layers, b)
		}
	}
	l := New(Options{History: DefaultHistory, MaxLayers: 96, Now: func() time.Time { return time.Unix(1000, 0) }})
	if l.maxTracks < 64 {
		t.Errorf("history budget holds %d producers at 96 layers, want at least 64", l.maxTracks)
	}
}

func BenchmarkWrite(b *testing.B) {
	l := New(Options{History: DefaultHistory, MaxLayers: 96, Now: func() time.Time { return time.Unix(0, 0) }})
	p := pipeline.NewProducer("tp0", "k", 1, 1, "r", pipeline.Identity{})
	batch := make([]pipeline.Event, 256)
	for i := range batch {
		batch[i] = fwd(p, int32(i%96), 100+float64(i), 0.5, 1.2)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		_ = l.Write(context.Background(), batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

// BenchmarkWritePipeline: the live view's cost per event in the agent's
// pipeline benchmark mix: 8 producers in runs of 512, forwards with every
// field on 3 layers, one retrieval in 15.
func BenchmarkWritePipeline(b *testing.B) {
	l := New(Options{History: DefaultHistory, MaxLayers: 96, Now: func() time.Time { return time.Unix(0, 0) }})
	var prods []*pipeline.Producer
	for i := range 8 {
		prods = append(prods, pipeline.NewProducer("tp"+string(rune('0'+i)), "k", 1, 1, "r", pipeline.Identity{}))
	}
	batch := make([]pipeline.Event, 4096)
	for i := range batch {
		p := prods[(i/512)%len(prods)]
		if i%15 == 14 {
			batch[i] = ret(p, 3, 2)
			continue
		}
		batch[i] = fwd(p, int32(29+i%3), 180, 0.4, 1.5)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		_ = l.Write(context.Background(), batch)
	}
}
