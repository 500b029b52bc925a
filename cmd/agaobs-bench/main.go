// Command agaobs-bench measures agaobs-agent as a user would run it: a real
// agent process consuming rings written by paced producer processes. It
// reports agent CPU (from /proc/<pid>/stat), event → sink latency (from the
// agent's admin API) and drops, one line per scenario, as Markdown (or,
// with --json, one JSON object per scenario for scripts/perf-report.sh).
// `make bench` runs it; BENCHMARKS.md records its output.
//
//	agaobs-bench [--agent bin/agaobs-agent] [--duration 10s] [--scenarios idle,10k,1m] [--json]
//	agaobs-bench --collector bin/agaobs-testcol --scenarios 100k,100k-otlp,1m-otlp-slow   (OTLP on, against a real collector)
//	agaobs-bench load --ring-dir DIR --rate N --duration D [--slow-every N] [--layers N]   (the producer side)
//	agaobs-bench --scenarios wake   (the floor: a Go process that only wakes at the poll interval; `agaobs-bench wake` is that process)
//	agaobs-bench live [--viewers 20] [--producers 8] [--layers 96] [--window 20s] [--pairs 3] [--json]   (the live view's cost)
//	agaobs-bench anomaly [--seed 1] [--days 7] [--layers 96] [--per-kind 10] [--json] [-v]   (the anomaly detector's labelled replay)
//	agaobs-bench anomaly-cost [--rate 100000] [--producers 8] [--layers 96] [--window 5s] [--pairs 24] [--null] [--json]   (its CPU cost in the agent)
//
// The *-otlp* scenarios start the agent with --otlp-enabled (all signals,
// default sampling unless the scenario says otherwise) against a test
// collector (tests/otelcol, `make otelcol`) started for the scenario on a
// free loopback port, writing OTLP/JSON lines into a temporary directory.
// The collector's exporter records no receive time, so agaobs-bench polls
// traces.jsonl every 10 ms and stamps each new line with the poll time:
// event → span-received is that stamp minus the span's end time (the event
// time), so it includes up to one poll interval (and the exporter's fsync).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/shm"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "load":
		err = load(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "wake":
		err = wakeLoop(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "live":
		err = liveBench(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "anomaly":
		err = anomalyBench(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "anomaly-cost":
		err = anomalyCost(os.Args[2:])
	default:
		err = bench(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agaobs-bench:", err)
		os.Exit(1)
	}
}

// load writes FORWARD records at a fixed rate (in 1 ms batches, like a
// decode loop) until the duration ends, heartbeating, then closes.
func load(args []string) error {
	fs := pflag.NewFlagSet("load", pflag.ContinueOnError)
	dir := fs.String("ring-dir", "", "ring directory")
	rate := fs.Int("rate", 10000, "events per second (0: idle, heartbeat only)")
	dur := fs.Duration("duration", 10*time.Second, "how long")
	hot := fs.Uint64("ring-hot-bytes", 4<<20, "hot ring capacity")
	name := fs.String("producer", "bench", "producer name")
	slowEvery := fs.Int("slow-every", 0, "every Nth forward is slow (LatencyUs 2000, above the default 1000 µs slow-span threshold); 0: none")
	layers := fs.Int("layers", 0, "forwards cycle through layers 0..N-1 (0: all on layer 31)")
	class := fs.String("class", "hot", "hot (FORWARD records) or audit (aga-core register audits into a 1 MiB audit ring)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := shm.WriterOptions{Class: shm.ClassHot, Capacity: *hot, Identity: shm.Identity{Producer: *name}}
	if *class == "audit" {
		opts.Class, opts.Capacity = shm.ClassAudit, 1<<20
	}
	w, err := shm.CreateWriter(*dir, opts)
	if err != nil {
		return err
	}
	defer w.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	end := start.Add(*dur)
	f := shm.Forward{GateMean: 0.5, EntropyMean: 1.5, LatencyUs: 120, Layer: 31, Fields: 31}
	var sent int64
	lastHB := time.Now()
	for now := time.Now(); now.Before(end) && ctx.Err() == nil; now = time.Now() {
		due := int64(now.Sub(start).Seconds() * float64(*rate))
		ts := now.UnixNano()
		for ; sent < due; sent++ {
			if opts.Class == shm.ClassAudit {
				obj := fmt.Appendf(nil, `{"operation":"register","details":{"id":"k-%d","reliability":0.93,"pinned":false,"metadata":{"source":"wiki"},"store_count":%d},"success":true,"error":null,"timestamp":%.6f}`,
					sent, sent, float64(ts)/1e9)
				_ = w.EmitAudit(ts, obj)
				continue
			}
			f.LatencyUs = 120
			if *layers > 0 {
				f.Layer = int32(sent % int64(*layers))
				f.LatencyUs = float64(100 + f.Layer) // a visible layer profile
			}
			if *slowEvery > 0 && sent%int64(*slowEvery) == 0 {
				f.LatencyUs = 2000
			}
			_ = w.EmitForward(ts, &f)
		}
		if now.Sub(lastHB) > 200*time.Millisecond {
			w.Heartbeat()
			lastHB = now
		}
		time.Sleep(time.Millisecond)
	}
	st := w.Stats()
	fmt.Printf("{\"sent\":%d,\"dropped\":%d}\n", st.Written-1, st.Dropped)
	return nil
}

type scenario struct {
	name      string
	producers int
	rate      int // per producer
	audit     bool
	otlp      bool     // agent exports over OTLP to a collector started for the scenario
	slowEvery int      // every Nth forward is slow (load --slow-every)
	extraArgs []string // agent flags of the scenario
}

// otlpArgs are the agent flags of the OTLP scenarios (all signals, default
// sampling); the endpoint is added per run.
var otlpArgs = []string{"--otlp-enabled", "--otlp-insecure"}

func bench(args []string) error {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	agentBin := fs.String("agent", "bin/agaobs-agent", "agent binary")
	dur := fs.Duration("duration", 10*time.Second, "measurement window per scenario")
	which := fs.String("scenarios", "idle,10k,100k,1m", "scenarios to run")
	agentArgs := fs.StringSlice("agent-arg", nil, "extra agent flag (repeatable)")
	asJSON := fs.Bool("json", false, "print one JSON object per scenario instead of Markdown tables")
	collectorBin := fs.String("collector", "bin/agaobs-testcol", "OpenTelemetry test collector binary (make otelcol) for the *-otlp* scenarios")
	pprofDir := fs.String("pprof-dir", "", "save a CPU profile of the agent (admin /debug/pprof/profile) taken during each scenario's window into this directory")
	pprofSec := fs.Int("pprof-seconds", 20, "length of the --pprof-dir profile (at most the window)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	all := map[string]scenario{
		"idle":         {"idle (2 producers connected, no events)", 2, 0, false, false, 0, nil},
		"20":           {"20 events/s (1 producer): sparse, the consumer sleeps between records", 1, 20, false, false, 0, nil},
		"40":           {"40 events/s (1 producer): sparse", 1, 40, false, false, 0, nil},
		"100":          {"100 events/s (1 producer): the consumer polls", 1, 100, false, false, 0, nil},
		"10k":          {"10 k events/s (1 producer)", 1, 10_000, false, false, 0, nil},
		"100k":         {"100 k events/s (1 producer)", 1, 100_000, false, false, 0, nil},
		"1m":           {"1 M events/s (1 producer, 4 MiB ring)", 1, 1_000_000, false, false, 0, nil},
		"audit":        {"100 k audit records/s (2 producers × 50 k, bbolt on disk)", 2, 50_000, true, false, 0, nil},
		"audit-max":    {"200 k audit records/s offered (2 producers × 100 k): the ceiling", 2, 100_000, true, false, 0, nil},
		"100k-otlp":    {"100 k events/s (1 producer), OTLP on (all signals, default sampling)", 1, 100_000, false, true, 0, nil},
		"1m-otlp-slow": {"1 M events/s (1 producer), OTLP on, 1 % of forwards slow (2 ms)", 1, 1_000_000, false, true, 100, nil},
		"1m-otlp-slow-uncapped": {"1 M events/s (1 producer), OTLP on, 1 % slow, --otlp-trace-max-spans-per-second 1000000", 1, 1_000_000, false, true, 100,
			[]string{"--otlp-trace-max-spans-per-second", "1000000"}},
	}
	header := ""
	for _, key := range strings.Split(*which, ",") {
		if key == "wake" {
			res, err := runWakeFloor(*dur)
			if err != nil {
				return fmt.Errorf("wake: %w", err)
			}
			res.Key = key
			if *asJSON {
				if err := enc.Encode(res); err != nil {
					return err
				}
				continue
			}
			header = ""
			fmt.Printf("\n| floor | CPU (%% of one core) | context switches/s |\n|---|---|---|\n| %s | %.2f | %.0f |\n", res.Name, res.CPUPct, res.SwitchesPerSec)
			continue
		}
		sc, ok := all[key]
		if !ok {
			return fmt.Errorf("unknown scenario %q", key)
		}
		h := "| scenario | agent CPU (% of one core) | agent RSS (MiB) | events consumed | dropped | event → sink p50 / p99 | event → metric p99 (batch upper bound) | /metrics scrape |\n|---|---|---|---|---|---|---|---|"
		if sc.audit {
			h = "| scenario | agent CPU (% of one core) | agent RSS (MiB) | records durable/s | dropped by producers | event → durable p99 (bucket upper bound) | commits | mean commit |\n|---|---|---|---|---|---|---|---|"
		}
		if sc.otlp {
			h = "| scenario | agent CPU (% of one core) | CPU-s per M events | agent RSS (MiB) | events consumed | dropped | spans/s received | traces rate_limited/s | event → span-received p50 / p99 / max | collector CPU | alerts firing |\n|---|---|---|---|---|---|---|---|---|---|---|"
		}
		if h != header && !*asJSON {
			fmt.Println()
			fmt.Println(h)
			header = h
		}
		opt := runOpts{collector: *collectorBin}
		if *pprofDir != "" {
			opt.pprofFile = filepath.Join(*pprofDir, fmt.Sprintf("%s-%d.pprof", key, time.Now().Unix()))
			opt.pprofSec = *pprofSec
		}
		res, err := runScenario(*agentBin, *agentArgs, sc, *dur, opt)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		res.Key = key
		if *asJSON {
			if err := enc.Encode(res); err != nil {
				return err
			}
			continue
		}
		fmt.Println(res.row(sc))
	}
	return nil
}

// result is one scenario's measurements. Latencies are in milliseconds;
// the histogram-derived ones are bucket upper bounds, NaN-free: a value
// that was not measured is omitted from the JSON (nil).
type result struct {
	Key         string  `json:"scenario"`
	Name        string  `json:"name"`
	Producers   int     `json:"producers"`
	RatePerProd int     `json:"rate_per_producer"`
	WindowSec   float64 `json:"window_seconds"` // the measurement window
	LoadSec     float64 `json:"load_seconds"`   // how long the producers ran (window + warm-up before and after)
	CPUPct      float64 `json:"cpu_pct"`        // agent utime+stime, % of one core, over the window
	RSSMiB      float64 `json:"rss_mib"`        // agent VmRSS at the end of the window
	// VmRSS's parts at the same moment: anonymous memory (the Go heap,
	// stacks, runtime), file pages (mostly the binary) and shared memory
	// (the rings the agent maps).
	RSSAnonMiB    float64  `json:"rss_anon_mib"`
	RSSFileMiB    float64  `json:"rss_file_mib"`
	RSSShmemMiB   float64  `json:"rss_shmem_mib"`
	Offered       uint64   `json:"offered"` // records the producers wrote or dropped, by their own count
	ProducerDrops uint64   `json:"producer_dropped"`
	Consumed      uint64   `json:"consumed"` // records the agent consumed (all rings)
	Dropped       uint64   `json:"dropped"`  // producers' drops as the agent reads them from the rings
	SinkP50Ms     *float64 `json:"event_to_sink_p50_ms,omitempty"`
	SinkP99Ms     *float64 `json:"event_to_sink_p99_ms,omitempty"`
	MetricP99Ms   *float64 `json:"event_to_metric_p99_ms,omitempty"`
	ScrapeMs      float64  `json:"scrape_ms"`
	DurablePerSec *float64 `json:"durable_per_second,omitempty"`
	DurableP99Ms  *float64 `json:"event_to_durable_p99_ms,omitempty"`
	Commits       *float64 `json:"commits,omitempty"`
	MeanCommitMs  *float64 `json:"mean_commit_ms,omitempty"`
	// CPU per event: agent utime+stime over the window / events consumed
	// in the window × 1e6.
	WindowConsumed   uint64  `json:"window_consumed"`
	CPUSecPerMEvents float64 `json:"cpu_seconds_per_million_events"`
	RSSPeakMiB       float64 `json:"rss_peak_mib"` // VmHWM at the end of the window
	// Context switches of all the agent's threads per second over the
	// window (voluntary and not): its wake-ups, which dominate its CPU at
	// low rates and, unlike CPU time, barely move with other load.
	SwitchesPerSec float64 `json:"context_switches_per_second"`
	// OTLP scenarios only.
	OTLP               bool     `json:"otlp,omitempty"`
	SpansPerSec        *float64 `json:"spans_per_second,omitempty"`        // spans received at the collector in the window / window
	SpansInWindow      *float64 `json:"spans_in_window,omitempty"`         // spans received at the collector in the window
	RateLimitedPerSec  *float64 `json:"rate_limited_per_second,omitempty"` // agaobs_otlp_dropped_total{signal="traces",reason="rate_limited"} over the window
	OTLPDroppedOther   *float64 `json:"otlp_dropped_other,omitempty"`      // every other agaobs_otlp_dropped_total over the window (queue_full, export_error, ...)
	SpanP50Ms          *float64 `json:"event_to_span_p50_ms,omitempty"`    // collector receive time (poll stamp) − span end (event time)
	SpanP99Ms          *float64 `json:"event_to_span_p99_ms,omitempty"`
	SpanMaxMs          *float64 `json:"event_to_span_max_ms,omitempty"`
	CollectorCPUPct    *float64 `json:"collector_cpu_pct,omitempty"`
	CollectorLogLines  *float64 `json:"collector_log_batches,omitempty"`    // logs.jsonl lines at the end
	CollectorMetricLns *float64 `json:"collector_metric_batches,omitempty"` // metrics.jsonl lines at the end
	PprofFile          string   `json:"pprof_file,omitempty"`
	// Alerts firing at the end of the window (rule/producer): a latency
	// alert makes the keeper keep every forward of the producer as a span.
	FiringAlerts   []string `json:"firing_alerts,omitempty"`
	audit, hasRate bool
}

func ptr(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func val(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// row is the scenario's Markdown table row (the format BENCHMARKS.md keeps).
func (r result) row(sc scenario) string {
	if r.audit {
		return fmt.Sprintf("| %s | %.2f | %.1f | %.0f | %d | ≤ %.0f ms | %.0f | %.1f ms |", sc.name, r.CPUPct, r.RSSMiB, val(r.DurablePerSec), r.Dropped,
			val(r.DurableP99Ms), val(r.Commits), val(r.MeanCommitMs))
	}
	p50, p99, mp99 := "-", "-", "-"
	if r.hasRate {
		p50 = fmt.Sprintf("%.2f ms", val(r.SinkP50Ms))
		p99 = fmt.Sprintf("%.2f ms", val(r.SinkP99Ms))
		mp99 = fmt.Sprintf("≤ %.1f ms", val(r.MetricP99Ms))
	}
	if r.OTLP {
		firing := "none"
		if len(r.FiringAlerts) > 0 {
			firing = strings.Join(r.FiringAlerts, ", ")
		}
		return fmt.Sprintf("| %s | %.2f | %.3f | %.1f | %d | %d | %.0f | %.0f (other OTLP drops %.0f) | %.0f / %.0f / %.0f ms | %.1f %% | %s |", sc.name, r.CPUPct, r.CPUSecPerMEvents, r.RSSMiB,
			r.Consumed, r.Dropped, val(r.SpansPerSec), val(r.RateLimitedPerSec), val(r.OTLPDroppedOther), val(r.SpanP50Ms), val(r.SpanP99Ms), val(r.SpanMaxMs), val(r.CollectorCPUPct), firing)
	}
	return fmt.Sprintf("| %s | %.2f | %.1f | %d | %d | %s / %s | %s | %.1f ms |", sc.name, r.CPUPct, r.RSSMiB, r.Consumed, r.Dropped, p50, p99, mp99, r.ScrapeMs)
}

func runScenario(agentBin string, agentArgs []string, sc scenario, dur time.Duration, opt runOpts) (result, error) {
	res := result{Name: sc.name, Producers: sc.producers, RatePerProd: sc.rate, audit: sc.audit, hasRate: sc.rate > 0, OTLP: sc.otlp}
	dir, err := os.MkdirTemp("/dev/shm", "agaobs-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	// The audit store on the real disk: fsync on tmpfs would cost nothing.
	storeDir, err := os.MkdirTemp("", "agaobs-bench-audit-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(storeDir)
	// Free loopback ports, so that two runs (or another agent) on the
	// machine never measure each other's agent.
	admin, prom, healthPort := "127.0.0.1:"+port(), port(), port()
	ag := exec.Command(agentBin, append([]string{"run", "--ring-dir", dir, "--state-path", "", "--admin-listen-address", admin, "--agent-log-level", "error",
		"--prometheus-host", "127.0.0.1", "--prometheus-port", prom, "--health-host", "127.0.0.1", "--health-port", healthPort,
		"--audit-storage-path", filepath.Join(storeDir, "aga_audit.db")}, agentArgs...)...)
	ag.Args = append(ag.Args, sc.extraArgs...)
	var col *testCollector
	if sc.otlp {
		if col, err = startCollector(opt.collector); err != nil {
			return res, err
		}
		defer col.stop() // after the agent stopped (defers run last-in first-out)
		ag.Args = append(ag.Args, otlpArgs...)
		ag.Args = append(ag.Args, "--otlp-endpoint", col.addr)
	}
	if sc.audit {
		// Only the audit store is measured: the event log would print
		// every audit record on stderr.
		ag.Args = append(ag.Args, "--log-enabled=false")
	}
	ag.Stderr = os.Stderr
	if err := ag.Start(); err != nil {
		return res, err
	}
	defer func() { ag.Process.Signal(syscall.SIGTERM); ag.Wait() }()
	if err := waitHTTP("http://" + admin + "/api/v1/status"); err != nil {
		return res, err
	}
	self, _ := os.Executable()
	var loads []*exec.Cmd
	var loadOut []*strings.Builder // each producer's final {"sent","dropped"}
	warm := 2 * time.Second
	res.LoadSec = (dur + 2*warm).Seconds()
	for i := 0; i < sc.producers; i++ {
		class := "hot"
		if sc.audit {
			class = "audit"
		}
		c := exec.Command(self, "load", "--ring-dir", dir, "--rate", strconv.Itoa(sc.rate), "--class", class,
			"--duration", (dur + 2*warm).String(), "--producer", fmt.Sprintf("bench-%d", i), "--slow-every", strconv.Itoa(sc.slowEvery))
		c.Stderr = os.Stderr
		out := &strings.Builder{}
		c.Stdout = out
		if err := c.Start(); err != nil {
			return res, err
		}
		loads = append(loads, c)
		loadOut = append(loadOut, out)
	}
	time.Sleep(warm)
	var rr0 agent.RingsResponse
	if err := getJSON("http://"+admin+"/api/v1/rings", &rr0); err != nil {
		return res, err
	}
	var body0 string
	var colCPU0 time.Duration
	if col != nil {
		body0 = scrapeBody("http://127.0.0.1:" + prom + "/metrics")
		colCPU0, _ = procCPU(col.cmd.Process.Pid)
	}
	cpu0, err := procCPU(ag.Process.Pid)
	if err != nil {
		return res, err
	}
	sw0 := procSwitches(ag.Process.Pid)
	var profErr chan error
	if opt.pprofFile != "" {
		profErr = make(chan error, 1)
		sec := min(opt.pprofSec, int(dur.Seconds()))
		go func() { profErr <- saveProfile(admin, opt.pprofFile, sec) }()
	}
	var head0, head1 agent.AuditHeadResponse
	if err := getJSON("http://"+admin+"/api/v1/audit/head", &head0); err != nil {
		return res, err
	}
	t0 := time.Now()
	time.Sleep(dur)
	cpu1, _ := procCPU(ag.Process.Pid)
	t1 := time.Now()
	el := t1.Sub(t0)
	res.SwitchesPerSec = float64(procSwitches(ag.Process.Pid)-sw0) / el.Seconds()
	var colCPU1 time.Duration
	if col != nil {
		colCPU1, _ = procCPU(col.cmd.Process.Pid)
	}
	var rr1 agent.RingsResponse
	if err := getJSON("http://"+admin+"/api/v1/rings", &rr1); err != nil {
		return res, err
	}
	for _, r := range rr1.Rings {
		res.WindowConsumed += r.Consumed
	}
	for _, r := range rr0.Rings {
		res.WindowConsumed -= r.Consumed
	}
	res.RSSPeakMiB = procHWM(ag.Process.Pid)
	if profErr != nil {
		if err := <-profErr; err != nil {
			fmt.Fprintln(os.Stderr, "agaobs-bench: profile:", err)
		} else {
			res.PprofFile = opt.pprofFile
		}
	}
	if err := getJSON("http://"+admin+"/api/v1/audit/head", &head1); err != nil {
		return res, err
	}
	mem := procStatusMiB(ag.Process.Pid)
	rss := mem["VmRSS"]
	res.RSSAnonMiB, res.RSSFileMiB, res.RSSShmemMiB = mem["RssAnon"], mem["RssFile"], mem["RssShmem"]
	scrape, body, err := scrapeTimed("http://127.0.0.1:" + prom + "/metrics")
	if err != nil {
		return res, err
	}
	metricP99, _, _ := histogram(body, "agaobs_sink_event_latency_seconds", `sink="metrics"`)
	durableP99, _, _ := histogram(body, "agaobs_audit_event_to_durable_seconds", "")
	for i, c := range loads {
		c.Wait()
		var lo struct{ Sent, Dropped uint64 }
		if json.Unmarshal([]byte(loadOut[i].String()), &lo) == nil {
			res.Offered += lo.Sent + lo.Dropped
			res.ProducerDrops += lo.Dropped
		}
	}
	time.Sleep(300 * time.Millisecond)
	var st agent.StatusResponse
	if err := getJSON("http://"+admin+"/api/v1/status", &st); err != nil {
		return res, err
	}
	var rr agent.RingsResponse
	if err := getJSON("http://"+admin+"/api/v1/rings", &rr); err != nil {
		return res, err
	}
	var consumed, dropped uint64
	for _, r := range rr.Rings {
		consumed += r.Consumed
		dropped += r.Dropped
	}
	res.WindowSec = el.Seconds()
	res.CPUPct = 100 * (cpu1 - cpu0).Seconds() / el.Seconds()
	res.RSSMiB = rss
	res.Consumed, res.Dropped = consumed, dropped
	res.ScrapeMs = scrape.Seconds() * 1e3
	if res.WindowConsumed > 0 {
		res.CPUSecPerMEvents = (cpu1 - cpu0).Seconds() / float64(res.WindowConsumed) * 1e6
	}
	if col != nil {
		n, lat := col.window(t0, t1)
		res.SpansInWindow = ptr(float64(n))
		res.SpansPerSec = ptr(float64(n) / el.Seconds())
		res.SpanP50Ms = ptr(quantile(lat, 0.50))
		res.SpanP99Ms = ptr(quantile(lat, 0.99))
		res.SpanMaxMs = ptr(quantile(lat, 1))
		const drop = "agaobs_otlp_dropped_total"
		rl := `reason="rate_limited"`
		res.RateLimitedPerSec = ptr((counterSum(body, drop, `signal="traces"`, rl) - counterSum(body0, drop, `signal="traces"`, rl)) / el.Seconds())
		res.OTLPDroppedOther = ptr(counterSum(body, drop) - counterSum(body0, drop) - (counterSum(body, drop, rl) - counterSum(body0, drop, rl)))
		var al agent.AlertsResponse
		if getJSON("http://"+admin+"/api/v1/alerts", &al) == nil {
			for _, a := range al.Active {
				if a.State == "firing" {
					res.FiringAlerts = append(res.FiringAlerts, a.RuleName+"/"+a.Producer)
				}
			}
		}
		res.CollectorCPUPct = ptr(100 * (colCPU1 - colCPU0).Seconds() / el.Seconds())
		res.CollectorLogLines = ptr(col.lines("logs.jsonl"))
		res.CollectorMetricLns = ptr(col.lines("metrics.jsonl"))
	}
	if sc.audit {
		_, nCommits, sumCommits := histogram(body, "agaobs_audit_commit_duration_seconds", "")
		res.DurablePerSec = ptr(float64(head1.Size-head0.Size) / el.Seconds())
		res.DurableP99Ms = ptr(durableP99 * 1e3)
		res.Commits = ptr(nCommits)
		res.MeanCommitMs = ptr(1e3 * sumCommits / math.Max(nCommits, 1))
		return res, nil
	}
	if sc.rate > 0 {
		res.SinkP50Ms = ptr(st.ForwardP50Sec * 1e3)
		res.SinkP99Ms = ptr(st.ForwardP99Sec * 1e3)
		res.MetricP99Ms = ptr(metricP99 * 1e3)
	}
	return res, nil
}

// scrapeTimed times five scrapes (median) and returns the last body.
func scrapeTimed(url string) (time.Duration, string, error) {
	var times []time.Duration
	var body []byte
	for i := 0; i < 5; i++ {
		start := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			return 0, "", err
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, "", err
		}
		times = append(times, time.Since(start))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return times[len(times)/2], string(body), nil
}

// histogram reads a histogram family (the series whose line contains
// match) from an exposition: the upper bound of its p99 bucket, the count
// and the sum.
func histogram(body, name, match string) (p99, count, sum float64) {
	type bucket struct{ le, cum float64 }
	var buckets []bucket
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"_") || !strings.Contains(line, match) {
			continue
		}
		fields := strings.Fields(line)
		v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
		switch {
		case strings.HasPrefix(line, name+"_bucket"):
			i := strings.Index(line, `le="`)
			le, _ := strconv.ParseFloat(strings.Trim(line[i+4:strings.Index(line[i+4:], `"`)+i+4], `"`), 64)
			if strings.Contains(line, `le="+Inf"`) {
				le = math.Inf(1)
			}
			buckets = append(buckets, bucket{le, v})
		case strings.HasPrefix(line, name+"_count"):
			count = v
		case strings.HasPrefix(line, name+"_sum"):
			sum = v
		}
	}
	p99 = math.NaN()
	for _, b := range buckets {
		if b.cum >= 0.99*count {
			p99 = b.le
			break
		}
	}
	return p99, count, sum
}

// procCPU returns utime+stime of a process.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// procSwitches returns the context switches of every thread of a process.
func procSwitches(pid int) uint64 {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "status"))
	var n uint64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				v, _ := strconv.ParseUint(strings.TrimSpace(l[strings.IndexByte(l, ':')+1:]), 10, 64)
				n += v
			}
		}
	}
	return n
}

// procStatusMiB returns the kB fields of /proc/<pid>/status in MiB.
func procStatusMiB(pid int) map[string]float64 {
	out := map[string]float64{}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		f := strings.Fields(rest)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, _ := strconv.ParseFloat(f[0], 64)
		out[name] = kb / 1024
	}
	return out
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("agent did not start")
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// port returns a loopback TCP port that was free a moment ago ("0" if none).
func port() string {
	p, err := freePort()
	if err != nil {
		return "0"
	}
	return strconv.Itoa(p)
}
