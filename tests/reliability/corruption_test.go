package reliability_test

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

func ringOf(a *agent.Agent, producer string) (rings.RingInfo, bool) {
	for _, r := range a.Consumer().Rings() {
		if r.Producer == producer && r.Class == "hot" {
			return r, true
		}
	}
	return rings.RingInfo{}, false
}

func ringFile(t *testing.T, dir string, pid int) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "agaobs-"+itoa(pid)+"-*-hot.ring"))
	if len(m) != 1 {
		t.Fatalf("hot ring of pid %d: %v", pid, m)
	}
	return m[0]
}

// Random bytes written into a live ring's record area (lengths, types,
// sequence numbers, bodies) while it is read: the agent does not panic,
// counts the corruption, and keeps consuming (or quarantines the ring and
// says why). Then a garbage tail quarantines the ring with its reason, and
// a ring whose static header is damaged is rejected with its reason.
func TestRingCorruption(t *testing.T) {
	dir := t.TempDir()
	check := newCheckSink()
	a := inProcessAgent(t, dir, []pipeline.Sink{check}, nil)
	p := startHelper(t, dir, "victim", "paced")
	testutil.Eventually(t, 30*time.Second, func() bool { r, ok := ringOf(a, "victim"); return ok && r.Consumed > 1000 }, "victim not consumed")
	path := ringFile(t, dir, p.pid)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	writes := size(300, 3000)
	for i := 0; i < writes; i++ {
		buf := make([]byte, 1+rng.IntN(16))
		for j := range buf {
			buf[j] = byte(rng.UintN(256))
		}
		// Aim between the consumer's head and the producer's tail: bytes
		// the agent has yet to read (the rest would be overwritten unread).
		var hb [8]byte
		f.ReadAt(hb[:], 0x200)
		head := binary.LittleEndian.Uint64(hb[:])
		f.ReadAt(hb[:], 0x100)
		tailPos := binary.LittleEndian.Uint64(hb[:])
		pos := head
		if tailPos > head {
			pos += uint64(rng.Int64N(int64(tailPos - head)))
		}
		off := int64(shm.HeaderSize) + int64(pos&(1<<16-1))
		if off+int64(len(buf)) > int64(shm.HeaderSize)+1<<16 {
			off = int64(shm.HeaderSize) + 1<<16 - int64(len(buf))
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	r, _ := ringOf(a, "victim")
	if r.State == "quarantined" {
		if r.Reason == "" {
			t.Fatal("quarantined without a reason")
		}
		t.Logf("quarantined: %s", r.Reason)
	} else {
		before := r.Consumed
		testutil.Eventually(t, 30*time.Second, func() bool { r, _ := ringOf(a, "victim"); return r.Consumed > before+1000 },
			"consumption did not resume after the corruption")
		r, _ = ringOf(a, "victim")
		if r.Corrupt == 0 {
			t.Fatalf("%d random writes into the record area, no corrupt frame counted: %+v", writes, r)
		}
		t.Logf("%d random writes: %d corrupt frames counted, %d lost, consumption resumed (%d consumed)", writes, r.Corrupt, r.Lost, r.Consumed)
	}
	corrupt := r.Corrupt

	// A tail that jumps backwards: quarantine, with the reason.
	tail := make([]byte, 8)
	binary.LittleEndian.PutUint64(tail, 8)
	p.kill() // the producer would overwrite it at once
	if _, err := f.WriteAt(tail, 0x100); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { r, _ := ringOf(a, "victim"); return r.State == "quarantined" && r.Reason != "" },
		"a backwards tail did not quarantine the ring")
	r, _ = ringOf(a, "victim")
	t.Logf("backwards tail: quarantined: %s", r.Reason)

	// A damaged static header on a new ring: rejected, with the reason.
	q := startHelper(t, dir, "bad-header", "paced")
	q.kill()
	bad := ringFile(t, dir, q.pid)
	// Restart on a fresh directory holding only the damaged ring.
	dir2 := t.TempDir()
	data, _ := os.ReadFile(bad)
	binary.LittleEndian.PutUint16(data[0x08:], 99) // version_major
	target := filepath.Join(dir2, filepath.Base(bad))
	if err := os.WriteFile(target, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a2 := inProcessAgent(t, dir2, nil, nil)
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, r := range a2.Consumer().Rings() {
			if r.State == "rejected" && r.Reason != "" {
				t.Logf("damaged header: rejected: %s", r.Reason)
				return true
			}
		}
		return false
	}, "a ring with a damaged header was not rejected with a reason")
	report(t, "random byte corruption of live ring files", itoa(writes)+" random writes into a live ring's records; a backwards tail; a damaged header",
		"no panic; "+itoa(int(corrupt))+" corrupt frames counted and consumption resumed; quarantined (tail) and rejected (header) with reasons")
}
