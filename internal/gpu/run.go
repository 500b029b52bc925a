package gpu

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"
)

// Run initialises NVML, retrying with backoff (5s → 5m) while it fails,
// then collects every Interval and watches XID events until ctx ends, when
// it shuts NVML down and returns nil. If NVML goes away while running
// (driver unloaded or upgraded) it shuts down and initialises again.
func (c *Collector) Run(ctx context.Context) error {
	for {
		if !c.initWithBackoff(ctx) {
			return nil
		}
		err := c.session(ctx)
		if serr := c.b.stop(); serr != nil {
			c.log.Warn("gpu: NVML shutdown failed", "err", serr)
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("gpu: NVML went away, initialising it again", "err", err)
	}
}

// initWithBackoff calls Init until it succeeds (true) or ctx ends (false).
// Each failure is also recorded as a failed collection, so the self
// metrics stay fresh while NVML is down.
func (c *Collector) initWithBackoff(ctx context.Context) bool {
	bo := c.initBackoff.min
	last := ""
	for ctx.Err() == nil {
		err := c.Init()
		if err == nil {
			c.mu.Lock()
			sys := c.sys
			c.mu.Unlock()
			c.log.Info("gpu: NVML initialised", "driver", sys.driver, "cuda", sys.cuda, "gpus", len(sys.gpus))
			return true
		}
		c.Poll(c.now())
		if msg := err.Error(); msg != last {
			// Logged on change only: a node without GPUs retries forever.
			c.log.Warn("gpu: NVML unavailable, retrying", "err", err, "retry_in", bo)
			last = msg
		}
		if !c.sleep(ctx, bo) {
			return false
		}
		bo = c.initBackoff.next(bo)
	}
	return false
}

// session runs the collection and XID loops until ctx ends or NVML goes
// away.
func (c *Collector) session(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.collectLoop(gctx) })
	g.Go(func() error { c.xidLoop(gctx); return nil })
	return g.Wait()
}

func (c *Collector) collectLoop(ctx context.Context) error {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		var ie *initError
		if err := c.collect(c.now()); errors.As(err, &ie) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type backoff struct{ min, max time.Duration }

func (b backoff) next(d time.Duration) time.Duration { return min(2*d, b.max) }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
