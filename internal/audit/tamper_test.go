package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// stTamper is a store of 20 records (10 on 2024-03-09, 10 on 2024-03-10,
// appended in batches of 5) and what it held before it was tampered with.
type stTamper struct {
	*stFixture
	recs map[uint64]Record // by seq
	head Head
}

func stNewTamper(t *testing.T, backend string, jopts JSONLOptions) *stTamper {
	t.Helper()
	fx := stNewJSONL(t, backend, jopts)
	day1 := time.Date(2024, 3, 9, 10, 0, 0, 0, time.UTC)
	day2 := time.Date(2024, 3, 10, 10, 0, 0, 0, time.UTC)
	recs := append(stAgentsAt(day1, 10, 150), stAgentsAt(day2, 10, 150)...)
	for i := 0; i < len(recs); i += 5 {
		fx.append(recs[i : i+5]...)
	}
	tf := &stTamper{stFixture: fx, recs: map[uint64]Record{}, head: fx.head()}
	for _, r := range fx.query(Filter{}) {
		tf.recs[r.Seq] = r
	}
	if len(tf.recs) != 20 || tf.head.Size != 20 {
		t.Fatalf("fixture: %d records, head %v", len(tf.recs), tf.head)
	}
	return tf
}

func (tf *stTamper) json(r Record) []byte {
	tf.t.Helper()
	b, err := json.Marshal(&r)
	if err != nil {
		tf.t.Fatal(err)
	}
	return b
}

// modified is record seq with other details and its original hash.
func (tf *stTamper) modified(seq uint64) Record {
	r := tf.recs[seq]
	r.Details = json.RawMessage(`{"i":999,"pad":"forged"}`)
	return r
}

// --- bbolt edits (on the closed file) ---

func (tf *stTamper) boltPut(seq uint64, value []byte) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error { return stBoltFind(tf.t, tx, seq).Put(u64(seq), value) }
}

func (tf *stTamper) boltDelete(seqs ...uint64) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for _, s := range seqs {
			if err := stBoltFind(tf.t, tx, s).Delete(u64(s)); err != nil {
				return err
			}
		}
		return nil
	}
}

func stBoltDay(tx *bolt.Tx, day string) *bolt.Bucket {
	return tx.Bucket([]byte("days")).Bucket([]byte(day))
}

// --- JSONL edits (on the files) ---

// jsonlLocate finds the file and line index holding seq.
func (tf *stTamper) jsonlLocate(seq uint64) (string, int) {
	tf.t.Helper()
	for _, p := range stJSONLFiles(tf.t, tf.path()) {
		for i, l := range stLines(tf.t, p) {
			var r Record
			if json.Unmarshal(l, &r) == nil && r.Seq == seq {
				return p, i
			}
		}
	}
	tf.t.Fatalf("record %d not found in the JSONL files", seq)
	return "", 0
}

// jsonlEdit rewrites the file holding seq: fn gets its lines and the line
// index of seq and returns the new lines.
func (tf *stTamper) jsonlEdit(seq uint64, fn func(lines [][]byte, i int) [][]byte) {
	tf.t.Helper()
	p, i := tf.jsonlLocate(seq)
	stWriteLines(tf.t, p, fn(stLines(tf.t, p), i))
}

func stInsert(lines [][]byte, i int, l []byte) [][]byte {
	out := append([][]byte{}, lines[:i]...)
	out = append(out, l)
	return append(out, lines[i:]...)
}

func stDelete(lines [][]byte, i, n int) [][]byte {
	return append(append([][]byte{}, lines[:i]...), lines[i+n:]...)
}

type stTamperCase struct {
	name    string
	jopts   JSONLOptions
	edit    func(t *testing.T, tf *stTamper) // the store is closed (memory: open) when it runs
	witness func(tf *stTamper) *Head         // nil: verify without a witness
	// Outcome: wantOK, or the problem (a substring) and the first bad seq
	// (0: not checked).
	wantOK   bool
	records  uint64 // when wantOK
	problem  string
	firstBad uint64
}

func stWitnessHead(tf *stTamper) *Head { h := tf.head; return &h }

func stRunTamper(t *testing.T, backend string, cases []stTamperCase) {
	for _, tc := range cases {
		t.Run(backend+"/"+tc.name, func(t *testing.T) {
			tf := stNewTamper(t, backend, tc.jopts)
			tf.close()
			if tc.edit != nil {
				tc.edit(t, tf)
			}
			if backend != "memory" {
				tf.open(true) // as `audit verify` opens it
			}
			var expect *Head
			if tc.witness != nil {
				expect = tc.witness(tf)
			}
			rep, err := tf.s.Verify(expect)
			if tc.wantOK {
				if err != nil || !rep.OK || rep.FirstBad != 0 || rep.Problem != "" {
					t.Fatalf("verify: %v (%+v), want OK", err, rep)
				}
				if rep.Records != tc.records {
					t.Fatalf("verified %d records, want %d", rep.Records, tc.records)
				}
				return
			}
			if !errors.Is(err, ErrTampered) || rep.OK {
				t.Fatalf("verify: %v (%+v), want ErrTampered", err, rep)
			}
			if !strings.Contains(rep.Problem, tc.problem) || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("problem %q (error %q), want it to mention %q", rep.Problem, err, tc.problem)
			}
			if tc.firstBad != 0 && rep.FirstBad != tc.firstBad {
				t.Fatalf("first bad record %d, want %d (%s)", rep.FirstBad, tc.firstBad, rep.Problem)
			}
		})
	}
}

// Cases every backend shares: no edit, only witnesses.
func stWitnessCases() []stTamperCase {
	return []stTamperCase{
		{name: "intact", wantOK: true, records: 20},
		{name: "intact with the witnessed head", witness: stWitnessHead, wantOK: true, records: 20},
		{name: "intact with an older witness", witness: func(tf *stTamper) *Head {
			return &Head{Size: 12, Hash: tf.recs[12].Hash}
		}, wantOK: true, records: 20},
		{name: "witness hash differs", witness: func(tf *stTamper) *Head {
			return &Head{Size: 10, Hash: tf.recs[9].Hash}
		}, problem: "record 10 does not match the witnessed head", firstBad: 10},
		{name: "witness beyond the store", witness: func(tf *stTamper) *Head {
			return &Head{Size: 25, Hash: tf.recs[20].Hash}
		}, problem: "tail truncated", firstBad: 21},
	}
}

func TestTamperBolt(t *testing.T) {
	edit := func(fns ...func(tf *stTamper) func(tx *bolt.Tx) error) func(t *testing.T, tf *stTamper) {
		return func(t *testing.T, tf *stTamper) {
			for _, fn := range fns {
				stBoltUpdate(t, tf.path(), fn(tf))
			}
		}
	}
	truncate := func(tf *stTamper) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			if err := tf.boltDelete(18, 19, 20)(tx); err != nil {
				return err
			}
			return putHead(tx.Bucket([]byte("meta")), "head", Head{Size: 17, Hash: tf.recs[17].Hash})
		}
	}
	cases := append(stWitnessCases(), []stTamperCase{
		{name: "details modified, hash kept", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return tf.boltPut(7, tf.json(tf.modified(7)))
		}), problem: "record 7 modified", firstBad: 7},
		{name: "success flipped", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			r := tf.recs[12]
			r.Success = !r.Success
			return tf.boltPut(12, tf.json(r))
		}), problem: "record 12 modified", firstBad: 12},
		{name: "value unreadable", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return tf.boltPut(7, []byte("not json"))
		}), problem: "record 7 modified", firstBad: 7},
		{name: "record deleted in the middle", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return tf.boltDelete(7)
		}), problem: "record 7 deleted", firstBad: 7},
		{name: "records deleted in the middle", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return tf.boltDelete(7, 8, 9)
		}), problem: "records 7-9 deleted", firstBad: 7},
		{name: "first record deleted", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return tf.boltDelete(1)
		}), problem: "record 1 deleted", firstBad: 1},
		{name: "last record of a day deleted", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return tf.boltDelete(10)
		}), problem: "record 10 deleted", firstBad: 10},
		{name: "forged record with an old seq in a later day", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				return stBoltDay(tx, "2024-03-10").Put(u64(5), tf.json(tf.modified(5)))
			}
		}), problem: "record 5 inserted or reordered", firstBad: 5},
		{name: "forged record with a fabricated seq between days", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				r := tf.modified(10)
				r.Seq = 25
				return stBoltDay(tx, "2024-03-09").Put(u64(25), tf.json(r))
			}
		}), problem: "records 11-24 deleted", firstBad: 11},
		{name: "forged record under its own earlier day", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				b, err := tx.Bucket([]byte("days")).CreateBucket([]byte("2024-03-01"))
				if err != nil {
					return err
				}
				r := tf.modified(3)
				return b.Put(u64(3), tf.json(r))
			}
		}), problem: "records 1-2 deleted", firstBad: 1},
		{name: "forged record appended with a valid chain hash", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				r := tf.modified(20)
				r.Seq = 21
				h, err := chainHash(tf.recs[20].Hash, &r)
				if err != nil {
					return err
				}
				r.Hash = h
				return stBoltDay(tx, "2024-03-10").Put(u64(21), tf.json(r))
			}
		}), problem: "stored head", firstBad: 20},
		{name: "forged record appended with a made-up hash", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				r := tf.modified(20)
				r.Seq, r.Hash = 21, tf.recs[20].Hash
				return stBoltDay(tx, "2024-03-10").Put(u64(21), tf.json(r))
			}
		}), problem: "record 21 modified", firstBad: 21},
		{name: "two records swapped", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				b := stBoltDay(tx, "2024-03-09")
				v4, v5 := append([]byte(nil), b.Get(u64(4))...), append([]byte(nil), b.Get(u64(5))...)
				if err := b.Put(u64(4), v5); err != nil {
					return err
				}
				return b.Put(u64(5), v4)
			}
		}), problem: "record 4 modified", firstBad: 4},
		{name: "records swapped across days", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				if err := stBoltDay(tx, "2024-03-09").Put(u64(10), tf.json(tf.recs[11])); err != nil {
					return err
				}
				return stBoltDay(tx, "2024-03-10").Put(u64(11), tf.json(tf.recs[10]))
			}
		}), problem: "record 10 modified", firstBad: 10},
		{name: "stored head rewritten", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				return putHead(tx.Bucket([]byte("meta")), "head", Head{Size: 20, Hash: tf.recs[19].Hash})
			}
		}), problem: "stored head", firstBad: 20},
		{name: "tail truncated, stored head left", edit: edit(func(tf *stTamper) func(tx *bolt.Tx) error {
			return tf.boltDelete(18, 19, 20)
		}), problem: "stored head 20:", firstBad: 20},
		// With the stored head rewritten to match, only a witness notices.
		{name: "tail truncated with a consistent head", edit: edit(truncate), wantOK: true, records: 17},
		{name: "tail truncated with a consistent head, witnessed", edit: edit(truncate), witness: stWitnessHead,
			problem: "tail truncated: the witnessed head has 20 records, the store 17", firstBad: 18},
	}...)
	stRunTamper(t, "bbolt", cases)
}

func TestTamperJSONL(t *testing.T) {
	line := func(tf *stTamper, seq uint64) []byte { return tf.json(tf.recs[seq]) }
	rotating := JSONLOptions{MaxFileBytes: 2048, MaxFiles: 20}
	cases := append(stWitnessCases(), []stTamperCase{
		{name: "details modified, hash kept", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(7, func(l [][]byte, i int) [][]byte { l[i] = tf.json(tf.modified(7)); return l })
		}, problem: "record 7 modified", firstBad: 7},
		{name: "one byte of details changed in place", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(7, func(l [][]byte, i int) [][]byte {
				l[i] = bytes.Replace(l[i], []byte(`"i":6`), []byte(`"i":8`), 1)
				return l
			})
		}, problem: "record 7 modified", firstBad: 7},
		{name: "record deleted in the middle", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(7, func(l [][]byte, i int) [][]byte { return stDelete(l, i, 1) })
		}, problem: "record 7 deleted", firstBad: 7},
		{name: "records deleted in the middle", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(7, func(l [][]byte, i int) [][]byte { return stDelete(l, i, 3) })
		}, problem: "records 7-9 deleted", firstBad: 7},
		{name: "first record deleted", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(1, func(l [][]byte, i int) [][]byte { return stDelete(l, i, 1) })
		}, problem: "record 1 deleted", firstBad: 1},
		{name: "duplicate line", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(7, func(l [][]byte, i int) [][]byte { return stInsert(l, i+1, l[i]) })
		}, problem: "record 7 inserted or reordered", firstBad: 7},
		{name: "forged line with a fabricated seq", edit: func(t *testing.T, tf *stTamper) {
			r := tf.modified(7)
			r.Seq = 30
			tf.jsonlEdit(7, func(l [][]byte, i int) [][]byte { return stInsert(l, i+1, tf.json(r)) })
		}, problem: "records 8-29 deleted", firstBad: 8},
		{name: "forged line posing as the next record", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(8, func(l [][]byte, i int) [][]byte { return stInsert(l, i, tf.json(tf.modified(8))) })
		}, problem: "record 8 modified", firstBad: 8},
		{name: "forged line appended at the end", edit: func(t *testing.T, tf *stTamper) {
			r := tf.modified(20)
			r.Seq = 21
			tf.jsonlEdit(20, func(l [][]byte, i int) [][]byte { return append(l, tf.json(r)) })
		}, problem: "record 21 modified", firstBad: 21},
		{name: "unreadable line inserted", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(7, func(l [][]byte, i int) [][]byte { return stInsert(l, i, []byte(`{"seq":7,`)) })
		}, problem: "does not match the base"},
		{name: "two lines swapped", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(7, func(l [][]byte, i int) [][]byte { l[i], l[i+1] = l[i+1], l[i]; return l })
		}, problem: "record 7 deleted", firstBad: 7},
		{name: "line moved to the end", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(3, func(l [][]byte, i int) [][]byte { return append(stDelete(l, i, 1), line(tf, 3)) })
		}, problem: "record 3 deleted", firstBad: 3},
		{name: "tail truncated", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(20, func(l [][]byte, i int) [][]byte { return l[:i-2] })
		}, wantOK: true, records: 17},
		{name: "tail truncated, witnessed", edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(20, func(l [][]byte, i int) [][]byte { return l[:i-2] })
		}, witness: stWitnessHead, problem: "tail truncated: the witnessed head has 20 records, the store 17", firstBad: 18},
		{name: "rotated: intact", jopts: rotating, witness: stWitnessHead, wantOK: true, records: 20},
		{name: "rotated: record modified in a rotated file", jopts: rotating, edit: func(t *testing.T, tf *stTamper) {
			p, _ := tf.jsonlLocate(3)
			if p == tf.path() || len(stJSONLFiles(t, tf.path())) < 3 {
				t.Fatalf("record 3 in %s of %v: want a rotated file", p, stJSONLFiles(t, tf.path()))
			}
			tf.jsonlEdit(3, func(l [][]byte, i int) [][]byte { l[i] = tf.json(tf.modified(3)); return l })
		}, witness: stWitnessHead, problem: "record 3 modified", firstBad: 3},
		{name: "rotated: record deleted from a rotated file", jopts: rotating, edit: func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(4, func(l [][]byte, i int) [][]byte { return stDelete(l, i, 1) })
		}, problem: "record 4 deleted", firstBad: 4},
		{name: "rotated: rotated files renamed out of order", jopts: rotating, edit: func(t *testing.T, tf *stTamper) {
			files := stJSONLFiles(t, tf.path())
			a, b := files[len(files)-2], files[len(files)-3] // .1 and .2
			tmp := a + ".tmp"
			for _, mv := range [][2]string{{a, tmp}, {b, a}, {tmp, b}} {
				if err := os.Rename(mv[0], mv[1]); err != nil {
					t.Fatal(err)
				}
			}
		}, problem: "deleted"},
		{name: "rotated: oldest rotated file removed without a checkpoint", jopts: rotating, edit: func(t *testing.T, tf *stTamper) {
			files := stJSONLFiles(t, tf.path())
			if err := os.Remove(files[0]); err != nil {
				t.Fatal(err)
			}
		}, problem: "records 1-5 deleted", firstBad: 1},
	}...)
	stRunTamper(t, "file", cases)
}

func TestTamperMemory(t *testing.T) {
	mem := func(fn func(tf *stTamper, m *memStore)) func(t *testing.T, tf *stTamper) {
		return func(t *testing.T, tf *stTamper) { fn(tf, tf.s.(*memStore)) }
	}
	cases := append(stWitnessCases(), []stTamperCase{
		{name: "details modified", edit: mem(func(tf *stTamper, m *memStore) { m.recs[6] = tf.modified(7) }),
			problem: "record 7 modified", firstBad: 7},
		{name: "record deleted", edit: mem(func(tf *stTamper, m *memStore) { m.recs = append(m.recs[:6], m.recs[7:]...) }),
			problem: "record 7 deleted", firstBad: 7},
		{name: "record duplicated", edit: mem(func(tf *stTamper, m *memStore) {
			m.recs = append(m.recs[:7], append([]Record{m.recs[6]}, m.recs[7:]...)...)
		}), problem: "record 7 inserted or reordered", firstBad: 7},
		{name: "records swapped", edit: mem(func(tf *stTamper, m *memStore) { m.recs[3], m.recs[4] = m.recs[4], m.recs[3] }),
			problem: "record 4 deleted", firstBad: 4},
		{name: "tail truncated with a consistent head", edit: mem(func(tf *stTamper, m *memStore) {
			m.recs, m.head = m.recs[:17], Head{Size: 17, Hash: tf.recs[17].Hash}
		}), wantOK: true, records: 17},
		{name: "tail truncated with a consistent head, witnessed", edit: mem(func(tf *stTamper, m *memStore) {
			m.recs, m.head = m.recs[:17], Head{Size: 17, Hash: tf.recs[17].Hash}
		}), witness: stWitnessHead, problem: "tail truncated", firstBad: 18},
		{name: "tail truncated, head left", edit: mem(func(tf *stTamper, m *memStore) { m.recs = m.recs[:17] }),
			problem: "stored head 20:", firstBad: 20},
	}...)
	stRunTamper(t, "memory", cases)
}

// A retention checkpoint names the base the chain is verified from, and
// the verifier says the checkpoint's own integrity is checked by the chain
// walk. A "checkpoint" whose base is its own seq is never hashed: turning
// the last record into one (keeping its hash) makes Verify skip every
// record, so a modification anywhere before it goes unnoticed although the
// stored head and the witnessed head both still match. BUG: store.go
// verifyChain / verifier.next accept a checkpoint with base_seq >= its own
// seq and never hash records at or below the base.
func TestVerifyRejectsSelfCertifyingCheckpoint(t *testing.T) {
	for _, backend := range stBackends {
		t.Run(backend, func(t *testing.T) {
			tf := stNewTamper(t, backend, JSONLOptions{})
			tf.close()
			forged := tf.recs[20]
			forged.Kind, forged.Operation = KindCheckpoint, "retention"
			forged.Details = json.RawMessage(fmt.Sprintf(`{"base_seq":20,"base_hash":%q}`, forged.Hash))
			changed := tf.modified(7) // the tampering the forged checkpoint hides
			switch backend {
			case "bbolt":
				stBoltUpdate(t, tf.path(), func(tx *bolt.Tx) error {
					if err := tf.boltPut(7, tf.json(changed))(tx); err != nil {
						return err
					}
					return tf.boltPut(20, tf.json(forged))(tx)
				})
				tf.open(true)
			case "file":
				tf.jsonlEdit(7, func(l [][]byte, i int) [][]byte { l[i] = tf.json(changed); return l })
				tf.jsonlEdit(20, func(l [][]byte, i int) [][]byte { l[i] = tf.json(forged); return l })
				tf.open(true)
			case "memory":
				m := tf.s.(*memStore)
				m.recs[6], m.recs[19] = changed, forged
			}
			rep, err := tf.s.Verify(stWitnessHead(tf))
			if err == nil || rep.OK {
				t.Fatalf("record 7 modified and record 20 turned into a checkpoint naming itself: verify passed (%+v)", rep)
			}
		})
	}
}

func TestParseHead(t *testing.T) {
	h := strings.Repeat("0123456789abcdef", 4)
	cases := []struct {
		in   string
		want Head
		ok   bool
	}{
		{"20:" + h, Head{Size: 20, Hash: h}, true},
		{"0:" + zeroHash(), Head{Size: 0, Hash: zeroHash()}, true},
		{"18446744073709551615:" + h, Head{Size: 18446744073709551615, Hash: h}, true},
		{"", Head{}, false},
		{"20", Head{}, false},
		{"20:", Head{}, false},
		{":" + h, Head{}, false},
		{"x:" + h, Head{}, false},
		{"-1:" + h, Head{}, false},
		{"20;" + h, Head{}, false},
		{"20 " + h, Head{}, false},
		{"20:" + h[:62], Head{}, false},
		{"20:" + h + "00", Head{}, false},
		{"20:" + h + "zz", Head{}, false},
		{"20:" + strings.Repeat("g", 64), Head{}, false},
		{"20:" + h[:63], Head{}, false},
	}
	for _, tc := range cases {
		got, err := ParseHead(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("ParseHead(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if back, err := ParseHead(got.String()); err != nil || back != got {
				t.Errorf("ParseHead(%q.String()) = %v, %v", tc.in, back, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseHead(%q) = %v, want an error", tc.in, got)
		} else if !strings.Contains(err.Error(), "head") || got != (Head{}) {
			t.Errorf("ParseHead(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// What ParseHead accepts must be usable as --expect-head: an upper-case
// digest is the same digest (or must be refused), and text after the hash
// is a malformed head, not something to ignore. BUG: record.go ParseHead
// keeps an upper-case hash as is (Verify then reports a tampered chain on
// an intact one) and ignores anything after a space.
func TestParseHeadUsableAsWitness(t *testing.T) {
	s := NewMemory()
	var recs []*Record
	for i := 0; i < 5; i++ {
		recs = append(recs, stAgent(i))
	}
	if _, err := s.Append(recs); err != nil {
		t.Fatal(err)
	}
	head, _ := s.Head()
	if h, err := ParseHead(strings.ToUpper(head.String())); err == nil {
		if rep, err := s.Verify(&h); err != nil || !rep.OK {
			t.Errorf("ParseHead accepted the upper-case head %v but Verify of the intact chain fails: %v", h, err)
		}
	}
	if h, err := ParseHead(head.String() + " trailing"); err == nil {
		t.Errorf("ParseHead accepted %q as %v", head.String()+" trailing", h)
	}
}
