package gpu

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Check is one named GPU health verdict.
type Check struct {
	Name   string
	Status string // StatusHealthy, StatusDegraded or StatusUnhealthy
	Reason string
}

// Check statuses.
const (
	StatusHealthy   = "healthy"
	StatusDegraded  = "degraded"
	StatusUnhealthy = "unhealthy"
)

// Checks returns the checks nvml, gpu_count, gpu_lost, xid, ecc and
// thermal, always in this order, judged at now from the last collection
// and the XIDs seen.
func (c *Collector) Checks(now time.Time) []Check {
	c.mu.Lock()
	defer c.mu.Unlock()
	up := c.attempted && c.upErr == nil
	return []Check{
		c.checkNVML(now, up),
		c.checkCount(up),
		c.checkLost(up),
		c.checkXID(now),
		c.checkECC(up),
		c.checkThermal(up),
	}
}

func verdict(name string, problems []string, bad, okReason string) Check {
	if len(problems) == 0 {
		return Check{Name: name, Status: StatusHealthy, Reason: okReason}
	}
	return Check{Name: name, Status: bad, Reason: strings.Join(problems, "; ")}
}

func (c *Collector) checkNVML(now time.Time, up bool) Check {
	ch := Check{Name: "nvml"}
	switch {
	case !c.attempted:
		ch.Status, ch.Reason = StatusUnhealthy, "NVML not initialised yet"
	case !up:
		ch.Status, ch.Reason = StatusUnhealthy, "NVML unavailable: "+c.upErr.Error()
	case c.snap.done && c.snap.err != "":
		ch.Status, ch.Reason = StatusDegraded, "last collection failed: "+c.snap.err
	case c.snap.done && now.Sub(c.snap.at) > 3*c.opts.Interval:
		// NVML calls cannot be interrupted: a wedged driver shows as a
		// collection that never finishes.
		ch.Status, ch.Reason = StatusDegraded, fmt.Sprintf("no collection for %s", now.Sub(c.snap.at).Truncate(time.Second))
	default:
		ch.Status, ch.Reason = StatusHealthy, fmt.Sprintf("NVML up (driver %s, CUDA %s)", c.sys.driver, c.sys.cuda)
	}
	return ch
}

// checkCount counts the usable GPUs: a lost one is missing.
func (c *Collector) checkCount(up bool) Check {
	n := len(c.snap.gpus)
	reason := fmt.Sprintf("%d GPUs visible", n)
	if !up {
		reason += " (NVML unavailable)"
	}
	if want := c.opts.ExpectedCount; want > 0 {
		reason += fmt.Sprintf(", expected %d", want)
		if n < want {
			return Check{Name: "gpu_count", Status: StatusUnhealthy, Reason: reason}
		}
	}
	return Check{Name: "gpu_count", Status: StatusHealthy, Reason: reason}
}

func (c *Collector) checkLost(up bool) Check {
	if !up || !c.snap.sampled {
		return Check{Name: "gpu_lost", Status: StatusHealthy, Reason: "not checked: no successful collection"}
	}
	var problems []string
	for _, l := range c.snap.lost {
		uuid := l.uuid
		if uuid == "" {
			uuid = "uuid unknown"
		}
		problems = append(problems, fmt.Sprintf("GPU %s (%s) lost: %s", l.index, uuid, l.why))
	}
	return verdict("gpu_lost", problems, StatusUnhealthy, "no GPU lost")
}

func (c *Collector) checkXID(now time.Time) Check {
	var problems []string
	keys := slices.SortedFunc(maps.Keys(c.xids), func(a, b xidKey) int {
		if a.uuid != b.uuid {
			return strings.Compare(a.uuid, b.uuid)
		}
		return cmp.Compare(a.xid, b.xid)
	})
	for _, k := range keys {
		st := c.xids[k]
		if age := now.Sub(st.last); criticalXID(k.xid) && age < c.opts.XIDWindow {
			problems = append(problems, fmt.Sprintf("critical XID %d on %s %s ago", k.xid, k.uuid, age.Truncate(time.Second)))
		}
	}
	return verdict("xid", problems, StatusUnhealthy, fmt.Sprintf("no critical XID in the last %s", c.opts.XIDWindow))
}

func (c *Collector) checkECC(up bool) Check {
	if !up || !c.snap.sampled {
		return Check{Name: "ecc", Status: StatusHealthy, Reason: "not checked: no successful collection"}
	}
	var problems []string
	for _, g := range c.snap.gpus {
		if v, _ := lookup(g.ecc, eccVolatileUncorrected); v > 0 {
			problems = append(problems, fmt.Sprintf("%s: %g uncorrectable ECC errors since boot", g.UUID, v))
		}
		if v, _ := lookup(g.remapped, remapFailure); v > 0 {
			problems = append(problems, g.UUID+": row remapping failed")
		}
		if v, _ := lookup(g.remapped, remapPending); v > 0 {
			problems = append(problems, g.UUID+": row remapping pending (GPU reset needed)")
		}
	}
	return verdict("ecc", problems, StatusUnhealthy, "no uncorrectable memory errors")
}

// checkThermal is a warning only: the GPU protects itself by slowing
// down, the work still runs.
func (c *Collector) checkThermal(up bool) Check {
	if !up || !c.snap.sampled {
		return Check{Name: "thermal", Status: StatusHealthy, Reason: "not checked: no successful collection"}
	}
	var problems []string
	for _, g := range c.snap.gpus {
		if g.temp.ok && g.slowdownTemp.ok && g.temp.v >= g.slowdownTemp.v {
			problems = append(problems, fmt.Sprintf("%s at %g°C, slowdown threshold %g°C", g.UUID, g.temp.v, g.slowdownTemp.v))
		}
		for _, r := range []string{throttleSwThermal, throttleHwThermal} {
			if v, _ := lookup(g.throttle, r); v > 0 {
				problems = append(problems, g.UUID+": "+r+" active")
			}
		}
	}
	return verdict("thermal", problems, StatusDegraded, "no GPU at its slowdown temperature")
}
