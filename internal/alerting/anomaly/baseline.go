package anomaly

import "math"

// The model's constants; docs/anomaly.md explains each.
const (
	// SlotsPerDay is the seasonal profile's resolution (quarter hours).
	SlotsPerDay    = 96
	minutesPerSlot = 1440 / SlotsPerDay
	// huberK clips a sample to center ± huberK·σ before it updates the
	// baseline, so an incident moves it slowly and a spike barely at all.
	huberK = 3.0
	// globalAlpha is the floor of the non-seasonal EWMA weight: about an
	// hour of memory once warmed up (1/n before).
	globalAlpha = 1.0 / 60
	// slotAlpha is the floor of a seasonal slot's weight: about three
	// days of samples per slot.
	slotAlpha = 1.0 / (3 * minutesPerSlot)
	// slotReady is the samples a slot needs before the profile is used.
	slotReady = 3
	// susLambda is the sustained score's EWMA weight (about ten minutes);
	// susNorm makes it a z-score for independent samples.
	susLambda = 0.1
	// madToSigma turns a mean absolute deviation into a standard
	// deviation (normal data).
	madToSigma = 1.2533
	dayMinutes = 1440
)

// susNorm is the sustained EWMA's standard error for independent minutes,
// times susCorr: minutes are not independent against a daily profile (a
// day's peak comes earlier or higher than the profile for an hour at a
// time), and the replay's benign days (docs/anomaly.md) calibrate the
// factor that keeps those from alerting.
var susNorm = math.Sqrt(susLambda/(2-susLambda)) * susCorr

const susCorr = 1.6

// learnZ is the |z| from which a sample counts as anomalous for learning.
const learnZ = 4

// susDays is the history the sustained score needs.
const susDays = 2

// Baseline is the learned normal of one producer-signal-layer series:
// fixed size (about 1 KiB), so that a series costs the same whatever the
// event rate, and binary-encodable for the state file.
type Baseline struct {
	N     uint32  // samples seen
	First int32   // unix minute of the first sample
	C, S  float32 // non-seasonal center and mean absolute deviation
	E     float32 // EWMA of clipped z: the sustained score's state
	SC    [SlotsPerDay]float32
	SS    [SlotsPerDay]float32
	SN    [SlotsPerDay]uint8 // samples per slot, saturating
}

// Score is what one sample scored against a baseline.
type Score struct {
	Value    float64 // the sample
	Expected float64 // the baseline's center at that minute
	Sigma    float64 // the spread the score divides by
	Z        float64 // (value - expected) / sigma
	// Sustained is the EWMA of Z clipped to ±3, in its own standard
	// errors: a small shift that lasts scores high here before Z does.
	Sustained float64
	Seasonal  bool // expected came from the daily profile
}

// Up is the score toward higher values (the larger of Z and Sustained).
func (s Score) Up() float64 { return max(s.Z, s.Sustained) }

// Down is the score toward lower values (the smaller of the two).
func (s Score) Down() float64 { return min(s.Z, s.Sustained) }

// Signed is the one number exported: whichever of Up and Down is further
// from zero.
func (s Score) Signed() float64 {
	if up, down := s.Up(), s.Down(); up >= -down {
		return up
	}
	return s.Down()
}

// slotPos returns the two profile slots around minute-of-day mod and the
// weight of the second: slot k holds the value around its midpoint, and
// a minute between two midpoints is their linear mix.
func slotPos(minute int64) (k0, k1 int, w float64) {
	mod := float64(((minute % dayMinutes) + dayMinutes) % dayMinutes)
	p := (mod+0.5)/minutesPerSlot - 0.5
	f := math.Floor(p)
	k0 = (int(f) + SlotsPerDay) % SlotsPerDay
	return k0, (k0 + 1) % SlotsPerDay, p - f
}

// expected returns the center and mean absolute deviation at minute.
func (b *Baseline) expected(minute int64) (c, s float64, seasonal bool) {
	if b.N > 0 && minute-int64(b.First) >= dayMinutes {
		k0, k1, w := slotPos(minute)
		if b.SN[k0] >= slotReady && b.SN[k1] >= slotReady {
			c = float64(b.SC[k0])*(1-w) + float64(b.SC[k1])*w
			s = float64(b.SS[k0])*(1-w) + float64(b.SS[k1])*w
			return c, s, true
		}
	}
	return float64(b.C), float64(b.S), false
}

// Floors are the least spread a score divides by: floor in the series'
// unit, rel as a share of its center. A value that never moves must not
// make every wobble infinite.
type Floors struct{ Floor, Rel float64 }

// SignalFloors are a producer-level series' floors.
func SignalFloors(sig Signal) Floors {
	if sig >= NumSignals {
		return layerFloors
	}
	f := signalFacts[sig]
	return Floors{f.floor, f.rel}
}

// layerFloors are a layer series' floors: a layer is scored on its ratio
// to its producer's value, which is about 1.
var layerFloors = Floors{Floor: 0.01, Rel: 0.02}

// sigma is the spread a score divides by, never below the floors.
func sigma(f Floors, c, s float64) float64 {
	return max(s*madToSigma, f.Floor, f.Rel*math.Abs(c))
}

// Observe scores x at minute against the baseline, then learns it. The
// first sample only learns (its score is zero).
func (b *Baseline) Observe(sig Floors, minute int64, x float64) Score {
	// The state is float32: a producer's value beyond its range would turn
	// the baseline into ±Inf for good.
	x = clip(x, math.MaxFloat32)
	if b.N == 0 {
		b.First, b.C, b.S, b.N = int32(minute), float32(x), 0, 1
		b.learnSlots(sig, minute, x, 0, 1)
		return Score{Value: x, Expected: x, Sigma: sigma(sig, x, 0)}
	}
	c, s, seasonal := b.expected(minute)
	sd := sigma(sig, c, s)
	z := (x - c) / sd
	if !finite(z) {
		// x and c near ±MaxFloat64 overflow the difference: score it as
		// far off as can be, learn nothing from it.
		return Score{Value: x, Expected: c, Sigma: sd, Z: math.Copysign(math.MaxFloat64, x-c), Seasonal: seasonal}
	}
	// The sustained score needs a daily profile of two days or more:
	// against the non-seasonal EWMA, which lags every daily ramp, a ramp
	// would look like a lasting shift, and a profile of one day takes
	// that day's peak for every day's. Drift detection starts on day 3.
	sus := 0.0
	if seasonal && minute-int64(b.First) >= susDays*dayMinutes {
		e := (1-susLambda)*float64(b.E) + susLambda*clip(z, huberK)
		b.E, sus = float32(e), e/susNorm
	} else {
		b.E = 0
	}
	out := Score{Value: x, Expected: c, Sigma: sd, Z: z, Sustained: sus, Seasonal: seasonal}

	// An anomalous sample (|z| >= learnZ) moves the centers at a quarter
	// of the weight and the spreads not at all: otherwise an incident
	// widens the spread it is scored against and hides itself within
	// minutes. A lasting change is still absorbed, more slowly.
	w := 1.0
	if math.Abs(z) >= learnZ && b.N >= 1/globalAlpha {
		w = 0
	}
	// The non-seasonal baseline.
	gc, gs := float64(b.C), float64(b.S)
	alpha := max(1/float64(b.N+1), globalAlpha)
	r := clip(x-gc, huberK*sigma(sig, gc, gs))
	b.C = float32(gc + alpha*r*max(w, 0.25))
	b.S = float32(gs + w*alpha*(math.Abs(r)-gs))
	b.learnSlots(sig, minute, x, gs, w)
	if b.N < math.MaxUint32 {
		b.N++
	}
	return out
}

// learnSlots updates the two profile slots around minute, each by its
// interpolation weight; an empty slot starts at x with spread s0.
func (b *Baseline) learnSlots(sig Floors, minute int64, x, s0, w float64) {
	k0, k1, f := slotPos(minute)
	for _, kw := range [2]struct {
		k int
		w float64
	}{{k0, 1 - f}, {k1, f}} {
		k := kw.k
		if kw.w <= 0 {
			continue
		}
		if b.SN[k] == 0 {
			b.SC[k], b.SS[k], b.SN[k] = float32(x), float32(s0), 1
			continue
		}
		sc, ss := float64(b.SC[k]), float64(b.SS[k])
		alpha := kw.w * max(1/float64(b.SN[k]+1), slotAlpha)
		r := clip(x-sc, huberK*sigma(sig, sc, ss))
		b.SC[k] = float32(sc + alpha*r*max(w, 0.25))
		b.SS[k] = float32(ss + w*alpha*(math.Abs(r)-ss))
		if b.SN[k] < math.MaxUint8 {
			b.SN[k]++
		}
	}
}

func clip(v, k float64) float64 { return max(-k, min(k, v)) }
