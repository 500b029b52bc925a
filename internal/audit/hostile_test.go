package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
)

// hsBody is an AUDIT record body: lost_before, then obj.
func hsBody(lost uint64, obj string) []byte {
	b := make([]byte, 8, 8+len(obj))
	binary.LittleEndian.PutUint64(b, lost)
	return append(b, obj...)
}

// hsCase is one hostile AUDIT body and what its stored record must say.
type hsCase struct {
	name    string
	body    []byte
	op      string
	success bool
	why     string // substring of encode_error; "" for a clean record
	details string // stored details; "" to skip
	lost    uint64 // a gap record in front of it
}

func hsCases() []hsCase {
	big := `{"operation":"register","details":"` + strings.Repeat("x", 100<<10) // no closing quote: not JSON
	return []hsCase{
		{name: "clean", body: hsBody(0, `{"operation":"register","details":{"id":"k"},"success":true,"error":null,"timestamp":1700000000.5}`),
			op: "register", success: true, details: `{"id":"k"}`},
		{name: "success yes", body: hsBody(0, `{"operation":"register","details":{},"success":"yes"}`), op: "register", why: "success: not a boolean"},
		{name: "error object", body: hsBody(0, `{"operation":"clear","success":false,"error":{"code":7}}`), op: "clear", why: "error: not a string"},
		{name: "operation number", body: hsBody(0, `{"operation":42}`), op: "unknown", success: true, why: "operation: not a string"},
		{name: "timestamp 1e400", body: hsBody(0, `{"operation":"x","timestamp":1e400}`), op: "x", success: true, why: "timestamp: not a finite number"},
		{name: "timestamp now", body: hsBody(0, `{"operation":"x","timestamp":"now"}`), op: "x", success: true, why: "timestamp: not a number"},
		{name: "nested too deep", body: hsBody(0, `{"details":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`}`),
			op: "unknown", success: true, why: "depth", details: `{}`},
		{name: "details nested beyond what readers decode", body: hsBody(0, `{"operation":"x","details":{"a":`+strings.Repeat("[", 2000)+strings.Repeat("]", 2000)+`}}`),
			op: "x", success: true, why: "details: nested deeper than", details: `{}`},
		{name: "not JSON", body: hsBody(0, "operation=register"), op: "unknown", success: true, why: "not a JSON object", details: `{}`},
		{name: "details not an object", body: hsBody(0, `{"operation":"x","details":[1]}`), op: "x", success: true,
			why: "details: not a JSON object", details: `{"_unencodable":"[1]"}`},
		{name: "invalid UTF-8", body: hsBody(0, "{\"operation\":\"re\xffg\"}"), op: "re\uFFFDg", success: true, why: "invalid UTF-8"},
		{name: "shorter than lost_before", body: []byte("{}\n"), op: "unknown", success: true, why: "too short", details: `{}`},
		{name: "bigger than raw keeps", body: hsBody(0, big), op: "unknown", success: true, why: "body: "},
		{name: "after a loss", body: hsBody(4, `not json`), op: "unknown", success: true, why: "not a JSON object", lost: 4},
	}
}

// hsRing writes the bodies as AUDIT records into an in-memory audit ring
// and polls them as the consumer does: decoded, Pending until acknowledged.
func hsRing(t *testing.T, bodies [][]byte) (*shm.Ring, []pipeline.Event) {
	t.Helper()
	const capacity = 1 << 20
	buf := make([]byte, shm.HeaderSize+capacity)
	w, err := shm.NewBufferWriter(buf, shm.WriterOptions{Class: shm.ClassAudit, Capacity: capacity, Epoch: 0xab,
		Identity: shm.Identity{Producer: "hostile"}, AuditWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	for _, b := range bodies {
		if err := w.Emit(shm.TypeAudit, 0, now, b); err != nil {
			t.Fatalf("emit %d bytes: %v", len(b), err)
		}
	}
	r, err := shm.NewRing(buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	prod := pipeline.NewProducer("hostile", "hostile", 1, 1, "r", pipeline.Identity{Producer: "hostile"})
	var evs []pipeline.Event
	_, err = r.Poll(1000, func(rec *shm.Record) shm.Disposition {
		var ev pipeline.Event
		if err := pipeline.Decode(rec, &ev); err != nil {
			t.Errorf("record %d (%v) does not decode: %v", rec.Seq, rec.Type, err)
			return shm.Corrupt
		}
		if ev.Kind != pipeline.KindAudit {
			return shm.Done
		}
		ev.Producer, ev.RecvNs = prod, time.Now().UnixNano()
		ev.Ack, ev.Epoch = ackRecord(r, rec), r.Header().Epoch
		evs = append(evs, ev)
		return shm.Pending
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, evs
}

// Every AUDIT record a ring delivers is stored: the hostile ones
// sanitized, with why and the body as received. Before, decodeAudit
// failed on all but the clean one and the details one, the consumer
// counted them corrupt and the trail lost them without a gap record.
func TestWriterStoresHostileAuditBodies(t *testing.T) {
	cases := hsCases()
	for _, backend := range stBackends {
		t.Run(backend, func(t *testing.T) {
			var bodies [][]byte
			for _, c := range cases {
				bodies = append(bodies, c.body)
			}
			ring, evs := hsRing(t, bodies)
			if len(evs) != len(cases) {
				t.Fatalf("%d of %d audit records decoded", len(evs), len(cases))
			}
			fx := stNew(t, backend)
			w := NewWriter(WriterOptions{Store: fx.s, BatchSize: 4, FlushInterval: time.Millisecond})
			stop := runWriter(t, w)
			if err := w.Write(t.Context(), evs); err != nil {
				t.Fatal(err)
			}
			last := evs[len(evs)-1].Seq
			eventually(t, "every record acknowledged", func() bool { return ring.Commit().Seq >= last })
			stop()

			check := func(what string) {
				t.Helper()
				recs := fx.query(Filter{})
				bySeq := map[uint64]Record{}
				gaps := map[uint64]Record{}
				for _, r := range recs {
					switch r.Kind {
					case KindProducer:
						if _, dup := bySeq[r.RingSeq]; dup {
							t.Fatalf("%s: ring record %d stored twice", what, r.RingSeq)
						}
						bySeq[r.RingSeq] = r
					case KindGap:
						gaps[r.RingSeq] = r
					}
				}
				for i, c := range cases {
					r, ok := bySeq[evs[i].Seq]
					if !ok {
						t.Errorf("%s: %s: ring record %d not stored", what, c.name, evs[i].Seq)
						continue
					}
					hsCheck(t, what+": "+c.name, c, r)
					if g, ok := gaps[evs[i].Seq]; (c.lost > 0) != ok || ok && g.Lost != c.lost {
						t.Errorf("%s: %s: gap record %+v, want %d lost", what, c.name, g, c.lost)
					}
				}
				head := fx.head()
				fx.verifyOK(&head, uint64(len(cases)+1))
			}
			check("stored")
			if backend == "memory" {
				return
			}
			// The chain re-checks from the stored bytes alone, as the
			// docs describe it, raw fields included.
			prev := zeroHash()
			for _, line := range stRawRecords(fx) {
				if !utf8.Valid(line) {
					t.Fatalf("stored record is not valid UTF-8: %q", line)
				}
				prev = stExternalHash(t, prev, line)
			}
			fx.reopen()
			check("after reopen")
		})
	}
}

func hsCheck(t *testing.T, what string, c hsCase, r Record) {
	t.Helper()
	if r.Operation != c.op || r.Success != c.success || r.Producer != "hostile" || r.RingEpoch != "00000000000000ab" {
		t.Errorf("%s: operation %q success %v producer %q epoch %q", what, r.Operation, r.Success, r.Producer, r.RingEpoch)
	}
	if c.details != "" && string(r.Details) != c.details {
		t.Errorf("%s: details %s, want %s", what, r.Details, c.details)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Details, &m); err != nil {
		t.Errorf("%s: details %s are not an object: %v", what, r.Details, err)
	}
	if r.EventTimestamp <= 0 || r.EventTimestamp > 1e10 {
		t.Errorf("%s: event timestamp %v", what, r.EventTimestamp)
	}
	if c.why == "" {
		if r.EncodeError != "" || r.RawBody != nil || r.RawSHA256 != "" {
			t.Errorf("%s: clean record marked: %q raw %d sha %q", what, r.EncodeError, len(r.RawBody), r.RawSHA256)
		}
		return
	}
	if !strings.Contains(r.EncodeError, c.why) {
		t.Errorf("%s: encode_error %q, want it to say %q", what, r.EncodeError, c.why)
	}
	orig := c.body
	if len(orig) >= 8 {
		orig = orig[8:]
	}
	sum := sha256.Sum256(orig)
	if r.RawSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("%s: raw_sha256 %s is not the body's", what, r.RawSHA256)
	}
	want, trunc := orig, false
	if len(orig) > MaxRawBytes {
		want, trunc = orig[:MaxRawBytes], true
	}
	if !bytes.Equal(r.RawBody, want) || r.RawTruncated != trunc {
		t.Errorf("%s: raw %d bytes (truncated %v), want %d bytes of the body (truncated %v)", what, len(r.RawBody), r.RawTruncated, len(want), trunc)
	}
}

// With audit_redact_keys set, a body that could hold a redacted value is
// not kept (only its digest): redaction applies to what parses.
func TestWriterWithholdsRawThatMayHoldRedactedKeys(t *testing.T) {
	cases := []struct {
		name string
		obj  string
		kept bool
	}{
		{"no key", `{"operation":1,"details":{"user":"bob"}}`, true},
		{"a key", `{"operation":1,"details":{"password":"hunter2"}}`, false},
		{"an escaped key", `{"operation":1,"details":{"pass\u0077ord":"hunter2"}}`, false},
		{"a key in a broken body", `{"operation":"x","details":{"password":"hunter2"`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, evs := hsRing(t, [][]byte{hsBody(0, tc.obj)})
			s := NewMemory()
			w := NewWriter(WriterOptions{Store: s, RedactKeys: []string{"password"}})
			recs := w.convert(&evs[0])
			if _, err := s.Append([]*Record{recs[0].rec}); err != nil {
				t.Fatal(err)
			}
			r := producerRecords(t, s)[0]
			sum := sha256.Sum256([]byte(tc.obj))
			if r.EncodeError == "" || r.RawSHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("record %+v", r)
			}
			if kept := r.RawBody != nil; kept != tc.kept || r.RawRedacted == tc.kept {
				t.Fatalf("raw kept %v (redacted %v), want kept %v", kept, r.RawRedacted, tc.kept)
			}
			b, _ := json.Marshal(r)
			if bytes.Contains(b, []byte("hunter2")) {
				t.Fatalf("the stored record holds the redacted value: %s", b)
			}
		})
	}
}
