package live

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// Write's per-run track cache, the division-free bucket and the layer
// histograms summed at close give every producer's series and layer p99s
// a direct computation gives: producers alternating, restarting under one
// name and beyond the history budget (their events counted untracked),
// layers missing, hostile and beyond the slots.
func TestWriteMatchesReference(t *testing.T) {
	const width = 4 // MaxLayers 3 + other
	l := New(Options{History: 30, MaxLayers: width - 1, Now: func() time.Time { return time.Unix(1000, 0) }})
	l.maxTracks = 3
	var prods []*pipeline.Producer
	for i := range 5 {
		prods = append(prods, pipeline.NewProducer(fmt.Sprintf("tp%d", i), "k", 1, 1, "r", pipeline.Identity{}))
	}
	prods = append(prods, pipeline.NewProducer("tp0", "k2", 2, 2, "r", pipeline.Identity{})) // tp0 restarted
	r := rand.New(rand.NewPCG(11, 12))
	var untracked uint64
	tracked := map[string]bool{}
	for sec := int64(100); sec < 120; sec++ {
		type ref struct {
			all      pipeline.LatencyHistogram
			layers   map[int32]*pipeline.LatencyHistogram
			forwards int
			last     *pipeline.Producer
		}
		want := map[string]*ref{}
		for range 1 + r.IntN(4) { // batches
			var batch []pipeline.Event
			for range r.IntN(20) { // runs
				p := prods[r.IntN(len(prods))]
				for range 1 + r.IntN(40) {
					batch = append(batch, randomEvent(r, p))
				}
			}
			for i := range batch {
				ev := &batch[i]
				name := ev.Producer.Name
				if !tracked[name] && len(tracked) < l.maxTracks {
					tracked[name] = true
				}
				if !tracked[name] {
					untracked++
					continue
				}
				w := want[name]
				if w == nil {
					w = &ref{layers: map[int32]*pipeline.LatencyHistogram{}}
					want[name] = w
				}
				w.last = ev.Producer
				if ev.Kind != pipeline.KindForward {
					continue
				}
				w.forwards++
				if us, ok := ev.Forward.Latency(); ok {
					d := time.Duration(us * float64(time.Microsecond))
					w.all.Observe(d)
					if layer, has := ev.Forward.LayerIdx(); has {
						if w.layers[layer] == nil {
							w.layers[layer] = new(pipeline.LatencyHistogram)
						}
						w.layers[layer].Observe(d)
					}
				}
			}
			if err := l.Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
		if l.stats.untracked != untracked {
			t.Fatalf("second %d: %d events untracked, want %d", sec, l.stats.untracked, untracked)
		}
		for name, w := range want {
			tr := l.tracks[name]
			if tr.prod != w.last {
				t.Errorf("second %d, %s: not the newest incarnation", sec, name)
			}
			tr.close(sec, true, -1)
			checkSeries(t, sec, name, tr, w.all, w.forwards)
			others := new(pipeline.LatencyHistogram)
			for layer, h := range w.layers {
				slot, own := tr.slotOf[layer]
				if !own {
					addHist(others, h)
					continue
				}
				checkValue(t, fmt.Sprintf("second %d, %s, layer %d p99", sec, name, layer), tr.layerAt(slot, sec), us(h.Quantile(0.99)))
			}
			if others.Count > 0 {
				checkValue(t, fmt.Sprintf("second %d, %s, other p99", sec, name), tr.layerAt(width-1, sec), us(others.Quantile(0.99)))
			}
		}
	}
}

func checkSeries(t *testing.T, sec int64, name string, tr *track, all pipeline.LatencyHistogram, forwards int) {
	t.Helper()
	checkValue(t, fmt.Sprintf("second %d, %s rate", sec, name), tr.at(sRate, sec), float32(forwards))
	p50, p99 := nan, nan
	if all.Count > 0 {
		p50, p99 = us(all.Quantile(0.5)), us(all.Quantile(0.99))
	}
	checkValue(t, fmt.Sprintf("second %d, %s p50", sec, name), tr.at(sP50, sec), p50)
	checkValue(t, fmt.Sprintf("second %d, %s p99", sec, name), tr.at(sP99, sec), p99)
}

func checkValue(t *testing.T, what string, got, want float32) {
	t.Helper()
	if got != want && !(isNull(got) && isNull(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func randomEvent(r *rand.Rand, p *pipeline.Producer) pipeline.Event {
	switch r.IntN(15) {
	case 0:
		return ret(p, int32(r.IntN(5)), int32(r.IntN(3)))
	case 1:
		return status(p, r.Float64(), r.Float64())
	}
	f := pipeline.Forward{}.WithApplied(true).WithGate(r.Float64())
	if r.IntN(10) > 0 {
		lat := math.Exp(r.Float64() * 14)
		if r.IntN(20) == 0 {
			lat = []float64{0, -3, 1e-4, 1, 1e13}[r.IntN(5)]
		}
		f = f.WithLatency(lat)
	}
	if r.IntN(5) > 0 {
		layer := int32(r.IntN(6))
		if r.IntN(20) == 0 {
			layer = []int32{-7, math.MaxInt32, 300}[r.IntN(3)]
		}
		f = f.WithLayer(layer)
	}
	return pipeline.Event{Kind: pipeline.KindForward, Producer: p, Forward: f}
}
