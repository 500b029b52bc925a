//go:build cgo

package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Library is the NVML API the collector uses: go-nvml's interface, so
// tests can pass its mocks.
type Library = nvml.Interface

// nvmlBackend reads NVML through go-nvml.
type nvmlBackend struct {
	lib nvml.Interface
	log *slog.Logger

	// Written by start, read by sample and watch after it.
	missing map[string]bool // optional symbols the loaded library lacks

	// Used by sample only (collections are serialised).
	identity    map[string]Info // uuid → static identity
	uuidByIndex map[int]string  // to name a GPU lost before its uuid is read
}

func newBackend(lib Library, log *slog.Logger) backend {
	if lib == nil {
		lib = nvml.New()
	}
	return &nvmlBackend{lib: lib, log: log, identity: map[string]Info{}, uuidByIndex: map[int]string{}}
}

// optionalSymbols are probed after Init: calling a function the loaded
// driver does not export kills the process in the dynamic linker, before
// Go could recover (go-nvml#82, go-nvlib#87), so a missing one is skipped.
func optionalSymbols() []string {
	return []string{
		"nvmlDeviceGetUtilizationRates",
		"nvmlDeviceGetTemperature", // deprecated in 13.0 for nvmlDeviceGetTemperatureV
		"nvmlDeviceGetTemperatureThreshold",
		"nvmlDeviceGetPowerUsage",
		"nvmlDeviceGetTotalEnergyConsumption",
		"nvmlDeviceGetClockInfo",
		"nvmlDeviceGetPerformanceState",
		"nvmlDeviceGetCurrentClocksEventReasons",
		"nvmlDeviceGetCurrentClocksThrottleReasons", // deprecated in 13.0
		"nvmlDeviceGetTotalEccErrors",
		"nvmlDeviceGetRemappedRows",
		"nvmlDeviceGetPcieThroughput",
		"nvmlDeviceGetSerial",
		"nvmlDeviceGetSupportedEventTypes",
	}
}

func (b *nvmlBackend) start() (system, error) {
	if ret := guard0(b.lib.Init); ret != nvml.SUCCESS {
		return system{}, &initError{reason: initReason(ret), err: fmt.Errorf("nvmlInit: %w", ret)}
	}
	b.missing = map[string]bool{}
	ext, _ := guard(func() (nvml.ExtendedInterface, nvml.Return) { return b.lib.Extensions(), nvml.SUCCESS })
	for _, sym := range optionalSymbols() {
		if ext == nil {
			break
		}
		err := guardErr(func() error { return ext.LookupSymbol(sym) })
		if err != nil {
			b.missing[sym] = true
			b.log.Info("gpu: NVML function missing from the driver, its series are omitted", "function", sym)
		}
	}
	var sys system
	if v, ret := guard(b.lib.SystemGetDriverVersion); ret == nvml.SUCCESS {
		sys.driver = v
	}
	if v, ret := guard(b.lib.SystemGetCudaDriverVersion); ret == nvml.SUCCESS {
		sys.cuda = cudaVersion(v)
	}
	if n, ret := guard(b.lib.DeviceGetCount); ret == nvml.SUCCESS {
		for i := range n {
			dev, ret := guard(func() (nvml.Device, nvml.Return) { return b.lib.DeviceGetHandleByIndex(i) })
			if ret != nvml.SUCCESS {
				continue
			}
			if uuid, ret := guard(dev.GetUUID); ret == nvml.SUCCESS {
				sys.gpus = append(sys.gpus, b.identify(dev, i, uuid))
			}
		}
	}
	return sys, nil
}

func (b *nvmlBackend) stop() error {
	if ret := guard0(b.lib.Shutdown); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %w", ret)
	}
	return nil
}

// initReason maps an Init failure to agaobs_gpu_up's reason label.
func initReason(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "nvml_missing"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "driver_not_loaded"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "version_mismatch"
	case nvml.ERROR_NO_PERMISSION:
		return "no_permission"
	}
	return "unknown"
}

// nvmlGone reports the errors after which NVML must be initialised again.
func nvmlGone(ret nvml.Return) bool {
	switch ret {
	case nvml.ERROR_UNINITIALIZED, nvml.ERROR_DRIVER_NOT_LOADED, nvml.ERROR_LIB_RM_VERSION_MISMATCH, nvml.ERROR_LIBRARY_NOT_FOUND:
		return true
	}
	return false
}

// cudaVersion formats NVML's 12040 as "12.4".
func cudaVersion(v int) string {
	return strconv.Itoa(v/1000) + "." + strconv.Itoa(v%1000/10)
}

// identify returns the GPU's static identity, read once per uuid.
func (b *nvmlBackend) identify(dev nvml.Device, index int, uuid string) Info {
	b.uuidByIndex[index] = uuid
	info, ok := b.identity[uuid]
	if !ok {
		info.UUID = uuid
		if v, ret := guard(dev.GetName); ret == nvml.SUCCESS {
			info.Name = v
		}
		if v, ret := guard(dev.GetPciInfo); ret == nvml.SUCCESS {
			info.PCIBusID = cString(v.BusId[:])
		}
		if !b.missing["nvmlDeviceGetSerial"] {
			if v, ret := guard(dev.GetSerial); ret == nvml.SUCCESS {
				info.Serial = v
			}
		}
	}
	info.Index = strconv.Itoa(index)
	b.identity[uuid] = info
	return info
}

func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// guard calls f, turning a panic into ERROR_FUNCTION_NOT_FOUND: a mock
// with the method unset, or a binding that fails in Go, costs one series,
// not the agent. (A symbol missing from the C library is caught before
// the call, see optionalSymbols.)
func guard[T any](f func() (T, nvml.Return)) (v T, ret nvml.Return) {
	defer func() {
		if recover() != nil {
			var zero T
			v, ret = zero, nvml.ERROR_FUNCTION_NOT_FOUND
		}
	}()
	return f()
}

func guard0(f func() nvml.Return) (ret nvml.Return) {
	defer func() {
		if recover() != nil {
			ret = nvml.ERROR_FUNCTION_NOT_FOUND
		}
	}()
	return f()
}

func guardErr(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}

// watch implements backend.
func (b *nvmlBackend) watch(ctx context.Context, emit func(xidEvent)) error {
	set, ret := guard(b.lib.EventSetCreate)
	if ret != nvml.SUCCESS {
		return fmt.Errorf("create NVML event set: %w", ret)
	}
	defer guard0(set.Free)
	n, ret := guard(b.lib.DeviceGetCount)
	if ret != nvml.SUCCESS {
		return fmt.Errorf("count GPUs: %w", ret)
	}
	registered := 0
	for i := range n {
		dev, ret := guard(func() (nvml.Device, nvml.Return) { return b.lib.DeviceGetHandleByIndex(i) })
		if ret != nvml.SUCCESS {
			continue
		}
		mask := uint64(nvml.EventTypeXidCriticalError)
		if !b.missing["nvmlDeviceGetSupportedEventTypes"] {
			supported, ret := guard(dev.GetSupportedEventTypes)
			if ret != nvml.SUCCESS {
				continue
			}
			mask &= supported
		}
		if mask == 0 {
			continue
		}
		if ret := guard0(func() nvml.Return { return dev.RegisterEvents(mask, set) }); ret != nvml.SUCCESS {
			b.log.Warn("gpu: cannot watch XID events", "index", i, "err", ret)
			continue
		}
		registered++
	}
	if registered == 0 {
		return errNoEvents
	}
	for ctx.Err() == nil {
		data, ret := guard(func() (nvml.EventData, nvml.Return) { return set.Wait(eventWaitMs) })
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_TIMEOUT:
			continue
		default:
			return fmt.Errorf("wait for NVML events: %w", ret)
		}
		if data.EventType&nvml.EventTypeXidCriticalError == 0 {
			continue
		}
		uuid := "unknown"
		if data.Device != nil {
			if u, ret := guard(data.Device.GetUUID); ret == nvml.SUCCESS {
				uuid = u
			}
		}
		emit(xidEvent{uuid: uuid, xid: data.EventData})
	}
	return nil
}

// eventWaitMs bounds one blocking Wait, and so how long Run takes to
// return after its context ends.
const eventWaitMs = 500
