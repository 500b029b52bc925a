package eventlog

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// appendRawJSONReference is appendRawJSON before its one-pass check: it
// compacted every body.
func appendRawJSONReference(b []byte, raw []byte) []byte {
	var scratch bytes.Buffer
	if utf8.Valid(raw) && !pipeline.NestedDeeper(raw, maxDataDepth) && json.Compact(&scratch, raw) == nil && scratch.Len() > 0 && scratch.Bytes()[0] == '{' {
		c := scratch.Bytes()
		for i := 0; i < len(c); {
			if c[i] < utf8.RuneSelf {
				b = append(b, c[i])
				i++
				continue
			}
			r, n := utf8.DecodeRune(c[i:])
			if lineBreakRune(r) {
				b = appendUEscape(b, r)
			} else {
				b = append(b, c[i:i+n]...)
			}
			i += n
		}
		return b
	}
	b = append(b, `{"_unencodable":`...)
	b = appendJSONString(b, raw)
	return append(b, '}')
}

var rawJSONBodies = []string{
	`{"operation":"register","details":{"id":"k-1","reliability":0.93},"success":true,"error":null,"timestamp":1.5}`,
	"{ \"a\" : 1 ,\n\"b\":[ 1, 2 ] }", "{\"a\":\"\u2028\u0085\"}", "{\"¢€…\":\"\u2027\u202a\u0080\u009f\u00a0\u2029x\"}", "{\"a\":\"\xff\"}", `{"a":1} `, ` {"a":1}`, `{"a":`, `[1]`, `{}`, ``,
	`{"a":"` + strings.Repeat("[", 200) + `"}`, `{"a":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, `{"a":1}{"b":2}`,
}

// The data of a line is what compacting every body gave.
func TestAppendRawJSONSkipsCompactingCompactBodies(t *testing.T) {
	var scratch bytes.Buffer
	for _, s := range rawJSONBodies {
		if got, want := appendRawJSON(nil, []byte(s), &scratch), appendRawJSONReference(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
	// An aga-core body is checked, not compacted: no allocation.
	body := []byte(rawJSONBodies[0])
	buf := make([]byte, 0, 1024)
	appendRawJSON(buf, body, &scratch)
	if allocs := testing.AllocsPerRun(100, func() { appendRawJSON(buf, body, &scratch) }); allocs != 0 {
		t.Errorf("%v allocations per body", allocs)
	}
}

func FuzzAppendRawJSON(f *testing.F) {
	for _, s := range rawJSONBodies {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var scratch bytes.Buffer
		if got, want := appendRawJSON(nil, []byte(s), &scratch), appendRawJSONReference(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Fatalf("%q: %s, want %s", s, got, want)
		}
	})
}

// BenchmarkAuditLine formats aga-core audit events (512 per write) as
// JSON lines.
func BenchmarkAuditLine(b *testing.B) {
	s, err := New(Options{Out: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	raw := json.RawMessage(rawJSONBodies[0])
	a := &pipeline.Audit{Operation: "register", Details: json.RawMessage(`{"id":"k-1","reliability":0.93}`), Success: true, Raw: raw}
	evs := make([]pipeline.Event, 512)
	for i := range evs {
		evs[i] = pipeline.Event{Kind: pipeline.KindAudit, Producer: prod, TimeNs: 1764252237135000000, Audit: a}
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i += len(evs) {
		_ = s.Write(context.Background(), evs[:min(len(evs), b.N-i)])
	}
}
