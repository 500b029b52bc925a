package eventlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agaobs/agaobs/internal/jsonfloat"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/pyfmt"
)

// The sink's lines must be byte for byte what they were before it was
// made faster. refSink is the sink as it was (one scratch message and a
// rune-by-rune escape per line), kept as the reference; it reads the clock
// once per batch, at its first line, as the sink has since issue 19's
// fourth round (TestClockReadOncePerBatch).
// pyfmt's own tests hold its fast Repr and AppendFloat to their former
// implementations.
type refSink struct {
	level, rate int
	json        bool
	now         func() time.Time
	fwdSeen     uint64
}

func (s *refSink) write(batch []pipeline.Event) []byte {
	var b []byte
	ts := ""
	for i := range batch {
		ev := &batch[i]
		lvl := int(ev.SeedLevel())
		if lvl < s.level {
			continue
		}
		if ev.Kind == pipeline.KindForward {
			s.fwdSeen++
			if (s.fwdSeen-1)%uint64(s.rate) != 0 {
				continue
			}
		}
		if ts == "" {
			ts = s.now().Format("2006-01-02T15:04:05.000Z07:00")
		}
		b = s.format(b, ev, lvl, ts)
	}
	return b
}

func (s *refSink) format(b []byte, ev *pipeline.Event, lvl int, ts string) []byte {
	producer := ""
	if ev.Producer != nil {
		producer = ev.Producer.Name
	}
	if !s.json {
		b = append(b, ts...)
		b = append(b, " ["+levelName(lvl)+"] "...)
		sc := append([]byte(eventType(ev)), ": "...)
		sc = refMessage(sc, ev)
		sc = append(sc, " producer="...)
		sc = append(sc, producer...)
		return append(refText(b, sc), '\n')
	}
	b = append(b, `{"timestamp":"`+ts+`","level":"`+levelName(lvl)+`","logger":"aga.observability","message":`...)
	b = refJSONString(b, refMessage(nil, ev))
	b = append(b, `,"event_type":`...)
	b = refJSONString(b, []byte(eventType(ev)))
	b = append(b, `,"event_source":"aga-core","event_timestamp":`...)
	b = append(b, pyfmt.Float(float64(ev.TimeNs)/1e9)...)
	b = append(b, `,"data":`...)
	b = refData(b, ev)
	b = append(b, `,"producer":`...)
	b = refJSONString(b, []byte(producer))
	return append(b, "}\n"...)
}

func refMessage(b []byte, ev *pipeline.Event) []byte {
	switch ev.Kind {
	case pipeline.KindForward:
		f := &ev.Forward
		b = append(b, "layer="...)
		if l, ok := f.LayerIdx(); ok {
			b = strconv.AppendInt(b, int64(l), 10)
		} else {
			b = append(b, '?')
		}
		if f.Applied() {
			b = append(b, " applied=✓ gate="...)
		} else {
			b = append(b, " applied=✗ gate="...)
		}
		gate, _ := f.GateMean()
		ent, _ := f.EntropyMean()
		lat, _ := f.LatencyUs()
		b = strconv.AppendFloat(b, gate, 'f', 3, 64)
		b = strconv.AppendFloat(append(b, " entropy="...), ent, 'f', 3, 64)
		b = strconv.AppendFloat(append(b, " latency="...), lat, 'f', 1, 64)
		return append(b, "μs"...)
	case pipeline.KindRetrieval:
		r := ev.Retrieval
		val := func(v int32, ok bool) string {
			if !ok {
				return "None"
			}
			return strconv.Itoa(int(v))
		}
		return fmt.Appendf(b, "layer=%s results=%s injected=%s budget_left=%s",
			val(r.LayerIdx()), val(r.ResultsCount()), val(r.InjectedCount()), val(r.BudgetRemaining()))
	case pipeline.KindAudit:
		status := "[FAIL] "
		if ev.Audit.Success {
			status = "[OK] "
		}
		return append(b, status+ev.Audit.Operation+": "+pyfmt.Repr(ev.Audit.Details)...)
	case pipeline.KindEvent:
		return append(b, pyfmt.Repr(ev.Other.Data)...)
	}
	return b
}

func refData(b []byte, ev *pipeline.Event) []byte {
	float := func(b []byte, v float64) []byte {
		if out, ok := jsonfloat.AppendNonFinite(b, v); ok {
			return out
		}
		return append(b, pyfmt.Float(v)...)
	}
	switch ev.Kind {
	case pipeline.KindForward:
		f := &ev.Forward
		b = append(b, `{"aga_applied":`+strconv.FormatBool(f.Applied())...)
		if v, ok := f.GateMean(); ok {
			b = float(append(b, `,"gate_mean":`...), v)
		}
		if v, ok := f.EntropyMean(); ok {
			b = float(append(b, `,"entropy_mean":`...), v)
		}
		if v, ok := f.LayerIdx(); ok {
			b = append(b, `,"layer_idx":`+strconv.Itoa(int(v))...)
		}
		if v, ok := f.LatencyUs(); ok {
			b = float(append(b, `,"latency_us":`...), v)
		}
		return append(b, '}')
	case pipeline.KindRetrieval:
		r := ev.Retrieval
		b = append(b, '{')
		for _, c := range []struct {
			key string
			get func() (int32, bool)
		}{{"layer_idx", r.LayerIdx}, {"results_count", r.ResultsCount}, {"injected_count", r.InjectedCount}, {"budget_remaining", r.BudgetRemaining}} {
			if v, ok := c.get(); ok {
				b = append(b, `"`+c.key+`":`+strconv.Itoa(int(v))+`,`...)
			}
		}
		b = append(b, `"ids":[`...)
		for i, id := range r.IDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = refJSONString(b, []byte(id))
		}
		b = append(b, `],"scores":[`...)
		for i, v := range r.Scores {
			if i > 0 {
				b = append(b, ',')
			}
			b = float(b, v)
		}
		return append(b, "]}"...)
	case pipeline.KindAudit:
		return refRawJSON(b, ev.Audit.Raw)
	case pipeline.KindEvent:
		return refRawJSON(b, ev.Other.Data)
	}
	return append(b, "{}"...)
}

// refRawJSON compacts every body, rune by rune.
func refRawJSON(b, raw []byte) []byte {
	var c bytes.Buffer
	if !utf8.Valid(raw) || pipeline.NestedDeeper(raw, maxDataDepth) || json.Compact(&c, raw) != nil || c.Len() == 0 || c.Bytes()[0] != '{' {
		return append(refJSONString(append(b, `{"_unencodable":`...), raw), '}')
	}
	for _, r := range c.String() {
		if lineBreakRune(r) {
			b = fmt.Appendf(b, `\u%04x`, r)
		} else {
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// refJSONString escapes rune by rune.
func refJSONString(b, s []byte) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r < 0x20 || r == 0x7f || lineBreakRune(r):
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// refText escapes rune by rune.
func refText(b, s []byte) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n == 1:
			b = utf8.AppendRune(b, utf8.RuneError)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r < 0x20 || r >= 0x7f && r <= 0x9f:
			b = fmt.Appendf(b, `\x%02x`, r)
		case r == 0x2028 || r == 0x2029:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// hostile are strings a producer may send, for every field it controls.
var hostile = []string{
	"", "worker-tp0", "register", "it's", `say "hi"`, `both ' and "`, `back\slash`, "μs ✓ ✗", "tab\there",
	"x\n" + forged, "x\r\n", "\v\f\x1c\x1d\x1e", "\x00\x1b\x7f", "\u0085", "\u2028\u2029", "\xff\xfe", "a\xc3",
	"\xed\xa0\x80", "\xe2\x80", "\xef\xbf\xbd", strings.Repeat("long ", 2000), strings.Repeat("\u2028\"\\", 300),
}

// bodies are JSON texts a producer may send as audit details, audit
// records and events' data.
var bodies = []string{
	`{}`, `{"id":"k-1","reliability":0.93}`, `{"x":[1,2.5,"y",true,null,{"z":-0}]}`, `{"a":"\u2028\u0085\n"}`,
	"{ \"a\" : 1 ,\n\"b\":[ 1, 2 ] }", `{"a":1e400,"b":9223372036854775808,"c":1e-7}`, `{"s":"\ud83d\ude00\ud83d"}`,
	`[1,2]`, `"str"`, `7`, `null`, ``, `{`, `{"a":1`, `{"a":1}{"b":2}`, `{"a":1} x`, "{\"a\":\"\xff\"}", `not json`,
	`{"a":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
}

// refFloats are the values a producer's floats take: ordinary ones, and
// the edges of each notation and of finiteness.
var refFloats = []float64{0, math.Copysign(0, -1), 0.4, 1.5, 180, 0.12345, 123.45, 1e-5, 1e16, 1e22, -2.5e-7,
	math.MaxFloat64, 5e-324, math.NaN(), math.Inf(1), math.Inf(-1), 0.9995, 2.25, -0.0005}

// randEvent draws an event of any kind the sink takes, fields present or
// not, strings from hostile and bodies.
func randEvent(rnd *rand.Rand, prods []*pipeline.Producer) pipeline.Event {
	str := func() string { return hostile[rnd.IntN(len(hostile))] }
	flt := func() float64 {
		if rnd.IntN(3) == 0 {
			return rnd.NormFloat64() * math.Pow(10, float64(rnd.IntN(30)-15))
		}
		return refFloats[rnd.IntN(len(refFloats))]
	}
	i32 := func() int32 { return int32(rnd.Uint32()) >> rnd.IntN(32) }
	ev := pipeline.Event{Producer: prods[rnd.IntN(len(prods))]}
	switch rnd.IntN(4) {
	case 0:
		ev.TimeNs = rnd.Int64N(2e18)
	case 1:
		ev.TimeNs = 1764252237 * 1e9
	case 2:
		ev.TimeNs = -rnd.Int64N(1e12)
	}
	switch rnd.IntN(6) {
	case 0, 1:
		ev.Kind = pipeline.KindForward
		f := pipeline.Forward{}.WithApplied(rnd.IntN(2) == 0)
		if rnd.IntN(4) > 0 {
			f = f.WithGate(flt())
		}
		if rnd.IntN(4) > 0 {
			f = f.WithEntropy(flt())
		}
		if rnd.IntN(4) > 0 {
			f = f.WithLatency(flt())
		}
		if rnd.IntN(4) > 0 {
			f = f.WithLayer(i32())
		}
		ev.Forward = f
	case 2:
		ev.Kind = pipeline.KindRetrieval
		r := pipeline.Retrieval{}
		if rnd.IntN(4) > 0 {
			r = r.WithLayer(i32())
		}
		if rnd.IntN(4) > 0 {
			r = r.WithResults(i32())
		}
		if rnd.IntN(4) > 0 {
			r = r.WithInjected(i32())
		}
		if rnd.IntN(4) > 0 {
			r = r.WithBudget(i32())
		}
		for n := rnd.IntN(4); n > 0; n-- {
			r.IDs = append(r.IDs, str())
			r.Scores = append(r.Scores, flt())
		}
		ev.Retrieval = &r
	case 3, 4:
		ev.Kind = pipeline.KindAudit
		ev.Audit = &pipeline.Audit{Operation: str(), Success: rnd.IntN(3) > 0,
			Details: json.RawMessage(randBody(rnd)), Raw: json.RawMessage(randBody(rnd))}
	case 5:
		ev.Kind = pipeline.KindEvent
		ev.Other = &pipeline.Other{Name: str(), Data: json.RawMessage(randBody(rnd))}
	}
	return ev
}

// randBody is one of bodies, or a hostile string inside a JSON object.
func randBody(rnd *rand.Rand) string {
	if rnd.IntN(3) == 0 {
		q, _ := json.Marshal(hostile[rnd.IntN(len(hostile))])
		return `{` + string(q) + `:[` + string(q) + `]}`
	}
	return bodies[rnd.IntN(len(bodies))]
}

// stepClock is a deterministic clock for a sink and its reference:
// millisecond boundaries, zone changes and steps back.
func stepClock(seed uint64) func() time.Time {
	rnd := rand.New(rand.NewPCG(seed, 1))
	zones := []*time.Location{time.UTC, time.FixedZone("CET", 3600), time.FixedZone("X", -(9*3600 + 1800))}
	now := fixed
	return func() time.Time {
		now = now.Add(time.Duration(rnd.IntN(1500)-100) * time.Microsecond)
		return now.In(zones[rnd.IntN(len(zones))])
	}
}

// TestLinesMatchReference writes random batches of hostile events
// through the sink and its reference, in every format, at several levels
// and sample rates.
func TestLinesMatchReference(t *testing.T) {
	cases := []struct {
		format, level string
		rate          int
	}{
		{"json", "DEBUG", 1}, {"json", "INFO", 1}, {"json", "DEBUG", 3}, {"json", "WARNING", 1},
		{"text", "DEBUG", 1}, {"text", "INFO", 1}, {"text", "DEBUG", 7}, {"text", "WARNING", 1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s/rate%d", tc.format, tc.level, tc.rate), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(42, uint64(tc.rate)))
			prods := []*pipeline.Producer{prod, nil}
			for _, name := range hostile[:8] {
				prods = append(prods, injProducer(name+"\n"+forged))
			}
			s, out := newSink(t, Options{Format: tc.format, Level: tc.level, ForwardSampleRate: tc.rate, Now: stepClock(7)})
			lvl, _ := ParseLevel(tc.level)
			ref := &refSink{level: lvl, rate: tc.rate, json: tc.format == "json", now: stepClock(7)}
			for batchNo := 0; batchNo < 200; batchNo++ {
				batch := make([]pipeline.Event, rnd.IntN(40))
				for i := range batch {
					batch[i] = randEvent(rnd, prods)
				}
				out.Reset()
				if err := s.Write(context.Background(), batch); err != nil {
					t.Fatal(err)
				}
				if want := ref.write(batch); !bytes.Equal(out.Bytes(), want) {
					t.Fatalf("batch %d:\n got %q\nwant %q", batchNo, out.Bytes(), want)
				}
			}
		})
	}
}

// The pipeline benchmark's mix goes out as before, in both formats.
func TestPipelineMixMatchesReference(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		s, out := newSink(t, Options{Format: format, Level: "DEBUG", Now: stepClock(3)})
		ref := &refSink{level: levelDebug, rate: 1, json: format == "json", now: stepClock(3)}
		batch := pipelineMix(300)
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		if want := ref.write(batch); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("%s:\n got %q\nwant %q", format, out.Bytes(), want)
		}
	}
}

// Forward and retrieval messages and event types are appended unescaped
// (safeMessage): neither format has anything to escape in them, whatever
// the event's numbers.
func TestSafeMessages(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		ev := randEvent(rnd, []*pipeline.Producer{prod})
		if !safeMessage(ev.Kind) {
			continue
		}
		for _, s := range [][]byte{appendMessage(nil, &ev), []byte(eventType(&ev))} {
			if got := appendJSONString(nil, s); string(got) != `"`+string(s)+`"` {
				t.Fatalf("%s: JSON escapes %q to %s", ev.Kind, s, got)
			}
			if got := appendText(nil, s); !bytes.Equal(got, s) {
				t.Fatalf("%s: text escapes %q to %q", ev.Kind, s, got)
			}
		}
	}
}

// The default config's lines cost no allocation once the buffers have
// grown.
func TestWriteAllocs(t *testing.T) {
	s, err := New(Options{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	batch := pipelineMix(1024)
	audit := events()[2:4]
	s.Write(context.Background(), batch)
	s.Write(context.Background(), audit)
	for name, b := range map[string][]pipeline.Event{"pipeline mix": batch, "audit": audit} {
		if n := testing.AllocsPerRun(20, func() { s.Write(context.Background(), b) }); n != 0 {
			t.Errorf("%s: %v allocations per Write", name, n)
		}
	}
}

// FuzzLinesMatchReference puts arbitrary text into every string field of
// every kind (as a string and as a JSON body) and a random event around
// it: the sink's lines are the reference's, in both formats.
func FuzzLinesMatchReference(f *testing.F) {
	for i, s := range append(append([]string{}, hostile...), bodies...) {
		f.Add(s, uint64(i))
	}
	f.Fuzz(func(t *testing.T, p string, seed uint64) {
		rnd := rand.New(rand.NewPCG(seed, 0))
		evs := []pipeline.Event{randEvent(rnd, []*pipeline.Producer{injProducer(p)})}
		evs = append(evs,
			pipeline.Event{Kind: pipeline.KindAudit, Producer: prod, Audit: &pipeline.Audit{Operation: p, Details: json.RawMessage(p), Raw: json.RawMessage(p)}},
			pipeline.Event{Kind: pipeline.KindEvent, Producer: prod, Other: &pipeline.Other{Name: p, Data: json.RawMessage(p)}},
			pipeline.Event{Kind: pipeline.KindRetrieval, Producer: prod, Retrieval: &pipeline.Retrieval{IDs: []string{p}}})
		for _, format := range []string{"json", "text"} {
			s, out := newSink(t, Options{Format: format, Level: "DEBUG", Now: stepClock(seed)})
			ref := &refSink{level: levelDebug, rate: 1, json: format == "json", now: stepClock(seed)}
			if err := s.Write(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			if want := ref.write(evs); !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("%s:\n got %q\nwant %q", format, out.Bytes(), want)
			}
		}
	})
}
