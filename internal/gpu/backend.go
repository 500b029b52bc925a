package gpu

import (
	"context"
	"errors"
)

// backend is the NVML boundary. The collector above it holds the state,
// the metrics and the checks; only the backend knows go-nvml, so the
// package builds without cgo.
type backend interface {
	// start initialises NVML and reads the system identity. A failure is
	// an *initError carrying the agaobs_gpu_up reason.
	start() (system, error)
	// stop shuts NVML down (one stop per successful start).
	stop() error
	// sample reads every GPU once. An error is a failed enumeration: no
	// GPU can be trusted, all per-GPU series go. An *initError means NVML
	// itself went away (driver unloaded or upgraded) and must be
	// re-initialised.
	sample(pcie bool) (sampleResult, error)
	// watch delivers XID events until ctx ends (nil) or the event set
	// fails (an error: the caller backs off and calls watch again).
	// errNoEvents means no GPU supports XID events.
	watch(ctx context.Context, emit func(xidEvent)) error
}

// system is the node-wide identity read at start.
type system struct {
	driver, cuda string
	gpus         []Info
}

// sampleResult is one collection as the backend saw it.
type sampleResult struct {
	gpus  []gpuSample
	lost  []lostGPU
	procs map[uint32][]ProcessMemory
	// errs are unexpected per-value failures: the value is omitted and the
	// collection counts as failed (agaobs_gpu_collect_success 0), the other
	// series stay.
	errs []error
}

// lostGPU is a GPU that answered ERROR_GPU_IS_LOST, or one of the first
// collection that is no longer enumerated.
type lostGPU struct {
	uuid, index, why string
}

type xidEvent struct {
	uuid string
	xid  uint64
}

// initError is an NVML initialisation failure with its agaobs_gpu_up
// reason: nvml_missing, driver_not_loaded, version_mismatch,
// no_permission or unknown.
type initError struct {
	reason string
	err    error
}

func (e *initError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *initError) Unwrap() error { return e.err }

var errNoEvents = errors.New("no GPU supports XID events")
