package eventlog

import (
	"context"
	"io"
	"testing"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// pipelineMix is BenchmarkPipeline's (internal/agent) event mix: forwards
// on layers 29-31 and one retrieval in 15, with nanosecond timestamps
// (event_timestamp is then never a whole number of seconds).
func pipelineMix(n int) []pipeline.Event {
	fwd := pipeline.Forward{}.WithGate(0.4).WithEntropy(1.5).WithLatency(180).WithApplied(true)
	ret := pipeline.Retrieval{Scores: []float64{0.9, 0.7}}.WithLayer(29).WithResults(3).WithInjected(2).WithBudget(0)
	evs := make([]pipeline.Event, n)
	ts := int64(1764252237135792431)
	for i := range evs {
		ts += 1931 // ns between events: digits vary like a real clock's
		if i%15 == 14 {
			evs[i] = pipeline.Event{Kind: pipeline.KindRetrieval, Producer: prod, TimeNs: ts, Retrieval: &ret}
			continue
		}
		evs[i] = pipeline.Event{Kind: pipeline.KindForward, Producer: prod, TimeNs: ts, Forward: fwd.WithLayer(int32(29 + i%3))}
	}
	return evs
}

// benchSink writes the pipeline mix in 1024-event batches (a dispatcher
// chunk); ns/op is per event of the mix, not per line.
func benchSink(b *testing.B, opts Options) {
	opts.Out = io.Discard
	s, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	evs := pipelineMix(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(evs) {
		if err := s.Write(context.Background(), evs[:min(len(evs), b.N-i)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSinkMix is the sink as the default config runs it (JSON, INFO:
// forwards are filtered, retrievals formatted).
func BenchmarkSinkMix(b *testing.B) { benchSink(b, Options{}) }

// BenchmarkSinkMixDebug formats every event of the mix (log_level DEBUG).
func BenchmarkSinkMixDebug(b *testing.B) { benchSink(b, Options{Level: "DEBUG"}) }

// BenchmarkSinkMixText is BenchmarkSinkMixDebug in the text format.
func BenchmarkSinkMixText(b *testing.B) { benchSink(b, Options{Level: "DEBUG", Format: "text"}) }
