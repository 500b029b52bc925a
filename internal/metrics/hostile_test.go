package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
	agatest "github.com/agaobs/agaobs/internal/testutil"
)

// hostileStrings are identity values an untrusted producer may write:
// invalid UTF-8, control characters, exposition syntax, 400 KB.
var hostileStrings = []string{
	"w\xff", "\xfe\xfd", "ctl\x00\x01\x1b[31m\x7f\u0085", "line\nbreak\r\n", `quote" brace} comma,`, `back\slash\`,
	strings.Repeat("x\xff\"\\\n", 80_000), "\xed\xa0\x80surrogate", "a\xc3",
}

func hostile(i int) string { return hostileStrings[i%len(hostileStrings)] }

// hostileProducer has a hostile name, identity and ring file name.
func hostileProducer(name string, i int) *pipeline.Producer {
	p := pipeline.NewProducer(name, name+"/key", 5000+i, uint32(20+i), "agaobs-\xff\xfe-"+hostile(i+1), pipeline.Identity{
		Producer: name, Role: hostile(i), Rank: ptr(i), WorldSize: ptr(2), Model: hostile(i + 1), AGAVersion: hostile(i + 2),
		HiddenDim: ptr(64), Device: hostile(i + 3), Pod: hostile(i + 4), Namespace: hostile(i + 5), Container: hostile(i + 6),
	})
	p.PodUID, p.ContainerID = hostile(i+7), hostile(i+8)
	return p
}

// hostileRegistry is the agent's registry over hostile producers, with
// every AGA family and every self-metric collector of this package holding
// series.
func hostileRegistry(t *testing.T, naming schema.Naming, native bool) *Registry {
	t.Helper()
	names := []string{"w\xff", "w\xfe", "w\uFFFD", "ok", "\n\"\\", hostileStrings[6], "ctl\x00\x1b"}
	e := New(Options{Naming: naming, Native: native, ConstLabels: map[string]string{"cluster": "c\xff\n"}, Node: "node\xff\"",
		MaxLayersPerProducer: 2,
		ProducerGPUs:         func(int) []string { return []string{"GPU-\xff", hostileStrings[6]} }})
	var infos []ringRow
	for i, name := range names {
		p := hostileProducer(name, i)
		evs := []pipeline.Event{{Kind: pipeline.KindLifecycle, Producer: p, Lifecycle: &pipeline.Lifecycle{Type: pipeline.ProducerAppeared}}}
		for layer := int32(0); layer < 4; layer++ { // layers 2, 3: "other"
			evs = append(evs, fwd(p, layer, layer%2 == 0, 0.5, 1.5, 120))
		}
		// A forward whose NaN gate Decode dropped.
		ev := fwd(p, 0, true, 0, 1, 10)
		ev.Forward = pipeline.Forward{}.WithApplied(ev.Forward.Applied()).WithLayer(ev.Forward.Layer())
		ev.Invalid = 1 << pipeline.InvalidGate
		evs = append(evs, ev,
			pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p, Retrieval: retrieval(pipeline.Retrieval{
				Scores: []float64{0.5}, IDs: []string{hostile(i)}}.WithLayer(1).WithResults(0).WithInjected(2).WithBudget(0))},
			pipeline.Event{Kind: pipeline.KindStatus, Producer: p, Status: &pipeline.Status{
				KVStore:        &pipeline.KVStoreStatus{Count: ptr(3.0), MaxSlots: ptr(8.0), Pinned: ptr(1.0)},
				SlotChangeRate: ptr(0.1), Build: &pipeline.Build{Version: hostile(i), Device: hostile(i + 1), MaxSlots: ptr(8)}}},
		)
		// Operations that differ only in invalid bytes, and hostile ones.
		for _, op := range append([]string{"op\xff", "op\xfe", "op\uFFFD"}, hostileStrings...) {
			evs = append(evs, pipeline.Event{Kind: pipeline.KindAudit, Producer: p, Audit: &pipeline.Audit{Operation: op, Success: i%2 == 0}})
		}
		if err := e.Write(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
		if name == "w\xfe" || name == "w\uFFFD" {
			continue // the ring consumer keeps names apart as label values
		}
		for _, class := range []string{"hot", "audit"} {
			infos = append(infos, ringRow{Producer: name, Class: class, State: "live", HostPID: 5000 + i, Consumed: 9})
		}
	}
	self := selfmetrics.NewSet()
	self.Add("rings", NewRingsCollector(snapshotOf(infos)))
	self.Add("pipeline", NewPipelineCollector(func() []pipeline.SinkStats { return []pipeline.SinkStats{{Name: "metrics"}} }))
	self.Add("producer_gpu", NewProducerGPUCollector(snapshotOf(infos),
		func(int) map[string]uint64 { return map[string]uint64{"GPU-\xff": 1, hostileStrings[6]: 2} }))
	return NewRegistry(map[string]string{"cluster": "c\xff\n"}, e, self)
}

// logRecorder keeps the handler's error log.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

func get(t *testing.T, h http.Handler, accept string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", accept)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d: %s", accept, resp.StatusCode, rec.Body)
	}
	return resp, rec.Body.Bytes()
}

// checkExposition scrapes h in text, OpenMetrics and protobuf and checks
// that each parses, with valid label values and no duplicate series. It
// returns the text and its families.
func checkExposition(t *testing.T, h http.Handler) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	_, text := get(t, h, textAccept)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("text exposition does not parse: %v", err)
	}
	checkFamilies(t, "text", mfs)

	_, om := get(t, h, omAccept)
	if !utf8.Valid(om) || !bytes.HasSuffix(om, []byte("# EOF\n")) {
		t.Errorf("OpenMetrics exposition: valid UTF-8 %v, ends in # EOF %v", utf8.Valid(om), bytes.HasSuffix(om, []byte("# EOF\n")))
	}

	resp, pb := get(t, h, `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`)
	dec := expfmt.NewDecoder(bytes.NewReader(pb), expfmt.ResponseFormat(resp.Header))
	pbFams := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("protobuf exposition: %v", err)
			}
			break
		}
		pbFams[mf.GetName()] = &mf
	}
	checkFamilies(t, "protobuf", pbFams)
	for name, mf := range mfs {
		if p := pbFams[name]; p == nil || len(p.Metric) != len(mf.Metric) {
			t.Errorf("%s: %d series in text, protobuf has %v", name, len(mf.Metric), p)
		}
	}

	return text, mfs
}

// promtoolCheck runs `promtool check metrics` on text and returns its
// findings (lint findings, or the parse error).
func promtoolCheck(t *testing.T, text []byte) []string {
	t.Helper()
	cmd := exec.Command(agatest.RequireTool(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, _ := cmd.CombinedOutput()
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	sort.Strings(got)
	return got
}

// checkFamilies: every label value valid and bounded, no two series of a
// family with the same labels.
func checkFamilies(t *testing.T, format string, mfs map[string]*dto.MetricFamily) {
	t.Helper()
	for name, mf := range mfs {
		seen := map[string]bool{}
		for _, m := range mf.Metric {
			var key []string
			for _, l := range m.Label {
				if !utf8.ValidString(l.GetValue()) || len(l.GetValue()) > schema.MaxLabelValueLen {
					t.Errorf("%s: %s: label %s value %q invalid or longer than %d", format, name, l.GetName(), l.GetValue(), schema.MaxLabelValueLen)
				}
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(key)
			k := strings.Join(key, "\x00")
			if seen[k] {
				t.Errorf("%s: %s: duplicate series %q", format, name, k)
			}
			seen[k] = true
		}
	}
}

// compatFindings are promtool's findings on the seed's names.
var compatFindings = []string{
	`aga_forward_latency_us metric names should not contain abbreviated units`,
	`aga_knowledge_count non-histogram and non-summary metrics should not have "_count" suffix`,
	`aga_knowledge_pinned_count non-histogram and non-summary metrics should not have "_count" suffix`,
}

// Every family the exporter and this package's collectors expose, with
// hostile producer identities: the exposition parses in every format and
// promtool accepts it. Without schema.LabelValue the rings collector panics (a
// crashed agent) and the AGA families carry invalid UTF-8 (an unparseable
// target).
func TestHostileLabelsEveryFamily(t *testing.T) {
	for _, tc := range []struct {
		naming schema.Naming
		native bool
	}{{schema.Conventional, false}, {schema.Conventional, true}, {schema.Compat, false}} {
		t.Run(string(tc.naming)+map[bool]string{true: "/native"}[tc.native], func(t *testing.T) {
			reg := hostileRegistry(t, tc.naming, tc.native)
			var errLog logRecorder
			h := reg.Handler(slog.New(slog.NewTextHandler(&errLog, nil)))
			text, mfs := checkExposition(t, h)
			if s := errLog.String(); s != "" {
				t.Errorf("the handler logged errors (series dropped):\n%s", s)
			}
			wantFams := []string{"agaobs_cardinality_limited_total", "agaobs_invalid_values_total", "agaobs_ring_events_total",
				"agaobs_producer_up", "agaobs_producer_gpu_memory_bytes", "agaobs_sink_events_total"}
			for _, f := range schema.Families() {
				wantFams = append(wantFams, f.Name("aga", tc.naming))
			}
			for _, name := range wantFams {
				if mfs[name] == nil || len(mfs[name].Metric) == 0 {
					t.Errorf("no series of %s", name)
				}
			}
			// Names that differ only in invalid bytes stay apart.
			var prods []string
			for _, m := range mfs["aga_activation_rate"].GetMetric() {
				for _, l := range m.Label {
					if l.GetName() == "producer" && strings.HasPrefix(l.GetValue(), "w") {
						prods = append(prods, l.GetValue())
					}
				}
			}
			sort.Strings(prods)
			if got := strings.Join(prods, " "); got != "w\uFFFD w\uFFFD~2 w\uFFFD~3" {
				t.Errorf("producers %q, want three distinct labels", got)
			}
			// Last: it skips where promtool is missing.
			var want []string
			if tc.naming == schema.Compat {
				want = compatFindings
			}
			if got := promtoolCheck(t, text); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("promtool check metrics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
