package gpu

import (
	"context"
	"errors"
	"time"
)

type xidKey struct {
	uuid string
	xid  uint64
}

type xidStat struct {
	count uint64
	last  time.Time
}

// criticalXID reports the XIDs that make the xid check unhealthy: GPU,
// memory or firmware faults that need a reset or a drain (the list
// nvidia_gpu_exporter's alerts use). Application XIDs (13, 31, 43, 45,
// 68, 109: a CUDA program faulted, the GPU is fine — k8s-device-plugin
// ignores them) and every other code are only counted.
func criticalXID(xid uint64) bool {
	switch xid {
	case 48, 62, 64, 74, 79, 95, 119, 120:
		return true
	}
	return false
}

// recordXID counts an XID event at now.
func (c *Collector) recordXID(e xidEvent, now time.Time) {
	k := xidKey{e.uuid, e.xid}
	c.mu.Lock()
	st := c.xids[k]
	st.count++
	st.last = now
	c.xids[k] = st
	c.mu.Unlock()
	if criticalXID(e.xid) {
		c.log.Warn("gpu: critical XID", "uuid", e.uuid, "xid", e.xid)
	} else {
		c.log.Info("gpu: XID", "uuid", e.uuid, "xid", e.xid)
	}
}

// xidLoop keeps an NVML event set watching for XIDs until ctx ends: when
// the set fails it backs off (1s → 30s) and creates a new one.
func (c *Collector) xidLoop(ctx context.Context) {
	bo := c.xidBackoff.min
	for {
		began := time.Now()
		err := c.b.watch(ctx, func(e xidEvent) { c.recordXID(e, c.now()) })
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNoEvents) {
			// Retrying cannot help (vGPU guests, old boards); say so once.
			c.log.Info("gpu: XID events unavailable", "err", err)
			<-ctx.Done()
			return
		}
		if time.Since(began) > c.xidBackoff.max {
			bo = c.xidBackoff.min // it ran well for a while: a fresh failure
		}
		c.log.Warn("gpu: XID event loop failed, recreating the event set", "err", err, "retry_in", bo)
		if !c.sleep(ctx, bo) {
			return
		}
		bo = c.xidBackoff.next(bo)
	}
}
