package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/agaobs/agaobs/internal/alerting/anomaly"
	"github.com/agaobs/agaobs/internal/alerting/notify"
	"github.com/agaobs/agaobs/internal/alerting/promrules"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/jsonfloat"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/state"
)

// Notifier delivers notifications (notify.Dispatcher in the agent).
type Notifier interface{ Notify([]notify.Alert) }

// Options configure an Engine.
type Options struct {
	Config config.Config
	// Snapshot is the ring consumer's view of the producers (drops,
	// heartbeats, liveness).
	Snapshot func() *pipeline.Snapshot
	State    *state.Store // persists alert and SLO state; nil is fine
	Notifier Notifier     // nil: transitions are only recorded
	Logger   *slog.Logger
	Node     string // the node label (NODE_NAME or the hostname)
	// OnTransition, if set, hears every state change (pending, firing,
	// resolved; not re-notifications) after the engine's lock is released,
	// for the audit trail. It must not block.
	OnTransition func(AuditTransition)
	// AuditWritable, if set, says whether the audit store accepts writes
	// (the self alert AgaobsAuditStoreUnwritable, self.go).
	AuditWritable func() bool
	// SinkDropped, if set, is the count of events dropped at full sink
	// queues since the start (AgaobsSinkDrops).
	SinkDropped func() uint64
	// Extra, if set, gives the anomaly detector the signals events do not
	// carry, for one producer and the minute ending: eBPF off-CPU and GC
	// pause p99 and the producer's GPU utilization. Called under the
	// engine's lock once per producer per minute; it must not block.
	Extra func(minute int64, p *pipeline.Producer) ExtraSignals
}

// ExtraSignals are a producer's signals from the node collectors for one
// minute (anomaly.Value.OK false when not available).
type ExtraSignals struct {
	OffCPUP99, GCPauseP99 anomaly.Value // µs
	GPUUtilization        anomaly.Value // 0-1
}

// AuditTransition is one alert state change as the audit trail records it.
type AuditTransition struct {
	Rule      string
	Producer  string
	State     string // pending, firing, resolved
	Severity  string
	Metric    string
	Value     float64
	Threshold float64
	Message   string
	At        time.Time
}

// historyLen bounds the notification history served by the API.
const historyLen = 1000

// HistoryEntry is one notification, in the seed's get_alerts shape plus
// status and producer.
type HistoryEntry struct {
	RuleName  string          `json:"rule_name"`
	Metric    string          `json:"metric"`
	Value     jsonfloat.Float `json:"value"`
	Threshold jsonfloat.Float `json:"threshold"`
	Severity  string          `json:"severity"`
	Message   string          `json:"message"`
	Timestamp float64         `json:"timestamp"`
	Status    string          `json:"status"`
	Producer  string          `json:"producer,omitempty"`
}

// target is what the engine knows about one producer (or the node).
type target struct {
	win          *window
	acc          *minuteAcc // anomaly detector's minute (nil when off)
	lastDrops    pipeline.DropCounts
	sampled      bool
	available    bool
	lastAvailSec int64
}

// Engine evaluates alert rules and SLOs. As a pipeline sink it folds
// events into per-producer windows; Eval (driven by Run) computes the rule
// metrics, advances the state machines and notifies. All state is behind
// one mutex; Eval takes the time as an argument.
type Engine struct {
	opts        Options
	log         *slog.Logger
	mu          sync.Mutex
	rules       []*Rule
	slos        []*slo
	longest     time.Duration
	active      map[string]map[string]*Alert // rule → target → alert
	targets     map[string]*target
	node        *target
	history     []HistoryEntry
	histNext    int
	failures    map[string]uint64 // rule → template/evaluation failures
	evals       evalStats
	lastEvalSec int64
	heart       map[string]float64 // producer → heartbeat age (s), per Eval
	dead        map[string]bool    // producer → died without closing, per Eval
	trigger     chan struct{}
	dirty       bool
	lastSave    time.Time
	// The anomaly detector (nil with anomaly_enabled false), the minute
	// being accumulated and since when (unix seconds), reused samples,
	// the last minute's detector duration, and whether a replay feeds
	// it (ObserveMinute) instead of events.
	det          *anomaly.Detector
	accMinute    int64
	accFrom      int64
	samples      []anomaly.Sample
	anomalyEval  time.Duration
	replay       bool
	lastAnomSave time.Time
}

type evalStats struct {
	count   uint64
	sum     float64
	buckets [len(evalBounds) + 1]uint64
}

var evalBounds = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1}

// New builds an Engine from the config and restores persisted state.
func New(opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Snapshot == nil {
		opts.Snapshot = func() *pipeline.Snapshot { return &pipeline.Snapshot{} }
	}
	e := &Engine{
		opts: opts, log: opts.Logger, active: map[string]map[string]*Alert{}, targets: map[string]*target{},
		failures: map[string]uint64{}, heart: map[string]float64{}, dead: map[string]bool{}, trigger: make(chan struct{}, 1),
		history: make([]HistoryEntry, 0, historyLen),
	}
	e.apply(opts.Config)
	if err := e.restore(); err != nil {
		e.log.Warn("alert state not restored", "err", err)
	}
	return e, nil
}

// apply compiles rules and SLOs from cfg, keeping the state of rules whose
// definition did not change. Called with e.mu held (or before sharing).
func (e *Engine) apply(cfg config.Config) {
	prevRules := map[string]string{}
	for _, r := range e.rules {
		prevRules[r.Name] = r.Fingerprint
	}
	prevSLOs := map[string]*slo{}
	for _, s := range e.slos {
		prevSLOs[s.key()] = s
	}
	e.opts.Config = cfg
	e.rules, e.slos = nil, nil
	longest := time.Minute
	if cfg.AnomalyEnabled {
		if e.det == nil {
			e.det = anomaly.New(anomaly.Config{Learning: time.Duration(cfg.AnomalyLearningPeriod)})
		}
		e.det.SetLearning(time.Duration(cfg.AnomalyLearningPeriod))
	} else {
		e.det = nil
		for _, t := range e.targets {
			t.acc = nil
		}
	}
	for _, rc := range promrules.AllRules(cfg) {
		r := &Rule{AlertRule: rc, Fingerprint: ruleFingerprint(rc)}
		if schema.RuleMetric(rc.Metric).Detector() {
			r.AlertRule = detectorRule(rc)
			r.Cond = e.detectorCond(r)
			e.rules = append(e.rules, r)
			continue
		}
		r.Cond = e.ruleCond(r)
		e.rules = append(e.rules, r)
		longest = max(longest, time.Duration(rc.WindowSeconds*float64(time.Second)))
	}
	for _, sc := range cfg.SLOs {
		s := &slo{SLO: sc, budget: 1 - sc.Objective, series: map[string]*sloSeries{}}
		if old := prevSLOs[s.key()]; old != nil {
			s.series = old.series
		}
		e.slos = append(e.slos, s)
		e.rules = append(e.rules, sloRules(s)...)
	}
	taken := map[string]bool{}
	for _, r := range e.rules {
		taken[r.Name] = true
	}
	e.rules = append(e.rules, e.selfRules(taken)...)
	keep := map[string]bool{}
	for _, r := range e.rules {
		keep[r.Name] = prevRules[r.Name] == r.Fingerprint
	}
	for name := range e.active {
		if !keep[name] {
			delete(e.active, name)
		}
	}
	if longest != e.longest {
		// Windows of a different length start empty.
		e.longest = longest
		for _, t := range e.targets {
			t.win = newWindow(longest)
		}
		e.node = &target{win: newWindow(longest)}
	}
	if e.node == nil {
		e.node = &target{win: newWindow(longest)}
	}
}

func ruleFingerprint(r config.AlertRule) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// Reload applies a new config (SIGHUP). Unchanged rules keep their state,
// pending `for` progress included.
func (e *Engine) Reload(cfg config.Config) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.apply(cfg)
	e.dirty = true
}

func (e *Engine) targetFor(producer string) *target {
	t := e.targets[producer]
	if t == nil {
		t = &target{win: newWindow(e.longest)}
		e.targets[producer] = t
	}
	if e.det != nil && t.acc == nil {
		t.acc = &minuteAcc{}
	}
	return t
}

// Name implements pipeline.Sink.
func (e *Engine) Name() string { return "alerting" }

// Kinds implements pipeline.Sink.
func (e *Engine) Kinds() pipeline.KindMask {
	return pipeline.KindForward.Mask() | pipeline.KindRetrieval.Mask() | pipeline.KindStatus.Mask() | pipeline.KindLifecycle.Mask()
}

// Write implements pipeline.Sink. Events land in the slice of the second
// the agent received them (RecvNs), so windows are true time windows on
// the agent's clock whatever the producers' clocks say.
func (e *Engine) Write(_ context.Context, batch []pipeline.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	retrieval := false
	var c cursor
	for i := range batch {
		ev := &batch[i]
		if ev.Producer == nil {
			continue
		}
		if ev.Kind == pipeline.KindLifecycle {
			if ev.Lifecycle.Type == pipeline.ProducerForgotten {
				e.forget(ev.Producer.Name)
				c = cursor{} // its target and series are gone
			}
			continue
		}
		c.seek(e, ev)
		switch ev.Kind {
		case pipeline.KindForward:
			e.writeForward(&c, &ev.Forward)
		case pipeline.KindRetrieval:
			writeRetrieval(&c, ev.Retrieval)
			retrieval = true
		case pipeline.KindStatus:
			writeStatus(&c, ev.Status)
		}
	}
	if retrieval {
		// The seed evaluated retrieval_failure_rate only on the next
		// forward; evaluate now.
		select {
		case e.trigger <- struct{}{}:
		default:
		}
	}
	return nil
}

// forget drops a forgotten producer's target and SLO series.
func (e *Engine) forget(name string) {
	delete(e.targets, name)
	for _, s := range e.slos {
		delete(s.series, name)
	}
}

// cursor is where Write folds the current event: the target, its slice
// and the node's slice of the event's second, and the target's SLO
// series. Events come in runs of one producer (a ring's share of a
// consumer pass) within one second, so these are looked up once per run,
// not per event.
type cursor struct {
	prod   *pipeline.Producer
	name   string
	t      *target
	sec    int64
	lo, hi int64 // the RecvNs that divide to sec: [lo, hi)
	s, ns  *slice
	slo    []*sloSeries // the target's series of e.slos (nil: none looked up)
}

// seek points c at ev's target and second. A new incarnation under the
// same name in the same run keeps the anomaly accumulator's producer as
// it was; a change of name (and every batch's first event) refreshes it.
func (c *cursor) seek(e *Engine, ev *pipeline.Event) {
	if ev.Producer != c.prod {
		if c.t == nil || ev.Producer.Name != c.name {
			c.t, c.name = e.targetFor(ev.Producer.Name), ev.Producer.Name
			if c.t.acc != nil && c.t.acc.prod != ev.Producer {
				c.t.acc.prod = ev.Producer // the newest incarnation, for its peer group
			}
			c.s, c.slo = nil, nil
		}
		c.prod = ev.Producer
	}
	if c.s != nil && ev.RecvNs >= c.lo && ev.RecvNs < c.hi {
		return
	}
	// The slices a window returned last stay its current ones until
	// another second is asked for, which only this cursor does while
	// e.mu is held.
	sec := ev.RecvNs / 1e9
	c.sec, c.s, c.ns = sec, c.t.win.at(sec), e.node.win.at(sec)
	c.lo, c.hi = secondRange(ev.RecvNs, sec)
}

// secondRange is the range [lo, hi) of the RecvNs that divide to sec.
// Negative times (division truncates towards zero) and the last whole
// second (hi would overflow) get an empty range: looked up every time.
func secondRange(ns, sec int64) (lo, hi int64) {
	if ns < 0 || sec >= math.MaxInt64/int64(1e9) {
		return 1, 0
	}
	return sec * 1e9, sec*1e9 + 1e9
}

// sloSeries returns the target's series of e.slos[i], looked up once per
// run.
func (c *cursor) sloSeries(e *Engine, i int) *sloSeries {
	if c.slo == nil {
		c.slo = make([]*sloSeries, len(e.slos))
	}
	if c.slo[i] == nil {
		c.slo[i] = e.slos[i].seriesFor(c.name)
	}
	return c.slo[i]
}

// forwardObs is what a forward contributes under the observation rules,
// read once for every aggregate it feeds.
type forwardObs struct {
	lat, gate, ent  float64
	bucket          int // latencyBucket(lat), when hasLat
	layer           int32
	applied, hasLat bool
	hasGate, hasEnt bool
	hasLayer        bool
}

// read fills o from f. It fills in place: a returned copy would be read
// back in wide loads right after the narrow stores of its flags, which
// stalls store forwarding.
func (o *forwardObs) read(f *pipeline.Forward) {
	o.applied = f.Applied()
	if o.lat, o.hasLat = f.Latency(); o.hasLat {
		o.bucket = latencyBucket(o.lat)
	}
	o.gate, o.hasGate = f.Gate()
	o.ent, o.hasEnt = f.Entropy()
	o.layer, o.hasLayer = f.LayerIdx()
}

// writeForward folds a forward into the target's and the node's slices,
// the anomaly minute and the latency SLOs.
func (e *Engine) writeForward(c *cursor, f *pipeline.Forward) {
	var o forwardObs
	o.read(f)
	if acc := c.t.acc; acc != nil {
		acc.forward(&o, anomaly.DefaultMaxLayers)
	}
	// The pipeline's observation rules, as the exporter's, so the agent
	// and a Prometheus evaluating `agaobs-agent rules` agree.
	c.s.addForward(&o)
	c.ns.addForward(&o)
	if !o.hasLat {
		return
	}
	for i, so := range e.slos {
		if so.SLI.Type == "latency" {
			good := 0.0
			if o.lat <= so.SLI.ThresholdUs {
				good = 1
			}
			c.sloSeries(e, i).add(c.sec, good, 1)
		}
	}
}

func writeRetrieval(c *cursor, r *pipeline.Retrieval) {
	if acc := c.t.acc; acc != nil {
		if n, ok := r.ResultsCount(); ok {
			acc.calls++
			acc.results += int64(max(n, 0))
			inj, _ := r.InjectedCount()
			acc.injected += int64(max(inj, 0))
		}
	}
	if n := r.Results(); n > 0 {
		for _, x := range [2]*slice{c.s, c.ns} {
			x.results += n
			x.injected += r.Injected()
		}
	}
}

// writeStatus keeps the target's last gauges (node-wide rules take the
// worst producer's).
func writeStatus(c *cursor, st *pipeline.Status) {
	s := c.s
	if st.KVStore != nil && st.KVStore.Utilization != nil {
		s.util, s.hasUtil = *st.KVStore.Utilization, true
	} else if kv := st.KVStore; kv != nil && kv.Count != nil && kv.MaxSlots != nil && *kv.MaxSlots > 0 {
		s.util, s.hasUtil = *kv.Count / *kv.MaxSlots, true
	}
	if st.SlotChangeRate != nil {
		s.slot, s.hasSlot = *st.SlotChangeRate, true
	}
	if acc := c.t.acc; acc != nil {
		acc.util, acc.hasUtil, acc.slot, acc.hasSlot = s.util, s.hasUtil, s.slot, s.hasSlot
	}
}

// ruleCond builds the condition of a config rule: the rule metric over its
// window for one producer, or across all producers for node-wide rules.
func (e *Engine) ruleCond(r *Rule) func(string, int64) (float64, bool, bool) {
	window := time.Duration(r.WindowSeconds * float64(time.Second))
	if q, ok := schema.RuleMetric(r.Metric).Quantile(); ok && (r.Operator == ">" || r.Operator == ">=") && schema.IsLatencyBound(r.Threshold) {
		// "pQ > T" with T on a bucket bound is "more than 1-Q of the
		// forwards slower than T", exactly, also for the top bound, where
		// the interpolated quantile stops at T (histogram_quantile does
		// the same); promrules generates the same condition.
		return func(target string, sec int64) (float64, bool, bool) {
			v, ok := e.metric(r.Metric, target, sec, window)
			if !ok {
				return 0, false, false
			}
			t := e.node
			if target != "" {
				t = e.targets[target]
			}
			sum := t.win.sum(sec, window)
			atOrBelow, total := countAtOrBelow(sum.lat[:], r.Threshold)
			// histogram_quantile's own test: the quantile lies above T
			// when the cumulative count at T is below the rank q·n.
			rank := q * float64(total)
			if r.Operator == ">" {
				return v, float64(atOrBelow) < rank, true
			}
			return v, float64(atOrBelow) <= rank, true
		}
	}
	return func(target string, sec int64) (float64, bool, bool) {
		v, ok := e.metric(r.Metric, target, sec, window)
		return v, ok && compare(r.Operator, v, r.Threshold), ok
	}
}

// countAtOrBelow counts the observations at or below bound t, and all.
func countAtOrBelow(counts []uint64, t float64) (atOrBelow, total uint64) {
	bounds := latencyBoundsUs
	for i, c := range counts {
		total += c
		if i < len(bounds) && bounds[i] <= t {
			atOrBelow += c
		}
	}
	return atOrBelow, total
}

// metric computes a rule metric for a producer, or node-wide for "".
// Node-wide, counted metrics aggregate all producers' events; last-value
// gauges and the heartbeat age take the worst (largest) producer.
func (e *Engine) metric(metric, producer string, sec int64, window time.Duration) (float64, bool) {
	if metric == string(schema.RuleHeartbeatAge) {
		if producer != "" {
			v, ok := e.heart[producer]
			return v, ok
		}
		return maxOver(e.heart)
	}
	if producer == "" && (metric == string(schema.RuleKnowledgeUtilization) || metric == string(schema.RuleSlotChangeRate)) {
		vals := map[string]float64{}
		for name, t := range e.targets {
			if v, ok := metricValue(metric, t.win.sum(sec, window), window); ok {
				vals[name] = v
			}
		}
		return maxOver(vals)
	}
	t := e.node
	if producer != "" {
		if t = e.targets[producer]; t == nil {
			return 0, false
		}
	}
	return metricValue(metric, t.win.sum(sec, window), window)
}

func maxOver(m map[string]float64) (float64, bool) {
	var best float64
	found := false
	for _, v := range m {
		if !found || v > best {
			best, found = v, true
		}
	}
	return best, found
}

// sampleRings folds ring counters into the windows (drops and consumed
// for drop_rate), records heartbeat ages, and samples availability for
// availability SLOs once a second. It returns the known producers.
func (e *Engine) sampleRings(now time.Time) ([]string, map[string]bool) {
	sec := now.Unix()
	clear(e.heart)
	clear(e.dead)
	snap := e.opts.Snapshot()
	names := make([]string, 0, len(snap.Producers))
	up := make(map[string]bool, len(snap.Producers))
	for i := range snap.Producers {
		p := &snap.Producers[i]
		name := p.Name
		names = append(names, name)
		live := p.Up()
		up[name] = live
		if age, ok := p.HeartbeatAge(); ok && live {
			e.heart[name] = age
		}
		e.dead[name] = p.State() == pipeline.RingStateDead
		d := p.Drops()
		t := e.targetFor(name)
		dDrops := uint64(0)
		if t.sampled {
			// The windows sum the deltas; a rule's drop_rate is then
			// pipeline.DropRate over its window.
			if delta, ok := d.Since(t.lastDrops); ok {
				dDrops = delta.Dropped
				for _, w := range [2]*window{t.win, e.node.win} {
					sl := w.at(sec)
					sl.consumed += delta.Consumed
					sl.drops += delta.Dropped
				}
				if t.acc != nil {
					t.acc.consumed += delta.Consumed
					t.acc.drops += delta.Dropped
				}
			}
		}
		t.lastDrops, t.sampled = d, true
		t.available = live && dDrops == 0
		if sec > t.lastAvailSec {
			t.lastAvailSec = sec
			good := 0.0
			if t.available {
				good = 1
			}
			for _, s := range e.slos {
				if s.SLI.Type == "availability" {
					s.seriesFor(name).add(sec, good, 1)
				}
			}
		}
	}
	return names, up // the snapshot is sorted by name
}

// Eval evaluates every rule at now and sends the resulting notifications.
// It reads no clock.
func (e *Engine) Eval(now time.Time) {
	e.mu.Lock()
	start := time.Now() // only for the duration metric
	e.lastEvalSec = now.Unix()
	producers, live := e.sampleRings(now)
	if !e.replay {
		e.closeMinute(now, live)
	}
	var detTargets []string
	if e.det != nil {
		detTargets = e.det.Producers()
	}
	var transitions []Transition
	for _, r := range e.rules {
		targets := producers
		if schema.RuleMetric(r.Metric).Detector() {
			targets = detTargets
		} else if !r.PerProducer {
			targets = []string{""}
		}
		active := e.active[r.Name]
		if active == nil {
			active = map[string]*Alert{}
			e.active[r.Name] = active
		}
		ts := evalRule(r, targets, active, now)
		for i := range ts {
			e.dirty = true
			ts[i].Alert.Message = e.message(r.forAlert(&ts[i].Alert), &ts[i].Alert)
			if a := active[ts[i].Alert.Producer]; a != nil {
				a.Message = ts[i].Alert.Message
			}
		}
		transitions = append(transitions, ts...)
	}
	out := make([]notify.Alert, 0, len(transitions))
	var audit []AuditTransition
	for _, tr := range transitions {
		r := e.rule(tr.Alert.Rule).forAlert(&tr.Alert) // a variant's threshold and message
		if e.opts.OnTransition != nil && !tr.Renotify {
			audit = append(audit, AuditTransition{Rule: r.Name, Producer: tr.Alert.Producer, State: tr.Status,
				Severity: r.Severity, Metric: r.Metric, Value: tr.Alert.Value, Threshold: r.Threshold,
				Message: tr.Alert.Message, At: now})
		}
		if tr.Status == "pending" {
			continue
		}
		out = append(out, e.toNotify(r, tr, now))
		e.record(r, tr, now)
	}
	e.observeEval(time.Since(start))
	saveDue := e.dirty || now.Sub(e.lastSave) >= time.Minute
	e.mu.Unlock()
	for _, t := range audit {
		e.opts.OnTransition(t)
	}
	if len(out) > 0 && e.opts.Notifier != nil {
		e.opts.Notifier.Notify(out)
	}
	if saveDue {
		e.save(now, false)
	}
}

// LastEval is when the evaluation loop last ran (zero before the first):
// health reports a loop that stopped ticking.
func (e *Engine) LastEval() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lastEvalSec == 0 {
		return time.Time{}
	}
	return time.Unix(e.lastEvalSec, 0)
}

func (e *Engine) rule(name string) *Rule {
	for _, r := range e.rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// message renders a rule's message; a template error stays with its rule.
func (e *Engine) message(r *Rule, a *Alert) string {
	msg, err := renderMessage(r, a.Value, e.labels(r, a.Producer), e.detectorFields(r, a.Producer))
	if err != nil {
		e.failures[r.Name]++
		return fmt.Sprintf("<error expanding template: %v>", err)
	}
	return msg
}

// labels is an alert's label set: prometheus_labels, alertname, severity,
// producer (per-producer rules), node, then the rule's own labels: what
// the generated Prometheus rules give the same alert, so an Alertmanager
// receiving both keeps one.
func (e *Engine) labels(r *Rule, producer string) map[string]string {
	l := make(map[string]string, len(e.opts.Config.PrometheusLabels)+4+len(r.Labels))
	for k, v := range e.opts.Config.PrometheusLabels {
		l[k] = v
	}
	l["alertname"], l["severity"] = r.Name, r.Severity
	if e.opts.Node != "" {
		l["node"] = e.opts.Node
	}
	if producer != "" {
		l["producer"] = producer
	}
	for k, v := range r.Labels {
		l[k] = v
	}
	return l
}

func (e *Engine) toNotify(r *Rule, tr Transition, now time.Time) notify.Alert {
	a := tr.Alert
	ann := map[string]string{"summary": a.Message,
		"description": fmt.Sprintf("%s = %g %s %g", r.Metric, a.Value, r.Operator, r.Threshold)}
	for k, v := range r.Annotations {
		ann[k] = v
	}
	n := notify.Alert{Name: r.Name, Status: tr.Status, Severity: r.Severity, Producer: a.Producer, Metric: r.Metric,
		Value: a.Value, Threshold: r.Threshold, Message: a.Message, Labels: e.labels(r, a.Producer), Annotations: ann,
		StartsAt: a.FiredAt, Timestamp: now}
	if tr.Status == "resolved" {
		n.EndsAt = a.ResolvedAt
	}
	if u := e.opts.Config.AlertExternalURL; u != "" {
		n.GeneratorURL = u + "/api/v1/alerts?rule=" + r.Name
	}
	return n
}

func (e *Engine) record(r *Rule, tr Transition, now time.Time) {
	h := HistoryEntry{RuleName: r.Name, Metric: r.Metric, Value: jsonfloat.Float(tr.Alert.Value), Threshold: jsonfloat.Float(r.Threshold),
		Severity: r.Severity, Message: tr.Alert.Message, Timestamp: float64(now.UnixNano()) / 1e9,
		Status: tr.Status, Producer: tr.Alert.Producer}
	if len(e.history) < historyLen {
		e.history = append(e.history, h)
	} else {
		e.history[e.histNext] = h
	}
	e.histNext = (e.histNext + 1) % historyLen
}

func (e *Engine) observeEval(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(evalBounds) && s > evalBounds[i] {
		i++
	}
	e.evals.buckets[i]++
	e.evals.count++
	e.evals.sum += s
}

// Run evaluates every alert_eval_interval and after retrieval events (at
// most every 50 ms), until ctx ends; then it saves the state.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	interval := time.Duration(e.opts.Config.AlertEvalInterval)
	e.mu.Unlock()
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			e.save(time.Now(), true)
			return nil
		case now := <-tick.C:
			e.Eval(now)
			last = now
		case <-e.trigger:
			if now := time.Now(); now.Sub(last) >= 50*time.Millisecond {
				e.Eval(now)
				last = now
			}
		}
	}
}
