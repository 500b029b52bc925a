package probes

import "math"

// Cumulative is one producer's kernel histogram for one probe, summed
// over its sub ids: counts of durations since the probe attached.
type Cumulative struct {
	Buckets [HistSlots]uint64
	Count   uint64
}

// Histograms returns each producer's cumulative histograms by probe (the
// anomaly detector takes per-minute quantiles from their differences);
// nil while nothing is loaded or the maps cannot be read.
func (m *Manager) Histograms() map[string]map[ID]*Cumulative {
	rd := m.reader()
	if rd == nil {
		return nil
	}
	_, _, slots, _ := m.state()
	hs, err := rd.hists()
	if err != nil {
		return nil
	}
	out := map[string]map[ID]*Cumulative{}
	for _, h := range hs {
		name, ok := slots[h.Slot]
		if !ok {
			continue
		}
		byProbe := out[name]
		if byProbe == nil {
			byProbe = map[ID]*Cumulative{}
			out[name] = byProbe
		}
		c := byProbe[h.Probe]
		if c == nil {
			c = &Cumulative{}
			byProbe[h.Probe] = c
		}
		for i, n := range h.Buckets {
			c.Buckets[i] += n
		}
		c.Count += h.Count
	}
	return out
}

// QuantileSince returns the q-quantile in seconds of the durations
// recorded between prev and c (c's counts minus prev's; prev nil: all),
// interpolated within the kernel's log2 buckets; ok is false when none
// was recorded or the counters went backwards (a reattached probe).
func (c *Cumulative) QuantileSince(prev *Cumulative, q float64) (float64, bool) {
	var d [HistSlots]uint64
	var total uint64
	for i := range c.Buckets {
		p := uint64(0)
		if prev != nil {
			p = prev.Buckets[i]
		}
		if c.Buckets[i] < p {
			return 0, false
		}
		d[i] = c.Buckets[i] - p
		total += d[i]
	}
	if total == 0 {
		return 0, false
	}
	rank, cum := q*float64(total), 0.0
	for i, n := range d {
		if n == 0 {
			continue
		}
		if next := cum + float64(n); next >= rank {
			// Bucket i holds [2^(i-30), 2^(i-29)) seconds.
			lo, hi := math.Ldexp(1, i-unitShift), math.Ldexp(1, i-unitShift+1)
			return lo + (hi-lo)*(rank-cum)/float64(n), true
		} else {
			cum = next
		}
	}
	return math.Ldexp(1, HistSlots-unitShift), true
}
