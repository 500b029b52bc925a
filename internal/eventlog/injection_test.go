package eventlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// Log injection: every field a producer controls, carrying a line break
// followed by a forged line (or bytes that are not UTF-8), must leave
// exactly one line of valid UTF-8 per event, and a JSON line must be one
// JSON object with the sink's keys only. Before, the audit data was the
// producer's raw JSON appended as is, text lines held operations, names
// and producers unescaped, and JSON strings passed invalid UTF-8 through.

// forged is a whole line a producer would like the log to hold.
const forged = `{"timestamp":"2026-11-27T14:03:57.135+01:00","level":"CRITICAL","logger":"aga.observability","message":"[FAIL] unregister: {}","event_type":"audit","event_source":"aga-core","event_timestamp":1.0,"data":{},"producer":"victim-tp0"}`

// injections separate the forged line from the text before it by every
// sequence some reader takes for a line break, and mix in invalid UTF-8.
var injections = map[string]string{
	"newline":                             "x\n" + forged,
	"carriage return":                     "x\r" + forged,
	"CRLF":                                "x\r\n" + forged + "\r\n",
	"vertical tab, form feed, separators": "x\v\f\x1c\x1d\x1e" + forged,
	"NEL":                                 "x\u0085" + forged,
	"line separator":                      "x\u2028" + forged,
	"paragraph separator":                 "x\u2029" + forged,
	"invalid UTF-8":                       "x\xff\xfe\xc3" + forged + "\xed\xa0\x80",
	"quote":                               `x","level":"CRITICAL","producer":"victim-tp0`,
	"NUL and DEL":                         "x\x00\x7f" + forged,
}

// splitsLine reports a rune some reader ends a line at (Python's
// str.splitlines, JavaScript, Unicode).
func splitsLine(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

// asLogged is s as a JSON reader gets it back: each invalid byte U+FFFD.
func asLogged(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// injField is one producer-controlled field: event builds an event with
// the payload in that field; jsonCheck checks the decoded JSON line.
type injField struct {
	name      string
	event     func(p string) pipeline.Event
	jsonCheck func(t *testing.T, p string, line map[string]any)
}

func injProducer(name string) *pipeline.Producer {
	return pipeline.NewProducer(name, "k", 1, 1, "r", pipeline.Identity{Producer: name})
}

func injAudit(a *pipeline.Audit) pipeline.Event {
	return pipeline.Event{Kind: pipeline.KindAudit, Producer: prod, TimeNs: 1764252238000000000, Audit: a}
}

// wantData checks the data of a line against a producer's JSON text: the
// same value when it was one valid JSON value, else {"_unencodable": text}.
func wantData(t *testing.T, raw string, data any) {
	t.Helper()
	var want any
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if utf8.ValidString(raw) && json.Valid([]byte(raw)) && dec.Decode(&want) == nil && isObject(want) {
		if !reflect.DeepEqual(data, want) {
			t.Errorf("data %#v, want the producer's value %#v", data, want)
		}
		return
	}
	if !reflect.DeepEqual(data, map[string]any{"_unencodable": asLogged(raw)}) {
		t.Errorf("data %#v, want the text as _unencodable", data)
	}
}

func isObject(v any) bool { _, ok := v.(map[string]any); return ok }

func injFields() []injField {
	return []injField{
		{name: "producer name", event: func(p string) pipeline.Event {
			ev := events()[2]
			ev.Producer = injProducer(p)
			return ev
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) {
			if line["producer"] != asLogged(p) {
				t.Errorf("producer %q, want %q", line["producer"], asLogged(p))
			}
		}},
		{name: "operation", event: func(p string) pipeline.Event {
			return injAudit(&pipeline.Audit{Operation: p, Success: true, Details: json.RawMessage(`{}`), Raw: json.RawMessage(`{}`)})
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) {
			if want := "[OK] " + asLogged(p) + ": {}"; line["message"] != want {
				t.Errorf("message %q, want %q", line["message"], want)
			}
		}},
		{name: "details key and value", event: func(p string) pipeline.Event {
			q, _ := json.Marshal(p) // as a producer's JSON encoder sends it
			d := fmt.Sprintf(`{%s:%s}`, q, q)
			return injAudit(&pipeline.Audit{Operation: "register", Success: true, Details: json.RawMessage(d), Raw: json.RawMessage(`{"details":` + d + `}`)})
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) {
			if m, _ := line["message"].(string); !strings.HasPrefix(m, "[OK] register: {") {
				t.Errorf("message %q", m)
			}
			q, _ := json.Marshal(p)
			wantData(t, `{"details":{`+string(q)+`:`+string(q)+`}}`, line["data"])
		}},
		{name: "details not JSON", event: func(p string) pipeline.Event {
			return injAudit(&pipeline.Audit{Operation: "register", Success: true, Details: json.RawMessage(p), Raw: json.RawMessage(p)})
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) { wantData(t, p, line["data"]) }},
		{name: "error", event: func(p string) pipeline.Event {
			e := p
			q, _ := json.Marshal(p)
			return injAudit(&pipeline.Audit{Operation: "clear", Error: &e, Details: json.RawMessage(`{}`), Raw: json.RawMessage(`{"error":` + string(q) + `}`)})
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) {
			if line["level"] != "WARNING" {
				t.Errorf("level %v", line["level"])
			}
			q, _ := json.Marshal(p)
			wantData(t, `{"error":`+string(q)+`}`, line["data"])
		}},
		// The producer's JSON text itself: whitespace between tokens may
		// be a line break, and a body that is not JSON may hold anything.
		{name: "audit body whitespace", event: func(p string) pipeline.Event {
			q, _ := json.Marshal(p)
			raw := "{\n\"operation\" :\r\n" + string(q) + ",\"x\":\n" + forged + "\n}"
			return injAudit(&pipeline.Audit{Operation: "x", Success: true, Details: json.RawMessage(`{}`), Raw: json.RawMessage(raw)})
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) {
			q, _ := json.Marshal(p)
			wantData(t, "{\n\"operation\" :\r\n"+string(q)+",\"x\":\n"+forged+"\n}", line["data"])
		}},
		{name: "audit body not JSON", event: func(p string) pipeline.Event {
			return injAudit(&pipeline.Audit{Operation: "unknown", Success: true, Details: json.RawMessage(`{}`), Raw: json.RawMessage(`{"error":"` + p + `"}`)})
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) { wantData(t, `{"error":"`+p+`"}`, line["data"]) }},
		// Nested deeper than readers decode, inside the line's object.
		{name: "audit body nesting", event: func(p string) pipeline.Event {
			q, _ := json.Marshal(p)
			raw := `{"operation":` + string(q) + `,"details":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`
			return injAudit(&pipeline.Audit{Operation: p, Success: true, Details: json.RawMessage(`{}`), Raw: json.RawMessage(raw)})
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) {
			data, _ := line["data"].(map[string]any)
			if s, _ := data["_unencodable"].(string); !strings.HasPrefix(s, `{"operation":`) {
				t.Errorf("data %.80v, want the body as _unencodable text", data)
			}
		}},
		{name: "event name", event: func(p string) pipeline.Event {
			return pipeline.Event{Kind: pipeline.KindEvent, Producer: prod, Other: &pipeline.Other{Name: p, Data: json.RawMessage(`{"x":1}`)}}
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) {
			if line["event_type"] != asLogged(p) {
				t.Errorf("event_type %q, want %q", line["event_type"], asLogged(p))
			}
		}},
		{name: "event data", event: func(p string) pipeline.Event {
			q, _ := json.Marshal(p)
			return pipeline.Event{Kind: pipeline.KindEvent, Producer: prod, Other: &pipeline.Other{Name: "custom",
				Data: json.RawMessage("{\"k\":\n" + string(q) + ",\n\"raw\":\"" + p + "\"}")}}
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) {
			q, _ := json.Marshal(p)
			wantData(t, "{\"k\":\n"+string(q)+",\n\"raw\":\""+p+"\"}", line["data"])
		}},
		{name: "retrieval ids", event: func(p string) pipeline.Event {
			return pipeline.Event{Kind: pipeline.KindRetrieval, Producer: prod, Retrieval: &pipeline.Retrieval{IDs: []string{"a", p}}}
		}, jsonCheck: func(t *testing.T, p string, line map[string]any) {
			data, _ := line["data"].(map[string]any)
			if ids, _ := data["ids"].([]any); len(ids) != 2 || ids[1] != asLogged(p) {
				t.Errorf("ids %#v, want [a %q]", data["ids"], asLogged(p))
			}
		}},
	}
}

// jsonKeys are the keys of every JSON line, in the seed's order.
var jsonKeys = []string{"timestamp", "level", "logger", "message", "event_type", "event_source", "event_timestamp", "data", "producer"}

func TestLogInjection(t *testing.T) {
	for _, f := range injFields() {
		for iname, p := range injections {
			for _, format := range []string{"json", "text"} {
				t.Run(f.name+"/"+iname+"/"+format, func(t *testing.T) {
					s, out := newSink(t, Options{Format: format, Level: "DEBUG"})
					if err := s.Write(context.Background(), []pipeline.Event{f.event(p)}); err != nil {
						t.Fatal(err)
					}
					line := checkOneLine(t, out.Bytes())
					if format == "text" {
						if !strings.HasPrefix(line, "2026-11-27T14:03:57.135+01:00 [") {
							t.Errorf("text line %q", line)
						}
						return
					}
					f.jsonCheck(t, p, checkJSONLine(t, line))
				})
			}
		}
	}
}

// checkOneLine fails unless out is one line of valid UTF-8 that no reader
// splits, and returns it without its newline.
func checkOneLine(t *testing.T, out []byte) string {
	t.Helper()
	if !utf8.Valid(out) {
		t.Fatalf("output is not valid UTF-8: %q", out)
	}
	line, ok := bytes.CutSuffix(out, []byte("\n"))
	if !ok {
		t.Fatalf("output does not end with a newline: %q", out)
	}
	if i := bytes.IndexFunc(line, splitsLine); i >= 0 {
		t.Fatalf("one event, more than one line (break at byte %d): %q", i, out)
	}
	return string(line)
}

// checkJSONLine fails unless line is exactly one JSON object whose keys
// are the sink's, each once and in order (a forged key would be an extra
// or a duplicate one, which many decoders silently keep), and returns it
// decoded.
func checkJSONLine(t *testing.T, line string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("line is not a JSON object (%v %v): %s", tok, err, line)
	}
	m := map[string]any{}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("line is not a JSON object: %v\n%s", err, line)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line is not a JSON object: %v\n%s", err, line)
		}
		keys = append(keys, k.(string))
		m[k.(string)] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		t.Fatalf("line is not a JSON object (%v %v): %s", tok, err, line)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("more than one JSON value on the line: %s", line)
	}
	if !reflect.DeepEqual(keys, jsonKeys) {
		t.Fatalf("keys %q, want %q: %s", keys, jsonKeys, line)
	}
	if m["level"] != "INFO" && m["level"] != "WARNING" || m["logger"] != "aga.observability" || m["event_source"] != "aga-core" {
		t.Fatalf("level %v logger %v source %v", m["level"], m["logger"], m["event_source"])
	}
	if _, ok := m["data"].(map[string]any); !ok {
		t.Fatalf("data %#v is not an object", m["data"])
	}
	return m
}

// Several hostile events in one batch: one line each, in order.
func TestLogInjectionBatch(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			s, out := newSink(t, Options{Format: format, Level: "DEBUG"})
			var batch []pipeline.Event
			for _, f := range injFields() {
				batch = append(batch, f.event(injections["newline"]), f.event(injections["invalid UTF-8"]))
			}
			if err := s.Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(out.Bytes()) {
				t.Fatal("output is not valid UTF-8")
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != len(batch) {
				t.Fatalf("%d events, %d lines:\n%s", len(batch), len(lines), out)
			}
			for _, l := range lines {
				checkOneLine(t, []byte(l+"\n"))
				if format == "json" {
					checkJSONLine(t, l)
				}
			}
		})
	}
}

// The text format escapes only what would break the line: the message
// still reads as the seed's.
func TestTextEscapes(t *testing.T) {
	cases := []struct{ in, want string }{
		{"register", "register"},
		{"a\nb", `a\nb`},
		{"a\r\nb", `a\r\nb`},
		{"a\tb", `a\tb`},
		{"a\x00\x1b\x7fb", `a\x00\x1b\x7fb`},
		{"a\u0085b", `a\x85b`},
		{"a\u2028b\u2029", `a\u2028b\u2029`},
		{"a\xffb", "a\uFFFDb"},
		{`C:\path`, `C:\path`},
		{"μs ✓", "μs ✓"},
	}
	for _, tc := range cases {
		if got := string(appendText(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("appendText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzLogLine puts arbitrary bytes into each producer-controlled field:
// whatever they hold, an event is one line of valid UTF-8 in both formats,
// and a JSON line is one object with the sink's keys only.
func FuzzLogLine(f *testing.F) {
	for _, p := range injections {
		f.Add(p, uint8(0))
	}
	f.Add(`{"a":[1,{"b":"\u2028"}]}`, uint8(3))
	fields := injFields()
	f.Fuzz(func(t *testing.T, p string, which uint8) {
		field := fields[int(which)%len(fields)]
		for _, format := range []string{"json", "text"} {
			s, out := newSink(t, Options{Format: format, Level: "DEBUG"})
			if err := s.Write(context.Background(), []pipeline.Event{field.event(p)}); err != nil {
				t.Fatal(err)
			}
			if out.Len() == 0 {
				continue // below the level or sampled out: nothing to check
			}
			line := checkOneLine(t, out.Bytes())
			if format == "json" {
				checkJSONLine(t, line)
			}
		}
	})
}
