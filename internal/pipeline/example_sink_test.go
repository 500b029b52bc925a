package pipeline_test

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// LayerCounter is a complete sink (docs/architecture.md, "Adding a sink"):
// it counts observed forward latencies per producer and layer, importing
// only internal/pipeline.
type LayerCounter struct {
	mu     sync.Mutex
	counts map[string]map[int32]int
}

func NewLayerCounter() *LayerCounter { return &LayerCounter{counts: map[string]map[int32]int{}} }

// Name names the sink in agaobs_sink_* metrics and logs.
func (c *LayerCounter) Name() string { return "layer-counter" }

// Kinds subscribes to forward events only; the dispatcher never hands
// this sink anything else.
func (c *LayerCounter) Kinds() pipeline.KindMask { return pipeline.KindForward.Mask() }

// Write runs on the sink's own goroutine. It must not keep batch; the
// events' pointer fields it may keep.
func (c *LayerCounter) Write(_ context.Context, batch []pipeline.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range batch {
		ev := &batch[i]
		if _, ok := ev.Forward.Latency(); !ok || ev.Producer == nil {
			continue // the seed's rule: only a latency > 0 is observed
		}
		m := c.counts[ev.Producer.Name]
		if m == nil {
			m = map[int32]int{}
			c.counts[ev.Producer.Name] = m
		}
		m[ev.Forward.Layer()]++ // a missing layer counts as layer 0
	}
	return nil
}

func Example_sink() {
	d := pipeline.NewDispatcher(nil)
	sink := NewLayerCounter()
	d.Register(sink, pipeline.SinkOptions{}) // the agent's one line
	d.Start()

	p := pipeline.NewProducer("tp0", "tp0", 1, 1, "agaobs-1-1-0", pipeline.Identity{Producer: "tp0"})
	for _, f := range []pipeline.Forward{
		pipeline.Forward{}.WithLatency(120).WithLayer(3),
		pipeline.Forward{}.WithLatency(0).WithLayer(3), // not observed
		pipeline.Forward{}.WithLatency(80),             // layer 0
	} {
		d.Add(pipeline.Event{Kind: pipeline.KindForward, Producer: p, Forward: f})
	}
	d.Add(pipeline.Event{Kind: pipeline.KindStatus, Producer: p, Status: &pipeline.Status{}}) // not subscribed
	d.Flush()
	d.Close() // delivers everything queued, then returns

	var layers []int
	for l := range sink.counts["tp0"] {
		layers = append(layers, int(l))
	}
	sort.Ints(layers)
	for _, l := range layers {
		fmt.Printf("layer %d: %d\n", l, sink.counts["tp0"][int32(l)])
	}
	// Output:
	// layer 0: 1
	// layer 3: 1
}
