package rings

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// A backlog in many rings reaches the sinks as the pass goes, so the
// dispatcher can reuse its event storage: with one Flush at the end of a
// pass, a pass over 8 full rings held 32 Ki events (32 chunks) at once and
// allocated most of them anew (125 chunks here, against 8-24 with the
// sinks' share of the CPU, which a loaded machine can take).
func TestBacklogReusesChunks(t *testing.T) {
	// One P: the sinks run only when the consumer lets them, as in the
	// agent (agent_gomaxprocs 1).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	dir := t.TempDir()
	const rings8, perRing = 8, 20_000
	for r := range rings8 {
		w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 4 << 20, Instance: uint32(r),
			Identity: shm.Identity{Producer: fmt.Sprintf("backlog-%d", r)}})
		if err != nil {
			t.Fatal(err)
		}
		f := shm.Forward{GateMean: 0.4, EntropyMean: 1.5, LatencyUs: 180, Fields: 31, Layer: 3}
		for range perRing {
			if err := w.EmitForward(time.Now().UnixNano(), &f); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { w.Close() })
	}
	h := startConsumer(t, dir, Tunables{Retention: time.Hour}, nil, true)
	if !testutil.WaitFor(60*time.Second, func() bool { return h.rec.count(pipeline.KindForward, "") == rings8*perRing }) {
		t.Fatalf("consumed %d of %d forwards", h.rec.count(pipeline.KindForward, ""), rings8*perRing)
	}
	// A ring's pass may cross the threshold by one ring's worth.
	if peak, most := h.disp.PeakUnflushed(), midPassFlush+h.c.tun.Load().MaxPerPass; peak > most {
		t.Fatalf("a Flush handed over %d events at once, want at most %d", peak, most)
	}
	t.Logf("%d chunks allocated for %d events", h.disp.ChunksAllocated(), rings8*perRing)
}
