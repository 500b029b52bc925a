package replay

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/agaobs/agaobs/internal/alerting/anomaly"
)

// Config sizes a replay.
type Config struct {
	Seed    uint64
	Days    int // simulated days; day 1 carries no incident
	Models  int // models, each served by Ranks producers (one peer group)
	Ranks   int
	Layers  int // hooked layers per producer
	PerKind int // incidents per kind (drift: one per two days after day 1, at least 1)
}

// Full is the benchmark's size (issue #18): 7 days, 2 models × 4 ranks, 96
// layers, 10 incidents per kind.
var Full = Config{Seed: 1, Days: 7, Models: 2, Ranks: 4, Layers: 96, PerKind: 10}

// Small is the size `make test` replays.
var Small = Config{Seed: 1, Days: 4, Models: 2, Ranks: 4, Layers: 12, PerKind: 6}

// Incident kinds. Each kind has an injector in inject (what it does to a
// producer's minute) and a duration; docs/anomaly.md lists them.
const (
	KindLayerLatency = "layer_latency"  // one layer +30 % latency for 20 min
	KindDrift        = "latency_drift"  // +3 %/h until 2x, then back
	KindGateCollapse = "gate_collapse"  // gate mean to 0.05 for 10 min
	KindEntropySpike = "entropy_spike"  // entropy mean x1.6 for 10 min
	KindRetrievalOff = "retrieval_zero" // retrieval returns 0 results for 15 min
	KindStraggler    = "straggler_rank" // one TP rank 25 % slower than its peers for 30 min
)

// Kinds returns the incident kinds in report order.
func Kinds() []string {
	return []string{KindLayerLatency, KindDrift, KindGateCollapse, KindEntropySpike, KindRetrievalOff, KindStraggler}
}

var durations = map[string]int64{
	KindLayerLatency: 20, KindGateCollapse: 10, KindEntropySpike: 10, KindRetrievalOff: 15, KindStraggler: 30,
	KindDrift: int64(math.Ceil(math.Log(2)/math.Log(1.03)*60)) + 1, // until 2x
}

// Incident is one labelled injection: minutes from the replay's start.
type Incident struct {
	Kind       string
	Producer   int
	Layer      int // KindLayerLatency's layer
	Start, End int64
}

// benign events that must not alert.
type restart struct {
	producer int
	at       int64
} // one minute down, then a cold minute
type gcStorm struct {
	producer int
	at       int64
} // one minute of GC pauses

// Scenario is a generated replay: the producers' fixed traits, the
// incidents and benign events, and the day-to-day variation.
type Scenario struct {
	Cfg       Config
	Incidents []Incident
	restarts  []restart
	storms    []gcStorm
	producers []producerTraits
	days      []dayTraits
	rng       *rand.Rand
}

type producerTraits struct {
	name      string
	model     int
	rank      int
	p50, p99  float64 // µs at base load
	rankSkew  float64 // a rank's fixed offset from its peers
	layerMult []float64
	layerGate []float64
	layerEnt  []float64
}

type dayTraits struct {
	peak   float64 // minute of day of the traffic peak
	height float64 // the peak's latency rise (about +15 %)
	level  float64 // the day's latency level (about 1)
}

// Producers is the number of producers.
func (c Config) Producers() int { return c.Models * c.Ranks }

// Minutes is the replay's length.
func (c Config) Minutes() int64 { return int64(c.Days) * 1440 }

// NewScenario generates a scenario from cfg.Seed.
func NewScenario(cfg Config) (*Scenario, error) {
	if cfg.Days < 2 || cfg.Models < 1 || cfg.Ranks < 3 || cfg.Layers < 1 || cfg.PerKind < 1 {
		return nil, fmt.Errorf("replay: need days >= 2, models >= 1, ranks >= 3, layers >= 1, per kind >= 1 (got %+v)", cfg)
	}
	s := &Scenario{Cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}
	r := s.rng
	for m := 0; m < cfg.Models; m++ {
		p50, p99 := 250.0, 600.0
		if m%2 == 1 {
			p50, p99 = 180, 450
		}
		lm, lg, le := make([]float64, cfg.Layers), make([]float64, cfg.Layers), make([]float64, cfg.Layers)
		for l := range lm {
			lm[l], lg[l], le[l] = 0.7+0.6*r.Float64(), 0.3+0.4*r.Float64(), 1.5+r.Float64()
		}
		for k := 0; k < cfg.Ranks; k++ {
			s.producers = append(s.producers, producerTraits{name: fmt.Sprintf("model%d-rank%d", m, k), model: m, rank: k,
				p50: p50, p99: p99, rankSkew: 1 + 0.03*float64(k%2) - 0.01*float64(k%3), layerMult: lm, layerGate: lg, layerEnt: le})
		}
	}
	for d := 0; d < cfg.Days; d++ {
		s.days = append(s.days, dayTraits{peak: 14*60 + 10*r.NormFloat64(), height: 0.15 * (1 + 0.1*r.NormFloat64()),
			level: 1 + 0.01*r.NormFloat64()})
	}
	s.place()
	return s, nil
}

// place schedules the incidents after day 1, never two on one producer
// within two hours of each other, and the benign events.
func (s *Scenario) place() {
	cfg, r := s.Cfg, s.rng
	busy := make([][][2]int64, cfg.Producers())
	free := func(p int, from, to int64) bool {
		for _, b := range busy[p] {
			if from < b[1]+120 && b[0] < to+120 {
				return false
			}
		}
		return true
	}
	first, last := int64(1440), cfg.Minutes()
	add := func(kind string, n int) {
		first := first
		if kind == KindDrift && cfg.Days > 3 {
			first = 2 * 1440 // drift detection needs two days of profile
		}
		for placed, tries := 0, 0; placed < n && tries < 100000; tries++ {
			p := r.IntN(cfg.Producers())
			d := durations[kind]
			if last-first-d-60 <= 0 {
				return
			}
			start := first + r.Int64N(last-first-d-60)
			if !free(p, start, start+d) {
				continue
			}
			busy[p] = append(busy[p], [2]int64{start, start + d})
			s.Incidents = append(s.Incidents, Incident{Kind: kind, Producer: p, Layer: r.IntN(cfg.Layers), Start: start, End: start + d})
			placed++
		}
	}
	add(KindDrift, max(1, (cfg.Days-1)/2))
	for _, k := range Kinds() {
		if k != KindDrift {
			add(k, cfg.PerKind)
		}
	}
	sort.Slice(s.Incidents, func(i, j int) bool { return s.Incidents[i].Start < s.Incidents[j].Start })
	// A rolling restart of every producer, two minutes apart, on day 2
	// and every third day after; four GC storms a day on random producers.
	for d := 1; d < cfg.Days; d += 3 {
		at := int64(d)*1440 + 600 + r.Int64N(300)
		for p := range s.producers {
			s.restarts = append(s.restarts, restart{producer: p, at: at + 2*int64(p)})
		}
	}
	for d := 0; d < cfg.Days; d++ {
		for range 4 {
			s.storms = append(s.storms, gcStorm{producer: r.IntN(cfg.Producers()), at: int64(d)*1440 + 60 + r.Int64N(1380)})
		}
	}
}

// Name is producer p's name.
func (s *Scenario) Name(p int) string { return s.producers[p].name }

// group is the peer group key: one per model.
func (s *Scenario) group(p int) string { return fmt.Sprintf("model%d", s.producers[p].model) }

// Minute generates minute m's samples (m from 0) into out, in producer
// order; a restarting producer gives none. It must be called for every
// minute in order: the noise comes from one stream.
func (s *Scenario) Minute(m int64, out []anomaly.Sample) []anomaly.Sample {
	out = out[:0]
	day := s.days[min(int(m/1440), len(s.days)-1)]
	tod := float64(m % 1440)
	diurnal := 1 + 0.3*math.Sin(2*math.Pi*(tod-9*60)/1440)
	bump := math.Exp(-(tod - day.peak) * (tod - day.peak) / (2 * 45 * 45))
	traffic := diurnal * (1 + 2*bump) // 3x at the peak
	for m2 := range s.Cfg.Models {
		// The model's shared latency factor: load, the peak, the day.
		common := day.level * (1 + 0.03*(diurnal-1)/0.3) * (1 + day.height*bump) * (1 + 0.005*s.rng.NormFloat64())
		for p := range s.producers {
			if s.producers[p].model != m2 {
				continue
			}
			smp, ok := s.producerMinute(p, m, common, traffic)
			if ok {
				out = append(out, smp)
			}
		}
	}
	return out
}

// effects is what incidents and benign events do to one producer-minute.
type effects struct {
	lat, offcpu, gcPause float64 // latency multipliers
	layer                int     // -1, or the layer with layerLat
	layerLat             float64
	gate, entropy        float64 // multipliers (gate: replaced when set)
	gateTo               float64
	retrievalZero        bool
	rate                 float64
	down                 bool
}

func (s *Scenario) effects(p int, m int64) effects {
	e := effects{lat: 1, offcpu: 1, gcPause: 1, layer: -1, layerLat: 1, gate: 1, entropy: 1, rate: 1}
	for _, in := range s.Incidents {
		if in.Producer != p || m < in.Start || m >= in.End {
			continue
		}
		switch in.Kind {
		case KindLayerLatency:
			e.layer, e.layerLat = in.Layer, 1.3
		case KindDrift:
			e.lat *= math.Min(2, math.Pow(1.03, float64(m-in.Start)/60))
		case KindGateCollapse:
			e.gateTo = 0.05
		case KindEntropySpike:
			e.entropy = 1.6
		case KindRetrievalOff:
			e.retrievalZero = true
		case KindStraggler:
			e.lat *= 1.25
			e.offcpu *= 1.5
		}
	}
	for _, r := range s.restarts {
		if r.producer == p && m == r.at {
			e.down = true
		}
		if r.producer == p && m == r.at+1 { // cold caches, half a minute of traffic
			e.lat *= 1.4
			e.rate = 0.5
		}
	}
	for _, g := range s.storms {
		if g.producer == p && m == g.at {
			e.lat *= 3
			e.gcPause *= 10
			e.offcpu *= 2
		}
	}
	return e
}

func (s *Scenario) producerMinute(p int, m int64, common, traffic float64) (anomaly.Sample, bool) {
	t, r := &s.producers[p], s.rng
	e := s.effects(p, m)
	if e.down {
		return anomaly.Sample{}, false
	}
	n := func(sd float64) float64 { return 1 + sd*r.NormFloat64() }
	lat := common * t.rankSkew * e.lat
	smp := anomaly.Sample{Producer: t.name, Group: s.group(p)}
	v := func(x float64) anomaly.Value { return anomaly.Value{V: x, OK: true} }
	smp.Values[anomaly.LatencyP50] = v(t.p50 * lat * n(0.005))
	smp.Values[anomaly.LatencyP99] = v(t.p99 * lat * n(0.01))
	smp.Values[anomaly.AppliedRatio] = v(0.7 + 0.01*r.NormFloat64())
	gate, ent := 0.5*n(0.005)*e.gate, 2.0*n(0.005)*e.entropy
	if e.gateTo > 0 {
		gate = e.gateTo
	}
	smp.Values[anomaly.GateMean] = v(gate)
	smp.Values[anomaly.EntropyMean] = v(ent)
	smp.Values[anomaly.ForwardRate] = v(2000 * traffic * e.rate * n(0.02))
	results, injected := 8*n(0.03), 5*n(0.03)
	if e.retrievalZero {
		results, injected = 0, 0
	}
	smp.Values[anomaly.RetrievalResults] = v(results)
	smp.Values[anomaly.RetrievalInjected] = v(injected)
	smp.Values[anomaly.KVUtilization] = v(0.6 + 0.1*math.Sin(2*math.Pi*float64(m%1440)/1440) + 0.005*r.NormFloat64())
	smp.Values[anomaly.SlotChangeRate] = v(math.Max(0, 0.1+0.01*r.NormFloat64()))
	smp.Values[anomaly.DropRate] = v(0)
	smp.Values[anomaly.OffCPUP99] = v(200 * common * t.rankSkew * e.offcpu * n(0.05))
	smp.Values[anomaly.GCPauseP99] = v(5000 * e.gcPause * n(0.1))
	smp.Values[anomaly.GPUUtilization] = v(math.Min(1, 0.3*traffic*n(0.02)))
	smp.Layers = make([][anomaly.NumLayerSignals]anomaly.Value, s.Cfg.Layers)
	for l := range smp.Layers {
		ll := lat * t.layerMult[l]
		if l == e.layer {
			ll *= e.layerLat
		}
		tail := 1.0
		if r.Float64() < 0.001 { // a rare slow minute of one layer
			tail = 1.3 + 0.7*r.Float64()
		}
		lg := t.layerGate[l] * n(0.01) * e.gate
		if e.gateTo > 0 {
			lg = e.gateTo
		}
		smp.Layers[l] = [anomaly.NumLayerSignals]anomaly.Value{
			anomaly.LatencyP50:   v(t.p50 * ll * n(0.02)),
			anomaly.LatencyP99:   v(t.p99 * ll * n(0.04) * tail),
			anomaly.AppliedRatio: v(0.7 + 0.02*r.NormFloat64()),
			anomaly.GateMean:     v(lg),
			anomaly.EntropyMean:  v(t.layerEnt[l] * n(0.01) * e.entropy),
		}
	}
	return smp, true
}
