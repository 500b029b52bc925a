//go:build linux

package probes

import (
	"bufio"
	"fmt"
	"io"
	"math"
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

const helperEnv = "AGAOBS_PROBES_TEST_HELPER"

// TestMain lets the test binary act as the processes the probes watch.
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "sleep": // blocks over and over: off-CPU time, reason sleep
		for i := 0; i < 400; i++ {
			time.Sleep(5 * time.Millisecond)
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

func helper(t *testing.T, kind string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+kind)
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
	sleeper, spinner := helper(t, "sleep"), helper(t, "spin")
	targets := func() []Target {
		return []Target{{Producer: "sleeper", HostPID: sleeper.Process.Pid}, {Producer: "spinner", HostPID: spinner.Process.Pid}}
	}
	m := startManager(t, map[string]bool{"offcpu": true, "runqueue": true}, targets)
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	mfs := gather(t, m)
	sleep := series(mfs, "agaobs_bpf_offcpu_seconds", "producer", "sleeper", "reason", "sleep")
	if sleep == nil || sleep.Histogram.GetSampleCount() < 50 {
		t.Fatalf("sleeper off-CPU (sleep): %v", sleep)
	}
	// Each sleep is ~5 ms: most samples in the buckets around it.
	if mean := sleep.Histogram.GetSampleSum() / float64(sleep.Histogram.GetSampleCount()); mean < 0.002 || mean > 0.05 {
		t.Errorf("sleeper mean off-CPU %.4fs, want ~5 ms", mean)
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
// libraries with the real symbol names: exact counts, and 3 ms syncs in
// the [2^-9, 2^-8) s bucket.
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
	if line, _ := out.ReadString('\n'); line != "done\n" {
		t.Fatalf("app: %q", line)
	}
	mfs := gather(t, m)
	for _, api := range []string{"cudaStreamSynchronize", "cudaDeviceSynchronize", "cuStreamSynchronize"} {
		s := series(mfs, "agaobs_bpf_cuda_sync_wait_seconds", "producer", "fake-gpu", "api", api)
		if s == nil || s.Histogram.GetSampleCount() != n {
			t.Fatalf("%s: %v, want %d calls", api, s, n)
		}
		// 3 ms lands under le=2^-8 (3.9 ms) and above le=2^-9 (1.95 ms).
		var under, atMost float64
		for _, b := range s.Histogram.Bucket {
			switch b.GetUpperBound() {
			case math.Ldexp(1, -9):
				under = float64(b.GetCumulativeCount())
			case math.Ldexp(1, -8):
				atMost = float64(b.GetCumulativeCount())
			}
		}
		// None can be faster than the sleep; a loaded CI machine may
		// oversleep a few past 3.9 ms.
		if under != 0 || atMost < 3*n/4 {
			t.Errorf("%s buckets: %d below 1.95 ms, %d below 3.9 ms of %d", api, int(under), int(atMost), n)
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
	time.Sleep(60 * time.Millisecond)
	if err := m.Sync(); err != nil { // the rescan
		t.Fatal(err)
	}
	io.WriteString(stdin, "c")
	expect("done")
	mfs := gather(t, m)
	if s := series(mfs, "agaobs_bpf_cuda_graph_launches_total", "producer", "late"); s == nil || s.Counter.GetValue() != k {
		t.Fatalf("graph launches after the rescan: %v, want %d", s, k)
	}
}
