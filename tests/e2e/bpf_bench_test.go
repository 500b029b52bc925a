package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/testutil"
)

// runProducer starts a Python producer script, waits for "ready", lets
// prepare run (the agent attaching), sends "go" and returns the next line
// and the time it took.
func runProducer(b *testing.B, py, script string, args []string, env []string, prepare func()) (string, time.Duration) {
	cmd := exec.Command(py, append([]string{script}, args...)...)
	if ts, err := exec.LookPath("taskset"); err == nil {
		// The producer on CPU 1, the agent mostly on the other: less noise.
		cmd = exec.Command(ts, append([]string{"-c", "1", py, script}, args...)...)
	}
	cmd.Env = append(append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "clients/python")), env...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }()
	out := bufio.NewReader(stdout)
	if line, _ := out.ReadString('\n'); line != "ready\n" {
		b.Fatalf("producer: %q", line)
	}
	prepare()
	start := time.Now()
	io.WriteString(stdin, "go\n")
	line, _ := out.ReadString('\n')
	return strings.TrimSpace(line), time.Since(start)
}

func waitAttached(b *testing.B, url, probe string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := series(scrape2(url), "agaobs_bpf_probe_attached", map[string]string{"probe": probe}); m != nil && m.Gauge.GetValue() >= 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s never attached", probe)
}

// BenchmarkBPFWorkloadOverhead: events/s of a Python producer (Debian's
// python3.11, so python_gc applies) watched by the agent's default probe
// set, against the same agent with eBPF off. Run by `make bench`.
func BenchmarkBPFWorkloadOverhead(b *testing.B) {
	testutil.RequireBPF(b)
	py := "/usr/bin/python3.11"
	if _, err := os.Stat(py); err != nil {
		testutil.SkipOrFail(b, "Debian's python3.11 is not installed")
	}
	script := filepath.Join(root, "clients/python/bench/bpf_workload.py")
	var gcHits, switches []float64
	run := func(bpf bool) float64 {
		dir := b.TempDir()
		url := startAgent(b, "--ring-dir", dir, "--bpf-enabled="+strconv.FormatBool(bpf), "--log-enabled=false")
		line, _ := runProducer(b, py, script, []string{"2"}, []string{"AGAOBS_RING_DIR=" + dir, "AGAOBS_PRODUCER=bench"}, func() {
			if bpf {
				waitAttached(b, url, "python_gc")
			} else {
				time.Sleep(time.Second)
			}
		})
		v, err := strconv.ParseFloat(line, 64)
		if err != nil {
			b.Fatalf("workload: %q", line)
		}
		if bpf { // what the probes saw: hits per second of the 2 s run
			mfs := scrape2(url)
			if m := series(mfs, "agaobs_bpf_python_gc_pause_seconds", map[string]string{"producer": "bench"}); m != nil {
				gcHits = append(gcHits, float64(m.Histogram.GetSampleCount())/2)
			}
			var sw float64
			for _, reason := range []string{"sleep", "preempted"} {
				if m := series(mfs, "agaobs_bpf_offcpu_seconds", map[string]string{"producer": "bench", "reason": reason}); m != nil {
					sw += float64(m.Histogram.GetSampleCount())
				}
			}
			switches = append(switches, sw/2)
		}
		return v
	}
	for i := 0; i < b.N; i++ {
		// Alternate short runs and compare medians: the VM's noise between
		// single runs (±10 %) exceeds the effect.
		var offs, ons []float64
		for r := 0; r < 5; r++ {
			offs = append(offs, run(false))
			ons = append(ons, run(true))
		}
		off, on := median(offs), median(ons)
		b.ReportMetric(off, "events/s-bpf-off")
		b.ReportMetric(on, "events/s-default-probes")
		b.ReportMetric(100*(off-on)/off, "overhead-%")
		b.ReportMetric(median(gcHits), "gc-pauses/s")
		b.ReportMetric(median(switches), "context-switches/s")
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkForwardMarkerCost: time per marked forward (pre- and post-hook
// calling the marker library) with the agent's uprobes on the markers,
// against markers called but not probed.
func BenchmarkForwardMarkerCost(b *testing.B) {
	testutil.RequireBPF(b)
	gcc := testutil.RequireTool(b, "gcc")
	py := testutil.RequireTool(b, "python3")
	lib := filepath.Join(b.TempDir(), "libagaobs_marker.so")
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-O2", "-I", filepath.Join(root, "clients/c/include"), "-o", lib,
		filepath.Join(root, "clients/c/marker/agaobs_marker.c")).CombinedOutput(); err != nil {
		b.Fatalf("build the marker: %v\n%s", err, out)
	}
	cfg := filepath.Join(b.TempDir(), "agent.yaml")
	os.WriteFile(cfg, []byte("bpf_probes: {forward_marker: true}\n"), 0o600)
	const n = 5000 // forwards of each of 2 modules
	run := func(probed bool) time.Duration {
		dir := b.TempDir()
		url := startAgent(b, "--ring-dir", dir, "--config", cfg, "--bpf-enabled="+strconv.FormatBool(probed))
		_, d := runProducer(b, py, filepath.Join(root, "clients/python/tests/marker_producer.py"), []string{fmt.Sprint(n)},
			[]string{"AGAOBS_RING_DIR=" + dir, "AGAOBS_PRODUCER=bench", "AGAOBS_FORWARD_MARKER=1", "AGAOBS_MARKER_LIB=" + lib}, func() {
				if probed {
					waitAttached(b, url, "forward_marker")
				}
			})
		return d / (2 * n)
	}
	for i := 0; i < b.N; i++ {
		bare := run(false)
		probed := run(true)
		b.ReportMetric(float64(bare.Nanoseconds())/1e3, "µs/forward-unprobed")
		b.ReportMetric(float64(probed.Nanoseconds())/1e3, "µs/forward-probed")
		b.ReportMetric(float64((probed-bare).Nanoseconds())/1e3, "µs/forward-added-by-uprobes")
	}
}
