package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/metrics"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// docs/cardinality.md's tables are counted here, from the real exporter and
// a real agent, never by hand: the test fails when the document and the
// count part, and -update rewrites the document.
const (
	beginCardinality = "<!-- BEGIN CARDINALITY (generated: go test ./internal/agent -run TestCardinalityDoc -update) -->\n"
	endCardinality   = "<!-- END CARDINALITY -->"
)

// The sizes of the document: hooked layers per producer, producers per
// node, nodes per Prometheus.
var (
	cardLayers    = []int{3, 32, 96}
	cardProducers = 8
	cardFleets    = []int{100, 1000}
)

// headBytesPerSeries is the resident memory of Prometheus per head series,
// measured by TestPrometheusHeadMemory (docs/cardinality.md, "Memory"):
// Prometheus 2.42 gave 3179 B (134 k series), 3519 B (348 k) and 3733 B
// at the margin; rounded up.
const headBytesPerSeries = 3600

// auditOperations are aga-core's audit operations (internal/demo emits
// each); a producer reports each of them successful, so each is one
// series of aga_audit_operations_total.
var auditOperations = []string{"attach", "detach", "register", "unregister", "register_batch", "load_from", "clear",
	"streaming_session_start", "streaming_knowledge_update", "streaming_knowledge_remove", "streaming_session_end"}

// histMode is how Prometheus stores a histogram it scrapes.
type histMode int

const (
	classicOnly      histMode = iota // classic buckets: one series per bucket, _sum, _count
	nativeOnly                       // native histograms ingested (the feature's default): one series
	nativeAndClassic                 // scrape_classic_histograms: true: both
)

// seriesOf counts the series Prometheus makes of one exposed metric.
func seriesOf(typ dto.MetricType, m *dto.Metric, mode histMode) int {
	switch typ {
	case dto.MetricType_SUMMARY:
		return len(m.Summary.Quantile) + 2
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		h := m.Histogram
		native := h.Schema != nil
		classic := len(h.Bucket) + 2 // _sum, _count
		if n := len(h.Bucket); n == 0 || !math.IsInf(h.Bucket[n-1].GetUpperBound(), 1) {
			classic++ // +Inf
		}
		switch {
		case native && mode == nativeOnly:
			return 1
		case native && mode == nativeAndClassic:
			return classic + 1
		}
		return classic
	}
	return 1
}

// countFamilies returns the series of each family.
func countFamilies(mfs []*dto.MetricFamily, mode histMode) map[string]int {
	out := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			out[mf.GetName()] += seriesOf(mf.GetType(), m, mode)
		}
	}
	return out
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// producerEvents are the events of one producer hooking layers layers
// with every family populated: on every layer an applied and a bypassed
// forward with gate, entropy and latency, and a retrieval with scores;
// every audit operation; a status snapshot with the KV store and build.
func producerEvents(p *pipeline.Producer, layers int) []pipeline.Event {
	evs := []pipeline.Event{{Kind: pipeline.KindLifecycle, Producer: p, Lifecycle: &pipeline.Lifecycle{Type: pipeline.ProducerAppeared}}}
	for l := 0; l < layers; l++ {
		for _, applied := range []bool{true, false} {
			f := pipeline.Forward{}.WithGate(0.4).WithEntropy(1.5).WithLatency(120).WithLayer(int32(l)).WithApplied(applied)
			evs = append(evs, pipeline.Event{Kind: pipeline.KindForward, Producer: p, Forward: f})
		}
		r := pipeline.Retrieval{Scores: []float64{0.5, 0.9}}.WithLayer(int32(l)).WithResults(2).WithInjected(1).WithBudget(10)
		evs = append(evs, pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p, Retrieval: &r})
	}
	for _, op := range auditOperations {
		evs = append(evs, pipeline.Event{Kind: pipeline.KindAudit, Producer: p, Audit: &pipeline.Audit{Operation: op, Success: true}})
	}
	count, slots, pinned, util, rate := 12.0, 256.0, 2.0, 12.0/256, 0.1
	evs = append(evs, pipeline.Event{Kind: pipeline.KindStatus, Producer: p, Status: &pipeline.Status{
		KVStore:        &pipeline.KVStoreStatus{Count: &count, MaxSlots: &slots, Pinned: &pinned, Utilization: &util},
		SlotChangeRate: &rate, Build: &pipeline.Build{Version: "4.4.1"}}})
	return evs
}

func cardIdentity(rank int) shm.Identity {
	world, hidden, bottleneck, slots := cardProducers, 4096, 64, 256
	return shm.Identity{Producer: fmt.Sprintf("worker-tp%d", rank), Role: "worker", Instance: rank, Rank: &rank, WorldSize: &world,
		Model: "llama-3-8b", AGAVersion: "4.4.1", HiddenDim: &hidden, BottleneckDim: &bottleneck, MaxSlots: &slots,
		Device: fmt.Sprintf("cuda:%d", rank), Pod: "infer-0", Namespace: "ml", Container: "server"}
}

// exporterSeries counts the AGA series of producers producers hooking
// layers layers each, per family, through the real exporter.
func exporterSeries(t testing.TB, opts metrics.Options, producers, layers int, mode histMode) map[string]int {
	t.Helper()
	opts.ConstLabels = map[string]string{"node": "node-1"}
	e := metrics.New(opts)
	for r := 0; r < producers; r++ {
		id := cardIdentity(r)
		p := pipeline.NewProducer(id.Producer, id.Producer, 4000+r, 10, "agaobs-10-4026531836-"+fmt.Sprint(r), pipeline.Identity{
			Producer: id.Producer, Role: id.Role, Rank: id.Rank, WorldSize: id.WorldSize, Model: id.Model, AGAVersion: id.AGAVersion,
			HiddenDim: id.HiddenDim, BottleneckDim: id.BottleneckDim, MaxSlots: id.MaxSlots, Device: id.Device,
			Pod: id.Pod, Namespace: id.Namespace, Container: id.Container})
		if err := e.Write(context.Background(), producerEvents(p, layers)); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := e.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return countFamilies(mfs, mode)
}

// nodeSelfSeries runs an agent with the default configuration (listeners
// on loopback, GPU and eBPF off: counted apart) and returns the series of
// its registry beside the AGA families, per family, with no producer and
// with producers producers writing real rings (hot and audit) that cover
// every AGA family on layers layers; and the AGA series the agent's
// exporter made of them.
// eventDriven families have series for what happened, not for what
// exists (an audit record's operation, an active alert): their count at
// a given instant depends on timing, so the tables leave them out.
var eventDriven = map[string]bool{"agaobs_audit_records_total": true, "aga_alerts": true}

func nodeSelfSeries(t *testing.T, producers, layers int) (idle, loaded, aga map[string]int) {
	t.Helper()
	cfg := config.Default()
	tmp := t.TempDir()
	cfg.RingDir, cfg.StatePath = filepath.Join(tmp, "rings"), filepath.Join(tmp, "state.db")
	cfg.AuditStoragePath, cfg.LogFile, cfg.LogStderr = filepath.Join(tmp, "audit.db"), filepath.Join(tmp, "events.log"), false
	cfg.PrometheusHost, cfg.PrometheusPort, cfg.HealthHost, cfg.HealthPort = "127.0.0.1", 0, "127.0.0.1", 0
	cfg.AdminListenAddress, cfg.NodeName = "127.0.0.1:0", "node-1"
	cfg.GPUEnabled, cfg.BPFEnabled, cfg.AgentGOMAXPROCS = false, false, 0
	cfg.RingRescanInterval = config.Duration(50 * time.Millisecond)
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	self := func() (map[string]int, map[string]int) {
		mfs, err := a.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		exp, _ := a.exporter.Gather()
		agaNames := map[string]bool{}
		for _, mf := range exp {
			agaNames[mf.GetName()] = true
		}
		s, g := map[string]int{}, map[string]int{}
		for name, n := range countFamilies(mfs, classicOnly) {
			if eventDriven[name] {
				continue // counted apart: their series follow what happened
			}
			if agaNames[name] {
				g[name] = n
			} else {
				s[name] = n
			}
		}
		return s, g
	}
	// stable waits until the counts satisfy ok and stay the same for
	// 2.5 s: more than two rounds of the health checker and the alert
	// engine (1 s each), whose series appear at their first round.
	stable := func(ok func(s, g map[string]int) bool) (map[string]int, map[string]int) {
		var prev string
		var since time.Time
		var s, g map[string]int
		if !testutil.WaitFor(60*time.Second, func() bool {
			s, g = self()
			if key := fmt.Sprint(s, g); key != prev || !ok(s, g) {
				prev, since = key, time.Now()
			}
			return time.Since(since) >= 2500*time.Millisecond
		}) {
			t.Fatalf("the agent's series did not settle: %v %v", s, g)
		}
		return s, g
	}
	idle, _ = stable(func(s, g map[string]int) bool { return len(g) == 0 && a.consumer.Passes() > 0 })

	var writers []*shm.Writer
	defer func() {
		for _, w := range writers {
			w.Close()
		}
	}()
	now := time.Now().UnixNano()
	for r := 0; r < producers; r++ {
		id := cardIdentity(r)
		hot, err := shm.CreateWriter(cfg.RingDir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 16, Instance: uint32(r), Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, hot)
		aud, err := shm.CreateWriter(cfg.RingDir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: 1 << 16, Instance: uint32(r), Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, aud)
		for l := 0; l < layers; l++ {
			for _, applied := range []uint32{shm.FwdApplied, 0} {
				f := shm.Forward{GateMean: 0.4, EntropyMean: 1.5, LatencyUs: 120, Layer: int32(l),
					Fields: applied | shm.FwdHasGate | shm.FwdHasEntropy | shm.FwdHasLatency | shm.FwdHasLayer}
				if err := hot.EmitForward(now, &f); err != nil {
					t.Fatal(err)
				}
			}
			ret := shm.Retrieval{Layer: int32(l), ResultsCount: 2, InjectedCount: 1, BudgetRemaining: 10,
				Fields: shm.RetHasLayer | shm.RetHasResults | shm.RetHasInjected | shm.RetHasBudget}
			if err := hot.EmitRetrieval(now, &ret, []float64{0.5, 0.9}, nil); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := json.Marshal(map[string]any{"kv_store": map[string]any{"count": 12, "max_slots": 256, "utilization": 12.0 / 256, "pinned": 2},
			"slot_change_rate": 0.1, "build": map[string]any{"version": "4.4.1"}})
		if err := hot.EmitStatus(now, st); err != nil {
			t.Fatal(err)
		}
		for _, op := range auditOperations {
			b, _ := json.Marshal(map[string]any{"operation": op, "details": map[string]any{}, "success": true, "error": nil,
				"timestamp": float64(now) / 1e9})
			if err := aud.EmitAudit(now, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Heartbeats keep the producers live (and healthy) while the agent settles.
	hbCtx, hbStop := context.WithCancel(ctx)
	defer hbStop()
	go func() {
		for {
			for _, w := range writers {
				w.Heartbeat()
			}
			select {
			case <-hbCtx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	want := sum(exporterSeries(t, metrics.Options{}, producers, layers, classicOnly))
	loaded, aga = stable(func(s, g map[string]int) bool { return sum(g) == want })
	return idle, loaded, aga
}

// gpuSeries counts the series of the GPU collector's golden exposition of
// a healthy node (internal/gpu/testdata/healthy.prom): per GPU (series with
// a uuid label over the GPUs) and per node (the others).
func gpuSeries(t *testing.T) (perGPU, perNode, gpus int) {
	t.Helper()
	f, err := os.Open("../gpu/testdata/healthy.prom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	uuids := map[string]bool{}
	withUUID := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.Index(line, `uuid="`); i >= 0 {
			withUUID++
			rest := line[i+len(`uuid="`):]
			uuids[rest[:strings.IndexByte(rest, '"')]] = true
		} else {
			perNode++
		}
	}
	if len(uuids) == 0 || withUUID%len(uuids) != 0 {
		t.Fatalf("healthy.prom: %d series with a uuid over %d GPUs", withUUID, len(uuids))
	}
	return withUUID / len(uuids), perNode, len(uuids)
}

// cardinalityDoc renders the generated part of docs/cardinality.md.
func cardinalityDoc(t *testing.T) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	type row struct {
		name  string
		opts  metrics.Options
		mode  histMode
		names []schema.Naming
	}
	perLayer, perProducer := metrics.Options{}, metrics.Options{ProducerHistograms: true}
	native := func(o metrics.Options) metrics.Options { o.Native = true; return o }
	rows := []row{
		{"layer histograms (default)", perLayer, classicOnly, nil},
		{"`prometheus_layer_histograms: false`", perProducer, classicOnly, nil},
		{"native histograms, layer histograms", native(perLayer), nativeOnly, nil},
		{"native histograms, `prometheus_layer_histograms: false`", native(perProducer), nativeOnly, nil},
		{"native and classic (`scrape_classic_histograms: true`), layer histograms", native(perLayer), nativeAndClassic, nil},
		{"native and classic, `prometheus_layer_histograms: false`", native(perProducer), nativeAndClassic, nil},
	}
	perProd := map[string]map[int]int{} // row → layers → AGA series of one producer
	p("AGA series (`aga_*`) of one producer:\n\n| histograms | naming |")
	for _, l := range cardLayers {
		p(" %d layers |", l)
	}
	p("\n|---|---|%s\n", strings.Repeat("--:|", len(cardLayers)))
	for _, r := range rows {
		perProd[r.name] = map[int]int{}
		for _, naming := range []schema.Naming{schema.Compat, schema.Conventional} {
			o := r.opts
			o.Naming = naming
			p("| %s | %s |", r.name, naming)
			for _, l := range cardLayers {
				n := sum(exporterSeries(t, o, 1, l, r.mode))
				if prev, ok := perProd[r.name][l]; ok && prev != n {
					t.Errorf("%s: %d series compat, %d conventional at %d layers: the document assumes the naming changes no count", r.name, prev, n, l)
				}
				perProd[r.name][l] = n
				p(" %d |", n)
			}
			p("\n")
		}
	}

	p("\nBy family (one producer, compat names, classic histograms):\n\n| family | type |")
	for _, l := range cardLayers {
		p(" %d layers |", l)
	}
	for _, l := range cardLayers {
		p(" %d layers, `false` |", l)
	}
	p("\n|---|---|%s\n", strings.Repeat("--:|", 2*len(cardLayers)))
	byFam := map[bool]map[int]map[string]int{}
	for _, off := range []bool{false, true} {
		byFam[off] = map[int]map[string]int{}
		for _, l := range cardLayers {
			byFam[off][l] = exporterSeries(t, metrics.Options{ProducerHistograms: off}, 1, l, classicOnly)
		}
	}
	for _, f := range schema.Families() {
		name := f.Name("aga", schema.Compat)
		p("| `%s` | %s |", name, f.Type)
		for _, off := range []bool{false, true} {
			for _, l := range cardLayers {
				n, ok := byFam[off][l][name]
				if !ok {
					t.Errorf("%s has no series: the events do not cover every family", name)
				}
				p(" %d |", n)
			}
		}
		p("\n")
	}

	idle, loaded, aga := nodeSelfSeries(t, cardProducers, cardLayers[0])
	if want := cardProducers * perProd[rows[0].name][cardLayers[0]]; sum(aga) != want {
		t.Errorf("the agent exported %d AGA series for %d producers × %d layers, the exporter alone %d", sum(aga), cardProducers, cardLayers[0], want)
	}
	group := func(m map[string]int) (agaobs, runtime, other int) {
		for name, n := range m {
			switch {
			case strings.HasPrefix(name, "agaobs_"):
				agaobs += n
			case strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"):
				runtime += n
			default:
				other += n
				t.Logf("self-metrics family outside agaobs_, go_ and process_: %s (%d)", name, n)
			}
		}
		return
	}
	ia, ir, io := group(idle)
	la, lr, lo := group(loaded)
	self := sum(loaded)
	p("\nThe agent's own series (self-metrics: `agaobs_*`, `go_*`, `process_*`), counted on a running agent with the default configuration, GPU and eBPF off. Not counted: the event-driven series, one per audit operation and result the agent has stored (`agaobs_audit_records_total`) and one per pending or firing alert (`aga_alerts`), typically a few dozen:\n\n")
	p("| | `agaobs_*` | `go_*`, `process_*` | other | total |\n|---|--:|--:|--:|--:|\n")
	p("| no producer | %d | %d | %d | %d |\n", ia, ir, io, sum(idle))
	p("| %d producers (hot and audit ring each) | %d | %d | %d | %d |\n", cardProducers, la, lr, lo, self)
	p("| each producer, on average | %.1f | | | %.1f |\n", float64(la-ia)/float64(cardProducers), float64(self-sum(idle))/float64(cardProducers))
	perGPU, gpuNode, gpus := gpuSeries(t)
	p("\nWith `gpu_enabled` on a GPU node, add %d series per GPU and %d per node (counted in internal/gpu/testdata/healthy.prom, the GPU collector's exposition of a %d-GPU node; XID series come with XID errors), and one `agaobs_producer_gpu_memory_bytes` per producer and GPU it holds memory on.\n", perGPU, gpuNode, gpus)

	p("\nPer node (%d producers) and per Prometheus (every node scraped by one server), classic histograms:\n\n", cardProducers)
	p("| layers | histograms | per node | %s |\n|--:|---|--:|%s\n", func() string {
		var cols []string
		for _, n := range cardFleets {
			cols = append(cols, fmt.Sprintf("%d nodes: series | %d nodes: memory", n, n))
		}
		return strings.Join(cols, " | ")
	}(), strings.Repeat("--:|--:|", len(cardFleets)))
	for _, l := range cardLayers {
		for _, r := range rows[:2] {
			node := cardProducers*perProd[r.name][l] + self
			p("| %d | %s | %d |", l, r.name, node)
			for _, n := range cardFleets {
				p(" %s | %s |", human(float64(node*n)), bytesHuman(float64(node*n)*headBytesPerSeries))
			}
			p("\n")
		}
	}
	return b.String()
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func bytesHuman(v float64) string {
	if v >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", v/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", v/(1<<20))
}

func TestCardinalityDoc(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an agent with producers")
	}
	path := "../../docs/cardinality.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, beginCardinality), strings.Index(s, endCardinality)
	if i < 0 || j < i {
		t.Fatal("docs/cardinality.md lacks the generated-table markers")
	}
	want := s[:i+len(beginCardinality)] + cardinalityDoc(t) + s[j:]
	if t.Failed() {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != s {
		t.Fatal("docs/cardinality.md is out of date: run go test ./internal/agent -run TestCardinalityDoc -update")
	}
}

// TestPrometheusHeadMemory measures headBytesPerSeries with the real
// Prometheus server: it serves the AGA exposition of cardProducers
// producers per node for many nodes (every series changing at every
// scrape, as a busy producer's do), lets Prometheus scrape each series
// more than a chunk's 120 samples, and reads prometheus_tsdb_head_series
// and the server's memory. Minutes long, so only on request:
//
//	AGAOBS_PROMETHEUS_MEASURE=1 go test ./internal/agent -run TestPrometheusHeadMemory -v -timeout 40m
func TestPrometheusHeadMemory(t *testing.T) {
	if os.Getenv("AGAOBS_PROMETHEUS_MEASURE") == "" {
		t.Skip("set AGAOBS_PROMETHEUS_MEASURE=1 to measure (minutes; needs the prometheus binary)")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("no prometheus binary")
	}
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	t.Logf("%s", bytes.SplitN(out, []byte("\n"), 2)[0])
	type result struct {
		series              float64
		rss, heap, baseline float64
	}
	var results []result
	for _, c := range []struct {
		nodes, layers int
		interval      time.Duration
	}{
		{100, 3, 2 * time.Second},
		{10, 96, 3 * time.Second},
	} {
		t.Run(fmt.Sprintf("%dnodes_%dlayers", c.nodes, c.layers), func(t *testing.T) {
			r := measureHead(t, bin, c.nodes, c.layers, c.interval, 130)
			t.Logf("%d nodes × %d producers × %d layers: %.0f head series, RSS %.0f MiB (%.0f MiB before the first scrape), heap in use %.0f MiB: %.0f B/series RSS, %.0f B/series heap",
				c.nodes, cardProducers, c.layers, r.series, r.rss/(1<<20), r.baseline/(1<<20), r.heap/(1<<20),
				(r.rss-r.baseline)/r.series, r.heap/r.series)
			results = append(results, result{r.series, r.rss, r.heap, r.baseline})
		})
	}
	if len(results) == 2 {
		a, b := results[0], results[1]
		t.Logf("marginal: %.0f B/series RSS, %.0f B/series heap", (b.rss-a.rss)/(b.series-a.series), (b.heap-a.heap)/(b.series-a.series))
	}
}

type headMeasure struct{ series, rss, heap, baseline float64 }

// measureHead runs Prometheus scraping nodes copies of a node's AGA
// exposition (node label node-<i>) every interval until every series has
// samples samples, and returns the head's series and the server's memory.
func measureHead(t *testing.T, bin string, nodes, layers int, interval time.Duration, samples int) headMeasure {
	e := metrics.New(metrics.Options{ConstLabels: map[string]string{"node": "node-0", "cluster": "prod-eu-west-1"}})
	var prods []*pipeline.Producer
	for r := 0; r < cardProducers; r++ {
		id := cardIdentity(r)
		p := pipeline.NewProducer(id.Producer, id.Producer, 4000+r, 10, "agaobs-10-4026531836-"+fmt.Sprint(r), pipeline.Identity{
			Producer: id.Producer, Role: id.Role, Rank: id.Rank, WorldSize: id.WorldSize, Model: id.Model, AGAVersion: id.AGAVersion,
			HiddenDim: id.HiddenDim, BottleneckDim: id.BottleneckDim, MaxSlots: id.MaxSlots, Device: id.Device})
		e.Write(context.Background(), producerEvents(p, layers))
		prods = append(prods, p)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	var text []byte
	render := func() {
		// A round of traffic: every layer of every producer forwards
		// and retrieves, with values spread over the buckets.
		var evs []pipeline.Event
		for _, p := range prods {
			for l := 0; l < layers; l++ {
				for k := 0; k < 4; k++ {
					f := pipeline.Forward{}.WithGate(rng.Float64()).WithEntropy(0.1 + 6*rng.Float64()).WithLatency(5 + 3000*rng.Float64()).
						WithLayer(int32(l)).WithApplied(rng.IntN(3) > 0)
					evs = append(evs, pipeline.Event{Kind: pipeline.KindForward, Producer: p, Forward: f})
				}
				r := pipeline.Retrieval{Scores: []float64{rng.Float64(), rng.Float64()}}.WithLayer(int32(l)).WithInjected(int32(rng.IntN(3)))
				evs = append(evs, pipeline.Event{Kind: pipeline.KindRetrieval, Producer: p, Retrieval: &r})
			}
			evs = append(evs, pipeline.Event{Kind: pipeline.KindAudit, Producer: p,
				Audit: &pipeline.Audit{Operation: auditOperations[rng.IntN(len(auditOperations))], Success: true}})
			count, slots, rate := float64(rng.IntN(256)), 256.0, rng.Float64()
			evs = append(evs, pipeline.Event{Kind: pipeline.KindStatus, Producer: p, Status: &pipeline.Status{
				KVStore: &pipeline.KVStoreStatus{Count: &count, MaxSlots: &slots}, SlotChangeRate: &rate}})
		}
		e.Write(context.Background(), evs)
		mfs, _ := e.Gather()
		var buf bytes.Buffer
		for _, mf := range mfs {
			expfmt.MetricFamilyToText(&buf, mf)
		}
		mu.Lock()
		text = buf.Bytes()
		mu.Unlock()
	}
	render()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				render()
			}
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node := strings.TrimPrefix(r.URL.Path, "/node/")
		mu.Lock()
		b := text
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write(bytes.ReplaceAll(b, []byte(`node="node-0"`), []byte(`node="node-`+node+`"`)))
	})}
	go srv.Serve(ln)
	defer srv.Close()

	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n- job_name: agaobs\n  static_configs:\n", interval, interval)
	for i := 0; i < nodes; i++ {
		fmt.Fprintf(&cfg, "  - targets: [%q]\n    labels: {__metrics_path__: /node/%d, instance: \"node-%d:9090\"}\n", ln.Addr().String(), i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := pl.Addr().String()
	pl.Close()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	self := func() (map[string]float64, error) {
		resp, err := http.Get("http://" + promAddr + "/metrics")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			return nil, err
		}
		out := map[string]float64{}
		for name, mf := range mfs {
			for _, m := range mf.Metric { // summed over the series (samples appended has a type label)
				out[name] += m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			}
		}
		return out, nil
	}
	var base map[string]float64
	if !testutil.WaitFor(30*time.Second, func() bool { base, err = self(); return err == nil }) {
		t.Fatalf("prometheus did not start: %v", err)
	}
	end := time.Now().Add(time.Duration(samples+2) * interval)
	var last map[string]float64
	for time.Now().Before(end) {
		time.Sleep(10 * time.Second)
		if m, err := self(); err == nil {
			last = m
			t.Logf("head series %.0f, RSS %.0f MiB, heap in use %.0f MiB, samples appended %.0f",
				m["prometheus_tsdb_head_series"], m["process_resident_memory_bytes"]/(1<<20), m["go_memstats_heap_inuse_bytes"]/(1<<20),
				m["prometheus_tsdb_head_samples_appended_total"])
		}
	}
	if last == nil {
		t.Fatal("no measurement")
	}
	return headMeasure{series: last["prometheus_tsdb_head_series"], rss: last["process_resident_memory_bytes"],
		heap: last["go_memstats_heap_inuse_bytes"], baseline: base["process_resident_memory_bytes"]}
}
