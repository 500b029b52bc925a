package rings

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// The snapshot groups a producer's rings under its name (hot before
// audit), carries the ring counters, and counts every ring file by state,
// junk included, the same way Rings lists them.
func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "garbage.ring"), []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startConsumer(t, dir, Tunables{}, nil, true)
	id := shm.Identity{Producer: "snap"}
	audit, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: 4096, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	hot, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 4096, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	defer hot.Close()
	for range 3 {
		_ = hot.EmitForward(time.Now().UnixNano(), &shm.Forward{})
	}
	var snap *pipeline.Snapshot
	ok := testutil.WaitFor(30*time.Second, func() bool {
		snap = h.c.Snapshot()
		return len(snap.Producers) == 1 && len(snap.Producers[0].Rings) == 2 && snap.Producers[0].Drops().Consumed >= 3 && snap.Producers[0].Rings[0].Consumed == snap.Producers[0].Rings[0].Written &&
			snap.RingStates[pipeline.RingStateRejected] == 1
	})
	if !ok {
		t.Fatalf("snapshot never showed the producer's two rings and the junk file: %+v; rings %+v", snap, h.c.Rings())
	}
	p := snap.Producers[0]
	if p.Name != "snap" || !p.Up() || p.LiveHostPID() != os.Getpid() {
		t.Errorf("producer %+v: up %v, live pid %d", p, p.Up(), p.LiveHostPID())
	}
	if p.Rings[0].Class != pipeline.ClassHot || p.Rings[1].Class != pipeline.ClassAudit {
		t.Errorf("rings not hot before audit: %+v", p.Rings)
	}
	counts := map[string]int{}
	for _, ri := range h.c.Rings() {
		counts[ri.State]++
	}
	for st, n := range snap.RingStates {
		if name := pipeline.RingState(st).String(); counts[name] != n {
			t.Errorf("%s: snapshot %d, Rings %d", name, n, counts[name])
		}
	}
	if snap.Consumer.Rejected["not_a_ring"]+snap.Consumer.Rejected["file_size"] == 0 && len(snap.Consumer.Rejected) == 0 {
		t.Errorf("rejection counters missing: %+v", snap.Consumer)
	}
}
