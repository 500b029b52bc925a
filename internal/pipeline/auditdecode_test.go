package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/agaobs/agaobs/internal/shm"
)

// auditBody is an AUDIT record body: lost_before, then obj.
func auditBody(lost uint64, obj string) []byte {
	b := make([]byte, 8, 8+len(obj))
	binary.LittleEndian.PutUint64(b, lost)
	return append(b, obj...)
}

// Every AUDIT body decodes: what has the wrong type gets its default, the
// reasons are in EncodeError, Raw keeps the bytes as received. Before,
// these bodies failed Decode with ErrCorrupt and the record was counted
// corrupt and never stored.
func TestDecodeAuditHostileBodies(t *testing.T) {
	deep := `{"operation":"register","details":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`
	str := func(s string) *string { return &s }
	cases := []struct {
		name    string
		body    []byte
		op      string
		success bool
		err     *string
		ts      float64
		details string
		why     []string // substrings of EncodeError; none: no EncodeError
		raw     string   // "" means the body after lost_before
	}{
		{name: "valid", body: auditBody(2, `{"operation":"register","details":{"id":"k"},"success":false,"error":"boom","timestamp":1.5}`),
			op: "register", err: str("boom"), ts: 1.5, details: `{"id":"k"}`},
		{name: "success is a string", body: auditBody(2, `{"operation":"register","details":{},"success":"yes","timestamp":2}`),
			op: "register", ts: 2, details: `{}`, why: []string{"success: not a boolean"}},
		{name: "error is an object", body: auditBody(2, `{"operation":"clear","success":false,"error":{"code":7}}`),
			op: "clear", err: str(`{"code":7}`), details: `{}`, why: []string{"error: not a string or null"}},
		{name: "operation is a number", body: auditBody(2, `{"operation":42,"details":{"a":1}}`),
			op: "unknown", success: true, details: `{"a":1}`, why: []string{"operation: not a string"}},
		{name: "timestamp 1e400", body: auditBody(2, `{"operation":"x","timestamp":1e400}`),
			op: "x", success: true, details: `{}`, why: []string{"timestamp: not a finite number"}},
		{name: "timestamp now", body: auditBody(2, `{"operation":"x","timestamp":"now"}`),
			op: "x", success: true, details: `{}`, why: []string{"timestamp: not a number"}},
		{name: "nesting deeper than the decoder allows", body: auditBody(2, deep),
			op: "unknown", success: true, details: `{}`, why: []string{"body: ", "depth"}},
		{name: "details nested deeper than the store keeps", body: auditBody(2, `{"operation":"x","details":{"a":`+strings.Repeat("[", 200)+strings.Repeat("]", 200)+`}}`),
			op: "x", success: true, details: `{}`, why: []string{"details: nested deeper than 127 levels"}},
		{name: "details nested as deep as the store keeps", body: auditBody(2, `{"operation":"x","details":{"a":`+strings.Repeat("[", 125)+strings.Repeat("]", 125)+`}}`),
			op: "x", success: true, details: `{"a":` + strings.Repeat("[", 125) + strings.Repeat("]", 125) + `}`},
		{name: "brackets in strings are not nesting", body: auditBody(2, `{"operation":"x","details":{"a":"`+strings.Repeat("[{", 300)+`\"]"}}`),
			op: "x", success: true, details: `{"a":"` + strings.Repeat("[{", 300) + `\"]"}`},
		{name: "not JSON", body: auditBody(2, "register k1 ok"),
			op: "unknown", success: true, details: `{}`, why: []string{"body: not a JSON object"}},
		{name: "truncated JSON", body: auditBody(2, `{"operation":"regis`),
			op: "unknown", success: true, details: `{}`, why: []string{"body: unexpected end"}},
		{name: "an array", body: auditBody(2, `[{"operation":"x"}]`),
			op: "unknown", success: true, details: `{}`, why: []string{"body: not a JSON object"}},
		{name: "null", body: auditBody(2, `null`),
			op: "unknown", success: true, details: `{}`, why: []string{"body: not a JSON object"}},
		{name: "two objects", body: auditBody(2, `{"operation":"a"} {"operation":"b"}`),
			op: "unknown", success: true, details: `{}`, why: []string{"body: invalid character"}},
		{name: "empty after lost_before", body: auditBody(2, ``),
			op: "unknown", success: true, details: `{}`, why: []string{"body: not a JSON object"}},
		{name: "details an array", body: auditBody(2, `{"operation":"x","details":[1,2]}`),
			op: "x", success: true, details: `{"_unencodable":"[1,2]"}`, why: []string{"details: not a JSON object"}},
		{name: "details an array with another bad field", body: auditBody(2, `{"operation":"x","details":"d","success":1}`),
			op: "x", details: `{"_unencodable":"\"d\""}`, why: []string{"details: not a JSON object", "success: not a boolean"}},
		{name: "invalid UTF-8", body: auditBody(2, "{\"operation\":\"reg\xffister\",\"details\":{\"k\":\"\xc3\"}}"),
			op: "reg\uFFFDister", success: true, details: `{"k":"` + "\uFFFD" + `"}`, why: []string{"invalid UTF-8"}},
		{name: "shorter than lost_before", body: []byte{1, 2, 3},
			op: "unknown", success: true, details: `{}`, why: []string{"3 bytes, too short"}, raw: "\x01\x02\x03"},
		{name: "nulls are defaults", body: auditBody(2, `{"operation":null,"details":null,"success":null,"error":null,"timestamp":null}`),
			op: "unknown", success: true, details: `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			if err := Decode(&shm.Record{Type: shm.TypeAudit, Seq: 9, Body: tc.body}, &ev); err != nil {
				t.Fatalf("Decode: %v, want a sanitized record", err)
			}
			a := ev.Audit
			if ev.Kind != KindAudit || a == nil {
				t.Fatalf("kind %v, audit %v", ev.Kind, a)
			}
			if a.Operation != tc.op || a.Success != tc.success || a.Timestamp != tc.ts || string(a.Details) != tc.details {
				t.Errorf("operation %q success %v timestamp %v details %s; want %q %v %v %s",
					a.Operation, a.Success, a.Timestamp, a.Details, tc.op, tc.success, tc.ts, tc.details)
			}
			if (a.Error == nil) != (tc.err == nil) || a.Error != nil && *a.Error != *tc.err {
				t.Errorf("error %v, want %v", a.Error, tc.err)
			}
			if len(tc.why) == 0 && a.EncodeError != "" {
				t.Errorf("encode error %q, want none", a.EncodeError)
			}
			if len(tc.why) > 0 && a.EncodeError == "" {
				t.Errorf("no encode error, want %q", tc.why)
			}
			for _, w := range tc.why {
				if !strings.Contains(a.EncodeError, w) {
					t.Errorf("encode error %q, want it to say %q", a.EncodeError, w)
				}
			}
			raw := tc.raw
			if raw == "" && len(tc.body) >= 8 {
				raw = string(tc.body[8:])
			}
			if string(a.Raw) != raw {
				t.Errorf("raw %q, want the bytes as received %q", a.Raw, raw)
			}
			if len(tc.body) >= 8 && a.LostBefore != 2 {
				t.Errorf("lost_before %d, want 2", a.LostBefore)
			}
		})
	}
}

// Whatever the body, Decode of an AUDIT record succeeds and leaves details
// a JSON object and the strings valid UTF-8, so the store can encode it.
func FuzzDecodeAudit(f *testing.F) {
	for _, s := range []string{`{"operation":"x"}`, `{"success":"yes"}`, `{"timestamp":1e400}`, "{\"operation\":\"\xff\"}", `[`, ``} {
		f.Add(auditBody(0, s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var ev Event
		if err := Decode(&shm.Record{Type: shm.TypeAudit, Body: body}, &ev); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		a := ev.Audit
		var m map[string]json.RawMessage
		if err := json.Unmarshal(a.Details, &m); err != nil || !bytes.HasPrefix(a.Details, []byte("{")) {
			t.Fatalf("details %q are not a JSON object: %v", a.Details, err)
		}
		if !utf8.Valid(a.Details) || !utf8.ValidString(a.Operation) || a.Error != nil && !utf8.ValidString(*a.Error) {
			t.Fatalf("invalid UTF-8 left: %+v", a)
		}
		if !bytes.Equal(a.Raw, body[min(8, len(body)):]) && !(len(body) < 8 && bytes.Equal(a.Raw, body)) {
			t.Fatalf("raw %q, body %q", a.Raw, body)
		}
	})
}
