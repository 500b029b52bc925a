//go:build !cgo

package gpu

import (
	"context"
	"errors"
	"log/slog"
)

// Library stands in for nvml.Interface, which go-nvml only defines with
// cgo. A binary built without cgo cannot load NVML, so nil is the only
// value: the collector then reports agaobs_gpu_up{reason="nvml_missing"} 0.
type Library interface{ nvmlNeedsCgo() }

// noBackend is the backend of a binary built without cgo.
type noBackend struct{}

func newBackend(Library, *slog.Logger) backend { return noBackend{} }

var errNoCgo = errors.New("NVML unavailable: this binary was built without cgo (CGO_ENABLED=0)")

func (noBackend) start() (system, error) {
	return system{}, &initError{reason: "nvml_missing", err: errNoCgo}
}

func (noBackend) stop() error { return nil }

func (noBackend) sample(bool) (sampleResult, error) { return sampleResult{}, errNoCgo }

func (noBackend) watch(context.Context, func(xidEvent)) error { return errNoCgo }
