package pipeline

import (
	"context"
	"testing"
)

type nopSink struct{}

func (nopSink) Name() string                         { return "nop" }
func (nopSink) Kinds() KindMask                      { return AllKinds }
func (nopSink) Write(context.Context, []Event) error { return nil }

// A sink buffer rests small, jumps to full capacity in a burst, and goes
// back to its resting size after shrinkAfterDrains drains without one.
func TestQueueGrowsInBurstsAndShrinks(t *testing.T) {
	d := NewDispatcher(nil)
	d.Register(nopSink{}, SinkOptions{QueueSize: 3 * restingQueue})
	q := d.queues[0]
	if cap(q.buf) != restingQueue || cap(q.spare) != restingQueue {
		t.Fatalf("resting capacity %d/%d, want %d", cap(q.buf), cap(q.spare), restingQueue)
	}
	burst := make([]Event, restingQueue+1)
	for i := range burst {
		burst[i].Kind = KindForward
	}
	q.push(burst)
	if cap(q.buf) != q.capacity || len(q.buf) != len(burst) {
		t.Fatalf("after a burst: len %d cap %d, want len %d cap %d", len(q.buf), cap(q.buf), len(burst), q.capacity)
	}
	d.drainOnce(q) // the grown buffer becomes the spare
	small := burst[:10]
	grown := func() int {
		n := 0
		for _, b := range [][]Event{q.buf, q.spare} {
			if cap(b) > restingQueue {
				n++
			}
		}
		return n
	}
	for i := 0; i < 2*shrinkAfterDrains+2 && grown() > 0; i++ {
		q.push(small)
		d.drainOnce(q)
	}
	if grown() != 0 {
		t.Fatalf("grown buffer kept after %d quiet drains: caps %d/%d", 2*shrinkAfterDrains+2, cap(q.buf), cap(q.spare))
	}
	// Over capacity: the overflow is dropped and counted, not grown past.
	q.push(make([]Event, q.capacity+5))
	if len(q.buf) != q.capacity || q.dropped.Load() != 5 {
		t.Fatalf("overflow: len %d dropped %d", len(q.buf), q.dropped.Load())
	}
}
