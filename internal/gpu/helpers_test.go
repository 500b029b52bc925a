//go:build cgo

package gpu

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	agatest "github.com/agaobs/agaobs/internal/testutil"
)

// t0 is the tests' fixed "now".
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const gib = 1 << 30

// fakeNode is go-nvml's fake DGX H100 with n GPUs, fixed UUIDs and the
// telemetry getters it lacks stubbed with fixed per-GPU values.
type fakeNode struct {
	srv  *server.Server
	devs []*server.Device
}

func uuidOf(i int) string { return fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i) }

func newFakeNode(n int) *fakeNode {
	f := &fakeNode{srv: dgxh100.NewWithGPUs(gpus.Multiple(n, gpus.H100_SXM5_80GB)...)}
	for i, d := range f.srv.Devices {
		dev := d.(*server.Device)
		f.devs = append(f.devs, dev)
		stubTelemetry(dev, i)
	}
	// A quiet event set unless a test scripts one.
	f.srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return newScriptedSet(nil), nvml.SUCCESS }
	return f
}

func stubTelemetry(d *server.Device, i int) {
	d.UUID = uuidOf(i)
	d.MemoryInfo.Used = uint64(10+i) * gib
	d.MemoryInfo.Free = d.MemoryInfo.Total - d.MemoryInfo.Used
	d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
		var p nvml.PciInfo
		for j, c := range fmt.Sprintf("00000000:%02X:00.0", 0x18+i) {
			p.BusId[j] = int8(c)
		}
		return p, nvml.SUCCESS
	}
	d.GetSerialFunc = func() (string, nvml.Return) { return fmt.Sprintf("165242300%04d", i), nvml.SUCCESS }
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: uint32(50 + i), Memory: uint32(20 + i)}, nvml.SUCCESS
	}
	d.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
		if s != nvml.TEMPERATURE_GPU {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return uint32(40 + i), nvml.SUCCESS
	}
	d.GetTemperatureThresholdFunc = func(th nvml.TemperatureThresholds) (uint32, nvml.Return) {
		if th != nvml.TEMPERATURE_THRESHOLD_SLOWDOWN {
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		return 87, nvml.SUCCESS
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(300_000 + 1500*i), nvml.SUCCESS }
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return uint64(1_000_000_000 + 2500*i), nvml.SUCCESS }
	d.GetClockInfoFunc = func(t nvml.ClockType) (uint32, nvml.Return) {
		switch t {
		case nvml.CLOCK_GRAPHICS, nvml.CLOCK_SM:
			return 1980, nvml.SUCCESS
		case nvml.CLOCK_MEM:
			return 2619, nvml.SUCCESS
		case nvml.CLOCK_VIDEO:
			return 1545, nvml.SUCCESS
		}
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	d.GetPerformanceStateFunc = func() (nvml.Pstates, nvml.Return) { return nvml.PSTATE_0, nvml.SUCCESS }
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) {
		if i == 1 {
			return nvml.ClocksEventReasonSwPowerCap, nvml.SUCCESS
		}
		return nvml.ClocksEventReasonNone, nvml.SUCCESS
	}
	d.GetTotalEccErrorsFunc = func(e nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
		if e == nvml.MEMORY_ERROR_TYPE_CORRECTED {
			return uint64(i), nvml.SUCCESS
		}
		return 0, nvml.SUCCESS
	}
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, nvml.SUCCESS }
	d.GetPcieThroughputFunc = func(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
		if c == nvml.PCIE_UTIL_TX_BYTES {
			return uint32(1000 + i), nvml.SUCCESS
		}
		return uint32(2000 + i), nvml.SUCCESS
	}
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	d.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
		return nvml.EventTypeXidCriticalError | nvml.EventTypeSingleBitEccError | nvml.EventTypeDoubleBitEccError, nvml.SUCCESS
	}
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
}

// scripted is one Wait result.
type scripted struct {
	data nvml.EventData
	ret  nvml.Return
}

// newScriptedSet returns an event set whose Wait returns script, then
// times out (after a short pause, like a real Wait) forever.
func newScriptedSet(script []scripted) *mock.EventSet {
	var mu sync.Mutex
	return &mock.EventSet{
		WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
			mu.Lock()
			defer mu.Unlock()
			if len(script) == 0 {
				time.Sleep(2 * time.Millisecond)
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
			s := script[0]
			script = script[1:]
			return s.data, s.ret
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
}

func xidOn(d nvml.Device, xid uint64) scripted {
	return scripted{data: nvml.EventData{Device: d, EventType: nvml.EventTypeXidCriticalError, EventData: xid}}
}

// clock is an injectable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// sleeps records the backoff sleeps and returns at once.
type sleeps struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) bool {
	s.mu.Lock()
	s.ds = append(s.ds, d)
	s.mu.Unlock()
	time.Sleep(time.Millisecond) // let the other goroutine run, as a real backoff would
	return ctx.Err() == nil
}

func (s *sleeps) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.ds...)
}

func newTestCollector(f *fakeNode, opts Options) *Collector {
	opts.Lib = f.srv
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	return New(opts)
}

// initPoll runs Init and one collection at t0.
func initPoll(t testing.TB, c *Collector) {
	t.Helper()
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	c.Poll(t0)
}

func gather(t testing.TB, c *Collector) []*dto.MetricFamily {
	t.Helper()
	reg, names := metricsRegistry(t, c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool { return !slices.Contains(names, mf.GetName()) })
}

func exposition(t testing.TB, c *Collector) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, mf := range gather(t, c) {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// value returns the series' value, or NaN when it is absent.
func value(t testing.TB, c *Collector, name string, labels map[string]string) float64 {
	t.Helper()
	m := agatest.FindSeries(gather(t, c), name, labels)
	switch {
	case m == nil:
		return math.NaN()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatalf("%s: neither gauge nor counter", name)
	return 0
}

// countSeries counts the series of family name.
func countSeries(t testing.TB, c *Collector, name string) int {
	t.Helper()
	for _, mf := range gather(t, c) {
		if mf.GetName() == name {
			return len(mf.Metric)
		}
	}
	return 0
}

func check(t testing.TB, checks []Check, name string) Check {
	t.Helper()
	for _, ch := range checks {
		if ch.Name == name {
			return ch
		}
	}
	t.Fatalf("no check %q in %v", name, checks)
	return Check{}
}

// statuses renders checks as "name=status" for compact comparisons.
func statuses(checks []Check) string {
	var parts []string
	for _, ch := range checks {
		parts = append(parts, ch.Name+"="+ch.Status)
	}
	return strings.Join(parts, " ")
}
