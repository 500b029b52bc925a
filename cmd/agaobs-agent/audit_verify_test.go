package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agaobs/agaobs/internal/audit"
)

// forgeRecord chains a record after prev the way docs/audit.md tells a
// third party to recompute it: SHA-256 over prev's hash bytes and the
// record's JSON with "hash":"".
func forgeRecord(t *testing.T, prev audit.Record, r audit.Record) (audit.Record, []byte) {
	t.Helper()
	r.Seq, r.Hash = prev.Seq+1, ""
	canonical, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := hex.DecodeString(prev.Hash)
	sum := sha256.Sum256(append(p, canonical...))
	r.Hash = hex.EncodeToString(sum[:])
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	return r, b
}

// verifyStore is a store of 20 records, 1-10 received on 2024-03-09 and
// 11-20 on 2024-03-10, and its records by seq.
func verifyStore(t *testing.T, backend, path string) map[uint64]audit.Record {
	t.Helper()
	var st audit.Store
	var err error
	if backend == "file" {
		st, err = audit.OpenJSONL(audit.JSONLPath(path), audit.JSONLOptions{MaxFileBytes: 2048, MaxFiles: 20})
	} else {
		st, err = audit.OpenBolt(path, audit.BoltOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for d, day := range []time.Time{time.Date(2024, 3, 9, 10, 0, 0, 0, time.UTC), time.Date(2024, 3, 10, 10, 0, 0, 0, time.UTC)} {
		for b := 0; b < 2; b++ {
			var batch []*audit.Record
			for i := 0; i < 5; i++ {
				batch = append(batch, &audit.Record{Time: day.Add(time.Duration(b*5+i) * time.Minute), Kind: audit.KindAgent, Operation: "op",
					Details: json.RawMessage(fmt.Sprintf(`{"day":%d,"i":%d,"pad":%q}`, d, b*5+i, strings.Repeat("x", 150))), Success: true})
			}
			if _, err := st.Append(batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	recs, err := st.Query(audit.Filter{})
	if err != nil || len(recs) != 20 {
		t.Fatalf("store: %d records, %v", len(recs), err)
	}
	out := map[uint64]audit.Record{}
	for _, r := range recs {
		out[r.Seq] = r
	}
	return out
}

func headOf(r audit.Record) string { return fmt.Sprintf("%d:%s", r.Seq, r.Hash) }

func u64key(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// A forged retention checkpoint (issue: records 1-10 deleted from the
// bbolt file, a checkpoint naming record 10 chained from the head) makes
// `audit verify --expect-head` with a head witnessed before the forgery
// exit 1; a genuine retention still exits 0. Before, both exited 0.
func TestAuditVerifyForgedCheckpoint(t *testing.T) {
	cases := []struct {
		name    string
		backend string
		forge   func(t *testing.T, path string, recs map[uint64]audit.Record)
		code    int
		want    string
	}{
		{name: "bbolt: records 1-10 deleted, checkpoint names record 10", backend: "bbolt", code: 1, want: "cannot come from retention",
			forge: func(t *testing.T, path string, recs map[uint64]audit.Record) {
				cp, b := forgeRecord(t, recs[20], audit.Record{Time: recs[20].Time.Add(time.Hour), Kind: audit.KindCheckpoint, Operation: "retention",
					Details: json.RawMessage(fmt.Sprintf(`{"base_seq":10,"base_hash":%q}`, recs[10].Hash)), Success: true})
				db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				err = db.Update(func(tx *bolt.Tx) error {
					days := tx.Bucket([]byte("days"))
					for s := uint64(1); s <= 10; s++ {
						if err := days.Bucket([]byte("2024-03-09")).Delete(u64key(s)); err != nil {
							return err
						}
					}
					if err := days.Bucket([]byte("2024-03-10")).Put(u64key(cp.Seq), b); err != nil {
						return err
					}
					m := tx.Bucket([]byte("meta"))
					if err := m.Put([]byte("head_seq"), u64key(cp.Seq)); err != nil {
						return err
					}
					return m.Put([]byte("head_hash"), []byte(cp.Hash))
				})
				if err != nil {
					t.Fatal(err)
				}
			}},
		{name: "file: records 1-10 deleted, checkpoint names record 10", backend: "file", code: 1, want: "cannot come from retention",
			forge: func(t *testing.T, path string, recs map[uint64]audit.Record) {
				p := audit.JSONLPath(path)
				for _, n := range []string{".3.jsonl", ".2.jsonl"} {
					if err := os.Remove(strings.TrimSuffix(p, ".jsonl") + n); err != nil {
						t.Fatal(err)
					}
				}
				_, b := forgeRecord(t, recs[20], audit.Record{Time: recs[20].Time.Add(time.Hour), Kind: audit.KindCheckpoint, Operation: "retention",
					Details: json.RawMessage(fmt.Sprintf(`{"base_seq":10,"base_hash":%q}`, recs[10].Hash)), Success: true})
				appendLine(t, p, b)
			}},
		{name: "file: the oldest file deleted, checkpoint names record 7", backend: "file", code: 1, want: "holds records on both sides of its base 7",
			forge: func(t *testing.T, path string, recs map[uint64]audit.Record) {
				// Files: .3 holds 1-5, .2 6-10, .1 11-15; the oldest goes,
				// the base named is in the middle of the next.
				p := audit.JSONLPath(path)
				oldest := strings.TrimSuffix(p, ".jsonl") + ".3.jsonl"
				if err := os.Remove(oldest); err != nil {
					t.Fatal(err)
				}
				_, b := forgeRecord(t, recs[20], audit.Record{Time: recs[20].Time.Add(time.Hour), Kind: audit.KindCheckpoint, Operation: "retention",
					Details: json.RawMessage(fmt.Sprintf(`{"base_seq":7,"base_hash":%q,"removed_records":7,"removed":[%q],"reason":"audit_max_files","ring_marks":{}}`,
						recs[7].Hash, filepath.Base(oldest))), Success: true})
				appendLine(t, p, b)
			}},
		{name: "bbolt: genuine retention", backend: "bbolt", code: 0, want: "note: the witnessed head 5 precedes the retained chain",
			forge: func(t *testing.T, path string, _ map[uint64]audit.Record) {
				st, err := audit.OpenBolt(path, audit.BoltOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				if res, err := st.Retain(time.Date(2024, 3, 11, 12, 0, 0, 0, time.UTC), 24*time.Hour, 0); err != nil || res.RemovedRecords != 10 {
					t.Fatalf("retention: %+v, %v", res, err)
				}
			}},
		{name: "file: genuine retention", backend: "file", code: 0, want: "note: the witnessed head 5 precedes the retained chain",
			forge: func(t *testing.T, path string, _ map[uint64]audit.Record) {
				st, err := audit.OpenJSONL(audit.JSONLPath(path), audit.JSONLOptions{MaxFileBytes: 2048, MaxFiles: 20})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				if res, err := st.Retain(time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC), 12*time.Hour, 0); err != nil || res.RemovedRecords != 10 {
					t.Fatalf("retention: %+v, %v", res, err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.db")
			recs := verifyStore(t, tc.backend, path)
			if tc.backend == "file" {
				if _, err := os.Stat(strings.TrimSuffix(audit.JSONLPath(path), ".jsonl") + ".3.jsonl"); err != nil {
					t.Fatalf("test setup: want four files: %v", err)
				}
			}
			tc.forge(t, path, recs)
			for _, witness := range []string{headOf(recs[20]), headOf(recs[5])} {
				code, out, errOut := runCLI(t, "audit", "verify", "--audit-storage-backend", tc.backend, "--audit-storage-path", path,
					"--admin-listen-address", "", "--expect-head", witness)
				// The head before the forgery is still in the chain and the
				// older one is below the forged base: only the checkpoint's
				// rules catch the forgery.
				wantOut := tc.want
				if tc.code == 0 && witness == headOf(recs[20]) {
					wantOut = "OK "
				}
				if code != tc.code || !strings.Contains(out, wantOut) {
					t.Errorf("verify --expect-head %s: exit %d (want %d)\n%s%s(want %q)", witness[:10], code, tc.code, out, errOut, wantOut)
				}
				if tc.code == 1 && !bytes.HasPrefix([]byte(out), []byte("TAMPERED ")) {
					t.Errorf("verify output %q", out)
				}
			}
		})
	}
}

func appendLine(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}
