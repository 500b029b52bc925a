package gpu

import (
	"log/slog"
	"time"
)

// Options configures a Collector.
type Options struct {
	Interval      time.Duration // gpu_collect_interval (default 5s)
	PCIe          bool          // gpu_pcie_enabled: also read PCIe throughput
	XIDWindow     time.Duration // gpu_xid_window (default 10m): a critical XID keeps the xid check unhealthy this long
	ExpectedCount int           // gpu_expected_count (0: no check)
	// Lib is the NVML library; nil is the real one (libnvidia-ml, loaded
	// by Init). Tests pass go-nvml's pkg/nvml/mock. Library is
	// nvml.Interface in cgo builds (see nvml.go, nocgo.go).
	Lib    Library
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
}

// New returns a Collector; nothing touches NVML before Init or Run.
func New(opts Options) *Collector {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.XIDWindow <= 0 {
		opts.XIDWindow = 10 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		opts:        opts,
		log:         opts.Logger,
		now:         opts.Now,
		b:           newBackend(opts.Lib, opts.Logger),
		initBackoff: backoff{5 * time.Second, 5 * time.Minute},
		xidBackoff:  backoff{time.Second, 30 * time.Second},
		sleep:       sleepCtx,
		xids:        map[xidKey]xidStat{},
	}
	c.m = newMetricsCollector(c)
	return c
}
