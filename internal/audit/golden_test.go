package audit

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testdata/v1-store.db.gz (bbolt) and testdata/v1-store.jsonl (file) were
// written by the agent before the record encoder (seal marshalled every
// record with encoding/json), from goldenRecords: every kind of record,
// details that needed compacting or replacing, strings and details with
// every escape json.Marshal makes, a retention checkpoint (bbolt). Heads
// as that agent reported them:
var goldenHeads = map[string]string{
	"bbolt": "65:1fa97e0182899b8c84c7dd4489bc4704da68057cf1efbc5c17cdae50030be032",
	"file":  "64:1aa23e17b6262f3a29704cb7ad63b0758dce42a17daaa82b7b325e0ef7bbeeb5",
}

// goldenRecords is the record set the stores were written from (three
// days of it, seq offsets 0, 100, 200, then retention, then 300).
func goldenRecords(t0 time.Time, seq uint64) []*Record {
	s := func(v string) *string { return &v }
	var out []*Record
	n := 0
	add := func(r *Record) {
		n++
		if r.Time.IsZero() {
			r.Time = t0.Add(time.Duration(n) * 1234567 * time.Nanosecond)
		}
		if r.Kind == "" {
			r.Kind = KindProducer
		}
		if r.RingSeq != 0 {
			r.RingSeq += seq
		}
		out = append(out, r)
	}
	for i, d := range []string{
		`{"id":"k-1","reliability":0.93,"pinned":false,"metadata":{"source":"wiki"},"store_count":48211}`,
		`{ "id" : "k-2",` + "\n\t" + `"tags" : [ 1 , 2.50 , -0 , 1e3 , 1E-7 ] }`,
		`{"html":"<script>alert('x') && 1 > 0</script>"}`,
		"{\"sep\":\"a\u2028b\u2029c\",\"uni\":\"é中文😀\"}",
		`{"esc":"\u00e9\/\"\\\n\t\u0000","n":null,"t":true}`,
		`{"deep":{"a":[{"b":[[{}]]}]}}`,
		`[1,2]`,
		`"just a string"`,
		`{"broken":`,
		``,
	} {
		add(&Record{Producer: "tp0", Operation: "register", Details: json.RawMessage(d), Success: i%3 != 2,
			EventTimestamp: 1796664170.123456 + float64(i), RingEpoch: "00000000000000aa", RingSeq: uint64(i + 1)})
	}
	add(&Record{Producer: "tp<1>&", Operation: "unregister \"quoted\"\n", Details: json.RawMessage(`{}`), Success: false,
		Error: s("boom <b>&amp;</b>\u2028\x01"), EventTimestamp: 1e-7, RingEpoch: "00000000000000bb", RingSeq: 1})
	add(&Record{Kind: KindGap, Producer: "tp0", Operation: "audit_gap", Details: json.RawMessage(`{"lost":12}`),
		Error: s("12 audit records lost: the producer's audit ring stayed full"), Lost: 12, RingEpoch: "00000000000000aa", RingSeq: 20})
	add(&Record{Producer: "tp0", Operation: "unknown", Details: json.RawMessage(`{"_unencodable":"[1,2]"}`), Success: true,
		EventTimestamp: 1e21, RingEpoch: "00000000000000aa", RingSeq: 21, EncodeError: "details: not a JSON object",
		RawBody: []byte("{\"details\":[1,2],\x00\xff}"), RawTruncated: true, RawSHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
	add(&Record{Producer: "tp0", Operation: "clear", Details: json.RawMessage(`{"password":"x"}`), EventTimestamp: -1.5,
		EncodeError: "body: x", RawRedacted: true, RawSHA256: "ab", RingEpoch: "00000000000000aa", RingSeq: 22})
	add(&Record{Kind: KindAgent, Operation: "producer_appeared", Details: json.RawMessage(`{"ring":"/dev/shm/aga/tp0.ring","class":"audit"}`),
		Success: true, EventTimestamp: 0})
	add(&Record{Producer: "tp0", Operation: "register", Details: json.RawMessage(`{"ts":123456789012345678901234567890}`),
		Success: true, EventTimestamp: 123456789.000001, RingEpoch: "00000000000000aa", RingSeq: 23, Time: t0.Add(time.Second)})
	return out
}

// goldenStore copies a store of the old agent into a temporary directory.
func goldenStore(t *testing.T, backend string) string {
	t.Helper()
	dir := t.TempDir()
	var src, dst string
	if backend == "bbolt" {
		src, dst = "testdata/v1-store.db.gz", filepath.Join(dir, "v1-store.db")
	} else {
		src, dst = "testdata/v1-store.jsonl", filepath.Join(dir, "v1-store.jsonl")
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if backend == "bbolt" {
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "v1-store.db")
}

// Stores written before the encoder verify with today's code, the encoder
// writes every record in them byte for byte as the old agent did (its
// hash included), and records appended now chain on and verify.
func TestStoresWrittenBeforeTheEncoder(t *testing.T) {
	for _, backend := range []string{"bbolt", "file"} {
		t.Run(backend, func(t *testing.T) {
			path := goldenStore(t, backend)
			want, err := ParseHead(goldenHeads[backend])
			if err != nil {
				t.Fatal(err)
			}
			st, _, err := Open(OpenOptions{Backend: backend, Path: path})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { st.Close() }()
			rep, err := st.Verify(&want)
			if err != nil || !rep.OK || rep.Head != want {
				t.Fatalf("old store: %+v, %v", rep, err)
			}
			var stored [][]byte
			if backend == "bbolt" {
				st.Close()
				stored = stBoltValues(t, path)
				if st, _, err = Open(OpenOptions{Backend: backend, Path: path}); err != nil {
					t.Fatal(err)
				}
			} else {
				stored = stLines(t, JSONLPath(path))
			}
			if len(stored) < 50 {
				t.Fatalf("%d records in the old store", len(stored))
			}
			prev := rep.Base.Hash
			var s sealer
			for _, v := range stored {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					t.Fatal(err)
				}
				if _, ok := appendCanonical(nil, &r, false); !ok {
					t.Errorf("record %d left to json.Marshal: %s", r.Seq, v)
				}
				hash := r.Hash
				if err := s.seal(prev, &r, false); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(r.raw, v) || r.Hash != hash {
					t.Fatalf("record %d:\nold %s\nnew %s", r.Seq, v, r.raw)
				}
				prev = hash
			}
			t0 := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
			if _, err := st.Append(goldenRecords(t0, 400)); err != nil {
				t.Fatal(err)
			}
			h, _ := st.Head()
			if h.Size != want.Size+uint64(len(goldenRecords(t0, 0))) {
				t.Fatalf("head %v after appending to %v", h, want)
			}
			if rep, err := st.Verify(&want); err != nil || !rep.OK || rep.Head != h {
				t.Fatalf("after appending: %+v, %v", rep, err)
			}
		})
	}
}
