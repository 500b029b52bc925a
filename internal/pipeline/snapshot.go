package pipeline

import "fmt"

// Snapshot is the ring consumer's view of its producers at one instant,
// for the sinks and collectors that judge producers (metrics, health,
// alerting, GPU attribution) without knowing the ring layer. The consumer
// builds a new one for every call; nobody modifies it afterwards.
type Snapshot struct {
	// Producers are the accepted producers by name label, sorted by name.
	Producers []ProducerStatus
	// RingStates counts every ring file the consumer knows, junk included.
	RingStates [NumRingStates]int
	Consumer   ConsumerCounters
}

// ConsumerCounters are the ring consumer's own counters.
type ConsumerCounters struct {
	// CheckErrors counts producer liveness checks that could not decide.
	CheckErrors uint64
	// Rejected counts ring files turned away, by reason code.
	Rejected map[string]uint64
	// Candidates is the number of ring files of no accepted producer the
	// consumer tracks; Untracked those the last scan left unexamined.
	Candidates, Untracked int
}

// RingState is a ring's state: its producer's (live, closed, dead) or its
// own (initialising, rejected, quarantined).
type RingState uint8

// Ring states.
const (
	RingStateLive RingState = iota
	RingStateClosed
	RingStateDead
	RingStateInitialising
	RingStateRejected
	RingStateQuarantined
	NumRingStates
)

var ringStateNames = [NumRingStates]string{"live", "closed", "dead", "initialising", "rejected", "quarantined"}

func (s RingState) String() string {
	if s < NumRingStates {
		return ringStateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// RingStatus is one ring of a producer.
type RingStatus struct {
	Path    string
	Class   RingClass
	State   RingState
	Reason  string // why it is rejected or quarantined
	HostPID int
	// Fill is the used fraction of the ring; the counters are the ring's
	// own (monotonic while the ring exists).
	Fill                                      float64
	Written, Consumed, Dropped, Lost, Corrupt uint64
	// HeartbeatAge is the producer's heartbeat age on this ring (seconds).
	HeartbeatAge float64
}

// ProducerStatus is every ring of one producer name: normally a hot and an
// audit ring, plus for a while those of a dead or closed incarnation whose
// name a new one took over.
type ProducerStatus struct {
	Name  string
	Rings []RingStatus // hot before audit, then by path
}

// Up reports whether any of its rings is live.
func (p *ProducerStatus) Up() bool {
	for i := range p.Rings {
		if p.Rings[i].State == RingStateLive {
			return true
		}
	}
	return false
}

// State is the producer's state: live while any of its rings is live,
// dead when none is and one is dead (its process exited without closing
// the ring: it crashed or was killed), closed otherwise.
func (p *ProducerStatus) State() RingState {
	state := RingStateClosed
	for i := range p.Rings {
		switch p.Rings[i].State {
		case RingStateLive:
			return RingStateLive
		case RingStateDead:
			state = RingStateDead
		}
	}
	return state
}

// HeartbeatAge is the youngest heartbeat age over its rings (false when it
// has no ring).
func (p *ProducerStatus) HeartbeatAge() (float64, bool) {
	age, ok := 0.0, false
	for i := range p.Rings {
		if a := p.Rings[i].HeartbeatAge; !ok || a < age {
			age, ok = a, true
		}
	}
	return age, ok
}

// LiveHostPID is the host pid of its first live ring (0: none).
func (p *ProducerStatus) LiveHostPID() int {
	for i := range p.Rings {
		if r := &p.Rings[i]; r.State == RingStateLive && r.HostPID != 0 {
			return r.HostPID
		}
	}
	return 0
}

// Drops are the counters every drop rate is computed from (DropRate).
func (p *ProducerStatus) Drops() DropCounts {
	var d DropCounts
	for i := range p.Rings {
		if r := &p.Rings[i]; r.Class == ClassHot {
			d.Consumed += r.Consumed
			d.Dropped += r.Dropped
		}
	}
	return d
}

// DropCounts are a producer's hot-ring counters: records the agent
// consumed and records the producer dropped because the ring was full.
// Audit rings do not drop (their losses are audit gaps).
type DropCounts struct {
	Consumed, Dropped uint64
}

// Since returns the counts accumulated since base; false when a counter
// went backwards (a ring was forgotten or replaced).
func (c DropCounts) Since(base DropCounts) (DropCounts, bool) {
	if c.Consumed < base.Consumed || c.Dropped < base.Dropped {
		return DropCounts{}, false
	}
	return DropCounts{Consumed: c.Consumed - base.Consumed, Dropped: c.Dropped - base.Dropped}, true
}

// Rate is the one drop rate of agaobs, the same as the generated
// Prometheus rules' drop_rate: records dropped over records offered
// (consumed + dropped). Apply it to counts accumulated over a window
// (Since). ok is false when nothing was offered.
func (c DropCounts) Rate() (rate float64, ok bool) {
	if c.Consumed+c.Dropped == 0 {
		return 0, false
	}
	return float64(c.Dropped) / float64(c.Consumed+c.Dropped), true
}
