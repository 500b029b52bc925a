package metrics

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
	agatest "github.com/agaobs/agaobs/internal/testutil"
)

const exEpoch = 0xfeedface

// timedFwd is a forward of ring record seq (epoch exEpoch) at second sec.
func timedFwd(p *pipeline.Producer, layer int32, seq uint64, sec int64, latencyUs float64) pipeline.Event {
	ev := fwd(p, layer, true, 0.5, 1, latencyUs)
	ev.Epoch, ev.Seq, ev.TimeNs = exEpoch, seq, sec*1e9+int64(seq)
	return ev
}

func alertEvent(producer, state string) pipeline.Event {
	return pipeline.Event{Kind: pipeline.KindAgent, Lifecycle: &pipeline.Lifecycle{Type: pipeline.AlertTransition,
		Details: map[string]any{"rule": "slo_latency_p99", "producer": producer, "metric": "latency_p99", "state": state}}}
}

func keepOpts(maxPerSecond int) *pipeline.SpanKeepOptions {
	return &pipeline.SpanKeepOptions{SlowUs: 1000, SampleRate: 0, MaxPerSecond: maxPerSecond,
		LatencyMetric: func(m string) bool { return m == "latency_p99" }}
}

// wantEx is the exemplar of the record seq of latency us at second sec.
type wantEx struct {
	seq uint64
	sec int64
	us  float64
}

// latencyExemplars returns the exemplars on the classic buckets of the
// forward latency series with labels, by upper bound in µs, checking that
// no other family has any.
func latencyExemplars(t *testing.T, mfs []*dto.MetricFamily, naming schema.Naming, labels map[string]string) map[float64]*dto.Exemplar {
	t.Helper()
	name, div := "aga_forward_latency_us", 1.0
	if naming == schema.Conventional {
		name, div = "aga_forward_latency_seconds", 1e6
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			if h := m.Histogram; h != nil && mf.GetName() != name && (len(h.Exemplars) > 0 || anyBucketExemplar(h)) {
				t.Errorf("%s has exemplars", mf.GetName())
			}
		}
	}
	m := agatest.FindSeries(mfs, name, labels)
	if m == nil {
		t.Fatalf("no series %s%v", name, labels)
	}
	out := map[float64]*dto.Exemplar{}
	for _, b := range m.Histogram.Bucket {
		if b.Exemplar != nil {
			ub := b.GetUpperBound()
			if !math.IsInf(ub, 1) {
				ub = math.Round(ub * div)
			}
			out[ub] = b.Exemplar
		}
	}
	return out
}

func anyBucketExemplar(h *dto.Histogram) bool {
	for _, b := range h.Bucket {
		if b.Exemplar != nil {
			return true
		}
	}
	return false
}

func checkExemplar(t *testing.T, le float64, got *dto.Exemplar, want wantEx, div float64) {
	t.Helper()
	trace, span := pipeline.TraceID(exEpoch, want.seq), pipeline.SpanID(exEpoch, want.seq)
	labels := map[string]string{}
	for _, l := range got.Label {
		labels[l.GetName()] = l.GetValue()
	}
	if len(got.Label) != 2 || labels["trace_id"] != hex.EncodeToString(trace[:]) || labels["span_id"] != hex.EncodeToString(span[:]) {
		t.Errorf("le=%v: exemplar labels %v, want those of record %d", le, labels, want.seq)
	}
	if len(labels["trace_id"]) != 32 || len(labels["span_id"]) != 16 {
		t.Errorf("le=%v: ids %q %q not 32 and 16 hex digits", le, labels["trace_id"], labels["span_id"])
	}
	if got.GetValue() != want.us/div {
		t.Errorf("le=%v: exemplar value %v, want %v", le, got.GetValue(), want.us/div)
	}
	if ts := got.GetTimestamp().AsTime().UnixNano(); ts != want.sec*1e9+int64(want.seq) {
		t.Errorf("le=%v: exemplar time %d, want the event's", le, ts)
	}
}

func TestExemplars(t *testing.T) {
	p := producer("w", 0)
	inf := math.Inf(1)
	for _, tc := range []struct {
		name   string
		opts   Options
		events func() []pipeline.Event
		want   map[float64]wantEx // upper bound (µs) → exemplar
	}{{
		name: "slow forwards, the newest per bucket",
		opts: Options{SpanKeep: keepOpts(1 << 20)},
		events: func() []pipeline.Event {
			return []pipeline.Event{
				timedFwd(p, 0, 1, 10, 2000), timedFwd(p, 0, 2, 10, 1500), // le=2500: the second
				timedFwd(p, 0, 3, 10, 10),                               // fast: none on le=10
				timedFwd(p, 0, 4, 11, 7000),                             // above the last bound: +Inf
				timedFwd(p, 0, 5, 11, 4000), timedFwd(p, 0, 6, 11, 999), // 999: fast
				timedFwd(p, 0, 7, 11, 1000), // the threshold itself is slow: le=1000
			}
		},
		want: map[float64]wantEx{2500: {2, 10, 1500}, 5000: {5, 11, 4000}, inf: {4, 11, 7000}, 1000: {7, 11, 1000}},
	}, {
		name: "no SpanKeep: no exemplars",
		opts: Options{},
		events: func() []pipeline.Event {
			return []pipeline.Event{timedFwd(p, 0, 1, 10, 2000), timedFwd(p, 0, 2, 10, 9000)}
		},
	}, {
		name: "conventional naming: seconds",
		opts: Options{SpanKeep: keepOpts(0), Naming: schema.Conventional},
		events: func() []pipeline.Event {
			return []pipeline.Event{timedFwd(p, 0, 1, 10, 2000), timedFwd(p, 0, 2, 10, 100)}
		},
		want: map[float64]wantEx{2500: {1, 10, 2000}},
	}, {
		name: "cap: the second slow forward of a second is not kept",
		opts: Options{SpanKeep: keepOpts(1)},
		events: func() []pipeline.Event {
			return []pipeline.Event{
				timedFwd(p, 0, 1, 10, 2000), timedFwd(p, 0, 2, 10, 1500), // capped: le=2500 keeps record 1
				timedFwd(p, 0, 3, 11, 3000), // a new second
			}
		},
		want: map[float64]wantEx{2500: {1, 10, 2000}, 5000: {3, 11, 3000}},
	}, {
		name: "alert: a fast forward kept for the alert has no exemplar but counts against the cap",
		opts: Options{SpanKeep: keepOpts(1)},
		events: func() []pipeline.Event {
			return []pipeline.Event{
				alertEvent("w", "firing"),
				timedFwd(p, 0, 1, 10, 10),   // SpanAlert: no exemplar
				timedFwd(p, 0, 2, 10, 2000), // capped
				alertEvent("w", "resolved"),
				timedFwd(p, 0, 3, 11, 20),   // dropped
				timedFwd(p, 0, 4, 11, 4000), // slow
			}
		},
		want: map[float64]wantEx{5000: {4, 11, 4000}},
	}, {
		name: "audit and retrieval spans count against the cap",
		opts: Options{SpanKeep: &pipeline.SpanKeepOptions{SlowUs: 1000, SampleRate: 1, MaxPerSecond: 2}},
		events: func() []pipeline.Event {
			return []pipeline.Event{
				{Kind: pipeline.KindAudit, Producer: p, TimeNs: 10e9, Audit: &pipeline.Audit{Operation: "register", Success: true}},
				{Kind: pipeline.KindRetrieval, Producer: p, TimeNs: 10e9, Retrieval: &pipeline.Retrieval{}},
				timedFwd(p, 0, 1, 10, 2000), // capped
				timedFwd(p, 0, 2, 11, 3000), // kept, slow
				timedFwd(p, 0, 3, 11, 9),    // kept, sampled: no exemplar
				timedFwd(p, 0, 4, 11, 4000), // capped
			}
		},
		want: map[float64]wantEx{5000: {2, 11, 3000}},
	}, {
		name: "producer histograms",
		opts: Options{SpanKeep: keepOpts(0), ProducerHistograms: true},
		events: func() []pipeline.Event {
			return []pipeline.Event{timedFwd(p, 3, 1, 10, 2000), timedFwd(p, 7, 2, 10, 1200)}
		},
		want: map[float64]wantEx{2500: {2, 10, 1200}},
	}, {
		name: "native",
		opts: Options{SpanKeep: keepOpts(0), Native: true},
		events: func() []pipeline.Event {
			return []pipeline.Event{timedFwd(p, 0, 1, 10, 2000), timedFwd(p, 0, 2, 10, 9000)}
		},
		want: map[float64]wantEx{2500: {1, 10, 2000}, inf: {2, 10, 9000}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(tc.opts)
			if err := e.Write(context.Background(), tc.events()); err != nil {
				t.Fatal(err)
			}
			mfs, _ := e.Gather()
			naming, div := tc.opts.Naming, 1.0
			if naming == schema.Conventional {
				div = 1e6
			}
			labels := map[string]string{"producer": "w"}
			if !tc.opts.ProducerHistograms {
				labels["layer"] = "0"
			}
			got := latencyExemplars(t, mfs, naming, labels)
			for le, w := range tc.want {
				if got[le] == nil {
					t.Errorf("le=%v: no exemplar, want record %d's", le, w.seq)
					continue
				}
				checkExemplar(t, le, got[le], w, div)
			}
			for le := range got {
				if _, ok := tc.want[le]; !ok {
					t.Errorf("le=%v: unexpected exemplar %v", le, got[le])
				}
			}
			h := agatest.FindSeries(mfs, "aga_forward_latency_us", labels)
			if h == nil {
				return
			}
			if tc.opts.Native && len(h.Histogram.Exemplars) != len(tc.want) {
				t.Errorf("native histogram has %d exemplars, want %d", len(h.Histogram.Exemplars), len(tc.want))
			}
			if !tc.opts.Native && len(h.Histogram.Exemplars) != 0 {
				t.Error("classic-only histogram has native exemplars")
			}
			// The explicit +Inf bucket changes no count.
			if n := len(h.Histogram.Bucket); n > 0 && h.Histogram.Bucket[n-1].GetCumulativeCount() > h.Histogram.GetSampleCount() {
				t.Error("bucket count above the sample count")
			}
		})
	}
}

// Kinds asks for the agent's events (alert transitions) only with exemplars.
func TestExemplarKinds(t *testing.T) {
	if New(Options{}).Kinds().Has(pipeline.KindAgent) {
		t.Error("KindAgent requested without SpanKeep")
	}
	k := New(Options{SpanKeep: keepOpts(0)}).Kinds()
	for _, kind := range []pipeline.Kind{pipeline.KindAgent, pipeline.KindForward, pipeline.KindRetrieval, pipeline.KindAudit} {
		if !k.Has(kind) {
			t.Errorf("kind %v not requested with SpanKeep", kind)
		}
	}
}

// Exemplars reach OpenMetrics and protobuf scrapes; the text format is
// unchanged.
func TestExemplarExposition(t *testing.T) {
	for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
		t.Run(string(naming), func(t *testing.T) {
			p := producer("w", 0)
			e := New(Options{Naming: naming, SpanKeep: keepOpts(0)})
			evs := []pipeline.Event{timedFwd(p, 0, 1, 10, 2000), timedFwd(p, 0, 2, 10, 100), timedFwd(p, 0, 3, 10, 8000)}
			e.Write(context.Background(), evs)
			h := NewRegistry(map[string]string{"cluster": "test"}, e, nil).Handler(slogDiscard())

			text, _ := CheckExposition(t, h)
			if bytes.Contains(text, []byte("trace_id")) || regexp.MustCompile(`(?m)^[^#].* # `).Match(text) {
				t.Errorf("text exposition carries exemplars:\n%s", text)
			}
			plain := New(Options{Naming: naming})
			plain.Write(context.Background(), evs)
			_, want := get(t, NewRegistry(map[string]string{"cluster": "test"}, plain, nil).Handler(slogDiscard()), textAccept)
			if aga := agaLines(text); aga != agaLines(want) {
				t.Errorf("text exposition differs from the one without exemplars:\n%s\nwant:\n%s", aga, agaLines(want))
			}

			_, om := get(t, h, omAccept)
			name, le, v, infV := "aga_forward_latency_us", "2500.0", "2000.0", "8000.0"
			if naming == schema.Conventional {
				name, le, v, infV = "aga_forward_latency_seconds", "0.0025", "0.002", "0.008"
			}
			tr1, sp1 := pipeline.TraceID(exEpoch, 1), pipeline.SpanID(exEpoch, 1)
			tr3, sp3 := pipeline.TraceID(exEpoch, 3), pipeline.SpanID(exEpoch, 3)
			for _, line := range []string{
				fmt.Sprintf(`%s_bucket{layer="0",producer="w",le="%s"} 2 # {span_id="%x",trace_id="%x"} %s 10.000000001`, name, le, sp1, tr1, v),
				fmt.Sprintf(`%s_bucket{layer="0",producer="w",le="+Inf"} 3 # {span_id="%x",trace_id="%x"} %s 10.000000003`, name, sp3, tr3, infV),
			} {
				if !bytes.Contains(om, []byte(line+"\n")) {
					t.Errorf("OpenMetrics lacks\n%s\nin\n%s", line, grepLines(om, name+"_bucket"))
				}
			}
			if n := bytes.Count(om, []byte("trace_id=")); n != 2 {
				t.Errorf("%d exemplars in OpenMetrics, want 2", n)
			}
			if n := bytes.Count(om, []byte(name+`_bucket{layer="0",producer="w",le="+Inf"}`)); n != 1 {
				t.Errorf("%d +Inf buckets, want 1", n)
			}

			resp, pb := get(t, h, `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`)
			dec := expfmt.NewDecoder(bytes.NewReader(pb), expfmt.ResponseFormat(resp.Header))
			n := 0
			for {
				var mf dto.MetricFamily
				if err := dec.Decode(&mf); err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatal(err)
					}
					break
				}
				for _, m := range mf.Metric {
					if m.Histogram != nil {
						for _, b := range m.Histogram.Bucket {
							if b.Exemplar != nil {
								n++
								if mf.GetName() != name {
									t.Errorf("exemplar on %s", mf.GetName())
								}
							}
						}
					}
				}
			}
			if n != 2 {
				t.Errorf("%d exemplars over protobuf, want 2", n)
			}
			// Last: it skips where promtool is missing. promtool check
			// metrics parses the text format only (2.42 rejects any
			// OpenMetrics exposition, exemplars or not).
			if got, w := PromtoolCheck(t, text), PromtoolCheck(t, want); strings.Join(got, "\n") != strings.Join(w, "\n") {
				t.Errorf("promtool check metrics: %q, want %q", got, w)
			}
		})
	}
}

func agaLines(text []byte) string {
	var out []string
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "aga_") || strings.HasPrefix(l, "# HELP aga_") || strings.HasPrefix(l, "# TYPE aga_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func grepLines(text []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(text), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Write allocates nothing for forwards that leave no exemplar, nor for slow
// ones once their histogram has its exemplar slots.
func TestExemplarWriteAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"per layer", Options{SpanKeep: keepOpts(100)}},
		{"per producer, native", Options{SpanKeep: keepOpts(100), ProducerHistograms: true, Native: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(tc.opts)
			p := producer("w", 0)
			batch := make([]pipeline.Event, 256)
			for i := range batch {
				batch[i] = timedFwd(p, int32(i%3), uint64(i), int64(i/50), float64(100+i%1000*5))
			}
			batch = append(batch, alertEvent("w", "resolved"))
			e.Write(context.Background(), batch) // layers, native buckets and exemplar slots exist
			if n := testing.AllocsPerRun(20, func() { e.Write(context.Background(), batch) }); n != 0 {
				t.Errorf("%v allocations per batch", n)
			}
		})
	}
}

// With SpanStamped (the agent's wiring) the exporter runs no keeper of its
// own: the dispatcher's decision on the event is what counts, so a forward
// stamped slow leaves an exemplar and one stamped for any other reason does
// not, whatever its latency.
func TestExemplarsFromStampedDecision(t *testing.T) {
	p := producer("w", 0)
	stamped := func(ev pipeline.Event, r pipeline.SpanReason) pipeline.Event { ev.Span = r; return ev }
	e := New(Options{SpanStamped: true})
	if e.Kinds().Has(pipeline.KindAgent) {
		t.Error("KindAgent requested without a keeper of its own")
	}
	e.Write(context.Background(), []pipeline.Event{
		stamped(timedFwd(p, 0, 1, 10, 2000), pipeline.SpanSlow),
		stamped(timedFwd(p, 0, 2, 10, 4000), pipeline.SpanAlert),
		stamped(timedFwd(p, 0, 3, 10, 7000), pipeline.SpanCapped),
		timedFwd(p, 0, 4, 10, 300), // not stamped
	})
	mfs, _ := e.Gather()
	got := latencyExemplars(t, mfs, schema.Compat, map[string]string{"producer": "w", "layer": "0"})
	if len(got) != 1 || got[2500] == nil {
		t.Fatalf("exemplars %v, want only le=2500's", got)
	}
	checkExemplar(t, 2500, got[2500], wantEx{1, 10, 2000}, 1)
}
