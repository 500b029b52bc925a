package eventlog

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/testutil"
)

var fixed = time.Date(2026, 11, 27, 14, 3, 57, 135_000_000, time.FixedZone("CET", 3600))

func newSink(t *testing.T, opts Options) (*Sink, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	opts.Out = &out
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixed }
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, &out
}

var prod = pipeline.NewProducer("worker-tp0", "k", 1, 1, "r", pipeline.Identity{Producer: "worker-tp0"})

func events() []pipeline.Event {
	errMsg := "disk full"
	return []pipeline.Event{
		{Kind: pipeline.KindForward, Producer: prod, TimeNs: 1764252237135000000, Forward: pipeline.Forward{}.WithGate(0.12345).WithEntropy(2).WithLatency(123.45).WithLayer(31).WithApplied(true)},
		{Kind: pipeline.KindRetrieval, Producer: prod, TimeNs: 1764252237500000000, Retrieval: retrieval(pipeline.Retrieval{
			IDs: []string{"a", "b"}, Scores: []float64{0.9, 1}}.WithLayer(29).WithResults(5).WithInjected(3).WithBudget(2))},
		{Kind: pipeline.KindAudit, Producer: prod, TimeNs: 1764252238000000000, Audit: &pipeline.Audit{Operation: "register", Success: true,
			Details: json.RawMessage(`{"id":"k1","pinned":false,"metadata":{"source":"it's"},"ns":null,"r":0.9,"n":1,"big":1e22}`),
			Raw:     json.RawMessage(`{"operation":"register","details":{"id":"k1"},"success":true,"error":null,"timestamp":1764252238.0}`)}},
		{Kind: pipeline.KindAudit, Producer: prod, TimeNs: 1764252239000000000, Audit: &pipeline.Audit{Operation: "clear", Success: false, Error: &errMsg,
			Details: json.RawMessage(`{"namespace":"x"}`), Raw: json.RawMessage(`{"operation":"clear","success":false}`)}},
		{Kind: pipeline.KindEvent, Producer: prod, TimeNs: 1764252240000000000, Other: &pipeline.Other{Name: "custom", Data: json.RawMessage(`{"x":[1,2.5,"y"]}`)}},
	}
}

func TestJSONLines(t *testing.T) {
	s, out := newSink(t, Options{Level: "DEBUG"})
	if err := s.Write(context.Background(), events()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		`{"timestamp":"2026-11-27T14:03:57.135+01:00","level":"DEBUG","logger":"aga.observability","message":"layer=31 applied=✓ gate=0.123 entropy=2.000 latency=123.5μs","event_type":"forward","event_source":"aga-core","event_timestamp":1764252237.135,"data":{"aga_applied":true,"gate_mean":0.12345,"entropy_mean":2.0,"layer_idx":31,"latency_us":123.45},"producer":"worker-tp0"}`,
		`{"timestamp":"2026-11-27T14:03:57.135+01:00","level":"INFO","logger":"aga.observability","message":"layer=29 results=5 injected=3 budget_left=2","event_type":"retrieval","event_source":"aga-core","event_timestamp":1764252237.5,"data":{"layer_idx":29,"results_count":5,"injected_count":3,"budget_remaining":2,"ids":["a","b"],"scores":[0.9,1.0]},"producer":"worker-tp0"}`,
		`{"timestamp":"2026-11-27T14:03:57.135+01:00","level":"INFO","logger":"aga.observability","message":"[OK] register: {'id': 'k1', 'pinned': False, 'metadata': {'source': \"it's\"}, 'ns': None, 'r': 0.9, 'n': 1, 'big': 1e+22}","event_type":"audit","event_source":"aga-core","event_timestamp":1764252238.0,"data":{"operation":"register","details":{"id":"k1"},"success":true,"error":null,"timestamp":1764252238.0},"producer":"worker-tp0"}`,
		`{"timestamp":"2026-11-27T14:03:57.135+01:00","level":"WARNING","logger":"aga.observability","message":"[FAIL] clear: {'namespace': 'x'}","event_type":"audit","event_source":"aga-core","event_timestamp":1764252239.0,"data":{"operation":"clear","success":false},"producer":"worker-tp0"}`,
		`{"timestamp":"2026-11-27T14:03:57.135+01:00","level":"INFO","logger":"aga.observability","message":"{'x': [1, 2.5, 'y']}","event_type":"custom","event_source":"aga-core","event_timestamp":1764252240.0,"data":{"x":[1,2.5,"y"]},"producer":"worker-tp0"}`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Errorf("line %d is not JSON: %v", i, err)
		}
	}
}

func TestTextLinesAndLevels(t *testing.T) {
	now := 0
	s, out := newSink(t, Options{Format: "text", Level: "WARNING", Now: func() time.Time { now++; return fixed }})
	s.Write(context.Background(), events())
	want := "2026-11-27T14:03:57.135+01:00 [WARNING] audit: [FAIL] clear: {'namespace': 'x'} producer=worker-tp0\n"
	if out.String() != want {
		t.Fatalf("got %q\nwant %q", out.String(), want)
	}
	// Lines below the level are never formatted, nor is the clock read
	// for them.
	if now != 1 {
		t.Errorf("clock read %d times for 1 line", now)
	}
}

// TestClockReadOncePerBatch: every line of a batch carries the one reading
// taken at its first line; a batch with no line to write reads no clock.
func TestClockReadOncePerBatch(t *testing.T) {
	reads := 0
	clock := func() time.Time { reads++; return fixed.Add(time.Duration(reads) * time.Second) }
	s, out := newSink(t, Options{Level: "DEBUG", Now: clock})
	for batch, want := range []int{1, 2} {
		out.Reset()
		if err := s.Write(context.Background(), pipelineMix(30)); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 30 || reads != want {
			t.Fatalf("batch %d: %d lines, %d clock reads in all", batch, len(lines), reads)
		}
		stamp := fixed.Add(time.Duration(want) * time.Second).Format("2006-01-02T15:04:05.000Z07:00")
		for i, l := range lines {
			if !strings.HasPrefix(l, `{"timestamp":"`+stamp+`"`) {
				t.Fatalf("batch %d line %d: %q, want timestamp %s", batch, i, l, stamp)
			}
		}
	}
	s2, _ := newSink(t, Options{Level: "ERROR", Now: clock})
	if err := s2.Write(context.Background(), pipelineMix(30)); err != nil || reads != 2 {
		t.Fatalf("a batch with no line read the clock (%d reads, err %v)", reads, err)
	}
}

func TestForwardSampling(t *testing.T) {
	s, out := newSink(t, Options{Level: "DEBUG", ForwardSampleRate: 10})
	evs := make([]pipeline.Event, 100)
	for i := range evs {
		evs[i] = pipeline.Event{Kind: pipeline.KindForward, Producer: prod, Forward: pipeline.Forward{}.WithLayer(int32(i))}
	}
	s.Write(context.Background(), evs)
	if n := strings.Count(out.String(), "\n"); n != 10 || s.sampledOut.Load() != 90 {
		t.Fatalf("%d lines, %d sampled out", n, s.sampledOut.Load())
	}
	if !strings.Contains(out.String(), `"layer_idx":0`) || !strings.Contains(out.String(), `"layer_idx":90`) {
		t.Errorf("sampled the wrong events:\n%s", out)
	}
}

func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "events.log")
	s, out := newSink(t, Options{File: file, MaxBytes: 1 << 20, Backups: 2, Level: "INFO"})
	big := pipeline.Event{Kind: pipeline.KindEvent, Producer: prod, Other: &pipeline.Other{Name: "blob", Data: json.RawMessage(`{"pad":"` + strings.Repeat("x", 4000) + `"}`)}}
	batch := make([]pipeline.Event, 100)
	for i := range batch {
		batch[i] = big
	}
	for i := 0; i < 10; i++ { // ~8 MiB of lines through a 1 MiB file
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// lumberjack removes old backups on its own goroutine, after Close.
	var entries []os.DirEntry
	testutil.WaitFor(time.Minute, func() bool {
		entries, _ = os.ReadDir(dir)
		return len(entries) <= 3
	})
	if len(entries) != 3 {
		t.Errorf("%d files, want the active one and 2 backups: %v", len(entries), entries)
	}
	if st, err := os.Stat(file); err != nil || st.Size() > 1<<20 {
		t.Errorf("active file %v %v", st, err)
	}
	if out.Len() != 0 {
		t.Error("wrote to stderr although a file is set and log_stderr is off")
	}
}

func TestMaxSizeRounding(t *testing.T) {
	for _, tc := range []struct {
		bytes int64
		mib   int
	}{{1, 1}, {1 << 20, 1}, {1<<20 + 1, 2}, {104857600, 100}, {0, 100}} {
		if got := MaxSizeMiB(tc.bytes); got != tc.mib {
			t.Errorf("MaxSizeMiB(%d) = %d, want %d", tc.bytes, got, tc.mib)
		}
	}
}

func retrieval(r pipeline.Retrieval) *pipeline.Retrieval { return &r }
