package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeAuditReference is decodeAudit as it was before the one-pass
// reader: json.Unmarshal of the body. decodeAudit must agree with it on
// every body.
func decodeAuditReference(body []byte) *Audit {
	a := &Audit{Success: true, Operation: "unknown"}
	if len(body) < 8 {
		a.Raw = append(json.RawMessage(nil), body...)
		a.Details = json.RawMessage("{}")
		a.EncodeError = fmt.Sprintf("body is %d bytes, too short for its 8-byte lost_before", len(body))
		return a
	}
	a.LostBefore = binary.LittleEndian.Uint64(body)
	obj := body[8:]
	a.Raw = append(json.RawMessage(nil), obj...)
	if utf8.Valid(obj) && !NestedDeeper(obj, MaxAuditDepth) && json.Unmarshal(obj, a) == nil && isObject(obj) {
		if len(a.Details) == 0 || string(a.Details) == "null" {
			a.Details = json.RawMessage("{}")
		} else if !isObject(a.Details) {
			a.EncodeError = "details: not a JSON object"
			a.Details = unencodable(a.Details)
		}
		return a
	}
	*a = Audit{Success: true, Operation: "unknown", LostBefore: a.LostBefore, Raw: a.Raw}
	sanitizeAudit(a, obj)
	return a
}

func sameAudit(a, b *Audit) string {
	switch {
	case a.Operation != b.Operation:
		return fmt.Sprintf("operation %q, want %q", a.Operation, b.Operation)
	case !bytes.Equal(a.Details, b.Details):
		return fmt.Sprintf("details %q, want %q", a.Details, b.Details)
	case a.Success != b.Success:
		return fmt.Sprintf("success %v, want %v", a.Success, b.Success)
	case (a.Error == nil) != (b.Error == nil) || a.Error != nil && *a.Error != *b.Error:
		return fmt.Sprintf("error %v, want %v", a.Error, b.Error)
	case a.Timestamp != b.Timestamp && !(a.Timestamp != a.Timestamp && b.Timestamp != b.Timestamp):
		return fmt.Sprintf("timestamp %v, want %v", a.Timestamp, b.Timestamp)
	case a.LostBefore != b.LostBefore:
		return fmt.Sprintf("lost %d, want %d", a.LostBefore, b.LostBefore)
	case !bytes.Equal(a.Raw, b.Raw):
		return fmt.Sprintf("raw %q, want %q", a.Raw, b.Raw)
	case a.EncodeError != b.EncodeError:
		return fmt.Sprintf("encode error %q, want %q", a.EncodeError, b.EncodeError)
	}
	return ""
}

// auditFastBodies are bodies where a one-pass reader could part from
// json.Unmarshal: keys that match a field only case-insensitively or
// through an escape, duplicates, nulls, whitespace, numbers at the edges
// of float64, escapes in values.
var auditFastBodies = []string{
	`{"operation":"register","details":{"id":"k-1","reliability":0.93,"pinned":false,"metadata":{"source":"wiki"},"store_count":1},"success":true,"error":null,"timestamp":1796664170.123456}`,
	`{}`, ` { } `, "\t{\n\"operation\" :\r\"x\" ,\"details\": { \"a\" : [ 1 , 2 ] } }\n",
	`{"Operation":"x"}`, `{"OPERATION":"x","operation":"y"}`, `{"operation":"y","Operation":"x"}`, `{"ſuccess":false}`, `{"K":1}`,
	`{"\u006fperation":"x"}`, `{"oper\u0061tion":"x","details":{}}`, `{"operation":"a\u00e9\n\"b"}`, `{"operation":"\ud800"}`,
	`{"operation":"a","operation":"b"}`, `{"operation":"a","operation":null}`, `{"error":"e","error":null}`, `{"error":null,"error":"e"}`,
	`{"details":{"a":1},"details":null}`, `{"details":{"a":1},"details":[1]}`, `{"details":"x"}`, `{"details":7}`, `{"details":{ }}`,
	`{"success":false,"success":null}`, `{"success":0}`, `{"success":"true"}`, `{"success":tru}`, `{"success":true }`,
	`{"timestamp":1e400}`, `{"timestamp":-1e-400}`, `{"timestamp":-0}`, `{"timestamp":01}`, `{"timestamp":1.}`, `{"timestamp":.5}`,
	`{"timestamp":1E+2}`, `{"timestamp":"1"}`, `{"timestamp":-}`, `{"timestamp":null,"timestamp":2}`, `{"timestamp":179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000}`,
	`{"operation":"x",}`, `{"operation":"x"`, `{"operation" "x"}`, `{operation:"x"}`, `{"operation":"x"}}`, `{"operation":"x"} x`,
	`{"other":[1,{"a":[]},"\u0000",true,false,null,-0.5e-3]}`, `{"other":"tab	inside"}`, `{"other":"\x"}`, `{"other":"\u12"}`,
	`[]`, `null`, `"x"`, `{"a":1}` + "\u00a0", "{\"operation\":\"\xe2\x80\xa8\"}", `{"operation":"<&>"}`,
	`{"details":{"a":"` + strings.Repeat("[{", 300) + `"}}`,
}

// decodeAudit agrees with json.Unmarshal of the body on every body.
func TestDecodeAuditOnePassMatchesUnmarshal(t *testing.T) {
	for _, obj := range auditFastBodies {
		body := auditBody(3, obj)
		if d := sameAudit(decodeAudit(body), decodeAuditReference(body)); d != "" {
			t.Errorf("%s: %s", obj, d)
		}
	}
}

// The common body is read without json.Unmarshal, and its details alias
// the record's own copy (Raw), capped so that an append cannot write
// over Raw.
func TestDecodeAuditOnePassTakesTheCommonBody(t *testing.T) {
	a := &Audit{Success: true, Operation: "unknown"}
	raw := []byte(auditFastBodies[0])
	if !auditFields(a, raw) {
		t.Fatal("the common body was left to json.Unmarshal")
	}
	if a.Operation != "register" || !a.Success || a.Error != nil || a.Timestamp != 1796664170.123456 || !bytes.HasPrefix(a.Details, []byte(`{"id":"k-1"`)) {
		t.Fatalf("decoded %+v", a)
	}
	if &a.Details[0] != &raw[bytes.Index(raw, []byte(`{"id"`))] || cap(a.Details) != len(a.Details) {
		t.Fatalf("details do not alias raw with their capacity capped")
	}
	allocs := testing.AllocsPerRun(100, func() { _ = auditFields(&Audit{}, raw) })
	if allocs > 1 { // the operation string
		t.Errorf("%v allocations per body, want at most 1", allocs)
	}
}

func FuzzDecodeAuditOnePass(f *testing.F) {
	for _, s := range auditFastBodies {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, obj string) {
		body := auditBody(1, obj)
		if d := sameAudit(decodeAudit(body), decodeAuditReference(body)); d != "" {
			t.Fatalf("%q: %s", obj, d)
		}
	})
}

// IsCompactJSON is true exactly for the valid JSON that json.Compact
// leaves as it is.
func isCompactReference(b []byte) bool {
	var buf bytes.Buffer
	return json.Compact(&buf, b) == nil && bytes.Equal(buf.Bytes(), b)
}

func TestIsCompactJSON(t *testing.T) {
	cases := append([]string{"", " ", "{}", "[]", `""`, "0", "-0", "1.5e-7", "true", "false", "null", "nul", "{} ", " {}",
		`{"a":1,"b":[1,2,{"c":null}]}`, `{"a" :1}`, `{"a": 1}`, `[1 ,2]`, `[1, 2]`, `{"a":1}{}`, strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001), strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40), "\"\xff\"", "\"\x1f\"", `"\/"`},
		auditFastBodies...)
	for _, c := range cases {
		if got, want := IsCompactJSON([]byte(c)), isCompactReference([]byte(c)); got != want {
			t.Errorf("IsCompactJSON(%.60q) = %v, want %v", c, got, want)
		}
	}
}

func FuzzIsCompactJSON(f *testing.F) {
	for _, s := range auditFastBodies {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsCompactJSON([]byte(s)), isCompactReference([]byte(s)); got != want {
			t.Fatalf("IsCompactJSON(%q) = %v, want %v", s, got, want)
		}
	})
}

func BenchmarkDecodeAudit(b *testing.B) {
	body := auditBody(0, auditFastBodies[0])
	for _, bc := range []struct {
		name string
		fn   func([]byte) *Audit
	}{{"onepass", decodeAudit}, {"unmarshal", decodeAuditReference}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.fn(body)
			}
		})
	}
}
