package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runOpts are the bench-wide settings runScenario needs besides the scenario.
type runOpts struct {
	collector string // agaobs-testcol binary
	pprofFile string // save an agent CPU profile taken during the window here
	pprofSec  int
}

// testCollector is an agaobs-testcol process receiving OTLP/gRPC on addr and
// writing OTLP/JSON lines into dir, and the poller that stamps each new
// traces.jsonl line with the time it was first seen.
type testCollector struct {
	cmd  *exec.Cmd
	addr string
	dir  string
	done chan struct{} // closes the poller
	wg   sync.WaitGroup

	mu    sync.Mutex
	spans []spanSeen
	tail  []string // the collector's last stderr lines
}

// spanSeen is one span found in traces.jsonl: when the poll saw its line and
// the span's end time (the event time), both Unix ns.
type spanSeen struct{ seen, end int64 }

// pollEvery is how often traces.jsonl is read: the collector's exporter
// records no receive time, so a line's receive time is the poll that first
// sees it (late by up to pollEvery).
const pollEvery = 10 * time.Millisecond

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startCollector starts bin with a config receiving OTLP/gRPC on a free
// loopback port, waits for "Everything is ready" and starts polling.
func startCollector(bin string) (*testCollector, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("collector binary (make otelcol, --collector): %w", err)
	}
	// tmpfs: the test exporter fsyncs every batch, which a real collector
	// would not; on tmpfs that costs nothing.
	dir, err := os.MkdirTemp("/dev/shm", "agaobs-bench-otelcol-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &testCollector{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, done: make(chan struct{})}
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: {endpoint: "%s"}
exporters:
  agaobstest: {directory: "%s", delay: 0s}
service:
  pipelines:
    traces:  {receivers: [otlp], exporters: [agaobstest]}
    logs:    {receivers: [otlp], exporters: [agaobstest]}
    metrics: {receivers: [otlp], exporters: [agaobstest]}
`, c.addr, filepath.Join(dir, "out"))
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	c.cmd = exec.Command(bin, "--config", cfgPath)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.tail = append(c.tail, line)
			if len(c.tail) > 30 {
				c.tail = c.tail[1:]
			}
			c.mu.Unlock()
			if !once && strings.Contains(line, "Everything is ready") {
				once = true
				close(ready)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		c.stop()
		c.mu.Lock()
		defer c.mu.Unlock()
		return nil, fmt.Errorf("collector not ready in 20 s:\n%s", strings.Join(c.tail, "\n"))
	}
	c.wg.Add(1)
	go c.poll()
	return c, nil
}

var endKey = []byte(`"endTimeUnixNano":"`)

// poll reads the lines appended to traces.jsonl every pollEvery and records
// each span's end time with the poll's time.
func (c *testCollector) poll() {
	defer c.wg.Done()
	path := filepath.Join(c.dir, "out", "traces.jsonl")
	var f *os.File
	var pending []byte
	buf := make([]byte, 1<<20)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			if f != nil {
				f.Close()
			}
			return
		case <-t.C:
		}
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil {
				continue
			}
		}
		now := time.Now().UnixNano()
		for {
			n, err := f.Read(buf)
			pending = append(pending, buf[:n]...)
			if n == 0 || err != nil {
				break
			}
		}
		i := bytes.LastIndexByte(pending, '\n')
		if i < 0 {
			continue
		}
		var seen []spanSeen
		for rest := pending[:i]; ; {
			j := bytes.Index(rest, endKey)
			if j < 0 {
				break
			}
			rest = rest[j+len(endKey):]
			k := bytes.IndexByte(rest, '"')
			if k < 0 {
				break
			}
			if end, err := strconv.ParseInt(string(rest[:k]), 10, 64); err == nil {
				seen = append(seen, spanSeen{now, end})
			}
		}
		pending = append(pending[:0], pending[i+1:]...)
		c.mu.Lock()
		c.spans = append(c.spans, seen...)
		c.mu.Unlock()
	}
}

// window returns the spans whose lines were seen in [from, to) and their
// event → seen latencies in ms, sorted.
func (c *testCollector) window(from, to time.Time) (n int, lat []float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, b := from.UnixNano(), to.UnixNano()
	for _, s := range c.spans {
		if s.seen >= a && s.seen < b {
			n++
			lat = append(lat, float64(s.seen-s.end)/1e6)
		}
	}
	sort.Float64s(lat)
	return n, lat
}

// lines counts the lines (batches) of one of the exporter's files.
func (c *testCollector) lines(name string) float64 {
	b, _ := os.ReadFile(filepath.Join(c.dir, "out", name))
	return float64(bytes.Count(b, []byte{'\n'}))
}

func (c *testCollector) stop() {
	if c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { c.cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-exited
		}
	}
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	c.wg.Wait()
	os.RemoveAll(c.dir)
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

// counterSum sums the samples of a counter family whose line contains
// every one of matches.
func counterSum(body, name string, matches ...string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, m := range matches {
			if !strings.Contains(line, m) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		fields := strings.Fields(line)
		v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
		sum += v
	}
	return sum
}

func scrapeBody(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// saveProfile fetches the agent's CPU profile over sec seconds into file.
func saveProfile(admin, file string, sec int) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, sec))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("pprof: " + resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func procHWM(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}
