package anomaly

import (
	"math"
	"math/rand/v2"
	"testing"
)

// noiseFloors are floors at half the test series' noise sd, so that the
// learned spread, not a floor, is what a score divides by (see
// TestBaselineColdStartWideNoise for floors far below the noise).
func noiseFloors(sd float64) Floors { return Floors{Floor: sd / 2} }

// t0 is a realistic unix minute (2023) that is not a day boundary.
const t0 = int64(28_000_000 + 437)

// newRand is a seeded source.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// feed observes n minutes of gen(m) from minute start+from on and returns
// the scores.
func feed(b *Baseline, f Floors, start, from, n int64, gen func(m int64) float64) []Score {
	out := make([]Score, 0, n)
	for m := from; m < from+n; m++ {
		out = append(out, b.Observe(f, start+m, gen(m)))
	}
	return out
}

// globalSigma is the sigma the baseline's non-seasonal state divides by.
func globalSigma(b *Baseline, f Floors) float64 { return sigma(f, float64(b.C), float64(b.S)) }

func TestBaselineFirstSample(t *testing.T) {
	var b Baseline
	s := b.Observe(SignalFloors(LatencyP99), t0, 1234)
	if s.Z != 0 || s.Sustained != 0 || s.Seasonal || s.Expected != 1234 || s.Value != 1234 {
		t.Fatalf("first sample scored %+v, want zero score and Expected = value", s)
	}
	if want := 0.03 * 1234; math.Abs(s.Sigma-want) > 1e-9 {
		t.Fatalf("first sample's sigma %g, want the relative floor %g", s.Sigma, want)
	}
	if b.N != 1 || b.First != int32(t0) || b.C != 1234 || b.S != 0 {
		t.Fatalf("after the first sample: N %d First %d C %g S %g", b.N, b.First, b.C, b.S)
	}
	k0, k1, w := slotPos(t0)
	for _, k := range []int{k0, k1} {
		if k == k1 && w == 0 {
			continue
		}
		if b.SN[k] != 1 || b.SC[k] != 1234 {
			t.Fatalf("slot %d after the first sample: SN %d SC %g", k, b.SN[k], b.SC[k])
		}
	}
}

// TestBaselineLearnsConstant: a constant plus Gaussian noise is learned,
// center within a sigma and the spread close to the noise's.
func TestBaselineLearnsConstant(t *testing.T) {
	tests := []struct {
		name      string
		floors    Floors
		mu, sd    float64
		n         int64
		wantSigma float64 // the sigma scores should divide by
	}{
		{"latency 1000±50", noiseFloors(50), 1000, 50, 300, 50},
		{"ratio 0.8±0.01", noiseFloors(0.01), 0.8, 0.01, 300, 0.01},
		{"negative center -40±2", noiseFloors(2), -40, 2, 300, 2},
		{"large 1e6±1e4", noiseFloors(1e4), 1e6, 1e4, 300, 1e4},
		{"zero center 0±1", noiseFloors(1), 0, 1, 300, 1},
		{"noise below the floors", SignalFloors(LatencyP50), 1000, 2, 300, 20},
		{"latency_p50 floors, 1000±50", SignalFloors(LatencyP50), 1000, 50, 300, 50},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRand(uint64(i))
			var b Baseline
			scores := feed(&b, tc.floors, t0, 0, tc.n, func(int64) float64 { return tc.mu + tc.sd*r.NormFloat64() })
			if d := math.Abs(float64(b.C) - tc.mu); d > tc.sd {
				t.Errorf("center %g after %d samples, %g from %g: more than one sigma (%g)", b.C, tc.n, d, tc.mu, tc.sd)
			}
			if got := globalSigma(&b, tc.floors); got < 0.7*tc.wantSigma || got > 1.3*tc.wantSigma {
				t.Errorf("sigma %g, want about %g", got, tc.wantSigma)
			}
			if b.N != uint32(tc.n) {
				t.Errorf("N = %d, want %d", b.N, tc.n)
			}
			// Once learned, ordinary noise scores like noise.
			big := 0
			for _, s := range scores[tc.n/2:] {
				if math.Abs(s.Z) >= 4.5 {
					big++
				}
				if s.Seasonal || s.Sustained != 0 {
					t.Fatalf("within the first day: %+v", s)
				}
			}
			if big > 0 {
				t.Errorf("%d of %d learned minutes of pure noise scored |z| >= 4.5", big, tc.n/2)
			}
		})
	}
}

// TestBaselineFloors: a series that never moves scores a wobble against
// the floors, not against a zero spread.
func TestBaselineFloors(t *testing.T) {
	tests := []struct {
		name   string
		floors Floors
		c, x   float64
		wantZ  float64
	}{
		{"absolute floor", Floors{Floor: 1, Rel: 0}, 100, 103, 3},
		{"relative floor", Floors{Floor: 1, Rel: 0.02}, 1000, 1060, 3},
		{"relative floor, negative center", Floors{Floor: 0.1, Rel: 0.02}, -1000, -1060, -3},
		{"drop rate floor", SignalFloors(DropRate), 0, 0.002, 2},
		{"layer floors", layerFloors, 1, 1.04, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b Baseline
			feed(&b, tc.floors, t0, 0, 100, func(int64) float64 { return tc.c })
			if b.S != 0 {
				t.Fatalf("constant series learned spread %g", b.S)
			}
			s := b.Observe(tc.floors, t0+100, tc.x)
			if math.IsInf(s.Z, 0) || math.IsNaN(s.Z) || math.Abs(s.Z-tc.wantZ) > 1e-6 {
				t.Fatalf("z = %g, want %g (sigma %g)", s.Z, tc.wantZ, s.Sigma)
			}
		})
	}
}

// TestBaselineStep: a step of ±10 sigma scores beyond the medium
// sensitivity on its very first minute.
func TestBaselineStep(t *testing.T) {
	for _, tc := range []struct {
		name string
		step float64 // in sigmas
		days int64   // of history before the step
	}{
		{"up +10σ after 4h", 10, 0},
		{"down -10σ after 4h", -10, 0},
		{"up +6σ after 4h", 6, 0},
		{"up +10σ on day 3", 10, 2},
		{"down -10σ on day 3", -10, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRand(11)
			const mu, sd = 500.0, 10.0
			f := noiseFloors(sd)
			n := 240 + tc.days*dayMinutes
			var b Baseline
			feed(&b, f, t0, 0, n, func(int64) float64 { return mu + sd*r.NormFloat64() })
			s := b.Observe(f, t0+n, mu+tc.step*sd)
			if s.Seasonal != (tc.days > 0) {
				t.Fatalf("Seasonal = %v after %d days", s.Seasonal, tc.days)
			}
			if got := s.Z * math.Copysign(1, tc.step); got <= 5 {
				t.Fatalf("first minute of a %+gσ step: z = %.2f, want beyond ±5", tc.step, s.Z)
			}
			if got := s.Signed(); math.Signbit(got) != math.Signbit(tc.step) || math.Abs(got) <= 5 {
				t.Fatalf("Signed() = %.2f for a %+gσ step", got, tc.step)
			}
		})
	}
}

// spikeSetup returns a baseline that learned two days of 1000±20 noise,
// the minute after, and its noise sd.
func spikeSetup() (b Baseline, f Floors, m int64, sd float64) {
	r := newRand(5)
	const mu = 1000.0
	sd = 20
	f = noiseFloors(sd)
	feed(&b, f, t0, 0, 2*dayMinutes, func(int64) float64 { return mu + sd*r.NormFloat64() })
	return b, f, t0 + 2*dayMinutes, sd
}

// TestBaselineSpike: one minute at three times the level barely moves the
// centers (Huber clip and the quarter weight of an anomalous sample) and
// does not widen the non-seasonal spread at all.
func TestBaselineSpike(t *testing.T) {
	b, f, m, sd := spikeSetup()
	before := b
	s := b.Observe(f, m, 3000)
	if s.Z < 50 {
		t.Fatalf("a x3 spike scored z = %.1f", s.Z)
	}
	if !s.Seasonal {
		t.Fatal("after two days the spike should be scored against the profile")
	}
	if d := math.Abs(float64(b.C - before.C)); d >= sd {
		t.Errorf("non-seasonal center moved %.2f, one sigma is %g", d, sd)
	}
	// At most a quarter of the EWMA weight of a huberK-sigma step.
	if d, lim := math.Abs(float64(b.C-before.C)), 0.25*globalAlpha*huberK*globalSigma(&before, f)*1.001; d > lim {
		t.Errorf("non-seasonal center moved %.4f, more than a quarter-weight clipped step (%.4f)", d, lim)
	}
	if b.S != before.S {
		t.Errorf("the spike changed the non-seasonal spread %g -> %g", before.S, b.S)
	}
	for k := range SlotsPerDay {
		if d := math.Abs(float64(b.SC[k] - before.SC[k])); d >= sd {
			t.Errorf("slot %d center moved %.2f", k, d)
		}
	}
	// The next minute is back to normal.
	if s := b.Observe(f, m+1, 1000); math.Abs(s.Z) >= 3 {
		t.Errorf("the minute after the spike scored z = %.2f", s.Z)
	}
}

// TestBaselineSpikeLeavesSlotSpreads: an anomalous sample (|z| >= learnZ)
// must not move the seasonal profile's spreads either.
//
// BUG: baseline.go learnSlots (line 177) declares `k0, k1, w :=
// slotPos(minute)`, which assigns the parameter w (the learning weight,
// 0 for an anomalous sample) the interpolation weight of slot k1. The
// freeze never applies to the profile: an incident widens the seasonal
// spread it is scored against (see TestBaselineIncidentKeepsScoring), and
// an ordinary sample's slot spread update is scaled by the interpolation
// weight a second time. Fix: `k0, k1, f := slotPos(minute)` and
// `{{k0, 1 - f}, {k1, f}}`.
func TestBaselineSpikeLeavesSlotSpreads(t *testing.T) {
	b, f, m, _ := spikeSetup()
	before := b
	if s := b.Observe(f, m, 3000); math.Abs(s.Z) < learnZ {
		t.Fatalf("the spike scored z = %.2f, below learnZ", s.Z)
	}
	for k := range SlotsPerDay {
		if b.SS[k] != before.SS[k] {
			t.Errorf("slot %d spread changed %g -> %g on an anomalous sample", k, before.SS[k], b.SS[k])
		}
	}
}

// TestBaselineIncidentKeepsScoring: a lasting +8σ level shift on day 3
// keeps scoring beyond the medium sensitivity for its first hour: it may
// move the centers slowly but must not widen the spread it is scored
// against.
//
// BUG: fails for the learnSlots shadowing described at
// TestBaselineSpikeLeavesSlotSpreads: the seasonal sigma grows from about
// 21 to 30 and more within 40 minutes and z falls below 5.
func TestBaselineIncidentKeepsScoring(t *testing.T) {
	const mu, sd = 1000.0, 20.0
	f := noiseFloors(sd)
	r := newRand(3)
	var b Baseline
	start := int64(2*dayMinutes + 300)
	feed(&b, f, t0, 0, start, func(int64) float64 { return mu + sd*r.NormFloat64() })
	pre := b
	for i, s := range feed(&b, f, t0, start, 60, func(int64) float64 { return mu + 8*sd + sd*clip(r.NormFloat64(), 2) }) {
		// The sigma the baseline had before the incident, at this minute.
		c, sp, seasonal := pre.expected(t0 + start + int64(i))
		if !seasonal {
			t.Fatal("day 3 not seasonal")
		}
		was := sigma(f, c, sp)
		if s.Z < Medium.Threshold() || s.Sigma > 1.01*was {
			t.Fatalf("minute %d of a +8σ shift: z %.2f, sigma %.2f (%.2f before the incident)", i, s.Z, s.Sigma, was)
		}
	}
}

// TestBaselineColdStartWideNoise: a stationary series whose minute-to-
// minute noise is ten times its floor (GPU utilization 0.5 ± 0.1 against
// an absolute floor of 0.01; p99 latency 1000 ± 300 µs against 3 %) has
// learned its spread by the end of an hour, and pure noise does not score
// beyond the medium sensitivity after the learning period.
//
// BUG: baseline.go Observe starts the spread at 0 on the first sample and
// freezes the spread for every sample with |z| >= learnZ (w = 0) from the
// second sample on. Against a spread of 0 the sigma is the floor, so
// nearly every sample of a series with noise >= ~5x its floor counts as
// anomalous and the spread only learns from the rare samples within
// 4 floors of the center: in a sweep of 100 seeds at noise/floor = 10,
// 84 series scored pure noise >= 5 somewhere in minutes 30..120, at 100x
// none converged within a day. Proposed fix: no learnZ freeze while the
// baseline is young (e.g. w = 1 while b.N < 1/globalAlpha, when alpha is
// still 1/(N+1)), so the Huber-clipped |r| grows the spread geometrically.
func TestBaselineColdStartWideNoise(t *testing.T) {
	tests := []struct {
		name   string
		sig    Signal
		mu, sd float64
	}{
		{"gpu_utilization 0.5±0.1", GPUUtilization, 0.5, 0.1},
		{"latency_p99 1000±300", LatencyP99, 1000, 300},
		{"drop_rate 0.05±0.01", DropRate, 0.05, 0.01},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := SignalFloors(tc.sig)
			for seed := range uint64(5) {
				r := newRand(100*uint64(i) + seed)
				var b Baseline
				scores := feed(&b, f, t0, 0, 120, func(int64) float64 { return tc.mu + tc.sd*r.NormFloat64() })
				for m, s := range scores[30:] {
					if math.Abs(s.Signed()) >= Medium.Threshold() {
						t.Fatalf("seed %d minute %d: pure noise scored %.1f (sigma %.4g, noise sd %g)", seed, m+30, s.Signed(), s.Sigma, tc.sd)
					}
				}
				if got := globalSigma(&b, f); got < 0.6*tc.sd || got > 1.4*tc.sd {
					t.Fatalf("seed %d: sigma %.4g after two hours, noise sd %g", seed, got, tc.sd)
				}
			}
		})
	}
}

// TestBaselineFirstSampleOutlier: when a series' very first minute is an
// outlier (x10), the baseline still learns the normal level within the
// learning hour instead of scoring every normal minute as an anomaly.
//
// BUG: same root cause as TestBaselineColdStartWideNoise: the first
// sample sets C = 10000 and S = 0; every later normal minute is then
// |z| >= learnZ, so the spread never learns and the center moves by at
// most a quarter of a Huber-clipped step of alpha = 1/(N+1): after the
// first minute the center needs about e^60 minutes to come back: every
// normal minute of the first day scores about -45 (1440 false anomalous
// minutes in a row with seed 12), until the daily profile, whose other
// slots started at normal values, takes over.
// The fix proposed there (no learnZ freeze while the baseline is young)
// fixes this too.
func TestBaselineFirstSampleOutlier(t *testing.T) {
	r := newRand(12)
	f := SignalFloors(LatencyP50)
	var b Baseline
	b.Observe(f, t0, 10000)
	scores := feed(&b, f, t0, 1, 120, func(int64) float64 { return 1000 * (1 + 0.01*r.NormFloat64()) })
	for m, s := range scores[60:] {
		if math.Abs(s.Signed()) >= Medium.Threshold() {
			t.Fatalf("minute %d: a normal minute scored %.1f (expected %.0f, sigma %.1f) after an outlier first minute", m+61, s.Signed(), s.Expected, s.Sigma)
		}
	}
}

// TestBaselineSeasonalFlag: the daily profile is used from a day after the
// first sample on, never before.
func TestBaselineSeasonalFlag(t *testing.T) {
	r := newRand(2)
	f := noiseFloors(1)
	var b Baseline
	scores := feed(&b, f, t0, 0, 2*dayMinutes, func(int64) float64 { return 100 + r.NormFloat64() })
	for m, s := range scores {
		if want := m >= dayMinutes; s.Seasonal != want {
			t.Fatalf("minute %d after the first: Seasonal %v, want %v", m, s.Seasonal, want)
		}
	}
	for k := range SlotsPerDay {
		if b.SN[k] < slotReady {
			t.Fatalf("slot %d has %d samples after two days", k, b.SN[k])
		}
	}
	// A gap does not reset the history: days later it is still seasonal.
	if s := b.Observe(f, t0+5*dayMinutes, 100); !s.Seasonal {
		t.Fatal("after a gap: Seasonal false")
	}
}

// TestBaselineSeasonalNeedsSlots: past a day, a slot with fewer than
// slotReady samples falls back to the non-seasonal baseline.
func TestBaselineSeasonalNeedsSlots(t *testing.T) {
	f := noiseFloors(1)
	var b Baseline
	b.Observe(f, t0, 10)
	if s := b.Observe(f, t0+dayMinutes+3*minutesPerSlot, 10); s.Seasonal {
		t.Fatal("a day later, with empty slots: Seasonal true")
	}
}

// TestBaselineDailyProfile: a daily sinusoid is learned; on day 3 every
// minute scores |z| < 3 against the profile, while on day 1 the
// non-seasonal EWMA lags the ramps by several noise sigmas.
func TestBaselineDailyProfile(t *testing.T) {
	const mu, amp, sd = 1000.0, 300.0, 10.0
	for _, floors := range []Floors{noiseFloors(sd), SignalFloors(LatencyP50)} {
		r := newRand(7)
		var b Baseline
		truth := func(m int64) float64 { return mu + amp*math.Sin(2*math.Pi*float64(m)/dayMinutes) }
		scores := feed(&b, floors, t0, 0, 3*dayMinutes, func(m int64) float64 {
			return truth(m) + sd*math.Sqrt(3)*(2*r.Float64()-1) // bounded noise of sd 10
		})
		var lag1, lag3, maxZ3 float64
		for m := int64(60); m < dayMinutes; m++ { // after an hour of warm-up
			if scores[m].Seasonal {
				t.Fatalf("day 1 minute %d: seasonal", m)
			}
			lag1 += math.Abs(scores[m].Expected-truth(m)) / float64(dayMinutes-60)
		}
		for m := int64(2 * dayMinutes); m < 3*dayMinutes; m++ {
			s := scores[m]
			if !s.Seasonal {
				t.Fatalf("day 3 minute %d: not seasonal", m)
			}
			lag3 += math.Abs(s.Expected-truth(m)) / dayMinutes
			maxZ3 = max(maxZ3, math.Abs(s.Z))
		}
		if maxZ3 >= 3 {
			t.Errorf("floors %+v: day 3 max |z| = %.2f, want < 3", floors, maxZ3)
		}
		if lag1 < 3*sd {
			t.Errorf("floors %+v: day 1 mean |expected - truth| = %.1f, the non-seasonal EWMA should lag by > %g", floors, lag1, 3*sd)
		}
		if lag3 > sd {
			t.Errorf("floors %+v: day 3 mean |expected - truth| = %.1f, want < %g", floors, lag3, sd)
		}
	}
}

// TestBaselineSustained: the sustained score is zero before two days of
// history, stays quiet on ordinary noise after, and grows past the medium
// sensitivity for a lasting +3σ shift that Z alone mostly misses.
func TestBaselineSustained(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		r := newRand(seed)
		const mu, sd = 1000.0, 10.0
		f := noiseFloors(sd)
		var b Baseline
		const shiftAt = 2*dayMinutes + 600
		scores := feed(&b, f, t0, 0, shiftAt, func(int64) float64 { return mu + sd*r.NormFloat64() })
		for m, s := range scores {
			if m < 2*dayMinutes && s.Sustained != 0 {
				t.Fatalf("seed %d minute %d: Sustained %.2f before two days", seed, m, s.Sustained)
			}
			if m >= 2*dayMinutes && math.Abs(s.Sustained) >= Medium.Threshold() {
				t.Fatalf("seed %d minute %d: Sustained %.2f on plain noise", seed, m, s.Sustained)
			}
		}
		if scores[2*dayMinutes+5].Sustained == 0 {
			t.Fatalf("seed %d: Sustained still exactly 0 after two days", seed)
		}
		shift := feed(&b, f, t0, shiftAt, 90, func(int64) float64 { return mu + 3*sd + sd*r.NormFloat64() })
		first := -1
		zBeyond, susBeyond := 0, 0
		for i, s := range shift {
			if s.Sustained >= Medium.Threshold() {
				susBeyond++
				if first < 0 {
					first = i
				}
			}
			if s.Z >= Medium.Threshold() {
				zBeyond++
			}
		}
		if first < 0 || first > 30 {
			t.Errorf("seed %d: a +3σ shift first reached Sustained >= 5 at minute %d, want within 30", seed, first)
		}
		if susBeyond < 3*zBeyond || susBeyond < 10 {
			t.Errorf("seed %d: over a 90-minute +3σ shift Sustained >= 5 in %d minutes, Z in %d", seed, susBeyond, zBeyond)
		}
		if early, late := shift[1].Sustained, shift[20].Sustained; late <= early {
			t.Errorf("seed %d: Sustained did not grow: %.2f at minute 1, %.2f at minute 20", seed, early, late)
		}
		if up := shift[20].Up(); up < shift[20].Z || up < shift[20].Sustained {
			t.Errorf("Up() = %.2f below Z %.2f or Sustained %.2f", up, shift[20].Z, shift[20].Sustained)
		}
	}
}

func TestScoreDirections(t *testing.T) {
	tests := []struct {
		z, sus           float64
		up, down, signed float64
	}{
		{0, 0, 0, 0, 0},
		{3, 1, 3, 1, 3},
		{1, 6, 6, 1, 6},
		{-3, -1, -1, -3, -3},
		{-1, -6, -1, -6, -6},
		{2, -5, 2, -5, -5},
		{-4, 2, 2, -4, -4},
		{3, -3, 3, -3, 3}, // a tie goes up
		{-2.5, 2.5, 2.5, -2.5, 2.5},
		{7, -7.5, 7, -7.5, -7.5},
	}
	for _, tc := range tests {
		s := Score{Z: tc.z, Sustained: tc.sus}
		if got := s.Up(); got != tc.up {
			t.Errorf("Z %g Sustained %g: Up() = %g, want %g", tc.z, tc.sus, got, tc.up)
		}
		if got := s.Down(); got != tc.down {
			t.Errorf("Z %g Sustained %g: Down() = %g, want %g", tc.z, tc.sus, got, tc.down)
		}
		if got := s.Signed(); got != tc.signed {
			t.Errorf("Z %g Sustained %g: Signed() = %g, want %g", tc.z, tc.sus, got, tc.signed)
		}
	}
}

func TestSlotPos(t *testing.T) {
	tests := []struct {
		minute int64
		k0, k1 int
		w      float64
	}{
		{7, 0, 1, 0},                // slot 0's midpoint
		{7 + 15, 1, 2, 0},           // slot 1's midpoint
		{1440 - 8, 95, 0, 0},        // slot 95's midpoint
		{0, 95, 0, 8.0 / 15},        // midnight: between the last slot and the first
		{-1, 95, 0, 7.0 / 15},       // negative minutes wrap
		{1440 + 7, 0, 1, 0},         // a day later, same slot
		{t0 - t0%1440 + 7, 0, 1, 0}, // a real day
		{14, 0, 1, 7.0 / 15},
		{15, 0, 1, 8.0 / 15},
	}
	for _, tc := range tests {
		k0, k1, w := slotPos(tc.minute)
		if k0 != tc.k0 || k1 != tc.k1 || math.Abs(w-tc.w) > 1e-12 {
			t.Errorf("slotPos(%d) = %d, %d, %.4f; want %d, %d, %.4f", tc.minute, k0, k1, w, tc.k0, tc.k1, tc.w)
		}
	}
	// Every minute's position is continuous and in range.
	prev := -1.0
	for m := int64(0); m < 2*dayMinutes; m++ {
		k0, k1, w := slotPos(m)
		if k0 < 0 || k0 >= SlotsPerDay || k1 != (k0+1)%SlotsPerDay || w < 0 || w >= 1 {
			t.Fatalf("slotPos(%d) = %d, %d, %g", m, k0, k1, w)
		}
		pos := float64(k0) + w
		if prev >= 0 {
			step := math.Mod(pos-prev+SlotsPerDay, SlotsPerDay)
			if math.Abs(step-1.0/minutesPerSlot) > 1e-9 {
				t.Fatalf("slotPos(%d): position jumped by %g slots", m, step)
			}
		}
		prev = pos
	}
}

// TestBaselineDeterministic: the baseline is a pure function of its input.
func TestBaselineDeterministic(t *testing.T) {
	run := func() Baseline {
		r := newRand(99)
		var b Baseline
		feed(&b, noiseFloors(1), t0, 0, 3000, func(m int64) float64 { return 50 + 5*math.Sin(float64(m)/100) + r.NormFloat64() })
		return b
	}
	if a, b := run(), run(); a != b {
		t.Fatal("two runs over the same input differ")
	}
}

// Values near ±MaxFloat64 a minute apart (beyond the float32 state's
// range, and overflowing a difference): clamped to that range, scored far
// off, and the baseline stays finite.
func TestBaselineOverflowNotLearned(t *testing.T) {
	var b Baseline
	f := SignalFloors(GateMean)
	b.Observe(f, 1000, 1.7e308)
	sc := b.Observe(f, 1001, -1.7e308)
	if !(sc.Z < -5) || !finite(sc.Z) {
		t.Errorf("z = %v, want a finite score far below -5", sc.Z)
	}
	if !b.finite() {
		t.Fatalf("the baseline learned an overflow: %+v", b)
	}
	if sc := b.Observe(f, 1002, 1.7e308); !finite(sc.Z) || !finite(sc.Sustained) {
		t.Errorf("a later score is not finite: %+v", sc)
	}
}
