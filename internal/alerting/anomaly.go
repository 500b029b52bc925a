package alerting

import (
	"fmt"
	"math"
	"time"

	"github.com/agaobs/agaobs/internal/alerting/anomaly"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
)

// minuteAcc folds one producer's events of the current minute into what
// the anomaly detector takes: the Sample of docs/anomaly.md.
type minuteAcc struct {
	prod             *pipeline.Producer // the newest, for the peer group
	all              producerAcc
	layers           []layerAcc
	calls            int64 // retrievals that carried a result count
	results          int64
	injected         int64
	util, slot       float64
	hasUtil, hasSlot bool
	consumed, drops  uint64
}

// means are a minute's counts and sums of the forward signals.
type means struct {
	forwards, applied uint64
	gateSum, entSum   float64
	gateN, entN       uint64
}

// merge adds o's counts and sums to m's.
func (m *means) merge(o *means) {
	m.forwards += o.forwards
	m.applied += o.applied
	m.gateSum += o.gateSum
	m.gateN += o.gateN
	m.entSum += o.entSum
	m.entN += o.entN
}

func (m *means) add(o *forwardObs) {
	m.forwards++
	if o.applied {
		m.applied++
	}
	if o.hasGate {
		m.gateSum += o.gate
		m.gateN++
	}
	if o.hasEnt {
		m.entSum += o.ent
		m.entN++
	}
}

// quantiles is a minute's latency histogram (the producer's fine one or a
// layer's compact one).
type quantiles interface {
	Quantile(q float64) (float64, bool)
}

// values turns a minute's latency histogram and means into the per-layer
// signals.
func (m *means) values(lat quantiles) (out [anomaly.NumLayerSignals]anomaly.Value) {
	if v, ok := lat.Quantile(0.5); ok {
		out[anomaly.LatencyP50] = anomaly.Value{V: v, OK: true}
	}
	if v, ok := lat.Quantile(0.99); ok {
		out[anomaly.LatencyP99] = anomaly.Value{V: v, OK: true}
	}
	if m.forwards > 0 {
		out[anomaly.AppliedRatio] = anomaly.Value{V: float64(m.applied) / float64(m.forwards), OK: true}
	}
	if m.gateN > 0 {
		out[anomaly.GateMean] = anomaly.Value{V: m.gateSum / float64(m.gateN), OK: true}
	}
	if m.entN > 0 {
		out[anomaly.EntropyMean] = anomaly.Value{V: m.entSum / float64(m.entN), OK: true}
	}
	return out
}

// producerAcc is the producer's own minute, with the fine histogram.
type producerAcc struct {
	means
	lat anomaly.Hist
}

// layerAcc is one layer's minute: small (about 240 bytes) so that every
// layer of every producer stays in cache (anomaly.LayerHist).
type layerAcc struct {
	means
	lat anomaly.LayerHist
}

// forward folds one forward event; layers beyond the detector's cap only
// count in the producer's aggregate.
func (a *minuteAcc) forward(o *forwardObs, maxLayers int) {
	a.all.add(o)
	if o.hasLat {
		a.all.lat.Add(o.lat)
	}
	layer := o.layer
	if !o.hasLayer || layer < 0 || int(layer) >= maxLayers {
		return
	}
	if int(layer) >= len(a.layers) {
		a.growLayers(int(layer) + 1)
	}
	l := &a.layers[layer]
	l.add(o)
	if o.hasLat {
		l.lat.Add(o.lat)
	}
}

// growLayers extends a.layers to n layers.
func (a *minuteAcc) growLayers(n int) {
	for len(a.layers) < n {
		a.layers = append(a.layers, layerAcc{})
	}
}

// sample builds the detector's input from the minute that covered seconds.
func (a *minuteAcc) sample(name string, seconds float64) anomaly.Sample {
	s := anomaly.Sample{Producer: name, Group: peerGroup(a.prod)}
	lv := a.all.values(&a.all.lat)
	copy(s.Values[:anomaly.NumLayerSignals], lv[:])
	if seconds > 0 {
		s.Values[anomaly.ForwardRate] = anomaly.Value{V: float64(a.all.forwards) / seconds, OK: true}
	}
	if a.calls > 0 {
		s.Values[anomaly.RetrievalResults] = anomaly.Value{V: float64(a.results) / float64(a.calls), OK: true}
		s.Values[anomaly.RetrievalInjected] = anomaly.Value{V: float64(a.injected) / float64(a.calls), OK: true}
	}
	if a.hasUtil {
		s.Values[anomaly.KVUtilization] = anomaly.Value{V: a.util, OK: true}
	}
	if a.hasSlot {
		s.Values[anomaly.SlotChangeRate] = anomaly.Value{V: a.slot, OK: true}
	}
	if r, ok := (pipeline.DropCounts{Consumed: a.consumed, Dropped: a.drops}).Rate(); ok {
		s.Values[anomaly.DropRate] = anomaly.Value{V: r, OK: true}
	}
	if len(a.layers) > 0 {
		s.Layers = make([][anomaly.NumLayerSignals]anomaly.Value, len(a.layers))
		for i := range a.layers {
			s.Layers[i] = a.layers[i].values(&a.layers[i].lat)
		}
	}
	return s
}

// reset empties a for the next minute, keeping its layer storage.
func (a *minuteAcc) reset() {
	layers := a.layers[:0]
	for i := range a.layers {
		a.layers[i] = layerAcc{}
	}
	*a = minuteAcc{prod: a.prod, layers: layers}
}

// peerGroup is the key of p's peer group: the ranks of one serving process
// group share the model (else the role), the world size and, when known,
// the pod (from the cgroup, which a producer cannot choose) or container.
// Producers without a world size of 2 or more have none.
func peerGroup(p *pipeline.Producer) string {
	if p == nil {
		return ""
	}
	id := p.Identity()
	if id == nil || id.WorldSize == nil || *id.WorldSize < 2 {
		return ""
	}
	what := "model=" + id.Model
	if id.Model == "" {
		what = "role=" + id.Role
	}
	where := p.PodUID
	if where == "" {
		where = p.ContainerID
	}
	if where == "" && id.Pod != "" {
		where = id.Namespace + "/" + id.Pod
	}
	return fmt.Sprintf("%s\x00world=%d\x00%s", what, *id.WorldSize, where)
}

// closeMinute hands the finished minute's aggregates to the detector when
// now is in a later minute than the one being accumulated. Producers that
// are not up (closed, dead) give no sample: their alerts end for want of
// data. Called with e.mu held.
func (e *Engine) closeMinute(now time.Time, live map[string]bool) {
	if e.det == nil {
		return
	}
	m := anomaly.Minute(now)
	if e.accMinute == 0 {
		e.accMinute, e.accFrom = m, now.Unix()
		return
	}
	if m <= e.accMinute {
		return
	}
	seconds := float64(m*60 - e.accFrom)
	samples := e.samples[:0]
	for name, t := range e.targets {
		if t.acc != nil && live[name] {
			smp := t.acc.sample(name, seconds)
			if e.opts.Extra != nil && t.acc.prod != nil {
				x := e.opts.Extra(m-1, t.acc.prod)
				smp.Values[anomaly.OffCPUP99], smp.Values[anomaly.GCPauseP99] = x.OffCPUP99, x.GCPauseP99
				smp.Values[anomaly.GPUUtilization] = x.GPUUtilization
			}
			samples = append(samples, smp)
		}
		if t.acc != nil {
			t.acc.reset()
		}
	}
	start := time.Now() // only for the duration metric
	e.det.Observe(m-1, samples)
	e.anomalyEval = time.Since(start)
	e.samples = samples[:0]
	e.accMinute, e.accFrom = m, m*60
}

// ObserveMinute hands the detector one minute of aggregates directly and
// evaluates nothing: the replay benchmark feeds the engine this way, in
// simulated time, with the aggregates the engine builds from events.
func (e *Engine) ObserveMinute(minute int64, samples []anomaly.Sample) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.det != nil {
		e.det.Observe(minute, samples)
		e.replay = true
	}
}

// detectorCond builds the condition of a rule with metric anomaly or
// straggler: the value is the score, the threshold the sensitivity's.
func (e *Engine) detectorCond(r *Rule) func(string, int64) (float64, bool, bool) {
	sig, _ := anomaly.ParseSignal(r.Signal)
	sens := anomaly.Sensitivity(r.Sensitivity)
	if schema.RuleMetric(r.Metric) == schema.RuleStraggler {
		thr := sens.StragglerThreshold()
		return func(target string, _ int64) (float64, bool, bool) {
			if e.det == nil {
				return 0, false, false
			}
			f, ok := e.det.Straggler(target, sig)
			if !ok || f.Learning {
				return 0, false, false
			}
			return f.Score, f.Straggling(thr), true
		}
	}
	thr, dir := sens.Threshold(), anomaly.Direction(r.Direction)
	if dir == "" {
		dir = anomaly.Both
	}
	return func(target string, _ int64) (float64, bool, bool) {
		if e.det == nil {
			return 0, false, false
		}
		f, ok := e.det.Worst(target, sig, dir)
		if !ok || f.Learning {
			return 0, false, false
		}
		return f.Score, f.Anomalous(dir, thr), true
	}
}

// detectorFields are the placeholders a detector rule's message may use
// besides the seed's: {value} (the signal's value, not the score),
// {baseline}, {score}, {signal}, {layer} (the worst layer, "all" for the
// producer's own series), and for stragglers {ratio} and {peers}. Called
// with e.mu held.
func (e *Engine) detectorFields(r *Rule, producer string) map[string]any {
	if !schema.RuleMetric(r.Metric).Detector() {
		return nil
	}
	// Without a fresh score (a resolution for want of data) the
	// placeholders render as NaN rather than break the message.
	none := map[string]any{"value": math.NaN(), "baseline": math.NaN(), "score": math.NaN(), "signal": r.Signal,
		"layer": "", "ratio": math.NaN(), "peers": math.NaN()}
	if e.det == nil {
		return none
	}
	sig, _ := anomaly.ParseSignal(r.Signal)
	if schema.RuleMetric(r.Metric) == schema.RuleStraggler {
		f, ok := e.det.Straggler(producer, sig)
		if !ok {
			return none
		}
		return map[string]any{"value": f.Value, "baseline": f.Peers * f.Learned, "score": f.Score,
			"signal": f.Signal, "layer": "", "ratio": f.Ratio, "peers": f.Peers}
	}
	dir := anomaly.Direction(r.Direction)
	if dir == "" {
		dir = anomaly.Both
	}
	f, ok := e.det.Worst(producer, sig, dir)
	if !ok {
		return none
	}
	layer := f.Layer
	if layer == "" {
		layer = "all" // the producer's own series
	}
	return map[string]any{"value": f.Value, "baseline": f.Baseline, "score": f.Score, "signal": f.Signal, "layer": layer,
		"ratio": math.NaN(), "peers": math.NaN()}
}

// detectorRule completes a detector rule's display fields: the threshold
// is the sensitivity's score, the operator the direction's.
func detectorRule(rc config.AlertRule) config.AlertRule {
	sens := anomaly.Sensitivity(rc.Sensitivity)
	if schema.RuleMetric(rc.Metric) == schema.RuleStraggler {
		rc.Operator, rc.Threshold = ">=", sens.StragglerThreshold()
		return rc
	}
	rc.Threshold = sens.Threshold()
	switch anomaly.Direction(rc.Direction) {
	case anomaly.Down:
		rc.Operator, rc.Threshold = "<=", -rc.Threshold
	default:
		rc.Operator = ">="
	}
	return rc
}

// Anomalies is the body of GET /api/v1/anomalies.
type Anomalies struct {
	Enabled     bool               `json:"enabled"`
	Learning    string             `json:"learning_period"`
	Series      int                `json:"series"`
	Limited     uint64             `json:"series_limited"`
	Minute      *time.Time         `json:"minute,omitempty"`
	Anomalies   []AnomalyView      `json:"anomalies"`
	Stragglers  []StragglerView    `json:"stragglers"`
	Sensitivity map[string]float64 `json:"sensitivity"`
}

// AnomalyView is one series in GET /api/v1/anomalies.
type AnomalyView struct {
	anomaly.Finding
	At    time.Time  `json:"at"`
	Since *time.Time `json:"since,omitempty"`
}

// StragglerView is one peer comparison in GET /api/v1/anomalies.
type StragglerView struct {
	anomaly.StragglerFinding
	Straggling bool       `json:"straggling"`
	At         time.Time  `json:"at"`
	Since      *time.Time `json:"since,omitempty"`
}

func minuteTime(m int64) *time.Time {
	if m == 0 {
		return nil
	}
	t := time.Unix(m*60, 0).UTC()
	return &t
}

// Anomalies returns the detector's latest scores (docs/anomaly.md).
func (e *Engine) Anomalies(f anomaly.Filter) Anomalies {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := Anomalies{Enabled: e.det != nil, Learning: e.opts.Config.AnomalyLearningPeriod.String(),
		Anomalies: []AnomalyView{}, Stragglers: []StragglerView{},
		Sensitivity: map[string]float64{"low": anomaly.Low.Threshold(), "medium": anomaly.Medium.Threshold(), "high": anomaly.High.Threshold()}}
	if e.det == nil {
		return out
	}
	out.Series, out.Limited = e.det.Series(), e.det.Limited
	if e.accMinute > 0 {
		out.Minute = minuteTime(e.accMinute - 1)
	}
	fs, ss := e.det.Findings(f)
	for _, x := range fs {
		out.Anomalies = append(out.Anomalies, AnomalyView{Finding: x, At: *minuteTime(x.Minute), Since: minuteTime(x.Since)})
	}
	for _, x := range ss {
		out.Stragglers = append(out.Stragglers, StragglerView{StragglerFinding: x, Straggling: x.Straggling(anomaly.Medium.StragglerThreshold()),
			At: *minuteTime(x.Minute), Since: minuteTime(x.Since)})
	}
	return out
}
