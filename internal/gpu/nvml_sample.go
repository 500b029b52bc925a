//go:build cgo

package gpu

import (
	"fmt"
	"math"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// sample implements backend.
func (b *nvmlBackend) sample(pcie bool) (sampleResult, error) {
	n, ret := guard(b.lib.DeviceGetCount)
	if ret != nvml.SUCCESS {
		err := fmt.Errorf("count GPUs: %w", ret)
		if nvmlGone(ret) {
			return sampleResult{}, &initError{reason: initReason(ret), err: err}
		}
		return sampleResult{}, err
	}
	res := sampleResult{procs: map[uint32][]ProcessMemory{}}
	for i := range n {
		r := devReader{b: b, index: i}
		s, ok := r.read(pcie, res.procs)
		uuid := r.uuid
		if uuid == "" {
			uuid = b.uuidByIndex[i]
		}
		switch {
		case ok:
			res.gpus = append(res.gpus, s)
		case r.lost:
			res.lost = append(res.lost, lostGPU{uuid: uuid, index: fmt.Sprint(i), why: "ERROR_GPU_IS_LOST"})
		default:
			// Enumerated but not identifiable: unusable, though not
			// reported lost by the driver.
			res.lost = append(res.lost, lostGPU{uuid: uuid, index: fmt.Sprint(i), why: "cannot be identified: " + r.identErr.Error()})
		}
		res.errs = append(res.errs, r.errs...)
	}
	return res, nil
}

// devReader reads one GPU, sorting each call's outcome: a value, a
// series the GPU does not support (omitted quietly), a lost GPU (all its
// series dropped), or an unexpected error (omitted and reported).
type devReader struct {
	b     *nvmlBackend
	index int
	uuid  string
	lost  bool
	errs  []error
	// identErr is why the GPU could not be identified (handle or uuid).
	identErr nvml.Return
}

// ok reports whether ret is a value to use.
func (r *devReader) ok(what string, ret nvml.Return) bool {
	switch ret {
	case nvml.SUCCESS:
		return true
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
		return false
	case nvml.ERROR_GPU_IS_LOST:
		r.lost = true
		return false
	}
	r.errs = append(r.errs, fmt.Errorf("GPU %d %s: %w", r.index, what, ret))
	return false
}

// has reports whether the driver exports sym.
func (r *devReader) has(sym string) bool { return !r.b.missing[sym] }

// read returns the GPU's sample; false when it could not be identified
// or is lost. Its processes are added to procs.
func (r *devReader) read(pcie bool, procs map[uint32][]ProcessMemory) (gpuSample, bool) {
	b := r.b
	dev, ret := guard(func() (nvml.Device, nvml.Return) { return b.lib.DeviceGetHandleByIndex(r.index) })
	if !r.ok("handle", ret) {
		r.identErr = ret
		return gpuSample{}, false
	}
	uuid, ret := guard(dev.GetUUID)
	if !r.ok("uuid", ret) {
		r.identErr = ret
		return gpuSample{}, false
	}
	r.uuid = uuid
	s := gpuSample{Info: b.identify(dev, r.index, uuid)}

	if u, ret := guard(dev.GetUtilizationRates); r.has("nvmlDeviceGetUtilizationRates") && r.ok("utilization", ret) {
		s.util, s.memUtil = some(float64(u.Gpu)/100), some(float64(u.Memory)/100)
	}
	if m, ret := guard(dev.GetMemoryInfo); r.ok("memory", ret) {
		s.memUsed, s.memTotal = some(float64(m.Used)), some(float64(m.Total))
	}
	if r.has("nvmlDeviceGetTemperature") {
		if v, ret := guard(func() (uint32, nvml.Return) { return dev.GetTemperature(nvml.TEMPERATURE_GPU) }); r.ok("temperature", ret) {
			s.temp = some(float64(v))
		}
	}
	if r.has("nvmlDeviceGetTemperatureThreshold") {
		if v, ret := guard(func() (uint32, nvml.Return) {
			return dev.GetTemperatureThreshold(nvml.TEMPERATURE_THRESHOLD_SLOWDOWN)
		}); r.ok("slowdown temperature", ret) {
			s.slowdownTemp = some(float64(v))
		}
	}
	if r.has("nvmlDeviceGetPowerUsage") {
		if v, ret := guard(dev.GetPowerUsage); r.ok("power", ret) {
			s.power = some(float64(v) / 1000)
		}
	}
	if r.has("nvmlDeviceGetTotalEnergyConsumption") {
		if v, ret := guard(dev.GetTotalEnergyConsumption); r.ok("energy", ret) {
			s.energy = some(float64(v) / 1000)
		}
	}
	if r.has("nvmlDeviceGetClockInfo") {
		s.clocks = r.clocks(dev)
	}
	if r.has("nvmlDeviceGetPerformanceState") {
		if v, ret := guard(dev.GetPerformanceState); r.ok("pstate", ret) && v <= nvml.PSTATE_15 {
			s.pstate = some(float64(v))
		}
	}
	s.throttle = r.throttle(dev)
	if r.has("nvmlDeviceGetTotalEccErrors") {
		s.ecc = r.ecc(dev)
	}
	if r.has("nvmlDeviceGetRemappedRows") {
		s.remapped = r.remapped(dev)
	}
	if pcie && r.has("nvmlDeviceGetPcieThroughput") {
		s.pcieTx = r.pcie(dev, nvml.PCIE_UTIL_TX_BYTES, "pcie tx")
		s.pcieRx = r.pcie(dev, nvml.PCIE_UTIL_RX_BYTES, "pcie rx")
	}
	own := r.processes(dev)
	if r.lost {
		return gpuSample{}, false
	}
	for pid, used := range own {
		procs[pid] = append(procs[pid], ProcessMemory{UUID: uuid, UsedBytes: used})
	}
	return s, true
}

func (r *devReader) clocks(dev nvml.Device) []labelled {
	var out []labelled
	for _, c := range []struct {
		label string
		typ   nvml.ClockType
	}{{"graphics", nvml.CLOCK_GRAPHICS}, {"sm", nvml.CLOCK_SM}, {"memory", nvml.CLOCK_MEM}, {"video", nvml.CLOCK_VIDEO}} {
		if v, ret := guard(func() (uint32, nvml.Return) { return dev.GetClockInfo(c.typ) }); r.ok(c.label+" clock", ret) {
			out = append(out, labelled{c.label, float64(v) * 1e6})
		}
	}
	return out
}

// throttle reads the clock event reasons, through the pre-R535 name
// (…ThrottleReasons) where the driver lacks the new one.
func (r *devReader) throttle(dev nvml.Device) []labelled {
	reasons, ret := uint64(0), nvml.ERROR_FUNCTION_NOT_FOUND
	if r.has("nvmlDeviceGetCurrentClocksEventReasons") {
		reasons, ret = guard(dev.GetCurrentClocksEventReasons)
	}
	if (ret == nvml.ERROR_FUNCTION_NOT_FOUND || ret == nvml.ERROR_NOT_SUPPORTED) && r.has("nvmlDeviceGetCurrentClocksThrottleReasons") {
		reasons, ret = guard(dev.GetCurrentClocksThrottleReasons)
	}
	if !r.ok("clock event reasons", ret) {
		return nil
	}
	out := make([]labelled, 0, 9)
	for _, t := range []struct {
		label string
		bit   uint64
	}{
		{"gpu_idle", nvml.ClocksEventReasonGpuIdle},
		{"applications_clocks_setting", nvml.ClocksEventReasonApplicationsClocksSetting},
		{"sw_power_cap", nvml.ClocksEventReasonSwPowerCap},
		{"hw_slowdown", nvml.ClocksThrottleReasonHwSlowdown},
		{"sync_boost", nvml.ClocksEventReasonSyncBoost},
		{throttleSwThermal, nvml.ClocksEventReasonSwThermalSlowdown},
		{throttleHwThermal, nvml.ClocksThrottleReasonHwThermalSlowdown},
		{"hw_power_brake_slowdown", nvml.ClocksThrottleReasonHwPowerBrakeSlowdown},
		{"display_clock_setting", nvml.ClocksEventReasonDisplayClockSetting},
	} {
		out = append(out, labelled{t.label, b2f(reasons&t.bit != 0)})
	}
	return out
}

func (r *devReader) ecc(dev nvml.Device) []labelled {
	var out []labelled
	for _, e := range []struct {
		label string
		err   nvml.MemoryErrorType
		ctr   nvml.EccCounterType
	}{
		{eccVolatileCorrected, nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC},
		{eccVolatileUncorrected, nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC},
		{eccAggregateCorrected, nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.AGGREGATE_ECC},
		{eccAggregateUncorrect, nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC},
	} {
		if v, ret := guard(func() (uint64, nvml.Return) { return dev.GetTotalEccErrors(e.err, e.ctr) }); r.ok("ecc "+e.label, ret) {
			out = append(out, labelled{e.label, float64(v)})
		}
	}
	return out
}

func (r *devReader) remapped(dev nvml.Device) []labelled {
	type rows struct {
		corr, unc        int
		pending, failure bool
	}
	v, ret := guard(func() (rows, nvml.Return) {
		c, u, p, f, ret := dev.GetRemappedRows()
		return rows{c, u, p, f}, ret
	})
	if !r.ok("remapped rows", ret) {
		return nil
	}
	return []labelled{
		{remapCorrectable, float64(v.corr)},
		{remapUncorrectable, float64(v.unc)},
		{remapPending, b2f(v.pending)},
		{remapFailure, b2f(v.failure)},
	}
}

func (r *devReader) pcie(dev nvml.Device, ctr nvml.PcieUtilCounter, what string) opt {
	v, ret := guard(func() (uint32, nvml.Return) { return dev.GetPcieThroughput(ctr) })
	if !r.ok(what, ret) {
		return opt{}
	}
	return some(float64(v) * 1024)
}

// processes sums the GPU memory of its compute and graphics processes
// per pid (a process doing both is listed twice).
func (r *devReader) processes(dev nvml.Device) map[uint32]uint64 {
	out := map[uint32]uint64{}
	for _, list := range []struct {
		what string
		f    func() ([]nvml.ProcessInfo, nvml.Return)
	}{{"compute processes", dev.GetComputeRunningProcesses}, {"graphics processes", dev.GetGraphicsRunningProcesses}} {
		ps, ret := guard(list.f)
		if !r.ok(list.what, ret) {
			continue
		}
		for _, p := range ps {
			used := p.UsedGpuMemory
			if used == math.MaxUint64 { // NVML_VALUE_NOT_AVAILABLE: no per-process accounting here
				used = 0
			}
			out[p.Pid] += used
		}
	}
	return out
}
