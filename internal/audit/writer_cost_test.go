package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	bolt "go.etcd.io/bbolt"
)

type nopAcker struct{}

func (nopAcker) Acknowledge(pipeline.AckToken) {}

// wcAuditEvents are n audit events of an audit ring (epoch, seq, ack),
// one before a gap.
func wcAuditEvents(n int) []pipeline.Event {
	prod := pipeline.NewProducer("tp0", "tp0", 1, 1, "r", pipeline.Identity{Producer: "tp0"})
	details := json.RawMessage(`{"id":"k-1","reliability":0.93}`)
	evs := make([]pipeline.Event, n)
	for i := range evs {
		evs[i] = pipeline.Event{Kind: pipeline.KindAudit, Producer: prod, Epoch: 0xaa + uint64(i/200), Seq: uint64(i + 1),
			TimeNs: int64(1e18 + i), RecvNs: int64(1e18 + 2*i), Ack: pipeline.NewAck(nopAcker{}, pipeline.AckToken{uint64(i)}),
			Audit: &pipeline.Audit{Operation: "register", Details: details, Success: i%2 == 0, Timestamp: float64(i)}}
	}
	evs[7].Audit = &pipeline.Audit{Operation: "register", Details: details, LostBefore: 3}
	return evs
}

// Write converts a batch into records held in one slab, with the ring
// epoch formatted once per ring: a handful of allocations per batch, not
// one (or three) per record. The records are those convert makes one at a
// time.
func TestWriterConvertsABatchInOneSlab(t *testing.T) {
	w := NewWriter(WriterOptions{Store: NewMemory()})
	evs := wcAuditEvents(512)
	convertAll := func() []pendingRec {
		cb := convBuf{slab: &recSlab{recs: make([]Record, 0, len(evs))}}
		items := make([]pendingRec, 0, len(evs)+1)
		for i := range evs {
			items = w.appendRecords(items, &cb, &evs[i])
		}
		return items
	}
	got := convertAll()
	var want []pendingRec
	for i := range evs {
		want = append(want, w.convert(&evs[i])...)
	}
	if len(got) != len(want) || len(got) != 513 {
		t.Fatalf("%d records, convert makes %d (want 513: one gap)", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(*got[i].rec, *want[i].rec) || got[i].ack != want[i].ack || got[i].evtNs != want[i].evtNs {
			t.Fatalf("record %d: %+v, convert makes %+v", i, *got[i].rec, *want[i].rec)
		}
	}
	if e := got[0].rec.RingEpoch; e != fmt.Sprintf("%016x", 0xaa) {
		t.Fatalf("ring epoch %q", e)
	}
	// The items, the slab, three epochs' text, the gap record (its record,
	// message and details): not one per record.
	if allocs := testing.AllocsPerRun(20, func() { convertAll() }); allocs > 16 {
		t.Errorf("%v allocations for a batch of 512 records", allocs)
	}
}

// A Write's slab goes back for reuse once every one of its records is
// committed, not before: records of a Write split across commits keep
// theirs until the last commit, and every record is stored as written.
func TestWriterReusesCommittedSlabs(t *testing.T) {
	st := NewMemory()
	w := NewWriter(WriterOptions{Store: st, BatchSize: 100, FlushInterval: 300 * time.Millisecond})
	stop := runWriter(t, w)
	defer stop()
	prod := pipeline.NewProducer("tp0", "tp0", 1, 1, "r", pipeline.Identity{Producer: "tp0"})
	events := func(from, n int) []pipeline.Event {
		evs := make([]pipeline.Event, n)
		for i := range evs {
			evs[i] = pipeline.Event{Kind: pipeline.KindAudit, Producer: prod, Epoch: 0xaa, Seq: uint64(from + i + 1),
				Ack: pipeline.NewAck(nopAcker{}, pipeline.AckToken{}), TimeNs: time.Now().UnixNano(), RecvNs: time.Now().UnixNano(),
				Audit: &pipeline.Audit{Operation: "register", Details: json.RawMessage(`{"i":` + strconv.Itoa(from+i) + `}`), Success: true}}
		}
		return evs
	}
	if err := w.Write(context.Background(), events(0, 250)); err != nil {
		t.Fatal(err)
	}
	// 200 are committed at once, 50 wait for the flush interval: the slab
	// is still theirs.
	eventually(t, "two commits", func() bool { h, _ := st.Head(); return h.Size == 200 })
	if n := len(w.freeSlabs); n != 0 {
		t.Fatalf("%d slabs free with 50 of their records pending", n)
	}
	eventually(t, "the flush", func() bool { h, _ := st.Head(); return h.Size == 250 })
	eventually(t, "the slab back", func() bool { return len(w.freeSlabs) == 1 })
	for from := 250; from < 1000; from += 250 {
		if err := w.Write(context.Background(), events(from, 250)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all stored", func() bool { h, _ := st.Head(); return h.Size == 1000 })
	recs, err := st.Query(Filter{})
	if err != nil || len(recs) != 1000 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if want := `{"i":` + strconv.Itoa(i) + `}`; string(r.Details) != want || r.RingSeq != uint64(i+1) {
			t.Fatalf("record %d: details %s ring seq %d, want %s %d", i, r.Details, r.RingSeq, want, i+1)
		}
	}
	if rep, err := st.Verify(nil); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func TestEpochHex(t *testing.T) {
	for _, e := range []uint64{0, 1, 0xaa, 0xdeadbeef, 1 << 63, ^uint64(0)} {
		if got, want := epochHex(e), fmt.Sprintf("%016x", e); got != want {
			t.Errorf("epochHex(%#x) = %q, want %q", e, got, want)
		}
	}
}

// counted counts runs of one operation with one map update, and counts
// exactly what one update per record counted, the bound on operations
// included.
func TestWriterCountedRuns(t *testing.T) {
	w := NewWriter(WriterOptions{Store: NewMemory()})
	want := map[[2]string]uint64{}
	var stored []*Record
	seq := uint64(0)
	add := func(op string, ok bool, n int) {
		for range n {
			seq++
			stored = append(stored, &Record{Seq: seq, Operation: op, Success: ok})
		}
	}
	add("register", true, 5)
	add("register", false, 2)
	add("clear", true, 1)
	add("register", true, 3)
	for i := range 300 { // beyond the bound of 256 operations
		add("op"+strconv.Itoa(i), i%2 == 0, 1+i%3)
	}
	add("register", true, 4)
	add("late", true, 2)
	for _, r := range stored { // one update per record, as before
		k := [2]string{r.Operation, strconv.FormatBool(r.Success)}
		if _, ok := want[k]; !ok && len(want) >= 256 {
			k[0] = "other"
		}
		want[k]++
	}
	w.counted(stored[:40])
	w.counted(stored[40:])
	if !reflect.DeepEqual(w.records, want) {
		t.Fatalf("counted %d series, want %d; register/true %d want %d, other/true %d want %d", len(w.records), len(want),
			w.records[[2]string{"register", "true"}], want[[2]string{"register", "true"}],
			w.records[[2]string{"other", "true"}], want[[2]string{"other", "true"}])
	}
	if w.headSize != seq {
		t.Fatalf("head size %d, want %d", w.headSize, seq)
	}
}

// dayCache names every time's day as dayOf does, across midnight, with
// the clock stepping back and in other zones.
func TestDayCache(t *testing.T) {
	var c dayCache
	t0 := time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC)
	for i, tm := range []time.Time{
		t0, t0.Add(time.Nanosecond), t0.Add(-time.Hour), t0.Add(24 * time.Hour), t0.Add(time.Nanosecond),
		t0.In(time.FixedZone("east", 14*3600)), t0.Add(time.Nanosecond).In(time.FixedZone("west", -12*3600)),
		time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), {}, time.Unix(0, 0), t0,
	} {
		if got, want := c.of(tm), dayOf(tm); got != want {
			t.Errorf("%d: %v: %s, want %s", i, tm, got, want)
		}
	}
}

// One batch across days (and a clock stepping back within it) files each
// record under its day bucket and counts each day's bytes in daysize, as
// one map update per record did.
func TestBoltDaySizesOfABatchAcrossDays(t *testing.T) {
	fx := stNew(t, "bbolt")
	t0 := time.Date(2026, 12, 6, 23, 59, 59, 0, time.UTC)
	var recs []*Record
	for i, off := range []time.Duration{0, time.Second / 2, time.Second, 2 * time.Second, time.Second / 4, 25 * time.Hour, 25*time.Hour + 1, 49 * time.Hour} {
		r := stAgent(i)
		r.Time = t0.Add(off)
		recs = append(recs, r)
	}
	fx.append(recs...)
	fx.append(stAgentsAt(t0.Add(49*time.Hour+time.Second), 3, 10)...)
	fx.close()
	db, err := bolt.Open(fx.path(), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, want := map[string]int64{}, map[string]int64{}
	err = db.View(func(tx *bolt.Tx) error {
		days := tx.Bucket(bktDays)
		if err := tx.Bucket(bktDaySize).ForEach(func(k, v []byte) error {
			got[string(k)] = int64(binary.BigEndian.Uint64(v))
			return nil
		}); err != nil {
			return err
		}
		return days.ForEach(func(d, v []byte) error {
			return days.Bucket(d).ForEach(func(_, v []byte) error {
				want[string(d)] += int64(len(v))
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 4 || !reflect.DeepEqual(got, want) {
		t.Fatalf("daysize %v, stored bytes per day %v", got, want)
	}
}
