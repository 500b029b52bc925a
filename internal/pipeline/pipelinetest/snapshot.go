package pipelinetest

import "github.com/agaobs/agaobs/internal/pipeline"

// Ring is one ring of a test snapshot, spelled as the admin API shows it
// (State and Class by name).
type Ring struct {
	Producer, Class, State, Reason string
	HostPID                        int
	Consumed, Dropped, Lost        uint64
	Fill, HeartbeatAge             float64
}

// Snapshot returns the consumer snapshot the rings describe: rings of one
// producer name grouped in the order given, every ring counted by state.
// An unknown state counts as live, an unknown class as hot.
func Snapshot(rings ...Ring) *pipeline.Snapshot {
	s := &pipeline.Snapshot{}
	idx := map[string]int{}
	for _, r := range rings {
		st := pipeline.RingStateLive
		for i := range pipeline.NumRingStates {
			if i.String() == r.State {
				st = i
			}
		}
		s.RingStates[st]++
		class := pipeline.ClassHot
		if r.Class == pipeline.ClassAudit.String() {
			class = pipeline.ClassAudit
		}
		i, ok := idx[r.Producer]
		if !ok {
			i = len(s.Producers)
			idx[r.Producer] = i
			s.Producers = append(s.Producers, pipeline.ProducerStatus{Name: r.Producer})
		}
		s.Producers[i].Rings = append(s.Producers[i].Rings, pipeline.RingStatus{Path: r.Producer + "-" + class.String() + ".ring",
			Class: class, State: st, Reason: r.Reason, HostPID: r.HostPID, Consumed: r.Consumed, Dropped: r.Dropped,
			Lost: r.Lost, Fill: r.Fill, HeartbeatAge: r.HeartbeatAge})
	}
	return s
}
