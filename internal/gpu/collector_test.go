//go:build cgo

package gpu

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	dto "github.com/prometheus/client_model/go"
)

// perGPU counts the series of each family carrying uuid.
func perGPU(mfs []*dto.MetricFamily, uuid string) map[string]int {
	out := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "uuid" && l.GetValue() == uuid {
					out[mf.GetName()]++
				}
			}
		}
	}
	return out
}

// A value the driver cannot give — a symbol the library lacks, a method
// that panics, FUNCTION_NOT_FOUND, NOT_SUPPORTED — removes only its own
// series; an unexpected error also fails the collection.
func TestUnsupportedValueOmitsOnlyItsSeries(t *testing.T) {
	healthy := newTestCollector(newFakeNode(2), Options{})
	initPoll(t, healthy)
	base := [2]map[string]int{perGPU(gather(t, healthy), uuidOf(0)), perGPU(gather(t, healthy), uuidOf(1))}
	if len(base[0]) != 13 {
		t.Fatalf("healthy GPU has %d per-GPU families, want 13: %v", len(base[0]), base[0])
	}

	for _, tc := range []struct {
		name    string
		setup   func(f *fakeNode)
		gone    string // family removed
		gpus    []int  // from these GPUs
		success float64
		verify  func(t *testing.T, c *Collector, f *fakeNode)
	}{
		{
			name: "symbol missing from the driver",
			setup: func(f *fakeNode) {
				f.srv.LookupSymbolFunc = func(s string) error {
					if s == "nvmlDeviceGetTotalEnergyConsumption" {
						return errors.New("undefined symbol: " + s)
					}
					return nil
				}
			},
			gone: "agaobs_gpu_energy_joules_total", gpus: []int{0, 1}, success: 1,
			verify: func(t *testing.T, c *Collector, f *fakeNode) {
				for _, d := range f.devs {
					if n := len(d.GetTotalEnergyConsumptionCalls()); n != 0 {
						t.Errorf("a missing symbol was called %d times", n)
					}
				}
			},
		},
		{
			name:  "method panics",
			setup: func(f *fakeNode) { f.devs[0].GetPowerUsageFunc = nil }, // the mock panics on a nil func
			gone:  "agaobs_gpu_power_watts", gpus: []int{0}, success: 1,
		},
		{
			name: "ERROR_FUNCTION_NOT_FOUND",
			setup: func(f *fakeNode) {
				f.devs[0].GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) {
					return 0, 0, false, false, nvml.ERROR_FUNCTION_NOT_FOUND
				}
			},
			gone: "agaobs_gpu_remapped_rows", gpus: []int{0}, success: 1,
		},
		{
			name: "ERROR_NOT_SUPPORTED",
			setup: func(f *fakeNode) {
				f.devs[1].GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) {
					return 0, nvml.ERROR_NOT_SUPPORTED
				}
			},
			gone: "agaobs_gpu_ecc_errors_total", gpus: []int{1}, success: 1,
		},
		{
			name: "unexpected error",
			setup: func(f *fakeNode) {
				f.devs[0].GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
			},
			gone: "agaobs_gpu_temperature_celsius", gpus: []int{0}, success: 0,
			verify: func(t *testing.T, c *Collector, f *fakeNode) {
				if ch := check(t, c.Checks(t0), "nvml"); ch.Status != StatusDegraded || !strings.Contains(ch.Reason, "temperature: ERROR_UNKNOWN") {
					t.Errorf("nvml check %+v, want degraded naming the failed value", ch)
				}
			},
		},
		{
			name: "clock event reasons fall back to throttle reasons",
			setup: func(f *fakeNode) {
				f.devs[0].GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_FUNCTION_NOT_FOUND }
				f.devs[0].GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) {
					return nvml.ClocksThrottleReasonHwThermalSlowdown, nvml.SUCCESS
				}
			},
			success: 1,
			verify: func(t *testing.T, c *Collector, f *fakeNode) {
				if v := value(t, c, "agaobs_gpu_throttle_reason", map[string]string{"uuid": uuidOf(0), "reason": "hw_thermal_slowdown"}); v != 1 {
					t.Errorf("hw_thermal_slowdown = %v, want 1 from the legacy call", v)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNode(2)
			tc.setup(f)
			c := newTestCollector(f, Options{})
			initPoll(t, c)
			mfs := gather(t, c)
			for i := range 2 {
				got := perGPU(mfs, uuidOf(i))
				for name, n := range base[i] {
					want := n
					if name == tc.gone && contains(tc.gpus, i) {
						want = 0
					}
					if got[name] != want {
						t.Errorf("GPU %d: %s has %d series, want %d", i, name, got[name], want)
					}
				}
			}
			if v := value(t, c, "agaobs_gpu_collect_success", nil); v != tc.success {
				t.Errorf("collect_success = %v, want %v", v, tc.success)
			}
			if tc.verify != nil {
				tc.verify(t, c, f)
			}
		})
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestProcesses(t *testing.T) {
	f := newFakeNode(3)
	proc := func(pid uint32, used uint64) nvml.ProcessInfo { return nvml.ProcessInfo{Pid: pid, UsedGpuMemory: used} }
	f.devs[0].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{proc(100, 4*gib), proc(200, gib)}, nvml.SUCCESS
	}
	f.devs[0].GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{proc(100, gib/2)}, nvml.SUCCESS
	}
	f.devs[1].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{proc(100, 2*gib), proc(300, math.MaxUint64)}, nvml.SUCCESS
	}
	f.devs[1].GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
	// A lost GPU's processes are not reported.
	f.devs[2].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{proc(400, gib)}, nvml.SUCCESS
	}
	f.devs[2].GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_GPU_IS_LOST }
	c := newTestCollector(f, Options{})
	initPoll(t, c)

	want := map[uint32][]ProcessMemory{
		100: {{uuidOf(0), 4*gib + gib/2}, {uuidOf(1), 2 * gib}},
		200: {{uuidOf(0), gib}},
		300: {{uuidOf(1), 0}}, // NVML_VALUE_NOT_AVAILABLE: listed, memory unknown
	}
	if got := c.Processes(); !reflect.DeepEqual(got, want) {
		t.Errorf("Processes() = %v, want %v", got, want)
	}
	if got := c.GPUs(); len(got) != 2 || got[0].UUID != uuidOf(0) || got[1].UUID != uuidOf(1) {
		t.Errorf("GPUs() = %+v, want GPUs 0 and 1 (2 is lost)", got)
	}

	// The next collection replaces the map: an exited process goes.
	f.devs[0].GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	c.Poll(t0)
	if got := c.Processes()[200]; got != nil {
		t.Errorf("exited pid 200 still reported: %v", got)
	}
	// Callers get a copy.
	c.Processes()[100][0].UsedBytes = 1
	if c.Processes()[100][0].UsedBytes == 1 {
		t.Error("Processes() returned the snapshot itself")
	}
}

func TestPCIeOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		f := newFakeNode(2)
		c := newTestCollector(f, Options{PCIe: enabled})
		initPoll(t, c)
		want := 0
		if enabled {
			want = 2
		}
		for _, name := range []string{"agaobs_gpu_pcie_tx_bytes_per_second", "agaobs_gpu_pcie_rx_bytes_per_second"} {
			if n := countSeries(t, c, name); n != want {
				t.Errorf("PCIe=%v: %d %s series, want %d", enabled, n, name, want)
			}
		}
		if calls := len(f.devs[0].GetPcieThroughputCalls()); enabled != (calls > 0) {
			t.Errorf("PCIe=%v: GetPcieThroughput called %d times", enabled, calls)
		}
		if enabled {
			if v := value(t, c, "agaobs_gpu_pcie_rx_bytes_per_second", map[string]string{"uuid": uuidOf(1)}); v != 2001*1024 {
				t.Errorf("rx = %v, want %v (KB/s × 1024)", v, 2001*1024)
			}
		}
	}
}

// Thermal trouble is a warning: degraded, never unhealthy.
func TestThermalDegraded(t *testing.T) {
	for _, tc := range []struct {
		name      string
		temp      uint32
		threshold nvml.Return // of the slowdown threshold
		reasons   uint64
		want      string
	}{
		{"cool", 86, nvml.SUCCESS, 0, StatusHealthy},
		{"at slowdown temperature", 87, nvml.SUCCESS, 0, StatusDegraded},
		{"hw thermal slowdown", 60, nvml.SUCCESS, nvml.ClocksThrottleReasonHwThermalSlowdown, StatusDegraded},
		{"sw thermal slowdown", 60, nvml.SUCCESS, nvml.ClocksEventReasonSwThermalSlowdown, StatusDegraded},
		{"power cap is not thermal", 60, nvml.SUCCESS, nvml.ClocksEventReasonSwPowerCap, StatusHealthy},
		{"no threshold known", 120, nvml.ERROR_NOT_SUPPORTED, 0, StatusHealthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNode(2)
			d := f.devs[1]
			d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return tc.temp, nvml.SUCCESS }
			d.GetTemperatureThresholdFunc = func(nvml.TemperatureThresholds) (uint32, nvml.Return) { return 87, tc.threshold }
			d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return tc.reasons, nvml.SUCCESS }
			c := newTestCollector(f, Options{})
			initPoll(t, c)
			checks := c.Checks(t0)
			ch := check(t, checks, "thermal")
			if ch.Status != tc.want {
				t.Fatalf("thermal %+v, want %s", ch, tc.want)
			}
			if tc.want == StatusDegraded && !strings.Contains(ch.Reason, uuidOf(1)) {
				t.Errorf("reason %q does not name the GPU", ch.Reason)
			}
			for _, other := range checks {
				if other.Status != StatusHealthy && other.Name != "thermal" {
					t.Errorf("check %+v affected by temperature", other)
				}
			}
		})
	}
}

// A GPU of an earlier collection that NVML no longer lists is lost, and
// its series go.
func TestGPUDisappears(t *testing.T) {
	f := newFakeNode(3)
	c := newTestCollector(f, Options{ExpectedCount: 3})
	initPoll(t, c)
	all := f.srv.Devices
	f.srv.Devices = all[:2]
	c.Poll(t0)
	checks := c.Checks(t0)
	if got, want := statuses(checks), "nvml=healthy gpu_count=unhealthy gpu_lost=unhealthy xid=healthy ecc=healthy thermal=healthy"; got != want {
		t.Fatalf("checks %s, want %s", got, want)
	}
	if r := check(t, checks, "gpu_lost").Reason; r != "GPU 2 ("+uuidOf(2)+") lost: no longer visible to NVML" {
		t.Errorf("gpu_lost reason %q", r)
	}
	if n := perGPU(gather(t, c), uuidOf(2)); len(n) != 0 {
		t.Errorf("disappeared GPU still has series: %v", n)
	}
	f.srv.Devices = all
	c.Poll(t0)
	if got := statuses(c.Checks(t0)); strings.Contains(got, "unhealthy") {
		t.Errorf("after the GPU came back: %s", got)
	}
}

// A failed enumeration drops every per-GPU series instead of serving the
// previous ones.
func TestFailedCollectionDropsSeries(t *testing.T) {
	f := newFakeNode(2)
	c := newTestCollector(f, Options{})
	initPoll(t, c)
	f.srv.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	c.Poll(t0.Add(time.Second))
	mfs := gather(t, c)
	for _, uuid := range []string{uuidOf(0), uuidOf(1)} {
		if n := perGPU(mfs, uuid); len(n) != 0 {
			t.Errorf("stale series after a failed collection: %v", n)
		}
	}
	if v := value(t, c, "agaobs_gpu_collect_success", nil); v != 0 {
		t.Errorf("collect_success = %v, want 0", v)
	}
	if v := value(t, c, "agaobs_gpu_up", nil); v != 1 {
		t.Errorf("up = %v, want 1: NVML itself is fine", v)
	}
	if ch := check(t, c.Checks(t0), "nvml"); ch.Status != StatusDegraded {
		t.Errorf("nvml check %+v, want degraded", ch)
	}
	if got := c.GPUs(); len(got) != 0 {
		t.Errorf("GPUs() = %v after a failed collection", got)
	}
}

func TestChecksOrder(t *testing.T) {
	want := []string{"nvml", "gpu_count", "gpu_lost", "xid", "ecc", "thermal"}
	names := func(cs []Check) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	f := newFakeNode(2)
	c := newTestCollector(f, Options{})
	before := c.Checks(t0)
	if !reflect.DeepEqual(names(before), want) {
		t.Errorf("before Init: %v", names(before))
	}
	if before[0].Status != StatusUnhealthy {
		t.Errorf("nvml before Init: %+v", before[0])
	}
	initPoll(t, c)
	if got := names(c.Checks(t0)); !reflect.DeepEqual(got, want) {
		t.Errorf("after a collection: %v", got)
	}
}

// A collection that stops (a wedged driver call) turns the nvml check
// degraded.
func TestStaleCollection(t *testing.T) {
	c := newTestCollector(newFakeNode(2), Options{Interval: 5 * time.Second})
	initPoll(t, c)
	if ch := check(t, c.Checks(t0.Add(15*time.Second)), "nvml"); ch.Status != StatusHealthy {
		t.Errorf("at 3 intervals: %+v", ch)
	}
	if ch := check(t, c.Checks(t0.Add(16*time.Second)), "nvml"); ch.Status != StatusDegraded || ch.Reason != "no collection for 16s" {
		t.Errorf("after 3 intervals: %+v", ch)
	}
}

func TestInitReasons(t *testing.T) {
	for ret, want := range map[nvml.Return]string{
		nvml.ERROR_LIBRARY_NOT_FOUND:       "nvml_missing",
		nvml.ERROR_DRIVER_NOT_LOADED:       "driver_not_loaded",
		nvml.ERROR_LIB_RM_VERSION_MISMATCH: "version_mismatch",
		nvml.ERROR_NO_PERMISSION:           "no_permission",
		nvml.ERROR_UNKNOWN:                 "unknown",
		nvml.ERROR_IRQ_ISSUE:               "unknown",
	} {
		f := newFakeNode(2)
		f.srv.InitFunc = func() nvml.Return { return ret }
		c := newTestCollector(f, Options{})
		err := c.Init()
		if err == nil || !strings.Contains(err.Error(), ret.Error()) {
			t.Errorf("%v: Init error %v", ret, err)
		}
		if v := value(t, c, "agaobs_gpu_up", map[string]string{"reason": want}); v != 0 {
			t.Errorf("%v: agaobs_gpu_up{reason=%q} = %v, want 0", ret, want, v)
		}
		if n := countSeries(t, c, "agaobs_gpu_up"); n != 1 {
			t.Errorf("%v: %d agaobs_gpu_up series", ret, n)
		}
	}
}

func TestCudaVersion(t *testing.T) {
	for v, want := range map[int]string{12040: "12.4", 11080: "11.8", 13000: "13.0", 12090: "12.9"} {
		if got := cudaVersion(v); got != want {
			t.Errorf("cudaVersion(%d) = %q, want %q", v, got, want)
		}
	}
}

// A GPU NVML enumerates but cannot identify is unusable: lost, with why.
func TestUnidentifiableGPU(t *testing.T) {
	f := newFakeNode(2)
	c := newTestCollector(f, Options{})
	initPoll(t, c)
	f.devs[1].GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }
	c.Poll(t0)
	if ch := check(t, c.Checks(t0), "gpu_lost"); ch.Status != StatusUnhealthy ||
		ch.Reason != "GPU 1 ("+uuidOf(1)+") lost: cannot be identified: ERROR_UNKNOWN" {
		t.Errorf("gpu_lost %+v", ch)
	}
	if v := value(t, c, "agaobs_gpu_collect_success", nil); v != 0 {
		t.Errorf("collect_success = %v, want 0", v)
	}
	if n := perGPU(gather(t, c), uuidOf(1)); len(n) != 0 {
		t.Errorf("unidentified GPU still has series: %v", n)
	}
}

// The real library, loaded at run time: on a machine without a driver
// Init fails cleanly with a reason; with one, a collection sees GPUs.
func TestRealLibrary(t *testing.T) {
	c := New(Options{})
	if err := c.Init(); err != nil {
		var ie *initError
		if !errors.As(err, &ie) {
			t.Fatalf("Init error %v is not classified", err)
		}
		if v := value(t, c, "agaobs_gpu_up", map[string]string{"reason": ie.reason}); v != 0 {
			t.Errorf("agaobs_gpu_up{reason=%q} = %v", ie.reason, v)
		}
		t.Logf("no NVML here: %v", err)
		return
	}
	defer c.b.stop()
	c.Poll(time.Now())
	if len(c.GPUs()) == 0 {
		t.Error("NVML initialised but no GPU collected")
	}
	for _, ch := range c.Checks(time.Now()) {
		t.Logf("%s: %s (%s)", ch.Name, ch.Status, ch.Reason)
	}
	t.Logf("%s", exposition(t, c))
}

func TestUtilization(t *testing.T) {
	f := newFakeNode(2)
	f.devs[0].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: 73, Memory: 10}, nvml.SUCCESS
	}
	f.devs[1].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	c := newTestCollector(f, Options{})
	initPoll(t, c)
	got := c.Utilization()
	if len(got) != 1 || math.Abs(got[uuidOf(0)]-0.73) > 1e-9 {
		t.Errorf("Utilization() = %v, want only %s at 0.73", got, uuidOf(0))
	}
}
