package anomaly

import (
	"math"
	"sort"
	"strconv"
)

// Finding is one series' latest score, as rules, metrics and the admin
// API see it.
type Finding struct {
	Producer  string  `json:"producer"`
	Signal    string  `json:"signal"`
	Layer     string  `json:"layer"` // "" for a producer-level series
	Value     float64 `json:"value"`
	Baseline  float64 `json:"baseline"`
	Sigma     float64 `json:"sigma"`
	Score     float64 `json:"score"` // signed: > 0 above the baseline
	Z         float64 `json:"z"`
	Sustained float64 `json:"sustained"`
	Seasonal  bool    `json:"seasonal"`
	Learning  bool    `json:"learning"`
	// Minute is the unix minute the value covers; Since the unix minute
	// since when |score| has stayed >= the medium sensitivity (0: not).
	Minute int64 `json:"-"`
	Since  int64 `json:"-"`
	// Samples is how many minutes the baseline has learned.
	Samples uint32 `json:"samples"`
	// Ratio and LearnedRatio are a layer's value and baseline as ratios
	// to its producer's value, which is what layers are scored on.
	Ratio        float64 `json:"ratio,omitempty"`
	LearnedRatio float64 `json:"learned_ratio,omitempty"`
	// prev is the series' score the minute before; a layer series must be
	// anomalous two minutes running to count (see Anomalous).
	prev Score
}

// Anomalous reports whether f is beyond threshold in direction dir, the
// series having finished learning. A layer series must be beyond it this
// minute and the one before: a producer's condition is the OR over all its
// layers, and with 96 layers one layer's rare slow minute would otherwise
// meet it every few minutes somewhere.
func (f Finding) Anomalous(dir Direction, threshold float64) bool {
	if f.Learning || threshold <= 0 {
		return false
	}
	cur := Score{Z: f.Z, Sustained: f.Sustained}
	if directed(cur, dir) < threshold {
		return false
	}
	return f.Layer == "" || directed(f.prev, dir) >= threshold
}

// directed is a score toward dir (larger is more anomalous).
func directed(s Score, dir Direction) float64 {
	switch dir {
	case Up:
		return s.Up()
	case Down:
		return -s.Down()
	}
	return max(math.Abs(s.Z), math.Abs(s.Sustained))
}

// directed is f's score toward dir, persistence included for layers.
func (f Finding) directed(dir Direction) float64 {
	d := directed(Score{Z: f.Z, Sustained: f.Sustained}, dir)
	if f.Layer != "" {
		d = min(d, directed(f.prev, dir))
	}
	return d
}

func (d *Detector) finding(p *producer, sig Signal, layer int, s *series) Finding {
	f := Finding{Producer: p.name, Signal: sig.String(), Value: s.last.Value, Baseline: s.last.Expected,
		Sigma: s.last.Sigma, Score: s.last.Signed(), Z: s.last.Z, Sustained: s.last.Sustained,
		Seasonal: s.last.Seasonal, Learning: s.b.N < d.learningMinutes(), Minute: s.at, Since: s.since, Samples: s.b.N, prev: s.prev}
	if layer >= 0 {
		// A layer series holds ratios to the producer's value; shown in
		// the signal's unit, at the producer's value of the same minute.
		f.Layer = strconv.Itoa(layer)
		scale := math.NaN()
		if ps := p.sig[sig]; ps != nil && ps.at == s.at {
			scale = ps.last.Value
		}
		f.Ratio, f.LearnedRatio = f.Value, f.Baseline
		f.Value, f.Baseline, f.Sigma = f.Value*scale, f.Baseline*scale, f.Sigma*scale
	}
	capAll(&f.Value, &f.Baseline, &f.Sigma, &f.Score, &f.Z, &f.Sustained, &f.Ratio, &f.LearnedRatio)
	return f
}

// fresh reports whether s holds the producer's latest minute and the
// producer reported in the latest minute observed (or the one before).
func (d *Detector) fresh(p *producer, s *series) bool {
	return s != nil && s.at == p.last && p.last >= d.minute-1
}

// freshLayer is fresh for a layer series of sig, which also needs the
// producer's own series of the same minute: its value is the ratio's
// scale (without one, after a restore under a full budget, it is not
// shown).
func (d *Detector) freshLayer(p *producer, sig Signal, s *series) bool {
	ps := p.sig[sig]
	return d.fresh(p, s) && ps != nil && ps.at == s.at
}

// Worst returns the producer's series of signal sig that deviates most in
// direction dir among the fresh ones: the producer-level one and, for
// per-layer signals, every layer's. ok is false when none is fresh.
func (d *Detector) Worst(producer string, sig Signal, dir Direction) (Finding, bool) {
	p := d.producers[producer]
	if p == nil || sig >= NumSignals {
		return Finding{}, false
	}
	var best Finding
	found := false
	consider := func(layer int, s *series) {
		if !d.fresh(p, s) {
			return
		}
		f := d.finding(p, sig, layer, s)
		if !found || (best.Learning && !f.Learning) || (f.Learning == best.Learning && f.directed(dir) > best.directed(dir)) {
			best, found = f, true
		}
	}
	consider(-1, p.sig[sig])
	if sig.PerLayer() {
		for l := range p.layers {
			if s := p.layers[l][sig]; d.freshLayer(p, sig, s) {
				consider(l, s)
			}
		}
	}
	return best, found
}

// StragglerFinding is one producer's standing among its peers.
type StragglerFinding struct {
	Producer string  `json:"producer"`
	Signal   string  `json:"signal"`
	Value    float64 `json:"value"`
	Peers    float64 `json:"peers_median"`
	Ratio    float64 `json:"ratio"`
	// Learned is the ratio to the peers the producer usually has.
	Learned float64 `json:"learned_ratio"`
	Score   float64 `json:"score"`
	// Effect is how much slower than its learned ratio it runs (log).
	Effect   float64 `json:"effect"`
	Size     int     `json:"group_size"`
	Learning bool    `json:"learning"`
	Minute   int64   `json:"-"`
	Since    int64   `json:"-"`
}

// Straggling reports whether the producer is a straggler at threshold:
// its score is beyond it and it is at least 10 % slower than its usual
// ratio to its peers.
func (f StragglerFinding) Straggling(threshold float64) bool {
	return !f.Learning && threshold > 0 && f.Score >= threshold && f.Effect >= stragEffect
}

// Straggler returns the producer's latest peer comparison on sig; ok is
// false when it is not in a peer group of three or more that reported
// sig in the latest minute.
func (d *Detector) Straggler(producer string, sig Signal) (StragglerFinding, bool) {
	p := d.producers[producer]
	if p == nil {
		return StragglerFinding{}, false
	}
	for k, s := range stragglerSignals {
		if s != sig {
			continue
		}
		st := p.strag[k]
		if st == nil || st.at != p.last || p.last < d.minute-1 {
			return StragglerFinding{}, false
		}
		return d.stragglerFinding(p, k, st), true
	}
	return StragglerFinding{}, false
}

func (d *Detector) stragglerFinding(p *producer, k int, st *straggler) StragglerFinding {
	f := StragglerFinding{Producer: p.name, Signal: stragglerSignals[k].String(), Value: st.value, Peers: st.peers,
		Ratio: st.ratio, Learned: math.Exp(float64(st.b.C)), Score: st.score, Effect: st.effect, Size: st.size,
		Learning: st.b.N < d.learningMinutes(), Minute: st.at, Since: st.since}
	capAll(&f.Value, &f.Peers, &f.Ratio, &f.Learned, &f.Score, &f.Effect)
	return f
}

// Producers returns the producers with baselines, sorted.
func (d *Detector) Producers() []string {
	out := make([]string, 0, len(d.producers))
	for n := range d.producers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Filter selects findings.
type Filter struct {
	Producer, Signal string // "" for any
	// AllLayers includes every per-layer series; otherwise a layer
	// series is listed only while |score| >= the medium sensitivity.
	AllLayers bool
}

// Findings returns the fresh series' latest scores, sorted by producer,
// signal and layer, and the peer comparisons.
func (d *Detector) Findings(f Filter) ([]Finding, []StragglerFinding) {
	var out []Finding
	var strag []StragglerFinding
	for _, name := range d.Producers() {
		if f.Producer != "" && f.Producer != name {
			continue
		}
		p := d.producers[name]
		for sig := Signal(0); sig < NumSignals; sig++ {
			if f.Signal != "" && f.Signal != sig.String() {
				continue
			}
			if s := p.sig[sig]; d.fresh(p, s) {
				out = append(out, d.finding(p, sig, -1, s))
			}
			if !sig.PerLayer() {
				continue
			}
			for l := range p.layers {
				s := p.layers[l][sig]
				if !d.freshLayer(p, sig, s) {
					continue
				}
				if fd := d.finding(p, sig, l, s); f.AllLayers || math.Abs(fd.Score) >= Medium.Threshold() {
					out = append(out, fd)
				}
			}
		}
		for k, st := range p.strag {
			if st == nil || st.at != p.last || p.last < d.minute-1 {
				continue
			}
			if f.Signal != "" && f.Signal != stragglerSignals[k].String() {
				continue
			}
			strag = append(strag, d.stragglerFinding(p, k, st))
		}
	}
	return out, strag
}

// Each calls fn for every fresh series (metrics export), producer-level
// first then layers in order.
func (d *Detector) Each(fn func(Finding)) {
	for _, name := range d.Producers() {
		p := d.producers[name]
		for sig := Signal(0); sig < NumSignals; sig++ {
			if s := p.sig[sig]; d.fresh(p, s) {
				fn(d.finding(p, sig, -1, s))
			}
		}
		for l := range p.layers {
			for sig := Signal(0); sig < NumLayerSignals; sig++ {
				if s := p.layers[l][sig]; d.freshLayer(p, sig, s) {
					fn(d.finding(p, sig, l, s))
				}
			}
		}
	}
}

// EachStraggler calls fn for every fresh peer comparison.
func (d *Detector) EachStraggler(fn func(StragglerFinding)) {
	for _, name := range d.Producers() {
		p := d.producers[name]
		for k, st := range p.strag {
			if st != nil && st.at == p.last && p.last >= d.minute-1 {
				fn(d.stragglerFinding(p, k, st))
			}
		}
	}
}

// Series is the number of baselines held.
func (d *Detector) Series() int { return d.series }

// capAll replaces a non-finite value by the largest finite one of its
// sign (NaN by 0): a producer's extreme but finite values (1e308 and
// -1e308 a minute apart) can overflow a difference, and a finding must
// stay a valid JSON number and Prometheus sample.
func capAll(vs ...*float64) {
	for _, v := range vs {
		switch {
		case math.IsNaN(*v):
			*v = 0
		case math.IsInf(*v, 1):
			*v = math.MaxFloat64
		case math.IsInf(*v, -1):
			*v = -math.MaxFloat64
		}
	}
}
