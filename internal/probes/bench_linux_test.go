//go:build linux

package probes

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agaobs/agaobs/internal/testutil"
)

// BenchmarkProbeHit measures what one probe hit costs the hooked process
// on this machine: a C loop calling a counted function (entry uprobe) and
// a timed one (uprobe + uretprobe) with and without the probes attached.
// Run by `make bench` (root).
func BenchmarkProbeHit(b *testing.B) {
	gcc := testutil.RequireTool(b, "gcc")
	testutil.RequireBPF(b)
	dir := b.TempDir()
	build := func(args ...string) {
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			b.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	lib := filepath.Join(dir, "libcudart.so.12")
	build("-shared", "-fPIC", "-O1", "-DRUNTIME", "-DSYNC_US=0", "-o", lib, "testdata/fakecuda.c")
	app := filepath.Join(dir, "hitbench")
	build("-O1", "-o", app, "testdata/hitbench.c", lib, "-Wl,-rpath,"+dir)
	const calls = 20000
	run := func(attach bool) (graph, sync float64) {
		cmd := exec.Command(app, fmt.Sprint(calls))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer cmd.Wait()
		out := bufio.NewReader(stdout)
		out.ReadString('\n')
		if attach {
			m := New(Options{Probes: map[string]bool{"cuda_sync": true, "cuda_graph_launch": true},
				Targets: func() []Target { return []Target{{Producer: "bench", HostPID: cmd.Process.Pid}} }})
			if err := m.Start(); err != nil {
				b.Fatal(err)
			}
			defer m.close()
			if err := m.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		io.WriteString(stdin, "g")
		line, _ := out.ReadString('\n')
		fmt.Sscan(line, &graph, &sync)
		return graph, sync
	}
	for i := 0; i < b.N; i++ {
		g0, s0 := run(false)
		g1, s1 := run(true)
		b.ReportMetric(g0, "bare-ns/call")
		b.ReportMetric(g1-g0, "uprobe-ns/hit")
		b.ReportMetric(s1-s0, "uprobe+uretprobe-ns/call")
		_ = s0
	}
}
