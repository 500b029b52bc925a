//go:build linux

package probes

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/testutil"
)

const (
	helperEnv   = "AGAOBS_PROBES_TEST_HELPER"
	sleepLogEnv = "AGAOBS_PROBES_TEST_SLEEP_LOG"
)

// TestMain lets the test binary act as the processes the probes watch.
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "sleep": // blocks over and over: off-CPU time, reason sleep
		// It records how long its sleeps took (count and total ns) where
		// sleepLogEnv says, for bounds relative to what it measured.
		var total time.Duration
		for i := 0; i < 400; i++ {
			t0 := time.Now()
			time.Sleep(5 * time.Millisecond)
			total += time.Since(t0)
			if f := os.Getenv(sleepLogEnv); f != "" {
				os.WriteFile(f+".tmp", []byte(fmt.Sprint(i+1, " ", total.Nanoseconds())), 0o644)
				os.Rename(f+".tmp", f)
			}
		}
		os.Exit(0)
	case "spin": // more busy threads than CPUs: preempted, run queue waits
		runtime.GOMAXPROCS(runtime.NumCPU() * 3)
		var wg sync.WaitGroup
		stop := time.Now().Add(2 * time.Second)
		for i := 0; i < runtime.NumCPU()*3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				x := 0
				for time.Now().Before(stop) {
					x++
				}
				_ = x
			}()
		}
		wg.Wait()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helper(t *testing.T, kind string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+kind), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// gather collects the manager's metrics.
func gather(t *testing.T, m *Manager) map[string]*dto.MetricFamily {
	t.Helper()
	reg, _ := register(t, m.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func startManager(t *testing.T, probes map[string]bool, targets func() []Target) *Manager {
	t.Helper()
	testutil.RequireBPF(t)
	m := New(Options{Probes: probes, Targets: targets})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if available, reason, _, _ := m.state(); !available {
		t.Fatalf("eBPF unavailable: %s (%s)", reason, m.detail)
	}
	t.Cleanup(m.close)
	return m
}

// offcpu and runqueue see a process that sleeps and one that competes
// for the CPU, each under its own producer name.
func TestSchedProbes(t *testing.T) {
	sleepLog := filepath.Join(t.TempDir(), "sleeps")
	sleeper, spinner := helper(t, "sleep", sleepLogEnv+"="+sleepLog), helper(t, "spin")
	targets := func() []Target {
		return []Target{{Producer: "sleeper", HostPID: sleeper.Process.Pid}, {Producer: "spinner", HostPID: spinner.Process.Pid}}
	}
	m := startManager(t, map[string]bool{"offcpu": true, "runqueue": true}, targets)
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	// Until the sleeper has slept 300 times, by its own count, and the
	// spinner was seen: progress, not a fixed wall-clock wait.
	var mfs map[string]*dto.MetricFamily
	var sleep *dto.Metric
	var sleeps, sleptNs int64
	testutil.WaitFor(time.Minute, func() bool {
		if b, err := os.ReadFile(sleepLog); err != nil || func() bool { _, err := fmt.Sscan(string(b), &sleeps, &sleptNs); return err != nil }() || sleeps < 300 {
			return false
		}
		mfs = gather(t, m)
		sleep = series(mfs, "agaobs_bpf_offcpu_seconds", "producer", "sleeper", "reason", "sleep")
		pre := series(mfs, "agaobs_bpf_offcpu_seconds", "producer", "spinner", "reason", "preempted")
		rq := series(mfs, "agaobs_bpf_runqueue_latency_seconds", "producer", "spinner")
		return sleep != nil && sleep.Histogram.GetSampleCount() >= 50 && pre != nil && pre.Histogram.GetSampleCount() > 0 &&
			rq != nil && rq.Histogram.GetSampleCount() > 0
	})
	if sleep == nil || sleep.Histogram.GetSampleCount() < 50 {
		t.Fatalf("sleeper off-CPU (sleep): %v", sleep)
	}
	// Each sleep blocks a thread for the 5 ms asked, longer as the
	// sleeper measured it on a loaded machine; the runtime's other threads
	// add many short waits, so the bounds are relative to its count and
	// duration: at least half its sleeps seen as waits of 1.95 ms or more,
	// and a mean wait of at most 10 × its measured mean sleep.
	measured := time.Duration(sleptNs / sleeps).Seconds()
	var short uint64
	for _, b := range sleep.Histogram.Bucket {
		if b.GetUpperBound() == math.Ldexp(1, -9) {
			short = b.GetCumulativeCount()
		}
	}
	if long := sleep.Histogram.GetSampleCount() - short; long < uint64(sleeps)/2 {
		t.Errorf("sleeper: %d waits of 1.95 ms or more, want at least half its %d sleeps", long, sleeps)
	}
	if mean := sleep.Histogram.GetSampleSum() / float64(sleep.Histogram.GetSampleCount()); mean > 10*measured {
		t.Errorf("sleeper mean off-CPU %.4fs, want at most 10 × the %.4fs its sleeps took", mean, measured)
	}
	pre := series(mfs, "agaobs_bpf_offcpu_seconds", "producer", "spinner", "reason", "preempted")
	if pre == nil || pre.Histogram.GetSampleCount() == 0 {
		t.Fatalf("spinner preempted off-CPU: %v", pre)
	}
	rq := series(mfs, "agaobs_bpf_runqueue_latency_seconds", "producer", "spinner")
	if rq == nil || rq.Histogram.GetSampleCount() == 0 || rq.Histogram.GetSampleSum() <= 0 {
		t.Fatalf("spinner run queue latency: %v", rq)
	}
	if s := series(mfs, "agaobs_bpf_offcpu_seconds", "producer", "spinner", "reason", "sleep"); s != nil && sleep.Histogram.GetSampleCount() < s.Histogram.GetSampleCount() {
		t.Errorf("the spinner slept more often (%d) than the sleeper (%d)", s.Histogram.GetSampleCount(), sleep.Histogram.GetSampleCount())
	}
	if a := series(mfs, "agaobs_bpf_probe_attached", "probe", "offcpu"); a == nil || a.Gauge.GetValue() != 2 {
		t.Errorf("offcpu attached to %v producers, want 2", a)
	}
	// A producer that goes away takes its series with it.
	targets = func() []Target { return []Target{{Producer: "sleeper", HostPID: sleeper.Process.Pid}} }
	m.opts.Targets = targets
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if s := series(gather(t, m), "agaobs_bpf_offcpu_seconds", "producer", "spinner", "reason", "preempted"); s != nil {
		t.Errorf("spinner series kept after it went away")
	}
}

// buildFakeCUDA compiles the fake libcudart/libcuda and the app calling
// them; it returns the app's path.
func buildFakeCUDA(t *testing.T) string {
	t.Helper()
	gcc := testutil.RequireTool(t, "gcc")
	dir := t.TempDir()
	run := func(args ...string) {
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	run("-shared", "-fPIC", "-O1", "-DRUNTIME", "-Wl,-soname,libcudart.so.12", "-o", filepath.Join(dir, "libcudart.so.12"), "testdata/fakecuda.c")
	run("-shared", "-fPIC", "-O1", "-Wl,-soname,libcuda.so.1", "-o", filepath.Join(dir, "libcuda.so.1"), "testdata/fakecuda.c")
	app := filepath.Join(dir, "fakecuda_app")
	run("-O1", "-o", app, "testdata/fakecuda_app.c", filepath.Join(dir, "libcudart.so.12"), filepath.Join(dir, "libcuda.so.1"), "-Wl,-rpath,"+dir)
	return app
}

// cuda_sync, cuda_graph_launch and cuda_launch against fake CUDA
// libraries with the real symbol names: exact counts, and every sync in
// the bucket its measured duration implies. The fake sleeps 3 ms but a
// loaded machine oversleeps, so the buckets are checked against what the
// app measured, not against 3 ms: each latency the probe records lies
// between the time measured inside the call (the fake's sleep) and the time
// measured around it (see testdata/fakecuda_app.c).
func TestCUDAProbes(t *testing.T) {
	app := buildFakeCUDA(t)
	const n, g, k = 20, 7, 11
	cmd := exec.Command(app, fmt.Sprint(n), fmt.Sprint(g), fmt.Sprint(k))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	if line, _ := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("app: %q", line)
	}
	m := startManager(t, map[string]bool{"cuda_sync": true, "cuda_graph_launch": true, "cuda_launch": true},
		func() []Target { return []Target{{Producer: "fake-gpu", HostPID: cmd.Process.Pid}} })
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "g")
	measured := map[string][]syncTiming{}
	for {
		line, err := out.ReadString('\n')
		if line == "done\n" {
			break
		}
		var api string
		var st syncTiming
		if _, perr := fmt.Sscanf(line, "sync %s %d %d\n", &api, &st.inner, &st.outer); err != nil || perr != nil {
			t.Fatalf("app: %q (%v, %v)", line, err, perr)
		}
		measured[api] = append(measured[api], st)
	}
	mfs := gather(t, m)
	for _, api := range []string{"cudaStreamSynchronize", "cudaDeviceSynchronize", "cuStreamSynchronize"} {
		s := series(mfs, "agaobs_bpf_cuda_sync_wait_seconds", "producer", "fake-gpu", "api", api)
		if s == nil || s.Histogram.GetSampleCount() != n || len(measured[api]) != n {
			t.Fatalf("%s: %v, want %d calls (app measured %d)", api, s, n, len(measured[api]))
		}
		var innerSum, outerSum int64
		for _, st := range measured[api] {
			// nanosleep never returns early: the fake's own clock
			// confirms the 3 ms it was asked for.
			if st.inner < 3e6 || st.outer < st.inner {
				t.Fatalf("%s: app measured %d ns inside, %d ns around a 3 ms sync", api, st.inner, st.outer)
			}
			innerSum += st.inner
			outerSum += st.outer
		}
		// Sample i is in [inner_i, outer_i], so at every bound the
		// cumulative count is at least the calls whose outer time is
		// below it and at most those whose inner time is.
		for _, b := range s.Histogram.Bucket {
			var lo, hi int
			for _, st := range measured[api] {
				if inClassicBucket(st.outer, b.GetUpperBound()) {
					lo++
				}
				if inClassicBucket(st.inner, b.GetUpperBound()) {
					hi++
				}
			}
			if c := int(b.GetCumulativeCount()); c < lo || c > hi {
				t.Errorf("%s: %d samples below %g s, want %d..%d from the durations the app measured", api, c, b.GetUpperBound(), lo, hi)
			}
		}
		if sum := int64(math.Round(s.Histogram.GetSampleSum() * 1e9)); sum < innerSum-1000 || sum > outerSum+1000 {
			t.Errorf("%s: sum %d ns, want %d..%d from the durations the app measured", api, sum, innerSum, outerSum)
		}
	}
	if s := series(mfs, "agaobs_bpf_cuda_sync_wait_seconds", "producer", "fake-gpu", "api", "cudaEventSynchronize"); s != nil {
		t.Errorf("an API never called has a series: %v", s)
	}
	if s := series(mfs, "agaobs_bpf_cuda_graph_launches_total", "producer", "fake-gpu"); s == nil || s.Counter.GetValue() != 2*g {
		t.Errorf("graph launches %v, want %d (runtime + driver)", s, 2*g)
	}
	if s := series(mfs, "agaobs_bpf_cuda_kernel_launches_total", "producer", "fake-gpu", "api", "cudaLaunchKernel"); s == nil || s.Counter.GetValue() != k {
		t.Errorf("kernel launches %v, want %d", s, k)
	}
	for _, p := range []string{"cuda_sync", "cuda_graph_launch", "cuda_launch"} {
		if a := series(mfs, "agaobs_bpf_probe_attached", "probe", p); a == nil || a.Gauge.GetValue() != 1 {
			t.Errorf("%s attached %v", p, a)
		}
	}
}

// syncTiming is one synchronize call as fakecuda_app measured it, in ns:
// inside the fake (its sleep) and around the call.
type syncTiming struct{ inner, outer int64 }

// inClassicBucket reports whether a duration of ns is counted under the
// classic bucket le: the kernel's binning (bpf/common.h ns_to_units, log2)
// and the collector's folding of kernel buckets into classic ones.
func inClassicBucket(ns int64, le float64) bool {
	u := uint64(ns)
	units := (u/1e9)<<unitShift + ((u%1e9)<<unitShift)/1e9
	slot := 0
	if units > 0 {
		slot = bits.Len64(units) - 1
	}
	_, exp := math.Frexp(le) // le = 0.5 * 2^exp
	return slot <= exp-1+unitShift-1
}

// A producer without the libraries a probe needs counts no_target once,
// not once per rescan.
func TestNoTargetCountedOnce(t *testing.T) {
	sleeper := helper(t, "sleep")
	m := startManager(t, map[string]bool{"cuda_sync": true}, func() []Target {
		return []Target{{Producer: "cpu-only", HostPID: sleeper.Process.Pid}}
	})
	m.opts.Rescan = time.Millisecond
	for i := 0; i < 3; i++ {
		if err := m.Sync(); err != nil {
			t.Fatal(err)
		}
		// Past the 1 ms rescan interval: each Sync rescans (a sleep is
		// never shorter, so load cannot fail this).
		time.Sleep(5 * time.Millisecond)
	}
	mfs := gather(t, m)
	if s := series(mfs, "agaobs_bpf_probe_errors_total", "probe", "cuda_sync", "reason", "no_target"); s == nil || s.Counter.GetValue() != 1 {
		t.Fatalf("no_target %v, want 1", s)
	}
	if h := m.Health(); h.Status != "healthy" {
		t.Fatalf("health %+v: a probe with no target is not a failure", h)
	}
}

// A library the producer loads after it was instrumented (dlopen of
// libcudart) is hooked by the next rescan.
func TestLateLibraryRescan(t *testing.T) {
	gcc := testutil.RequireTool(t, "gcc")
	dir := t.TempDir()
	lib := filepath.Join(dir, "libcudart.so.12")
	for _, args := range [][]string{
		{"-shared", "-fPIC", "-O1", "-DRUNTIME", "-o", lib, "testdata/fakecuda.c"},
		{"-O1", "-o", filepath.Join(dir, "app"), "testdata/fakecuda_dlopen.c", "-ldl"},
	} {
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	const k = 13
	cmd := exec.Command(filepath.Join(dir, "app"), lib, fmt.Sprint(k))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	expect := func(want string) {
		t.Helper()
		if line, _ := out.ReadString('\n'); line != want+"\n" {
			t.Fatalf("app: %q, want %q", line, want)
		}
	}
	expect("ready")
	m := startManager(t, map[string]bool{"cuda_graph_launch": true},
		func() []Target { return []Target{{Producer: "late", HostPID: cmd.Process.Pid}} })
	m.opts.Rescan = 50 * time.Millisecond
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if a := series(gather(t, m), "agaobs_bpf_probe_attached", "probe", "cuda_graph_launch"); a == nil || a.Gauge.GetValue() != 0 {
		t.Fatalf("attached before the library was loaded: %v", a)
	}
	io.WriteString(stdin, "l")
	expect("loaded")
	time.Sleep(60 * time.Millisecond) // past the 50 ms rescan interval (never shorter)
	if err := m.Sync(); err != nil {  // the rescan
		t.Fatal(err)
	}
	io.WriteString(stdin, "c")
	expect("done")
	mfs := gather(t, m)
	if s := series(mfs, "agaobs_bpf_cuda_graph_launches_total", "producer", "late"); s == nil || s.Counter.GetValue() != k {
		t.Fatalf("graph launches after the rescan: %v, want %d", s, k)
	}
}
