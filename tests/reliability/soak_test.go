package reliability_test

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// soakAgentBin is the agent binary the soak runs as a separate process, as
// a node runs it (its RSS and goroutines are then the agent's alone).
var soakAgentBin testutil.Binary

// soakStats is what a soak producer prints when its stdin closes.
type soakStats struct {
	Records    uint64 `json:"records"` // forward + retrieval + audit + status emitted
	Forwards   uint64 `json:"forwards"`
	Retrievals uint64 `json:"retrievals"`
	Audits     uint64 `json:"audits"`
	Statuses   uint64 `json:"statuses"`
	Skipped    uint64 `json:"skipped"` // tokens the bucket discarded: the producer fell behind its pace
	// The writers' own counters after close (Written includes the HELLO
	// record, which the agent counts as consumed too).
	HotWritten, HotDropped     uint64
	AuditWritten, AuditDropped uint64
	// Emit errors other than a full ring (there should be none).
	Errors uint64 `json:"errors"`
}

// soakProducer is one tensor-parallel rank of an inference server under
// steady load: AGAOBS_SOAK_RATE records/s, paced by a token bucket on wall
// time, in aga-core's mix per decode step (one forward per hooked layer of
// three, a retrieval every 5th step, an audit every 256th step on the
// audit ring), a status snapshot every 2 s and heartbeats, until its stdin
// closes; then it closes both rings and prints its soakStats. Rank 0's
// status carries a nearly full KV store and slot thrashing, so the default
// alert rules fire and the webhook has something to deliver.
func soakProducer() {
	dir := os.Getenv("AGAOBS_RING_DIR")
	rate, _ := strconv.ParseFloat(os.Getenv("AGAOBS_SOAK_RATE"), 64)
	rank, _ := strconv.Atoi(os.Getenv("AGAOBS_SOAK_RANK"))
	ws, hidden, bottleneck, slots := 2, 4096, 64, 256
	id := shm.Identity{Producer: os.Getenv("AGAOBS_PRODUCER"), Role: "soak", Rank: &rank, WorldSize: &ws,
		Model: "soak-llama-7b", AGAVersion: "4.4.0", HiddenDim: &hidden, BottleneckDim: &bottleneck, MaxSlots: &slots,
		Device: fmt.Sprintf("cuda:%d", rank), Client: "go/soak"}
	// Default ring sizes (4 MiB hot, 1 MiB audit): what a producer gets.
	hot, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Identity: id})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	audit, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Identity: id})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()

	rng := rand.New(rand.NewPCG(7, uint64(rank)))
	var st soakStats
	count := func(err error) {
		if err != nil && err != shm.ErrFull {
			st.Errors++
		}
	}
	ids := make([]string, 512)
	for i := range ids {
		ids[i] = fmt.Sprintf("doc-%d-%d", rank, i)
	}
	scores := make([]float64, 0, 8)
	pick := make([]string, 0, 8)
	var auditBuf []byte
	var step, nextKey uint64
	layers := [3]int32{29, 30, 31}
	emitStep := func(now time.Time) int {
		ts := now.UnixNano()
		step++
		n := 0
		for _, layer := range layers {
			gate := min(0.8, max(0, 0.35+0.2*rng.NormFloat64()))
			f := shm.Forward{GateMean: gate, EntropyMean: min(5, max(0, 2.2+0.8*rng.NormFloat64())),
				LatencyUs: math.Exp(math.Log(150) + 0.5*rng.NormFloat64()), Layer: layer,
				Fields: shm.FwdHasGate | shm.FwdHasEntropy | shm.FwdHasLatency | shm.FwdHasLayer}
			if gate >= 0.05 {
				f.Fields |= shm.FwdApplied
			}
			count(hot.EmitForward(ts, &f))
			st.Forwards++
			n++
		}
		if step%5 == 0 {
			k := 1 + rng.IntN(3)
			scores, pick = scores[:0], pick[:0]
			for i := 0; i < k; i++ {
				scores = append(scores, 0.5+0.5*rng.Float64())
				pick = append(pick, ids[rng.IntN(len(ids))])
			}
			r := shm.Retrieval{Layer: layers[0], ResultsCount: int32(k + rng.IntN(3)), InjectedCount: int32(k), BudgetRemaining: int32(8 - k),
				Fields: shm.RetHasLayer | shm.RetHasResults | shm.RetHasInjected | shm.RetHasBudget}
			count(hot.EmitRetrieval(ts, &r, scores, pick))
			st.Retrievals++
			n++
		}
		if step%256 == 0 {
			// register and unregister alternate; one unregister in ten
			// fails, which the event log writes at WARNING.
			nextKey++
			tsec := float64(ts) / 1e9
			switch {
			case nextKey%2 == 1:
				auditBuf = fmt.Appendf(auditBuf[:0], `{"operation":"register","details":{"id":"k-%d-%d","reliability":0.9,"pinned":false,"metadata":{"source":"api"},"store_count":%d},"success":true,"error":null,"timestamp":%.6f}`,
					rank, nextKey, 128+nextKey%64, tsec)
			case nextKey%20 == 0:
				auditBuf = fmt.Appendf(auditBuf[:0], `{"operation":"unregister","details":{"id":"k-%d-%d"},"success":false,"error":"KeyError: 'k-%d-%d'","timestamp":%.6f}`,
					rank, nextKey, rank, nextKey, tsec)
			default:
				auditBuf = fmt.Appendf(auditBuf[:0], `{"operation":"unregister","details":{"id":"k-%d-%d","store_count":%d},"success":true,"error":null,"timestamp":%.6f}`,
					rank, nextKey-1, 128+nextKey%64, tsec)
			}
			count(audit.EmitAudit(ts, auditBuf))
			st.Audits++
			n++
		}
		return n
	}
	status := func(now time.Time) {
		util, slot, kv := 0.5, 0.2, 128
		if rank == 0 {
			util, slot, kv = 250.0/256, 0.8, 250
		}
		b, _ := json.Marshal(map[string]any{
			"bound":            true,
			"kv_store":         map[string]any{"count": kv, "max_slots": 256, "utilization": util, "pinned": 3},
			"slot_change_rate": slot,
			"attachment":       map[string]any{"attached": true, "model_type": "llama", "hooks": 3},
			"gate_system":      map[string]any{"finite": true, "param_count": 4},
			"retriever":        map[string]any{"type": "KVStoreRetriever", "stats": map[string]any{"call_count": st.Retrievals}},
			"event_bus":        map[string]any{"total_emitted": st.Records, "buffer_capacity": 10000, "enabled": true},
			"build":            map[string]any{"version": "4.4.0", "hidden_dim": 4096, "bottleneck_dim": 64, "max_slots": 256, "device": fmt.Sprintf("cuda:%d", rank)},
		})
		count(hot.EmitStatus(now.UnixNano(), b))
		st.Statuses++
		st.Records++
	}

	// The bucket holds at most 250 ms of tokens: a producer descheduled
	// for longer does not make it all up in one burst (an inference
	// server that stalled does not emit the steps it missed); what the
	// cap discards is counted, and the test checks the rate achieved.
	const maxBurst = 0.25
	var credit float64
	last := time.Now()
	lastHB, lastStatus := last, last.Add(-2*time.Second)
loop:
	for {
		select {
		case <-stop:
			break loop
		default:
		}
		now := time.Now()
		credit += rate * now.Sub(last).Seconds()
		last = now
		if credit > rate*maxBurst {
			st.Skipped += uint64(credit - rate*maxBurst)
			credit = rate * maxBurst
		}
		for credit >= 1 {
			n := emitStep(now)
			credit -= float64(n)
			st.Records += uint64(n)
		}
		if now.Sub(lastStatus) >= 2*time.Second {
			status(now)
			lastStatus = now
		}
		if now.Sub(lastHB) >= 200*time.Millisecond {
			hot.Heartbeat()
			audit.Heartbeat()
			lastHB = now
		}
		time.Sleep(time.Millisecond)
	}
	hot.Close()
	audit.Close()
	hs, as := hot.Stats(), audit.Stats()
	st.HotWritten, st.HotDropped, st.AuditWritten, st.AuditDropped = hs.Written, hs.Dropped, as.Written, as.Dropped
	json.NewEncoder(os.Stdout).Encode(st)
}

// soakProc is a running soak producer.
type soakProc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startSoakProducer(t *testing.T, dir, name string, rank int, rate float64) *soakProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AGAOBS_RELIABILITY_HELPER=soak", "AGAOBS_RING_DIR="+dir, "AGAOBS_PRODUCER="+name,
		"AGAOBS_SOAK_RANK="+strconv.Itoa(rank), "AGAOBS_SOAK_RATE="+strconv.FormatFloat(rate, 'f', -1, 64))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	p := &soakProc{name: name, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	if line, _ := p.out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("producer %s: %q", name, line)
	}
	return p
}

// finish closes the producer's stdin and reads its final counters.
func (p *soakProc) finish(t *testing.T) soakStats {
	t.Helper()
	p.stdin.Close()
	var st soakStats
	if err := json.NewDecoder(p.out).Decode(&st); err != nil {
		t.Fatalf("producer %s: %v", p.name, err)
	}
	p.cmd.Wait()
	return st
}

// procStatusKiB reads fields of /proc/<pid>/status in KiB (VmRSS,
// RssAnon, RssFile, RssShmem).
func procStatusKiB(pid int) (map[string]float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.HasSuffix(v, " kB") {
			out[k], _ = strconv.ParseFloat(strings.Fields(v)[0], 64)
		}
	}
	return out, nil
}

// rssByMapping sums /proc/<pid>/smaps Rss (MiB) by the base name of the
// mapped file ([anon] for anonymous memory, [heap], [stack], ...).
func rssByMapping(pid int) (map[string]float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, err
	}
	sums := map[string]float64{}
	name := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			name = "[anon]"
			if len(f) >= 6 {
				name = filepath.Base(f[5])
			}
		case len(f) == 3 && f[0] == "Rss:":
			kb, _ := strconv.ParseFloat(f[1], 64)
			sums[name] += kb / 1024
		}
	}
	return sums, nil
}

// largest formats the n largest entries of rssByMapping.
func largest(sums map[string]float64, n int) string {
	keys := slices.Collect(maps.Keys(sums))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(sums[b], sums[a]) })
	var parts []string
	for _, k := range keys[:min(n, len(keys))] {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, sums[k]))
	}
	return strings.Join(parts, ", ")
}

// procCPUTime is the process's utime+stime.
func procCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const userHZ = 100 // USER_HZ on Linux
	return time.Duration(ut+stime) * time.Second / userHZ, nil
}

// familySum adds every series of a counter or gauge family.
func familySum(mfs map[string]*dto.MetricFamily, name string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	var sum float64
	for _, m := range mf.Metric {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, true
}

// nonZero lists the series of a family whose value is not 0.
func nonZero(mfs map[string]*dto.MetricFamily, name string) []string {
	var out []string
	if mf := mfs[name]; mf != nil {
		for _, m := range mf.Metric {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if v != 0 {
				var ls []string
				for _, l := range m.Label {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				out = append(out, fmt.Sprintf("%s{%s} %g", name, strings.Join(ls, ","), v))
			}
		}
	}
	return out
}

// histP99 is the upper bound of the bucket holding the p99 of the series
// of a classic histogram family whose labels include want.
func histP99(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	m := testutil.FindSeries([]*dto.MetricFamily{mfs[name]}, name, want)
	if m == nil || m.Histogram == nil || m.Histogram.GetSampleCount() == 0 {
		return math.NaN()
	}
	n := float64(m.Histogram.GetSampleCount())
	for _, b := range m.Histogram.Bucket {
		if float64(b.GetCumulativeCount()) >= 0.99*n {
			return b.GetUpperBound()
		}
	}
	return math.Inf(1)
}

// soakSample is one second of the soak as a scraper sees it.
type soakSample struct {
	at         time.Duration // since the producers started
	rss        float64       // VmRSS, MiB
	anon       float64       // RssAnon: heap, stacks, queues
	shmem      float64       // RssShmem: the ring mappings
	file       float64       // RssFile: the binary, libc, bbolt files
	auditMap   float64       // Rss of the audit store's bbolt mapping (part of file)
	cpu        time.Duration
	goroutines float64
	events     float64 // agaobs_ring_events_total, all rings
}

// median of f over the samples whose time is in (from, to].
func medianOf(ss []soakSample, from, to time.Duration, f func(soakSample) float64) float64 {
	var v []float64
	for _, s := range ss {
		if s.at > from && s.at <= to {
			v = append(v, f(s))
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// Soak: 100 k events/s for 10 minutes (2 in `make test`) into the agent
// binary with every sink on (Prometheus scraped every second, the event log
// to a rotating file, alerting with the default rules and a webhook, the
// audit store on disk, health polled every second, the state file, GPU and,
// as root, eBPF). Between minute 2 and minute 10 (60 s and 120 s short) RSS
// without the audit store's file mapping grows by less than 5 MiB and the
// goroutine count moves by at most 2; nothing is dropped anywhere (rings,
// producers, sinks, notifications) and every record written is consumed.
func TestSoak(t *testing.T) {
	const rate = 100_000 // events/s, both producers together
	// Minute 2 to 10 in full, as the issue says; 30 s to 60 s short, past
	// the first GC cycles of a fresh heap. (The sink queues once
	// preallocated ~100 MB, which set the GC goal to ~200 MB and made RSS
	// climb for minutes: this soak found that; they now grow on demand.)
	total := time.Duration(size(60, 600)) * time.Second
	mark := time.Duration(size(30, 120)) * time.Second
	// RSS and goroutines are read as the median of the samples in the
	// window before each mark: one sample can sit either side of a GC
	// cycle (a few MiB at this allocation rate); a leak moves the median.
	const win = 10 * time.Second

	ringDir, err := os.MkdirTemp("/dev/shm", "agaobs-soak-")
	if err != nil {
		ringDir = t.TempDir() // no tmpfs at /dev/shm: rings on disk still work
	} else {
		t.Cleanup(func() { os.RemoveAll(ringDir) })
	}
	tmp := t.TempDir()
	logFile := filepath.Join(tmp, "log", "events.log")
	metricsAddr, healthAddr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)

	// The webhook receiver closes every connection, so the agent's HTTP
	// client holds no idle connection (two goroutines) that would come and
	// go with its idle timeout.
	var hooks atomic.Int64
	var hookMu sync.Mutex
	hookNames := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Rule, Status, Producer string }
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &body)
		hookMu.Lock()
		hookNames[body.Rule+"/"+body.Producer+"/"+body.Status]++
		hookMu.Unlock()
		hooks.Add(1)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()

	bpf := os.Geteuid() == 0
	host := func(addr string) string { h, _, _ := strings.Cut(addr, ":"); return h }
	port := func(addr string) string { _, p, _ := strings.Cut(addr, ":"); return p }
	bin := soakAgentBin.Path(t, "../../cmd/agaobs-agent", "agaobs-agent")
	t.Cleanup(soakAgentBin.Remove)
	ag := exec.Command(bin, "run", "--ring-dir", ringDir,
		"--state-path", filepath.Join(tmp, "agaobs_state.db"),
		"--audit-storage-path", filepath.Join(tmp, "aga_audit.db"),
		"--prometheus-host", host(metricsAddr), "--prometheus-port", port(metricsAddr),
		"--health-enabled=true", "--health-host", host(healthAddr), "--health-port", port(healthAddr),
		"--admin-listen-address", adminAddr,
		"--log-enabled=true", "--log-file", logFile, "--log-level", "INFO",
		// lumberjack's smallest size: retrievals and audits (forwards are
		// DEBUG) rotate it every few seconds.
		"--log-max-bytes", "1048576", "--log-backup-count", "2",
		"--alert-enabled=true", "--alert-use-default-rules=true", "--alert-webhook-url", hook.URL,
		"--gpu-enabled=true", "--bpf-enabled="+strconv.FormatBool(bpf),
		"--agent-log-level", "warn")
	var agentLog strings.Builder
	var agentLogMu sync.Mutex
	stderr, _ := ag.StderrPipe()
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			agentLogMu.Lock()
			if agentLog.Len() < 64<<10 {
				agentLog.WriteString(sc.Text() + "\n")
			}
			agentLogMu.Unlock()
		}
	}()
	agentExited := false
	t.Cleanup(func() {
		if !agentExited {
			ag.Process.Kill()
			ag.Wait()
		}
	})
	pid := ag.Process.Pid

	// One keep-alive client per endpoint, as Prometheus and a kubelet
	// hold one connection each: the agent's goroutine count then does not
	// depend on when connections open and close.
	scraper := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Second}
	prober := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Second}
	defer scraper.CloseIdleConnections()
	defer prober.CloseIdleConnections()
	scrape := func() (map[string]*dto.MetricFamily, time.Duration, error) {
		t0 := time.Now()
		resp, err := scraper.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return nil, 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0) // the agent's answer, not this process's parsing
		if err != nil {
			return nil, d, err
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		return mfs, d, err
	}
	testutil.Eventually(t, 30*time.Second, func() bool { _, _, err := scrape(); return err == nil }, "agent did not serve /metrics")

	names := []string{"soak-tp0", "soak-tp1"}
	var procs []*soakProc
	for i, n := range names {
		procs = append(procs, startSoakProducer(t, ringDir, n, i, rate/float64(len(names))))
	}
	start := time.Now()

	var (
		samples                []soakSample
		scrapeLat, healthLat   []time.Duration
		dropSeen               []string
		healthBad              []string
		lastMfs                map[string]*dto.MetricFamily
		scrapeErrs, healthErrs int
	)
	// Health: every component the agent runs must stay healthy or
	// degraded (rank 0's nearly full KV store is degraded by design), but
	// the GPU may report NVML missing on a machine without a GPU.
	checkHealth := func() {
		t0 := time.Now()
		resp, err := prober.Get("http://" + healthAddr + "/health")
		if err != nil {
			healthErrs++
			return
		}
		var h struct {
			Status     string `json:"status"`
			Components map[string]struct {
				Status string `json:"status"`
				Reason string `json:"reason"`
			} `json:"components"`
		}
		err = json.NewDecoder(resp.Body).Decode(&h)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		healthLat = append(healthLat, time.Since(t0))
		if err != nil {
			healthErrs++
			return
		}
		for name, c := range h.Components {
			if c.Status != "unhealthy" || (name == "gpu" && strings.Contains(c.Reason, "NVML unavailable")) {
				continue
			}
			if len(healthBad) < 20 {
				healthBad = append(healthBad, fmt.Sprintf("%v: %s %s (%s)", time.Since(start).Round(time.Second), name, c.Status, c.Reason))
			}
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for now := range tick.C {
		el := now.Sub(start)
		mfs, d, err := scrape()
		if err != nil {
			scrapeErrs++
			if scrapeErrs > 5 {
				agentLogMu.Lock()
				t.Fatalf("%v: /metrics: %v\nagent log:\n%s", el.Round(time.Second), err, agentLog.String())
			}
			continue
		}
		scrapeLat = append(scrapeLat, d)
		lastMfs = mfs
		s := soakSample{at: el}
		s.goroutines, _ = familySum(mfs, "go_goroutines")
		s.events, _ = familySum(mfs, "agaobs_ring_events_total")
		for _, fam := range []string{"agaobs_ring_dropped_total", "agaobs_ring_lost_total", "agaobs_ring_corrupt_total",
			"agaobs_sink_dropped_total", "agaobs_sink_errors_total"} {
			for _, nz := range nonZero(mfs, fam) {
				if len(dropSeen) < 20 {
					dropSeen = append(dropSeen, fmt.Sprintf("%v: %s", el.Round(time.Second), nz))
				}
			}
		}
		st, err := procStatusKiB(pid)
		if err != nil {
			agentLogMu.Lock()
			t.Fatalf("%v: agent gone: %v\nagent log:\n%s", el.Round(time.Second), err, agentLog.String())
		}
		s.rss, s.anon, s.shmem, s.file = st["VmRSS"]/1024, st["RssAnon"]/1024, st["RssShmem"]/1024, st["RssFile"]/1024
		if m, err := rssByMapping(pid); err == nil {
			s.auditMap = m["aga_audit.db"]
		}
		s.cpu, _ = procCPUTime(pid)
		samples = append(samples, s)
		checkHealth()
		if testing.Verbose() && len(samples)%30 == 0 {
			heap, _ := familySum(mfs, "go_memstats_heap_inuse_bytes")
			goal, _ := familySum(mfs, "go_memstats_next_gc_bytes")
			t.Logf("%4.0fs RSS %.1f MiB (anon %.1f, shmem %.1f, file %.1f of which the audit store %.1f); goroutines %.0f; heap in use %.0f MiB, GC goal %.0f MiB; %.0f events",
				el.Seconds(), s.rss, s.anon, s.shmem, s.file, s.auditMap, s.goroutines, heap/(1<<20), goal/(1<<20), s.events)
		}
		if el >= total {
			break
		}
	}
	end := samples[len(samples)-1].at

	// Stop the producers (clean close) and let the agent drain: every
	// record written must be consumed.
	var written, prodDropped, skipped, records, audits, errs uint64
	for _, p := range procs {
		st := p.finish(t)
		written += st.HotWritten + st.AuditWritten
		prodDropped += st.HotDropped + st.AuditDropped
		skipped += st.Skipped
		records += st.Records
		audits += st.Audits
		errs += st.Errors
	}
	var consumed float64
	testutil.Eventually(t, 30*time.Second, func() bool {
		mfs, _, err := scrape()
		if err != nil {
			return false
		}
		lastMfs = mfs
		consumed, _ = familySum(mfs, "agaobs_ring_events_total")
		return consumed >= float64(written)
	}, "the agent did not consume what the producers wrote")
	for _, fam := range []string{"agaobs_ring_dropped_total", "agaobs_ring_lost_total", "agaobs_ring_corrupt_total",
		"agaobs_sink_dropped_total", "agaobs_sink_errors_total"} {
		dropSeen = append(dropSeen, nonZero(lastMfs, fam)...)
	}
	var notifBad []string
	if mf := lastMfs["agaobs_alert_notifications_total"]; mf != nil {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "result" && l.GetValue() != "success" && m.GetCounter().GetValue() != 0 {
					notifBad = append(notifBad, fmt.Sprintf("%v %g", m.Label, m.GetCounter().GetValue()))
				}
			}
		}
	}
	metricP99 := histP99(lastMfs, "agaobs_sink_event_latency_seconds", map[string]string{"sink": "metrics"})
	durableP99 := histP99(lastMfs, "agaobs_audit_event_to_durable_seconds", nil)
	logLines, _ := familySum(lastMfs, "agaobs_log_lines_total")
	var status struct {
		P99 float64 `json:"event_to_sink_p99_seconds"`
	}
	if resp, err := http.Get("http://" + adminAddr + "/api/v1/status"); err == nil {
		json.NewDecoder(resp.Body).Decode(&status)
		resp.Body.Close()
	}

	byMapping, _ := rssByMapping(pid)
	// A clean stop after the soak: SIGTERM, exit 0.
	ag.Process.Signal(syscall.SIGTERM)
	waitErr := make(chan error, 1)
	go func() { waitErr <- ag.Wait() }()
	select {
	case err := <-waitErr:
		agentExited = true
		if err != nil {
			t.Errorf("agent exit after SIGTERM: %v", err)
		}
		<-logDone
	case <-time.After(30 * time.Second):
		t.Errorf("agent did not stop within 30 s of SIGTERM")
	}

	// The measured window.
	startAt, endAt := mark, end
	at := func(d time.Duration, f func(soakSample) float64) float64 { return medianOf(samples, d-win, d, f) }
	rss := func(s soakSample) float64 { return s.rss }
	anon := func(s soakSample) float64 { return s.anon }
	file := func(s soakSample) float64 { return s.file + s.shmem }
	gor := func(s soakSample) float64 { return s.goroutines }
	rss0, rss1 := at(startAt, rss), at(endAt, rss)
	// The audit store's bbolt mapping holds page-cache pages of the file
	// that bbolt has read since its last remap: it grows with the data
	// written and drops at each remap (the mapping doubles up to 1 GiB,
	// then grows by 1 GiB). Those pages are clean and reclaimable, not
	// agent memory; the leak criterion is RSS without them.
	own := func(s soakSample) float64 { return s.rss - s.auditMap }
	audit := func(s soakSample) float64 { return s.auditMap }
	own0, own1 := at(startAt, own), at(endAt, own)
	aud0, aud1 := at(startAt, audit), at(endAt, audit)
	anon0, anon1 := at(startAt, anon), at(endAt, anon)
	file0, file1 := at(startAt, file), at(endAt, file)
	g0, g1 := at(startAt, gor), at(endAt, gor)
	var peak float64
	for _, s := range samples {
		peak = max(peak, s.rss)
	}
	sampleAt := func(d time.Duration) soakSample {
		for _, s := range samples {
			if s.at >= d {
				return s
			}
		}
		return samples[len(samples)-1]
	}
	s0, s1 := sampleAt(startAt), samples[len(samples)-1]
	cpuPct := 100 * (s1.cpu - s0.cpu).Seconds() / (s1.at - s0.at).Seconds()
	allCPU := 100 * s1.cpu.Seconds() / s1.at.Seconds()
	achieved := (s1.events - s0.events) / (s1.at - s0.at).Seconds()
	pct := func(ds []time.Duration, q float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		c := slices.Clone(ds)
		slices.Sort(c)
		return c[int(q*float64(len(c)-1))]
	}
	backups, _ := filepath.Glob(filepath.Join(filepath.Dir(logFile), "events-*.log"))

	t.Logf("soak %v (measured %v–%v): RSS %.1f → %.1f MiB (%+.2f; without the audit store mapping %.1f → %.1f, %+.2f; anon %.1f → %.1f, file+shmem %.1f → %.1f, audit store mapping %.1f → %.1f), peak %.1f MiB",
		end.Round(time.Second), startAt, endAt.Round(time.Second), rss0, rss1, rss1-rss0, own0, own1, own1-own0, anon0, anon1, file0, file1, aud0, aud1, peak)
	t.Logf("RSS by mapping at the end (MiB): %s", largest(byMapping, 8))
	t.Logf("goroutines %.0f → %.0f; CPU %.1f %% of a core in the window (%.1f %% overall); %.0f events/s consumed in the window",
		g0, g1, cpuPct, allCPU, achieved)
	t.Logf("records %d (audits %d), ring records written %d, consumed %.0f, producer drops %d, skipped tokens %d, emit errors %d",
		records, audits, written, consumed, prodDropped, skipped, errs)
	t.Logf("/metrics p50 %v p99 %v, /health p50 %v p99 %v; event → metric p99 ≤ %.1f ms, event → sink p99 %.2f ms, event → durable p99 ≤ %.0f ms; log lines %.0f, log files %d rotated + 1; webhook %d posts %v; bpf %v",
		pct(scrapeLat, .5).Round(10*time.Microsecond), pct(scrapeLat, .99).Round(10*time.Microsecond),
		pct(healthLat, .5).Round(10*time.Microsecond), pct(healthLat, .99).Round(10*time.Microsecond),
		metricP99*1e3, status.P99*1e3, durableP99*1e3, logLines, len(backups), hooks.Load(), hookNames, bpf)

	// Assertions. The footprint is a measure of speed on this machine:
	// a loaded machine lets sink queues fill (and keep their pages), so
	// it is asserted in the full-size run (make e2e) and reported here.
	if growth := own1 - own0; !(growth < 5) && full() {
		t.Errorf("RSS without the audit store mapping grew %.2f MiB between %v and %v (%.1f → %.1f MiB), goal < 5 MiB", growth, startAt, endAt.Round(time.Second), own0, own1)
	} else if !(growth < 5) {
		t.Logf("RSS grew %.2f MiB (goal < 5 MiB, asserted in make e2e)", growth)
	}
	if !(math.Abs(g1-g0) <= 2) {
		t.Errorf("goroutines %.0f at %v, %.0f at %v: moved by more than 2", g0, startAt, g1, endAt.Round(time.Second))
	}
	if len(dropSeen) > 0 {
		t.Errorf("drops, losses, corruption or sink errors on /metrics:\n%s", strings.Join(dropSeen, "\n"))
	}
	if prodDropped != 0 || errs != 0 {
		t.Errorf("producers dropped %d records, %d emit errors", prodDropped, errs)
	}
	if consumed != float64(written) {
		t.Errorf("consumed %.0f records, producers wrote %d", consumed, written)
	}
	// The load must be what the test claims, or a starved producer would
	// make the soak pass trivially.
	if achieved < 0.95*rate {
		t.Errorf("%.0f events/s consumed between %v and %v, the soak's load is %d/s (producers skipped %d tokens)", achieved, startAt, endAt.Round(time.Second), rate, skipped)
	}
	if len(notifBad) > 0 || hooks.Load() == 0 {
		t.Errorf("webhook: %d notifications received; failed or dropped: %v", hooks.Load(), notifBad)
	}
	if len(healthBad) > 0 || healthErrs > 0 {
		t.Errorf("/health: %d failed polls; unhealthy: %v", healthErrs, healthBad)
	}
	if scrapeErrs > 0 {
		t.Errorf("%d failed scrapes", scrapeErrs)
	}
	if len(backups) == 0 || len(backups) > 2 {
		t.Errorf("event log: %d rotated files, want 1–2 (log_backup_count 2)", len(backups))
	}
	if t.Failed() {
		agentLogMu.Lock()
		t.Logf("agent log:\n%s", agentLog.String())
		agentLogMu.Unlock()
	}

	load := fmt.Sprintf("%d k events/s for %v (2 producer processes: forwards on 3 layers, a retrieval per 5 steps, an audit per 256 steps, status every 2 s; %d events, %d audits); every sink on: /metrics scraped and /health polled every 1 s, event log rotating at 1 MiB, default alert rules + webhook, bbolt audit store, state file, GPU, eBPF %v",
		rate/1000, end.Round(time.Second), records, audits, map[bool]string{true: "on", false: "off (not root)"}[bpf])
	result := fmt.Sprintf("between %v and %v: RSS %.1f → %.1f MiB (%+.2f MiB; without the audit store's bbolt mapping %+.2f MiB, goal < 5; the mapping %.1f → %.1f MiB; peak %.1f), goroutines %.0f → %.0f (±2); agent CPU %.1f %% of a core; 0 dropped (rings, producers, sinks), %.0f/%d records consumed; event → metric p99 ≤ %.0f ms; /metrics p99 %.1f ms",
		startAt, endAt.Round(time.Second), rss0, rss1, rss1-rss0, own1-own0, aud0, aud1, peak, g0, g1, cpuPct, consumed, written, metricP99*1e3,
		float64(pct(scrapeLat, .99).Microseconds())/1e3)
	report(t, "soak, every sink on", load, result)
}
