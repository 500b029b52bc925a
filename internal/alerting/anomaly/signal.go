package anomaly

import (
	"fmt"

	"github.com/agaobs/agaobs/internal/schema"
)

// Signal is one watched quantity. Its String is the signal label value and
// the alert rules' signal key.
type Signal uint8

// The signals. The first NumLayerSignals are also tracked per layer.
const (
	LatencyP50 Signal = iota
	LatencyP99
	AppliedRatio
	GateMean
	EntropyMean
	ForwardRate
	RetrievalResults
	RetrievalInjected
	KVUtilization
	SlotChangeRate
	DropRate
	OffCPUP99
	GCPauseP99
	GPUUtilization
	NumSignals
)

// NumLayerSignals is the number of signals tracked per layer as well as
// per producer: the ones a forward event carries.
const NumLayerSignals = 5

// signalNames come from the schema, which configuration validation reads;
// TestSignalsMatchSchema keeps the order in step with the constants.
var signalNames = func() (out [NumSignals]string) {
	copy(out[:], schema.AnomalySignals())
	return out
}()

// signalFacts are per-signal constants of the model. floor is the smallest
// spread the score divides by, in the signal's unit (a value that never
// moves must not make every wobble infinite); rel is the same as a share of
// the baseline's center, for signals whose scale varies.
var signalFacts = [NumSignals]struct {
	floor, rel float64
	unit       string
}{
	LatencyP50:        {1, 0.02, "µs"},
	LatencyP99:        {1, 0.03, "µs"},
	AppliedRatio:      {0.01, 0, "ratio"},
	GateMean:          {0.01, 0.02, ""},
	EntropyMean:       {0.01, 0.02, ""},
	ForwardRate:       {0.05, 0.03, "1/s"},
	RetrievalResults:  {0.1, 0.03, "per call"},
	RetrievalInjected: {0.1, 0.03, "per call"},
	KVUtilization:     {0.01, 0, "ratio"},
	SlotChangeRate:    {0.01, 0.05, ""},
	DropRate:          {0.001, 0, "ratio"},
	OffCPUP99:         {1, 0.03, "µs"},
	GCPauseP99:        {1, 0.05, "µs"},
	GPUUtilization:    {0.01, 0, "ratio"},
}

func (s Signal) String() string {
	if s < NumSignals {
		return signalNames[s]
	}
	return fmt.Sprintf("signal(%d)", uint8(s))
}

// PerLayer reports whether s is also tracked per layer.
func (s Signal) PerLayer() bool { return s < NumLayerSignals }

// Unit is the unit of the signal's values ("" when dimensionless or
// unknown).
func (s Signal) Unit() string {
	if s >= NumSignals {
		return ""
	}
	return signalFacts[s].unit
}

// ParseSignal returns the signal named name.
func ParseSignal(name string) (Signal, bool) {
	for i, n := range signalNames {
		if n == name {
			return Signal(i), true
		}
	}
	return 0, false
}

// Signals returns every signal in order.
func Signals() []Signal {
	out := make([]Signal, NumSignals)
	for i := range out {
		out[i] = Signal(i)
	}
	return out
}

// StragglerSignals are the signals peers are compared on: a slow rank
// shows in its latency, or in the time its threads spend off CPU.
var stragglerSignals = [...]Signal{LatencyP99, LatencyP50, OffCPUP99}

// StragglerSignals returns the signals compared across peers.
func StragglerSignals() []Signal { return append([]Signal(nil), stragglerSignals[:]...) }

// Sensitivity maps a rule's sensitivity to the score threshold.
type Sensitivity string

// Sensitivities; Threshold documents the scores.
const (
	Low    Sensitivity = "low"
	Medium Sensitivity = "medium"
	High   Sensitivity = "high"
)

// Threshold is the |score| at or beyond which a signal is anomalous at
// this sensitivity (0 for an unknown one).
func (s Sensitivity) Threshold() float64 {
	switch s {
	case Low:
		return 7
	case Medium, "":
		return 5
	case High:
		return 4
	}
	return 0
}

// StragglerThreshold is the straggler score at or beyond which a rank is a
// straggler at this sensitivity (0 for an unknown one).
func (s Sensitivity) StragglerThreshold() float64 {
	switch s {
	case Low:
		return 8
	case Medium, "":
		return 6
	case High:
		return 4
	}
	return 0
}

// Direction says which deviations a rule cares about.
type Direction string

// Directions.
const (
	Up   Direction = "up"
	Down Direction = "down"
	Both Direction = "both"
)
