//go:build cgo

package gpu

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus/testutil"

	agatest "github.com/agaobs/agaobs/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden exposition files")

// feedXIDs runs the XID loop over the node's scripted event set until
// its XID events are counted.
func feedXIDs(t testing.TB, c *Collector, f *fakeNode, script []scripted) {
	t.Helper()
	var want uint64
	for _, s := range script {
		if s.ret == nvml.SUCCESS && s.data.EventType&nvml.EventTypeXidCriticalError != 0 {
			want++
		}
	}
	set := newScriptedSet(script)
	f.srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.xidLoop(ctx) })
	agatest.Eventually(t, 30*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		var n uint64
		for _, st := range c.xids {
			n += st.count
		}
		return n == want
	}, "%d XID events counted", want)
	cancel()
	wg.Wait()
}

// TestGolden compares the whole exposition of Metrics() with
// testdata/<case>.prom (rewrite with -update) and checks the checks.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name     string
		gpus     int
		expected int
		pcie     bool
		setup    func(f *fakeNode)
		act      func(t *testing.T, c *Collector, f *fakeNode)
		checks   string
		reasons  map[string]string // check → substring of its reason
	}{
		{
			name: "healthy", gpus: 2, expected: 2, pcie: true,
			checks:  "nvml=healthy gpu_count=healthy gpu_lost=healthy xid=healthy ecc=healthy thermal=healthy",
			reasons: map[string]string{"nvml": "driver 550.54.15, CUDA 12.4", "gpu_count": "2 GPUs visible, expected 2"},
		},
		{
			name: "gpu_lost", gpus: 3, expected: 3,
			setup: func(f *fakeNode) {
				f.devs[1].GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_GPU_IS_LOST }
			},
			checks: "nvml=healthy gpu_count=unhealthy gpu_lost=unhealthy xid=healthy ecc=healthy thermal=healthy",
			reasons: map[string]string{
				"gpu_lost":  "GPU 1 (" + uuidOf(1) + ") lost: ERROR_GPU_IS_LOST",
				"gpu_count": "2 GPUs visible, expected 3",
			},
		},
		{
			name: "xid", gpus: 2,
			act: func(t *testing.T, c *Collector, f *fakeNode) {
				initPoll(t, c)
				feedXIDs(t, c, f, []scripted{xidOn(f.devs[0], 79), xidOn(f.devs[1], 13), xidOn(f.devs[0], 79)})
			},
			checks:  "nvml=healthy gpu_count=healthy gpu_lost=healthy xid=unhealthy ecc=healthy thermal=healthy",
			reasons: map[string]string{"xid": "critical XID 79 on " + uuidOf(0)},
		},
		{
			name: "ecc", gpus: 2,
			setup: func(f *fakeNode) {
				f.devs[0].GetTotalEccErrorsFunc = func(e nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
					switch {
					case e == nvml.MEMORY_ERROR_TYPE_CORRECTED && c == nvml.VOLATILE_ECC:
						return 7, nvml.SUCCESS
					case e == nvml.MEMORY_ERROR_TYPE_CORRECTED:
						return 40, nvml.SUCCESS
					case c == nvml.VOLATILE_ECC:
						return 2, nvml.SUCCESS
					}
					return 5, nvml.SUCCESS
				}
				f.devs[0].GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 3, 1, true, false, nvml.SUCCESS }
			},
			checks:  "nvml=healthy gpu_count=healthy gpu_lost=healthy xid=healthy ecc=unhealthy thermal=healthy",
			reasons: map[string]string{"ecc": uuidOf(0) + ": 2 uncorrectable ECC errors since boot; " + uuidOf(0) + ": row remapping pending"},
		},
		{
			name: "nvml_missing", gpus: 8, expected: 8,
			setup: func(f *fakeNode) {
				f.srv.InitFunc = func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }
			},
			act: func(t *testing.T, c *Collector, f *fakeNode) {
				if err := c.Init(); err == nil {
					t.Fatal("Init succeeded without a library")
				}
				c.Poll(t0)
			},
			checks: "nvml=unhealthy gpu_count=unhealthy gpu_lost=healthy xid=healthy ecc=healthy thermal=healthy",
			reasons: map[string]string{
				"nvml":      "nvml_missing: nvmlInit: ERROR_LIBRARY_NOT_FOUND",
				"gpu_count": "0 GPUs visible (NVML unavailable), expected 8",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNode(tc.gpus)
			if tc.setup != nil {
				tc.setup(f)
			}
			c := newTestCollector(f, Options{ExpectedCount: tc.expected, PCIe: tc.pcie})
			if tc.act != nil {
				tc.act(t, c, f)
			} else {
				initPoll(t, c)
			}
			golden := filepath.Join("testdata", tc.name+".prom")
			if *update {
				if err := os.WriteFile(golden, exposition(t, c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			reg, names := metricsRegistry(t, c)
			if err := testutil.GatherAndCompare(reg, bytes.NewReader(want), names...); err != nil {
				t.Fatal(err)
			}
			checks := c.Checks(t0)
			if got := statuses(checks); got != tc.checks {
				t.Errorf("checks:\n got %s\nwant %s\n%v", got, tc.checks, checks)
			}
			for name, sub := range tc.reasons {
				if r := check(t, checks, name).Reason; !strings.Contains(r, sub) {
					t.Errorf("check %s reason %q, want it to contain %q", name, r, sub)
				}
			}
		})
	}
}
