package anomaly

import (
	"math"
	"sort"
	"time"
)

// Value is one aggregate; OK is false when the minute had no data for it.
type Value struct {
	V  float64
	OK bool
}

// Sample is one producer's aggregates over one minute: what the engine
// builds from events, and what the replay benchmark generates.
type Sample struct {
	Producer string
	// Group is the producer's peer group ("" for none): producers with
	// the same group key are the ranks of one serving process group.
	Group  string
	Values [NumSignals]Value
	// Layers holds the per-layer signals, indexed by layer.
	Layers [][NumLayerSignals]Value
}

// Config bounds the detector.
type Config struct {
	// Learning is how long a series learns before it may alert
	// (anomaly_learning_period).
	Learning time.Duration
	// MaxSeries bounds the baselines kept (each about 1 KiB); beyond it
	// the least recently seen absent producer's baselines are evicted, or
	// the new series is counted in Limited and not tracked.
	MaxSeries int
	// MaxLayers is the highest layer index + 1 tracked per producer.
	MaxLayers int
}

// Defaults for Config's zero fields.
const (
	DefaultLearning  = 30 * time.Minute
	DefaultMaxSeries = 16384
	DefaultMaxLayers = 256
)

// series is one producer-signal-layer baseline and its latest score.
type series struct {
	b     Baseline
	last  Score
	prev  Score // the minute before last (layer series need two)
	at    int64 // unix minute of last
	since int64 // unix minute since when |score| >= Medium; 0: not anomalous
}

// ratioBaseline is a straggler's learned normal ratio to its peers.
type ratioBaseline struct {
	N    uint32
	C, S float32
}

// straggler is one producer's standing among its peers for one signal.
type straggler struct {
	b      ratioBaseline
	ratio  float64 // value / peers' median
	peers  float64 // the peers' median
	value  float64
	score  float64 // (log ratio - learned log ratio) / spread
	effect float64 // log ratio - learned log ratio
	size   int     // group members compared
	at     int64
	since  int64
}

type producer struct {
	name, group string
	first, last int64
	sig         [NumSignals]*series
	layers      [][NumLayerSignals]*series
	strag       [len(stragglerSignals)]*straggler
	count       int // series held
}

// Detector holds every baseline and the latest scores. It is not safe for
// concurrent use: the alert engine calls it under its own lock.
type Detector struct {
	cfg       Config
	producers map[string]*producer
	series    int
	minute    int64 // the latest minute observed
	// Limited counts series not tracked for the budget (MaxSeries,
	// MaxLayers); Evicted counts producers whose baselines were dropped.
	Limited, Evicted uint64
}

// New returns an empty Detector.
func New(cfg Config) *Detector {
	if cfg.Learning <= 0 {
		cfg.Learning = DefaultLearning
	}
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = DefaultMaxSeries
	}
	if cfg.MaxLayers <= 0 {
		cfg.MaxLayers = DefaultMaxLayers
	}
	return &Detector{cfg: cfg, producers: map[string]*producer{}}
}

// SetLearning changes the learning period (a config reload).
func (d *Detector) SetLearning(l time.Duration) {
	if l > 0 {
		d.cfg.Learning = l
	}
}

func (d *Detector) learningMinutes() uint32 {
	return uint32(math.Ceil(d.cfg.Learning.Minutes()))
}

// Minute returns the unix minute of t.
func Minute(t time.Time) int64 { return t.Unix() / 60 }

// Observe scores and learns one minute of aggregates (minute is the unix
// minute they cover), then compares each peer group's members.
func (d *Detector) Observe(minute int64, samples []Sample) {
	d.minute = max(d.minute, minute)
	for i := range samples {
		if p := d.producers[samples[i].Producer]; p != nil {
			p.last = minute
		}
	}
	for i := range samples {
		d.observe(minute, &samples[i])
	}
	d.comparePeers(minute, samples)
}

func (d *Detector) observe(minute int64, s *Sample) {
	p := d.producers[s.Producer]
	if p == nil {
		p = &producer{name: s.Producer, first: minute}
		d.producers[s.Producer] = p
	}
	p.group, p.last = s.Group, minute
	for sig, v := range s.Values {
		if v.OK && finite(v.V) {
			if sr := d.seriesFor(p, &p.sig[sig], minute); sr != nil {
				sr.observe(SignalFloors(Signal(sig)), minute, v.V)
			}
		}
	}
	// A layer is scored on its ratio to the producer's value: what moves
	// every layer together (load, the daily peak, a drift) cancels, and
	// the producer-level series scores it once; the ratio moves only when
	// one layer does.
	for layer := range s.Layers {
		if layer >= d.cfg.MaxLayers {
			d.Limited++
			continue
		}
		for sig, v := range s.Layers[layer] {
			pv := s.Values[sig]
			if !v.OK || !finite(v.V) || !pv.OK || !(pv.V > 0) {
				continue
			}
			ratio := v.V / pv.V
			if !finite(ratio) {
				continue
			}
			for len(p.layers) <= layer {
				p.layers = append(p.layers, [NumLayerSignals]*series{})
			}
			if sr := d.seriesFor(p, &p.layers[layer][sig], minute); sr != nil {
				sr.observe(layerFloors, minute, ratio)
			}
		}
	}
}

// seriesFor returns *slot, allocating it within the budget.
func (d *Detector) seriesFor(p *producer, slot **series, minute int64) *series {
	if *slot != nil {
		return *slot
	}
	for d.series >= d.cfg.MaxSeries {
		if !d.evict(minute, p) {
			d.Limited++
			return nil
		}
	}
	*slot = &series{}
	d.series++
	p.count++
	return *slot
}

// evict drops the baselines of the least recently seen producer that did
// not report this minute; false when there is none.
func (d *Detector) evict(minute int64, keep *producer) bool {
	var victim *producer
	for _, p := range d.producers {
		if p == keep || p.last >= minute {
			continue
		}
		if victim == nil || p.last < victim.last || (p.last == victim.last && p.name < victim.name) {
			victim = p
		}
	}
	if victim == nil {
		return false
	}
	d.series -= victim.count
	delete(d.producers, victim.name)
	d.Evicted++
	return true
}

func (s *series) observe(sig Floors, minute int64, v float64) {
	if s.at == minute-1 {
		s.prev = s.last
	} else {
		s.prev = Score{}
	}
	s.last, s.at = s.b.Observe(sig, minute, v), minute
	if math.Abs(s.last.Signed()) >= Medium.Threshold() {
		if s.since == 0 {
			s.since = minute
		}
	} else {
		s.since = 0
	}
}

func finite(v float64) bool { return v-v == 0 }

// comparePeers compares the members of each peer group on the straggler
// signals: a member whose ratio to the group's median moved away from its
// own learned ratio by more than the spread allows scores high.
func (d *Detector) comparePeers(minute int64, samples []Sample) {
	groups := map[string][]int{}
	for i := range samples {
		if g := samples[i].Group; g != "" {
			groups[g] = append(groups[g], i)
		}
	}
	for _, members := range groups {
		if len(members) < 3 {
			continue // two ranks cannot tell which one is slow
		}
		for k, sig := range stragglerSignals {
			idx, vals := make([]int, 0, len(members)), make([]float64, 0, len(members))
			for _, i := range members {
				if v := samples[i].Values[sig]; v.OK && v.V > 0 && finite(v.V) {
					idx, vals = append(idx, i), append(vals, v.V)
				}
			}
			if len(vals) < 3 {
				continue
			}
			// Each member's log value less its learned offset from its
			// peers (a rank that always runs 3 % slower is normal), so the
			// others' dispersion is noise, not their fixed offsets.
			states := make([]*straggler, len(idx))
			adj := make([]float64, len(idx))
			for j, i := range idx {
				p := d.producers[samples[i].Producer]
				if p == nil {
					continue
				}
				if p.strag[k] == nil {
					p.strag[k] = &straggler{}
				}
				states[j] = p.strag[k]
				adj[j] = math.Log(vals[j]) - float64(states[j].b.C)
			}
			others, rawOthers := make([]float64, 0, len(vals)-1), make([]float64, 0, len(vals)-1)
			for j := range idx {
				if states[j] == nil {
					continue
				}
				// Its peers are the others: with one slow rank in four,
				// the median of all would move toward it.
				others = append(append(others[:0], adj[:j]...), adj[j+1:]...)
				rawOthers = append(append(rawOthers[:0], vals[:j]...), vals[j+1:]...)
				med := median(others)
				states[j].update(minute, vals[j], median(rawOthers), math.Log(vals[j])-med, mad(others)*1.4826, len(vals))
			}
		}
	}
}

// Straggler constants: the least spread of a log ratio (2 %), the least
// effect that counts as a straggler (10 % slower than the learned ratio),
// and the ratio baseline's EWMA weight floor (two hours).
var (
	stragFloor  = math.Log(1.02)
	stragEffect = math.Log(1.10)
)

const stragAlpha = 1.0 / 120

// update scores one minute: logRatio is the member's log value less the
// median of its peers' (offset-adjusted) log values, cross their spread.
func (st *straggler) update(minute int64, v, peers, logRatio, cross float64, size int) {
	st.value, st.peers, st.ratio, st.size, st.at = v, peers, v/peers, size, minute
	if st.b.N == 0 {
		st.b = ratioBaseline{N: 1, C: float32(logRatio)}
		st.score, st.effect = 0, 0
		return
	}
	c, s := float64(st.b.C), float64(st.b.S)
	sd := max(s*madToSigma, cross, stragFloor)
	st.effect = logRatio - c
	st.score = st.effect / sd
	if st.score >= Medium.StragglerThreshold() && st.effect >= stragEffect {
		if st.since == 0 {
			st.since = minute
		}
	} else {
		st.since = 0
	}
	alpha := max(1/float64(st.b.N+1), stragAlpha)
	rc := clip(logRatio-c, huberK*sd)
	st.b.C = float32(c + alpha*rc)
	st.b.S = float32(s + alpha*(math.Abs(rc)-s))
	if st.b.N < math.MaxUint32 {
		st.b.N++
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func mad(v []float64) float64 {
	m := median(v)
	dev := make([]float64, len(v))
	for i, x := range v {
		dev[i] = math.Abs(x - m)
	}
	return median(dev)
}
