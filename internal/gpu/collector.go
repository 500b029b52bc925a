package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Collector samples NVML into a snapshot and serves it as metrics,
// checks, processes and identities. Run owns its goroutines and is the
// only caller of Init and Poll in the agent (tests call them directly);
// Metrics, Checks, Processes and GPUs are safe to call concurrently with
// it.
type Collector struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	b    backend
	m    *metricsCollector

	// Retry pacing; tests shorten or record it.
	initBackoff, xidBackoff backoff
	sleep                   func(ctx context.Context, d time.Duration) bool

	// collectMu serialises collections: the baseline and the backend's
	// identity cache assume one at a time.
	collectMu sync.Mutex

	mu        sync.Mutex
	attempted bool       // Init was called at least once
	upErr     *initError // why NVML is down; nil while up
	sys       system
	snap      snapshot
	// baseline holds every GPU (uuid → index) seen since the first
	// successful collection: one missing later is lost.
	baseline map[string]string
	xids     map[xidKey]xidStat
	lastLog  string // last collection error logged, to log changes only
}

// snapshot is the last collection.
type snapshot struct {
	done    bool // a collection was attempted
	sampled bool // the backend enumerated the GPUs: gpus and lost are known
	at      time.Time
	dur     time.Duration
	ok      bool
	err     string
	gpus    []gpuSample
	lost    []lostGPU
	procs   map[uint32][]ProcessMemory
}

// Metrics returns the self-metrics collector serving the last snapshot;
// it describes every family, whichever GPUs are present.
func (c *Collector) Metrics() selfmetrics.Collector { return c.m }

// Init initialises NVML and reads the driver, CUDA and GPU identities. Run
// calls it; tests call it before Poll. A failure leaves
// agaobs_gpu_up 0 with its reason.
func (c *Collector) Init() error {
	sys, err := c.b.start()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempted = true
	if err != nil {
		c.upErr = asInitError(err)
		return fmt.Errorf("initialise NVML: %w", err)
	}
	c.upErr, c.sys = nil, sys
	return nil
}

func asInitError(err error) *initError {
	var ie *initError
	if errors.As(err, &ie) {
		return ie
	}
	return &initError{reason: "unknown", err: err}
}

// Poll samples NVML once and replaces the snapshot that Metrics, Checks,
// Processes and GPUs serve.
func (c *Collector) Poll(now time.Time) { _ = c.collect(now) }

// collect returns the collection's error; an *initError means NVML went
// away and Run must re-initialise it.
func (c *Collector) collect(now time.Time) error {
	c.collectMu.Lock()
	defer c.collectMu.Unlock()
	c.mu.Lock()
	up, upErr := c.attempted && c.upErr == nil, c.upErr
	c.mu.Unlock()

	var res sampleResult
	var err error
	start := c.now()
	switch {
	case up:
		res, err = c.b.sample(c.opts.PCIe)
	case upErr != nil:
		err = fmt.Errorf("NVML is not initialised: %w", upErr)
	default:
		err = errors.New("NVML is not initialised")
	}
	dur := c.now().Sub(start)

	c.mu.Lock()
	defer c.mu.Unlock()
	s := snapshot{done: true, at: now, dur: dur}
	if err != nil {
		var ie *initError
		if up && errors.As(err, &ie) {
			c.upErr = ie
		}
		s.err = err.Error()
	} else {
		s.sampled, s.gpus, s.procs = true, res.gpus, res.procs
		s.lost = c.updateLost(res)
		s.ok = len(res.errs) == 0
		if !s.ok {
			s.err = errors.Join(res.errs...).Error()
		}
	}
	c.snap = s
	if s.err != c.lastLog && up {
		if s.err != "" {
			c.log.Warn("gpu: collection failed", "err", s.err)
		} else {
			c.log.Info("gpu: collection recovered", "gpus", len(s.gpus))
		}
	}
	c.lastLog = s.err
	return err
}

// updateLost returns the collection's lost GPUs plus those of the
// baseline it no longer enumerates, and grows the baseline. c.mu held.
func (c *Collector) updateLost(res sampleResult) []lostGPU {
	seen := map[string]bool{}
	lost := slices.Clone(res.lost)
	if c.baseline == nil {
		c.baseline = map[string]string{}
	}
	for _, g := range res.gpus {
		seen[g.UUID] = true
		c.baseline[g.UUID] = g.Index
	}
	for _, l := range res.lost {
		if l.uuid != "" {
			seen[l.uuid] = true
			c.baseline[l.uuid] = l.index
		}
	}
	for _, uuid := range slices.Sorted(maps.Keys(c.baseline)) {
		if !seen[uuid] {
			lost = append(lost, lostGPU{uuid: uuid, index: c.baseline[uuid], why: "no longer visible to NVML"})
		}
	}
	return lost
}

// Processes maps host pids to their memory on each GPU, from the last
// collection (compute and graphics processes, summed per pid per GPU).
func (c *Collector) Processes() map[uint32][]ProcessMemory {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint32][]ProcessMemory, len(c.snap.procs))
	for pid, pm := range c.snap.procs {
		out[pid] = slices.Clone(pm)
	}
	return out
}

// GPUs returns the identities of the GPUs of the last collection, lost
// ones excluded (their series are dropped too).
func (c *Collector) GPUs() []Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Info, len(c.snap.gpus))
	for i, g := range c.snap.gpus {
		out[i] = g.Info
	}
	return out
}

// Utilization maps each GPU's UUID to its utilization (0-1) from the last
// collection; GPUs that do not report it are absent.
func (c *Collector) Utilization() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(c.snap.gpus))
	for _, g := range c.snap.gpus {
		if g.util.ok {
			out[g.UUID] = g.util.v
		}
	}
	return out
}
