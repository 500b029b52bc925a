package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Forged retention checkpoints. The chain has no secret, so whoever can
// write the store can delete its oldest records and append a checkpoint
// naming the last one deleted, chained from the head. Verify accepts a
// checkpoint only if a retention run of the backend could have left the
// store as it is. Before, store.go took the newest checkpoint's base as it
// was: every forgery below verified, with --expect-head of the head before
// the forgery and of an older head (the latter with a note).

// fgCheckpoint is a checkpoint record with details d chained after prev.
func fgCheckpoint(t *testing.T, prev Record, at time.Time, d string) Record {
	t.Helper()
	r := Record{Seq: prev.Seq + 1, Time: at.UTC(), Kind: KindCheckpoint, Operation: "retention", Details: json.RawMessage(d), Success: true}
	h, err := chainHash(prev.Hash, &r)
	if err != nil {
		t.Fatal(err)
	}
	r.Hash = h
	return r
}

// fgDetails are full checkpoint details as retention writes them.
func fgDetails(base Record, removed uint64, what []string, marks string) string {
	d := fmt.Sprintf(`{"base_seq":%d,"base_hash":%q,"removed_records":%d,"removed":%s,"reason":"audit_retention_days"`,
		base.Seq, base.Hash, removed, jsonStrings(what))
	if marks != "" {
		d += `,"ring_marks":` + marks
	}
	return d + "}"
}

// fgBolt is a bbolt forgery: records deleted (by key, leaving their day
// bucket, or whole days), the checkpoint appended under the head's day,
// the meta head (and, with metaBase, the meta base) rewritten to match.
type fgBolt struct {
	keys     []uint64
	days     []string
	details  func(tf *stTamper) string
	metaBase bool
}

func (f fgBolt) apply(t *testing.T, tf *stTamper) {
	cp := fgCheckpoint(t, tf.recs[20], time.Date(2024, 3, 10, 23, 0, 0, 0, time.UTC), f.details(tf))
	stBoltUpdate(t, tf.path(), func(tx *bolt.Tx) error {
		for _, k := range f.keys {
			if err := stBoltFind(t, tx, k).Delete(u64(k)); err != nil {
				return err
			}
		}
		for _, d := range f.days {
			if err := tx.Bucket(bktDays).DeleteBucket([]byte(d)); err != nil {
				return err
			}
			if err := tx.Bucket(bktDaySize).Delete([]byte(d)); err != nil {
				return err
			}
		}
		if err := stBoltDay(tx, "2024-03-10").Put(u64(cp.Seq), tf.json(cp)); err != nil {
			return err
		}
		m := tx.Bucket(bktMeta)
		if f.metaBase {
			var d cpDetails
			if err := json.Unmarshal(cp.Details, &d); err != nil {
				return err
			}
			if err := putHead(m, "base", Head{Size: *d.BaseSeq, Hash: d.BaseHash}); err != nil {
				return err
			}
		}
		return putHead(m, "head", Head{Size: cp.Seq, Hash: cp.Hash})
	})
}

func fgSeqs(from, to uint64) []uint64 { return stRange(from, to) }

// The witnesses of each forgery case: the head before it, and an older
// head below the forged base.
func fgWitnesses(tf *stTamper) map[string]*Head {
	return map[string]*Head{"no witness": nil, "head before the forgery": stWitnessHead(tf), "older head": {Size: 5, Hash: tf.recs[5].Hash}}
}

type fgCase struct {
	name  string
	edit  func(t *testing.T, tf *stTamper)
	jopts JSONLOptions
	// problem is what verification reports; "" means the forgery is one
	// retention could have produced and verifies (the documented limit).
	problem string
}

func fgRun(t *testing.T, backend string, cases []fgCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tf := stNewTamper(t, backend, tc.jopts)
			tf.close()
			tc.edit(t, tf)
			tf.open(true)
			for wname, w := range fgWitnesses(tf) {
				rep, err := tf.s.Verify(w)
				if tc.problem == "" {
					if err != nil || !rep.OK {
						t.Errorf("%s: verify %v (%+v), want OK", wname, err, rep)
					}
					continue
				}
				if !errors.Is(err, ErrTampered) || rep.OK || !strings.Contains(rep.Problem, tc.problem) {
					t.Errorf("%s: verify %v (%+v), want a problem saying %q", wname, err, rep, tc.problem)
				}
			}
		})
	}
}

func TestForgedCheckpointBolt(t *testing.T) {
	day1 := "2024-03-09"
	full := func(what ...string) func(tf *stTamper) string {
		return func(tf *stTamper) string { return fgDetails(tf.recs[10], 10, what, "") }
	}
	fgRun(t, "bbolt", []fgCase{
		{name: "issue: records 1-10 deleted, checkpoint names only the base", edit: fgBolt{keys: fgSeqs(1, 10), details: func(tf *stTamper) string {
			return fmt.Sprintf(`{"base_seq":10,"base_hash":%q}`, tf.recs[10].Hash)
		}}.apply, problem: "checkpoint 21 cannot come from retention"},
		{name: "records deleted by key, their day left", edit: fgBolt{keys: fgSeqs(1, 10), details: full(day1), metaBase: true}.apply,
			problem: "day 2024-03-09 it says it removed is still in the store"},
		{name: "whole day deleted, meta base left", edit: fgBolt{days: []string{day1}, details: full(day1)}.apply,
			problem: "the store's meta bucket"},
		{name: "part of a day deleted, naming that day", edit: fgBolt{keys: fgSeqs(1, 7), metaBase: true, details: func(tf *stTamper) string {
			return fgDetails(tf.recs[7], 7, []string{day1}, "")
		}}.apply, problem: "day 2024-03-09 it says it removed is not older than the retained records"},
		{name: "part of a day deleted, base in the middle of what is left", edit: fgBolt{keys: fgSeqs(1, 5), metaBase: true, details: func(tf *stTamper) string {
			return fgDetails(tf.recs[7], 7, []string{"2024-03-08"}, "")
		}}.apply, problem: "record 6, at or below its base 7, is still stored"},
		{name: "removed_records beyond the base", edit: fgBolt{days: []string{day1}, metaBase: true, details: func(tf *stTamper) string {
			return fgDetails(tf.recs[10], 11, []string{day1}, "")
		}}.apply, problem: "removed_records"},
		{name: "removed days not days", edit: fgBolt{days: []string{day1}, metaBase: true, details: full("day one")}.apply,
			problem: `removed "day one" is not a day`},
		{name: "a later day claimed removed", edit: fgBolt{days: []string{day1}, metaBase: true, details: full(day1, "2024-03-11")}.apply,
			problem: "day 2024-03-11 it says it removed is not older"},
		{name: "unknown reason", edit: fgBolt{days: []string{day1}, metaBase: true, details: func(tf *stTamper) string {
			return strings.Replace(fgDetails(tf.recs[10], 10, []string{day1}, ""), "audit_retention_days", "cleanup", 1)
		}}.apply, problem: `reason "cleanup"`},
		// What retention of 2024-03-09 leaves behind, made by hand: no
		// check of the store and no witness can tell it from retention.
		{name: "indistinguishable: the oldest day deleted as retention deletes it", edit: fgBolt{days: []string{day1}, metaBase: true, details: full(day1)}.apply},
		// Records 1-7 of 2024-03-09 deleted and said to be 2024-03-08's:
		// their receive day went with them.
		{name: "indistinguishable: part of a day deleted, an earlier day named", edit: fgBolt{keys: fgSeqs(1, 7), metaBase: true, details: func(tf *stTamper) string {
			return fgDetails(tf.recs[7], 7, []string{"2024-03-08"}, "")
		}}.apply},
	})
}

// A retention that really ran verifies against old and new witnesses, and
// a checkpoint forged after it must agree with it.
func TestForgedCheckpointAfterRetentionBolt(t *testing.T) {
	tf := stNewTamper(t, "bbolt", JSONLOptions{})
	res, err := tf.s.Retain(time.Date(2024, 3, 11, 12, 0, 0, 0, time.UTC), 24*time.Hour, 0)
	if err != nil || res.Checkpoint == nil || strings.Join(res.RemovedDays, ",") != "2024-03-09" {
		t.Fatalf("retention: %+v, %v", res, err)
	}
	cp1 := *res.Checkpoint
	for wname, w := range fgWitnesses(tf) {
		if rep, err := tf.s.Verify(w); err != nil || !rep.OK || rep.Base.Size != 10 {
			t.Fatalf("genuine retention, %s: %v (%+v)", wname, err, rep)
		}
	}
	tf.close()
	// Day 2024-03-10 (11-20) deleted, a checkpoint claiming 5 records.
	cp2 := fgCheckpoint(t, cp1, cp1.Time.Add(time.Hour), fgDetails(tf.recs[20], 5, []string{"2024-03-10"}, ""))
	stBoltUpdate(t, tf.path(), func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktDays).DeleteBucket([]byte("2024-03-10")); err != nil {
			return err
		}
		if err := stBoltDay(tx, dayOf(cp1.Time)).Put(u64(cp2.Seq), tf.json(cp2)); err != nil {
			return err
		}
		m := tx.Bucket(bktMeta)
		if err := putHead(m, "base", Head{Size: 20, Hash: tf.recs[20].Hash}); err != nil {
			return err
		}
		return putHead(m, "head", Head{Size: cp2.Seq, Hash: cp2.Hash})
	})
	tf.open(true)
	rep, err := tf.s.Verify(&Head{Size: cp1.Seq, Hash: cp1.Hash})
	if !errors.Is(err, ErrTampered) || !strings.Contains(rep.Problem, "it says it removed 5 records, but its base is 10 records past checkpoint 21's") {
		t.Fatalf("second checkpoint disagreeing with the first: %v (%+v)", err, rep)
	}
}

// The clock stepped back: the newest day bucket lies in the future, retention
// by size removes it and its checkpoint recreates it. That is retention.
func TestBoltRetentionRecreatingTheNewestDayVerifies(t *testing.T) {
	now := stT0
	fx := stNew(t, "bbolt")
	fx.append(stAgentsAt(now.Add(-24*time.Hour), 3, 10)...)
	fx.append(stAgentsAt(now.Add(48*time.Hour), 3, 10)...)
	res, err := fx.s.Retain(now, 0, 1)
	if err != nil || res.Checkpoint == nil || len(res.RemovedDays) != 2 {
		t.Fatalf("retention: %+v, %v", res, err)
	}
	fx.verifyOK(nil, 1)
	fx.reopen()
	fx.append(stAgent(1))
	fx.verifyOK(nil, 2)
}

// fgJSONL is a JSONL forgery: the oldest files removed, lines deleted from
// the next one, a checkpoint line appended to the active file.
type fgJSONL struct {
	files   int // oldest files removed
	lines   int // then lines deleted from the front of the next file
	details func(tf *stTamper, names []string) string
}

func (f fgJSONL) apply(t *testing.T, tf *stTamper) {
	files := stJSONLFiles(t, tf.path())
	var names []string
	for _, p := range files[:f.files] {
		names = append(names, filepath.Base(p))
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if f.lines > 0 {
		p := files[f.files]
		stWriteLines(t, p, stLines(t, p)[f.lines:])
	}
	cp := fgCheckpoint(t, tf.recs[20], time.Date(2024, 3, 10, 23, 0, 0, 0, time.UTC), f.details(tf, names))
	stWriteLines(t, tf.path(), append(stLines(t, tf.path()), tf.json(cp)))
}

func TestForgedCheckpointJSONL(t *testing.T) {
	// Five records per file: .3 holds 1-5, .2 6-10, .1 11-15, the active file 16-20.
	rotating := JSONLOptions{MaxFileBytes: 2048, MaxFiles: 20}
	full := func(base uint64) func(tf *stTamper, names []string) string {
		return func(tf *stTamper, names []string) string { return fgDetails(tf.recs[base], base, names, "{}") }
	}
	fgRun(t, "file", []fgCase{
		{name: "issue analogue: records 1-10 deleted, checkpoint names only the base", jopts: rotating, edit: fgJSONL{files: 2, details: func(tf *stTamper, _ []string) string {
			return fmt.Sprintf(`{"base_seq":10,"base_hash":%q}`, tf.recs[10].Hash)
		}}.apply, problem: "checkpoint 21 cannot come from retention"},
		{name: "issue analogue, unrotated: lines 1-10 deleted from the active file", edit: fgJSONL{lines: 10, details: func(tf *stTamper, _ []string) string {
			return fmt.Sprintf(`{"base_seq":10,"base_hash":%q}`, tf.recs[10].Hash)
		}}.apply, problem: "checkpoint 21 cannot come from retention"},
		{name: "base inside a file", jopts: rotating, edit: fgJSONL{files: 1, details: full(7)}.apply,
			problem: "holds records on both sides of its base 7"},
		{name: "removed names the active file", jopts: rotating, edit: fgJSONL{files: 2, details: func(tf *stTamper, _ []string) string {
			return fgDetails(tf.recs[10], 10, []string{"audit.jsonl"}, "{}")
		}}.apply, problem: `removed "audit.jsonl" is not the name of a rotated file`},
		{name: "no ring marks", jopts: rotating, edit: fgJSONL{files: 2, details: func(tf *stTamper, names []string) string {
			return fgDetails(tf.recs[10], 10, names, "")
		}}.apply, problem: "carries no ring_marks"},
		{name: "reason of another backend", jopts: rotating, edit: fgJSONL{files: 2, details: func(tf *stTamper, names []string) string {
			return strings.Replace(fgDetails(tf.recs[10], 10, names, "{}"), "audit_retention_days", "bbolt_days", 1)
		}}.apply, problem: `reason "bbolt_days"`},
		// Whole files removed as retention removes them, or lines cut up
		// to where a file could have begun: indistinguishable.
		{name: "indistinguishable: the oldest files removed", jopts: rotating, edit: fgJSONL{files: 2, details: full(10)}.apply},
		{name: "indistinguishable: lines cut to a point where a file could begin", jopts: rotating, edit: fgJSONL{files: 1, lines: 2, details: full(7)}.apply},
	})
}

// A JSONL checkpoint carries the ring marks of every stored producer
// record before it (exactly-once survives removed files): one that does
// not was not written by retention.
func TestForgedCheckpointJSONLRingMarks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		marks func(base uint64) string
		ok    bool
	}{
		{"none", func(uint64) string { return `{}` }, false},
		{"only the removed file's", func(base uint64) string { return fmt.Sprintf(`{%q:%d}`, stEpochA, base) }, false},
		{"every stored record's", func(uint64) string { return fmt.Sprintf(`{%q:10}`, stEpochA) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := stNewJSONL(t, "file", JSONLOptions{MaxFileBytes: 1024, MaxFiles: 20})
			var recs []*Record
			for s := uint64(1); s <= 10; s++ {
				recs = append(recs, fx.append(stRing(KindProducer, stEpochA, s))...)
			}
			fx.close()
			files := stJSONLFiles(t, fx.path())
			first := stLines(t, files[0])
			var last Record
			if err := json.Unmarshal(first[len(first)-1], &last); err != nil {
				t.Fatal(err)
			}
			if len(files) < 3 || last.Seq >= 9 {
				t.Fatalf("test setup: %d files, the oldest ending at %d", len(files), last.Seq)
			}
			if err := os.Remove(files[0]); err != nil {
				t.Fatal(err)
			}
			cp := fgCheckpoint(t, *recs[9], stT0.Add(time.Hour), fgDetails(last, last.Seq, []string{filepath.Base(files[0])}, tc.marks(last.Seq)))
			stWriteLines(t, fx.path(), append(stLines(t, fx.path()), mustJSON(t, cp)))
			fx.open(true)
			rep, err := fx.s.Verify(nil)
			if tc.ok {
				if err != nil || !rep.OK {
					t.Fatalf("verify %v (%+v)", err, rep)
				}
				return
			}
			want := fmt.Sprintf("ring_marks do not cover record %d", last.Seq+1)
			if !errors.Is(err, ErrTampered) || !strings.Contains(rep.Problem, want) || rep.FirstBad != cp.Seq {
				t.Fatalf("verify %v (%+v), want %q", err, rep, want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Genuine JSONL retention verifies, also when it was interrupted between
// its checkpoint and the removal of the files (leftovers).
func TestJSONLRetentionVerifiesWithLeftovers(t *testing.T) {
	tf := stNewTamper(t, "file", JSONLOptions{MaxFileBytes: 2048, MaxFiles: 20})
	files := stJSONLFiles(t, tf.path())
	saved := map[string][]byte{}
	for _, p := range files[:2] {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		saved[p] = b
	}
	// The files of 2024-03-09 (1-5 and 6-10) go.
	res, err := tf.s.Retain(time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC), 12*time.Hour, 0)
	if err != nil || res.Checkpoint == nil || len(res.RemovedDays) != 2 {
		t.Fatalf("retention: %+v, %v", res, err)
	}
	for wname, w := range fgWitnesses(tf) {
		if rep, err := tf.s.Verify(w); err != nil || !rep.OK || rep.Base.Size != 10 {
			t.Fatalf("after retention, %s: %v (%+v)", wname, err, rep)
		}
	}
	tf.close()
	for p, b := range saved { // as if the agent died before removing them
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tf.open(true)
	for wname, w := range fgWitnesses(tf) {
		if rep, err := tf.s.Verify(w); err != nil || !rep.OK || rep.Base.Size != 10 {
			t.Fatalf("leftovers, %s: %v (%+v)", wname, err, rep)
		}
	}
}

// The bbolt meta base is the checkpoint's base; a meta base without any
// checkpoint is a checkpoint removed.
func TestBoltMetaBaseWithoutCheckpoint(t *testing.T) {
	tf := stNewTamper(t, "bbolt", JSONLOptions{})
	tf.close()
	stBoltUpdate(t, tf.path(), func(tx *bolt.Tx) error {
		return putHead(tx.Bucket(bktMeta), "base", Head{Size: 10, Hash: tf.recs[10].Hash})
	})
	tf.open(true)
	rep, err := tf.s.Verify(nil)
	if !errors.Is(err, ErrTampered) || !strings.Contains(rep.Problem, "no checkpoint record does") {
		t.Fatalf("verify %v (%+v)", err, rep)
	}
}

func TestRotatedName(t *testing.T) {
	for name, want := range map[string]bool{
		"aga_audit.1.jsonl": true, "aga_audit.12.jsonl": true, "moved.3.jsonl": true, "audit.2.log": true,
		"aga_audit.jsonl": false, "aga_audit.0.jsonl": false, "aga_audit.01.jsonl": false, "aga_audit.-1.jsonl": false,
		"aga_audit.x.jsonl": false, ".1.jsonl": false, "dir/aga_audit.1.jsonl": false, "": false,
	} {
		if got := rotatedName(name); got != want {
			t.Errorf("rotatedName(%q) = %v, want %v", name, got, want)
		}
	}
}
