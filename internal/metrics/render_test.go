package metrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// expfmtAGA is the reference: Gather's families (never cached) through
// expfmt, as promhttp writes them.
func expfmtAGA(t testing.TB, e *Exporter, k fmtKind) []byte {
	t.Helper()
	mfs, err := e.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		var err error
		if k == kindOM {
			_, err = expfmt.MetricFamilyToOpenMetrics(&b, mf)
		} else {
			_, err = expfmt.MetricFamilyToText(&b, mf)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// fastAGA is what the scrape path writes for the AGA families.
func fastAGA(t testing.TB, e *Exporter, k fmtKind) []byte {
	t.Helper()
	ens, ok := e.scrapeFamilies(k, nil)
	if !ok {
		t.Fatal("the fast path refused the exporter")
	}
	var b bytes.Buffer
	for _, en := range ens {
		b.Write(en.text)
	}
	return b.Bytes()
}

// sameText fails with the first line where got and want differ.
func sameText(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Fatalf("%s: line %d differs (%d vs %d lines)\n got: %q\nwant: %q", what, i+1, len(g), len(w), gl, wl)
		}
	}
	t.Fatalf("%s: differs", what)
}

func checkFast(t testing.TB, e *Exporter, what string) {
	t.Helper()
	for k, name := range map[fmtKind]string{kindText: "text", kindOM: "OpenMetrics"} {
		sameText(t, what+" "+name, fastAGA(t, e, k), expfmtAGA(t, e, k))
	}
}

// randomEvents is a batch over producers: forwards on layers beyond the
// limit and negative ones, retrievals, audits (beyond the operation
// limit), status snapshots, slow forwards leaving exemplars, producers
// appearing and forgotten, values from tiny to huge.
func randomEvents(r *rand.Rand, prods []*pipeline.Producer, seq *uint64) []pipeline.Event {
	val := func() float64 {
		switch r.IntN(6) {
		case 0:
			return 0
		case 1:
			return r.Float64()
		case 2:
			return math.Ldexp(r.Float64(), r.IntN(120)-60)
		case 3:
			return float64(r.IntN(8000))
		case 4:
			return 1
		}
		return r.Float64() * 10
	}
	ops := []string{"register", "clear", "op\xff", `q"uote`, "back\\slash", "new\nline"}
	var evs []pipeline.Event
	for n := r.IntN(40); n >= 0; n-- {
		p := prods[r.IntN(len(prods))]
		*seq++
		switch x := r.IntN(100); {
		case x < 55:
			f := pipeline.Forward{}.WithLayer(int32(r.IntN(12) - 2)).WithApplied(r.IntN(2) == 0)
			if r.IntN(5) > 0 {
				f = f.WithLatency(val() * 100)
			}
			if r.IntN(5) > 0 {
				f = f.WithGate(val() / 10)
			}
			if r.IntN(5) > 0 {
				f = f.WithEntropy(val())
			}
			ev := pipeline.Event{Kind: pipeline.KindForward, Producer: p, Forward: f, Epoch: 7, Seq: *seq}
			if r.IntN(3) == 0 {
				ev.Span = pipeline.SpanSlow
				if r.IntN(4) > 0 {
					ev.TimeNs = 1_700_000_000_000_000_000 + int64(r.IntN(1e9))
				}
			}
			evs = append(evs, ev)
		case x < 70:
			scores := make([]float64, r.IntN(3))
			for i := range scores {
				scores[i] = r.Float64()
			}
			evs = append(evs, pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p, Retrieval: retrieval(pipeline.Retrieval{Scores: scores}.
				WithLayer(int32(r.IntN(12) - 2)).WithResults(0).WithInjected(int32(r.IntN(5))).WithBudget(0))})
		case x < 80:
			op := ops[r.IntN(len(ops))]
			if r.IntN(4) == 0 {
				op = fmt.Sprintf("op-%d", r.IntN(100)) // past the 64 operations kept
			}
			evs = append(evs, pipeline.Event{Kind: pipeline.KindAudit, Producer: p, Audit: &pipeline.Audit{Operation: op, Success: r.IntN(2) == 0}})
		case x < 90:
			st := &pipeline.Status{SlotChangeRate: ptr(val())}
			if r.IntN(2) == 0 {
				st.KVStore = &pipeline.KVStoreStatus{Count: ptr(float64(r.IntN(300))), MaxSlots: ptr(256.0), Pinned: ptr(val())}
			}
			if r.IntN(3) == 0 {
				st.Build = &pipeline.Build{Version: fmt.Sprintf("4.%d\xff", r.IntN(3)), MaxSlots: ptr(r.IntN(9))}
			}
			evs = append(evs, pipeline.Event{Kind: pipeline.KindStatus, Producer: p, Status: st})
		case x < 95:
			evs = append(evs, pipeline.Event{Kind: pipeline.KindLifecycle, Producer: p, Lifecycle: &pipeline.Lifecycle{Type: pipeline.ProducerAppeared}})
		default:
			evs = append(evs, pipeline.Event{Kind: pipeline.KindLifecycle, Producer: p, Lifecycle: &pipeline.Lifecycle{Type: pipeline.ProducerForgotten}})
		}
	}
	return evs
}

// bumpCounts makes counts past 1e6 (where expfmt writes 1e+06) and 2^53,
// as months of events would, and tells the caches.
func bumpCounts(e *Exporter, r *rand.Rand) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.producers {
		for _, l := range s.byLayer {
			l.fwd[0] += uint64(r.IntN(3e6))
			l.fwd[1] += 1 << 53
			l.retrieval += 999_999
			if l.lat.count > 0 {
				l.lat.counts[0] += 1_000_000
				l.lat.count += 1_000_000
			}
		}
		s.score.counts[len(s.score.counts)-1] += 1 << 54
		s.score.count += 1 << 54
	}
	for i := range e.famGen {
		e.famGen[i]++
	}
}

func fastOptions() map[string]Options {
	gpus := func(pid int) []string { return []string{fmt.Sprintf("GPU-%d", pid%3), "GPU-\xff"} }
	return map[string]Options{
		"compat":   {ConstLabels: map[string]string{"cluster": "c\"1\\\n"}, Node: "n\xff", ProducerGPUs: gpus, MaxLayersPerProducer: 6, SpanStamped: true},
		"conv":     {Naming: schema.Conventional, Native: true, ConstLabels: map[string]string{"aaa": "x", "zzz": "y"}, MaxLayersPerProducer: 6, SpanStamped: true},
		"prodhist": {ProducerHistograms: true, Native: true, MaxLayersPerProducer: 4, SpanStamped: true, ConstLabels: map[string]string{"node": "n1"}, Node: "n1"},
		"plain":    {Prefix: "x:y", MaxLayersPerProducer: 100},
	}
}

// The fast path writes what expfmt writes for Gather's families, in text
// and OpenMetrics, after every batch of random events: a cached family the
// batch changed (a stale cache) or a series out of order fails here.
func TestFastRenderMatchesExpfmt(t *testing.T) {
	for name, opts := range fastOptions() {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(name))))
			e := New(opts)
			prods := []*pipeline.Producer{producer("worker-tp0", 0), producer("worker-tp1", 1), hostileProducer("w\xff\"{}", 2),
				hostileProducer("w\uFFFD\"{}", 3), producer("a", 4)}
			checkFast(t, e, "empty")
			var seq uint64
			for step := 0; step < 300; step++ {
				if err := e.Write(context.Background(), randomEvents(r, prods, &seq)); err != nil {
					t.Fatal(err)
				}
				if step%50 == 49 {
					bumpCounts(e, r)
				}
				if step%7 == 3 {
					// A producer's identity changes without an event.
					p := prods[r.IntN(len(prods))]
					id := *p.Identity()
					id.AGAVersion, id.Model = fmt.Sprintf("4.%d", step), "m\xfe"+fmt.Sprint(step)
					p.SetIdentity(id)
				}
				checkFast(t, e, fmt.Sprintf("step %d", step))
			}
		})
	}
}

// The float formats against expfmt's, through one-series families.
func TestFastFloats(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 2, 0.1, 1.0 / 3, 123456, 999999, 1e6, 1e6 + 1, 1234567, 1 << 53, 1<<53 + 1, 1e21, 1e22,
		5e-324, math.MaxFloat64, -2.5, 1e-5, 0.0001, math.NaN(), math.Inf(1), math.Inf(-1)}
	for _, v := range vals {
		for k, kn := range map[fmtKind]string{kindText: "text", kindOM: "om"} {
			got := string(appendFloat(nil, k, v))
			name, help := "g", ""
			var b bytes.Buffer
			mf := &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}}}
			if k == kindOM {
				expfmt.MetricFamilyToOpenMetrics(&b, mf)
			} else {
				expfmt.MetricFamilyToText(&b, mf)
			}
			lines := strings.Split(b.String(), "\n")
			if want := strings.TrimPrefix(lines[2], "g "); got != want {
				t.Errorf("%s %v: %q, expfmt %q", kn, v, got, want)
			}
		}
	}
	for _, c := range []uint64{0, 1, 9, 10, 999_999, 1_000_000, 1_000_001, 1_234_567, 1 << 53, 1<<53 + 1, math.MaxUint64} {
		for k := range numKinds {
			if got, want := string(appendCount(nil, k, c)), string(appendFloat(nil, k, float64(c))); got != want {
				t.Errorf("kind %d count %d: %q, want %q", k, c, got, want)
			}
		}
	}
}

// detRegistry is a Registry whose self-metrics do not change between
// scrapes (no Go or process collector), so two handlers' bodies compare.
func detRegistry(e *Exporter, constLabels prometheus.Labels) *Registry {
	reg := prometheus.NewRegistry()
	self := selfmetrics.NewSet()
	self.Add("rings", NewRingsCollector(snapshotOf([]ringRow{{Producer: "worker-tp0", Class: "hot", State: "live", Consumed: 7}})))
	if e != nil {
		self.Add("exporter", e.Collector())
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aga_aaa_between", Help: "Sorts among the AGA families."}, []string{"x"})
	g.WithLabelValues("1").Set(3)
	z := prometheus.NewCounter(prometheus.CounterOpts{Name: "zz_last_total", Help: "Sorts last."})
	z.Add(7)
	prometheus.WrapRegistererWith(constLabels, reg).MustRegister(g, z)
	reg.MustRegister(deterministic{self})
	return &Registry{reg: reg, exporter: e, Self: self}
}

// deterministic drops agaobs_collector_duration_seconds, which changes
// on every scrape.
type deterministic struct{ s *selfmetrics.Set }

func (d deterministic) Describe(ch chan<- *prometheus.Desc) { d.s.Describe(ch) }
func (d deterministic) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { d.s.Collect(all); close(all) }()
	for m := range all {
		if !strings.Contains(m.Desc().String(), "agaobs_collector_duration_seconds") {
			ch <- m
		}
	}
}

type response struct {
	code    int
	header  http.Header
	body    []byte // decompressed
	members int    // gzip members
}

func serve(t *testing.T, h http.Handler, accept, encoding, query string) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics"+query, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	out := response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if rec.Header().Get("Content-Encoding") == "gzip" {
		br := bytes.NewReader(out.body) // an io.ByteReader: gzip reads no further than a member
		zr, err := gzip.NewReader(br)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		var plain bytes.Buffer
		for {
			zr.Multistream(false)
			if _, err := io.Copy(&plain, zr); err != nil {
				t.Fatalf("gzip member %d: %v", out.members, err)
			}
			out.members++
			if err := zr.Reset(br); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		out.body = plain.Bytes()
	}
	return out
}

// The fast handler answers as promhttp.HandlerFor(Registry) does: status,
// Content-Type, Content-Encoding, Vary and (decompressed) body, whatever
// the Accept and Accept-Encoding, the AGA families interleaved by name
// with the self-metrics; gzip bodies are one valid gzip member.
func TestScrapeHandlerMatchesPromhttp(t *testing.T) {
	accepts := []string{"", textAccept, omAccept, "application/openmetrics-text", "application/openmetrics-text;version=0.0.1",
		"text/plain;version=1.0.0", "text/plain;version=0.0.4;escaping=underscores", omAccept + ";escaping=dots", "*/*",
		"text/plain;version=1.0.0;escaping=allow-utf-8", omAccept + ";escaping=values", "application/openmetrics-text;version=2.0.0",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text", "text/html"}
	encodings := []string{"", "gzip", "identity", "gzip;q=0.5, identity;q=0.9", "*", "deflate", "gzip;q=0", "identity;q=0", "*;q=0",
		"br, gzip;q=0.8", "gzip, identity", "gzip;q=1.0", "x;y", "gzip ;q=0.3, *;q=0.2", "GZIP", "gzip;q=0.", "identity;q=0, gzip;q=0.001"}
	for name, opts := range fastOptions() {
		t.Run(name, func(t *testing.T) {
			e := New(opts)
			var seq uint64
			r := rand.New(rand.NewPCG(3, 4))
			prods := []*pipeline.Producer{producer("worker-tp0", 0), hostileProducer("w\xff", 1)}
			for range 20 {
				e.Write(context.Background(), randomEvents(r, prods, &seq))
			}
			reg := detRegistry(e, prometheus.Labels{"cluster": "c"})
			fast := reg.Handler(slogDiscard())
			ref := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 4, EnableOpenMetrics: true})
			for _, accept := range accepts {
				for _, enc := range encodings {
					for _, query := range []string{"", "?name[]=aga_forward_total&name[]=zz_last_total"} {
						got, want := serve(t, fast, accept, enc, query), serve(t, ref, accept, enc, query)
						what := fmt.Sprintf("Accept %q, Accept-Encoding %q%s", accept, enc, query)
						if got.code != want.code {
							t.Fatalf("%s: status %d, want %d", what, got.code, want.code)
						}
						for _, hd := range []string{"Content-Type", "Content-Encoding", "Vary"} {
							if g, w := strings.Join(got.header.Values(hd), ", "), strings.Join(want.header.Values(hd), ", "); g != w {
								t.Errorf("%s: %s %q, want %q", what, hd, g, w)
							}
						}
						sameText(t, what, got.body, want.body)
						if got.members > 1 {
							t.Errorf("%s: %d gzip members, want 1", what, got.members)
						}
					}
				}
			}
		})
	}
}

// A producer's series follow its events from scrape to scrape: counts
// grow, a forgotten producer's series go, a taken-over name starts at
// zero. The cache must never serve what a Write changed.
func TestScrapeNotStale(t *testing.T) {
	e := New(Options{ConstLabels: map[string]string{"cluster": "c"}})
	h := detRegistry(e, nil).Handler(slogDiscard())
	p, q := producer("tp0", 0), producer("tp1", 1)
	line := func(body []byte, prefix string) string {
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		return ""
	}
	fwdLine := `aga_forward_total{applied="true",cluster="c",layer="3",producer="tp0"} `
	for _, enc := range []string{"", "gzip"} {
		for _, accept := range []string{textAccept, omAccept} {
			t.Run(accept+enc, func(t *testing.T) {
				ctx := context.Background()
				e.Write(ctx, []pipeline.Event{fwd(p, 3, true, 0.5, 1, 100), fwd(q, 1, true, 0.5, 1, 100)})
				first := line(serve(t, h, accept, enc, "").body, fwdLine)
				if first == "" {
					t.Fatal("no series of tp0")
				}
				again := line(serve(t, h, accept, enc, "").body, fwdLine)
				if again != first {
					t.Fatalf("unchanged state, changed series: %q then %q", first, again)
				}
				e.Write(ctx, []pipeline.Event{fwd(p, 3, true, 0.5, 1, 100), fwd(p, 3, true, 0.5, 1, 100)})
				after := line(serve(t, h, accept, enc, "").body, fwdLine)
				if after == first || after == "" {
					t.Fatalf("after two more forwards: %q, before %q", after, first)
				}
				// Each family kind: an audit, a status, a retrieval.
				e.Write(ctx, []pipeline.Event{
					{Kind: pipeline.KindAudit, Producer: p, Audit: &pipeline.Audit{Operation: "register" + accept + enc, Success: true}},
					{Kind: pipeline.KindStatus, Producer: p, Status: &pipeline.Status{SlotChangeRate: ptr(float64(len(accept + enc)))}},
					{Kind: pipeline.KindRetrieval, Producer: p, Retrieval: retrieval(pipeline.Retrieval{Scores: []float64{0.5}}.WithLayer(3).WithResults(0).WithInjected(int32(len(enc))).WithBudget(0))},
				})
				body := serve(t, h, accept, enc, "").body
				for _, want := range []string{`operation="register` + accept + enc + `"`, `aga_slot_change_rate{cluster="c",producer="tp0"} ` + string(appendFloat(nil, map[bool]fmtKind{true: kindOM}[accept == omAccept], float64(len(accept+enc))))} {
					if !bytes.Contains(body, []byte(want)) {
						t.Errorf("no %s after its event", want)
					}
				}
				sameText(t, "AGA families", agaOnly(body), agaOnly(fastAGA(t, e, map[bool]fmtKind{true: kindOM}[accept == omAccept])))
				// Forgotten: its series go; the name taken over starts at zero.
				e.Write(ctx, []pipeline.Event{{Kind: pipeline.KindLifecycle, Producer: p, Lifecycle: &pipeline.Lifecycle{Type: pipeline.ProducerForgotten}}})
				if body := serve(t, h, accept, enc, ""); bytes.Contains(body.body, []byte(`producer="tp0"`)) {
					t.Errorf("a forgotten producer's series remain:\n%s", grepLines(body.body, `producer="tp0"`))
				}
				p = producer("tp0", 0)
				e.Write(ctx, []pipeline.Event{fwd(p, 3, true, 0.5, 1, 100)})
				if got := line(serve(t, h, accept, enc, "").body, fwdLine); !strings.HasSuffix(got, " 1") && !strings.HasSuffix(got, " 1.0") {
					t.Errorf("a new producer under the name: %q, want 1", got)
				}
			})
		}
	}
}

// agaOnly keeps the aga_ lines of an exposition (drops the self-metrics
// and aga_aaa_between of detRegistry).
func agaOnly(b []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if (strings.HasPrefix(l, "aga_") || strings.HasPrefix(l, "# HELP aga_") || strings.HasPrefix(l, "# TYPE aga_")) && !strings.Contains(l, "aga_aaa_between") {
			out = append(out, l)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

// build_info and producer_info read the identity and the GPU collector,
// which change without an event: a scrape shows the change at once.
func TestScrapeVolatileFamilies(t *testing.T) {
	gpus := "GPU-a"
	var mu sync.Mutex
	e := New(Options{ProducerGPUs: func(int) []string { mu.Lock(); defer mu.Unlock(); return []string{gpus} }})
	p := producer("tp0", 0)
	e.Write(context.Background(), []pipeline.Event{fwd(p, 0, true, 0.5, 1, 100)})
	h := detRegistry(e, nil).Handler(slogDiscard())
	for _, enc := range []string{"", "gzip"} {
		body := serve(t, h, textAccept, enc, "").body
		if !bytes.Contains(body, []byte(`gpu_uuids="`+gpus+`"`)) || !bytes.Contains(body, []byte(`aga_build_info{bottleneck_dim="64",device="cuda:0",hidden_dim="4096",max_slots="256",producer="tp0",version="`+p.Identity().AGAVersion+`"} 1`)) {
			t.Fatalf("before:\n%s", grepLines(body, "_info"))
		}
		id := *p.Identity()
		id.AGAVersion = id.AGAVersion + enc + "x"
		p.SetIdentity(id)
		mu.Lock()
		gpus += enc + "b"
		mu.Unlock()
		body = serve(t, h, textAccept, enc, "").body
		if !bytes.Contains(body, []byte(`gpu_uuids="`+gpus+`"`)) || !bytes.Contains(body, []byte(`version="`+id.AGAVersion+`"`)) {
			t.Errorf("after the identity and GPUs changed:\n%s", grepLines(body, "_info"))
		}
	}
}

// The self-metrics are gathered on every scrape.
func TestScrapeSelfMetricsFresh(t *testing.T) {
	e := New(Options{})
	p := producer("tp0", 0)
	var mu sync.Mutex
	stats := []pipeline.SinkStats{{Name: "metrics", Written: 1}}
	self := selfmetrics.NewSet()
	self.Add("pipeline", NewPipelineCollector(func() []pipeline.SinkStats {
		mu.Lock()
		defer mu.Unlock()
		return append([]pipeline.SinkStats(nil), stats...)
	}))
	h := NewRegistry(nil, e, self).Handler(slogDiscard())
	e.Write(context.Background(), []pipeline.Event{fwd(p, 0, true, 0.5, 1, 100)})
	for i := 1; i < 4; i++ {
		mu.Lock()
		stats[0].Written = uint64(i)
		mu.Unlock()
		for _, enc := range []string{"", "gzip"} {
			if body := serve(t, h, textAccept, enc, "").body; !bytes.Contains(body, []byte(fmt.Sprintf("agaobs_sink_events_total{sink=\"metrics\"} %d\n", i))) {
				t.Fatalf("scrape %d: %s", i, grepLines(body, "agaobs_sink_events_total"))
			}
		}
	}
}

// Scrapes while Write runs (go test -race): every body parses, in every
// format, and a counter never goes down from one scrape to the next.
func TestScrapeConcurrentWrite(t *testing.T) {
	e := New(Options{ConstLabels: map[string]string{"cluster": "c"}, MaxLayersPerProducer: 8, SpanStamped: true})
	h := NewRegistry(map[string]string{"cluster": "c"}, e, nil).Handler(slogDiscard())
	prods := []*pipeline.Producer{producer("tp0", 0), producer("tp1", 1), producer("tp2", 2)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg, writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		r := rand.New(rand.NewPCG(5, 6))
		var seq uint64
		for ctx.Err() == nil {
			evs := randomEvents(r, prods, &seq)
			kept := evs[:0]
			for _, ev := range evs {
				if ev.Kind != pipeline.KindLifecycle { // counters must only grow
					kept = append(kept, ev)
				}
			}
			e.Write(ctx, kept)
		}
	}()
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			accept := []string{textAccept, omAccept, textAccept}[g]
			enc := []string{"", "", "gzip"}[g]
			last := map[string]float64{}
			for i := 0; i < 40; i++ {
				res := serve(t, h, accept, enc, "")
				var mfs map[string]*dto.MetricFamily
				if accept == textAccept {
					var err error
					parser := expfmt.NewTextParser(model.UTF8Validation)
					mfs, err = parser.TextToMetricFamilies(bytes.NewReader(res.body))
					if err != nil {
						t.Errorf("scrape %d does not parse: %v", i, err)
						return
					}
				} else if !bytes.HasSuffix(res.body, []byte("# EOF\n")) {
					t.Errorf("OpenMetrics scrape %d lacks # EOF", i)
					return
				}
				for _, m := range mfs["aga_forward_total"].GetMetric() {
					key := fmt.Sprint(m.Label)
					if v := m.Counter.GetValue(); v < last[key] {
						t.Errorf("%s went down: %v after %v", key, v, last[key])
					} else {
						last[key] = v
					}
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	writer.Wait()
}

// An exporter whose names the fast path cannot write as expfmt does
// (a const label named like the exporter's own) is served by promhttp
// from Gather, unchanged.
func TestScrapeFallback(t *testing.T) {
	for _, opts := range []Options{{ConstLabels: map[string]string{"layer": "x"}}, {Prefix: "not-valid"}, {ConstLabels: map[string]string{"le": "1"}}} {
		e := New(opts)
		if e.fast {
			t.Errorf("%+v: fast path on", opts)
		}
		e.Write(context.Background(), []pipeline.Event{fwd(producer("tp0", 0), 0, true, 0.5, 1, 100)})
		reg := detRegistry(e, nil)
		ref := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
		for _, enc := range []string{"", "gzip"} {
			got, want := serve(t, reg.Handler(slogDiscard()), textAccept, enc, ""), serve(t, ref, textAccept, enc, "")
			sameText(t, fmt.Sprintf("%+v", opts), got.body, want.body)
		}
	}
}

// More scrapes than the in-flight limit at once are answered 503, as
// promhttp's MaxRequestsInFlight does.
func TestScrapeInFlightLimit(t *testing.T) {
	e := New(Options{})
	block := make(chan struct{})
	entered := make(chan struct{}, maxScrapesInFlight)
	self := selfmetrics.NewSet()
	self.Add("slow", slowCollector{block, entered})
	h := NewRegistry(nil, e, self).Handler(slogDiscard())
	var wg sync.WaitGroup
	for range maxScrapesInFlight {
		wg.Add(1)
		go func() { defer wg.Done(); serve(t, h, textAccept, "", "") }()
	}
	for range maxScrapesInFlight {
		<-entered
	}
	res := serve(t, h, textAccept, "", "")
	close(block)
	wg.Wait()
	if res.code != http.StatusServiceUnavailable || !strings.Contains(string(res.body), "Limit of concurrent requests reached (4), try again later.") {
		t.Errorf("status %d %q", res.code, res.body)
	}
}

type slowCollector struct {
	block   chan struct{}
	entered chan struct{}
}

func (slowCollector) Describe() []selfmetrics.Family { return nil }
func (c slowCollector) Update(chan<- prometheus.Metric) error {
	c.entered <- struct{}{}
	<-c.block
	return nil
}
