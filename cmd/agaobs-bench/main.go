// Command agaobs-bench measures agaobs-agent as a user would run it: a real
// agent process consuming rings written by paced producer processes. It
// reports agent CPU (from /proc/<pid>/stat), event → sink latency (from the
// agent's admin API) and drops, one line per scenario, as Markdown. `make
// bench` runs it; BENCHMARKS.md records its output.
//
//	agaobs-bench [--agent bin/agaobs-agent] [--duration 10s] [--scenarios idle,10k,1m]
//	agaobs-bench load --ring-dir DIR --rate N --duration D   (the producer side)
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
	if len(os.Args) > 1 && os.Args[1] == "load" {
		err = load(os.Args[2:])
	} else {
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	w, err := shm.CreateWriter(*dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: *hot, Identity: shm.Identity{Producer: *name}})
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
}

func bench(args []string) error {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	agentBin := fs.String("agent", "bin/agaobs-agent", "agent binary")
	dur := fs.Duration("duration", 10*time.Second, "measurement window per scenario")
	which := fs.String("scenarios", "idle,10k,100k,1m", "scenarios to run")
	agentArgs := fs.StringSlice("agent-arg", nil, "extra agent flag (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	all := map[string]scenario{
		"idle": {"idle (2 producers connected, no events)", 2, 0},
		"10k":  {"10 k events/s (1 producer)", 1, 10_000},
		"100k": {"100 k events/s (1 producer)", 1, 100_000},
		"1m":   {"1 M events/s (1 producer, 4 MiB ring)", 1, 1_000_000},
	}
	fmt.Println("| scenario | agent CPU (% of one core) | agent RSS (MiB) | events consumed | dropped | event → sink p50 / p99 | event → metric p99 (batch upper bound) | /metrics scrape |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, key := range strings.Split(*which, ",") {
		sc, ok := all[key]
		if !ok {
			return fmt.Errorf("unknown scenario %q", key)
		}
		row, err := runScenario(*agentBin, *agentArgs, sc, *dur)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		fmt.Println(row)
	}
	return nil
}

func runScenario(agentBin string, agentArgs []string, sc scenario, dur time.Duration) (string, error) {
	dir, err := os.MkdirTemp("/dev/shm", "agaobs-bench-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	admin, prom := "127.0.0.1:18181", "18182"
	ag := exec.Command(agentBin, append([]string{"run", "--ring-dir", dir, "--state-path", "", "--admin-listen-address", admin, "--agent-log-level", "error",
		"--prometheus-host", "127.0.0.1", "--prometheus-port", prom}, agentArgs...)...)
	ag.Stderr = os.Stderr
	if err := ag.Start(); err != nil {
		return "", err
	}
	defer func() { ag.Process.Signal(syscall.SIGTERM); ag.Wait() }()
	if err := waitHTTP("http://" + admin + "/api/v1/status"); err != nil {
		return "", err
	}
	self, _ := os.Executable()
	var loads []*exec.Cmd
	warm := 2 * time.Second
	for i := 0; i < sc.producers; i++ {
		c := exec.Command(self, "load", "--ring-dir", dir, "--rate", strconv.Itoa(sc.rate),
			"--duration", (dur + 2*warm).String(), "--producer", fmt.Sprintf("bench-%d", i))
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			return "", err
		}
		loads = append(loads, c)
	}
	time.Sleep(warm)
	cpu0, err := procCPU(ag.Process.Pid)
	if err != nil {
		return "", err
	}
	t0 := time.Now()
	time.Sleep(dur)
	cpu1, _ := procCPU(ag.Process.Pid)
	el := time.Since(t0)
	rss := procRSS(ag.Process.Pid)
	scrape, metricP99, err := scrapeStats("http://127.0.0.1:" + prom + "/metrics")
	if err != nil {
		return "", err
	}
	for _, c := range loads {
		c.Wait()
	}
	time.Sleep(300 * time.Millisecond)
	var st agent.StatusResponse
	if err := getJSON("http://"+admin+"/api/v1/status", &st); err != nil {
		return "", err
	}
	var rr agent.RingsResponse
	if err := getJSON("http://"+admin+"/api/v1/rings", &rr); err != nil {
		return "", err
	}
	var consumed, dropped uint64
	for _, r := range rr.Rings {
		consumed += r.Consumed
		dropped += r.Dropped
	}
	p50, p99 := "-", "-"
	if sc.rate > 0 {
		p50 = fmt.Sprintf("%.2f ms", st.ForwardP50Sec*1e3)
		p99 = fmt.Sprintf("%.2f ms", st.ForwardP99Sec*1e3)
	}
	cpuPct := 100 * (cpu1 - cpu0).Seconds() / el.Seconds()
	mp99 := "-"
	if sc.rate > 0 {
		mp99 = fmt.Sprintf("≤ %.1f ms", metricP99*1e3)
	}
	return fmt.Sprintf("| %s | %.2f | %.1f | %d | %d | %s / %s | %s | %.1f ms |", sc.name, cpuPct, rss, consumed, dropped, p50, p99, mp99, scrape.Seconds()*1e3), nil
}

// scrapeStats times five scrapes (median) and reads the metrics sink's
// event → sink latency histogram: its p99 bucket's upper bound.
func scrapeStats(url string) (time.Duration, float64, error) {
	var times []time.Duration
	var body []byte
	for i := 0; i < 5; i++ {
		start := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			return 0, 0, err
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, 0, err
		}
		times = append(times, time.Since(start))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	type bucket struct{ le, cum float64 }
	var buckets []bucket
	var count float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.Contains(line, `sink="metrics"`) {
			continue
		}
		fields := strings.Fields(line)
		v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
		switch {
		case strings.HasPrefix(line, "agaobs_sink_event_latency_seconds_bucket"):
			i := strings.Index(line, `le="`)
			le, _ := strconv.ParseFloat(strings.Trim(line[i+4:strings.Index(line[i+4:], `"`)+i+4], `"`), 64)
			if strings.Contains(line, `le="+Inf"`) {
				le = math.Inf(1)
			}
			buckets = append(buckets, bucket{le, v})
		case strings.HasPrefix(line, "agaobs_sink_event_latency_seconds_count"):
			count = v
		}
	}
	p99 := math.NaN()
	for _, b := range buckets {
		if b.cum >= 0.99*count {
			p99 = b.le
			break
		}
	}
	return times[len(times)/2], p99, nil
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

func procRSS(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
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
