package rings

import (
	"sort"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
)

// Snapshot returns the producers, the ring state counts and the
// consumer's counters as one immutable value (pipeline.Snapshot): what
// metrics, health, alerting and GPU attribution read, once per scrape,
// check or evaluation. Junk files in the ring directory are only counted.
// Safe from any goroutine.
func (c *Consumer) Snapshot() *pipeline.Snapshot {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := &pipeline.Snapshot{Consumer: c.countersLocked()}
	mono := shm.MonoNow()
	byName := map[string]int{}
	for _, e := range c.byFile {
		st, ok := e.snapshotState()
		if !ok {
			continue
		}
		s.RingStates[st]++
		if e.prod == nil || e.ring == nil {
			continue
		}
		i, ok := byName[e.prod.p.Name]
		if !ok {
			i = len(s.Producers)
			byName[e.prod.p.Name] = i
			s.Producers = append(s.Producers, pipeline.ProducerStatus{Name: e.prod.p.Name})
		}
		s.Producers[i].Rings = append(s.Producers[i].Rings, e.status(st, mono))
	}
	sort.Slice(s.Producers, func(i, j int) bool { return s.Producers[i].Name < s.Producers[j].Name })
	for i := range s.Producers {
		rs := s.Producers[i].Rings
		sort.Slice(rs, func(a, b int) bool {
			if rs[a].Class != rs[b].Class {
				return rs[a].Class < rs[b].Class // hot before audit
			}
			return rs[a].Path < rs[b].Path
		})
	}
	return s
}

// snapshotState is the ring's state as RingInfo.State names it (false:
// retired, not reported).
func (e *ringEntry) snapshotState() (pipeline.RingState, bool) {
	switch {
	case e.state == ringRetired:
		return 0, false
	case e.state == ringPending:
		return pipeline.RingStateInitialising, true
	case e.state == ringRejected:
		return pipeline.RingStateRejected, true
	case e.state == ringQuarantined:
		return pipeline.RingStateQuarantined, true
	case e.prod != nil:
		switch e.prod.state {
		case prodClosed:
			return pipeline.RingStateClosed, true
		case prodDead:
			return pipeline.RingStateDead, true
		}
		return pipeline.RingStateLive, true
	}
	return 0, false
}

func (e *ringEntry) status(st pipeline.RingState, mono int64) pipeline.RingStatus {
	rs := pipeline.RingStatus{Path: e.key.path, Class: ringClass(e.class), State: st, Reason: e.reason, HostPID: e.prod.p.HostPID}
	stats := e.ring.Stats()
	rs.Fill, rs.Written, rs.Consumed, rs.Dropped, rs.Lost, rs.Corrupt = stats.FillRatio, stats.Written, stats.Consumed, stats.Dropped, stats.Lost, stats.Corrupt
	if stats.HeartbeatMonoNs > 0 {
		rs.HeartbeatAge = float64(mono-stats.HeartbeatMonoNs) / 1e9
	}
	return rs
}
