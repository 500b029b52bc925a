package live

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// Schema is the frame schema version (the v of every message).
const Schema = 1

// Defaults.
const (
	DefaultHistory    = 900 // seconds
	DefaultMaxViewers = 20
	// MaxLayers is the most layer slots per producer whatever the metrics
	// layer cap: it bounds a producer's history to about 1 MiB.
	MaxLayers = 256
	// historyBudget bounds the memory of all histories together: a node
	// with more producers than fit keeps history for the first ones
	// (the table still lists every producer).
	historyBudget = 48 << 20
)

// Options configures the live view.
type Options struct {
	Node, Version string
	Started       time.Time
	// History is the seconds kept per producer (DefaultHistory).
	History int
	// MaxLayers is the layer slots per producer before "other"
	// (prometheus_max_layers_per_producer, at most MaxLayers).
	MaxLayers int
	// MaxViewers is ui_max_viewers.
	MaxViewers int
	Sources    Sources
	Logger     *slog.Logger
	// Now is the clock (time.Now); tests step it.
	Now func() time.Time
}

// Live is the live view: a sink, a frame loop and the viewers' hub.
type Live struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex // tracks and their current seconds
	tracks map[string]*track
	// untracked counts producers over the history budget.
	maxTracks int

	fam *famView

	hub *hub

	// Written by the frame loop only.
	sections [numSections][]byte // last encoded section
	lastT    int64
	stats    stats
}

// New returns a live view; Run produces its frames.
func New(o Options) *Live {
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.MaxLayers <= 0 || o.MaxLayers > MaxLayers {
		o.MaxLayers = MaxLayers
	}
	if o.MaxViewers <= 0 {
		o.MaxViewers = DefaultMaxViewers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Started.IsZero() {
		o.Started = o.Now()
	}
	l := &Live{opts: o, log: o.Logger, tracks: map[string]*track{}, fam: newFamView(),
		maxTracks: max(8, historyBudget/trackBytes(o.History, o.MaxLayers))}
	l.hub = newHub(l, o.MaxViewers)
	return l
}

// Name implements pipeline.Sink.
func (l *Live) Name() string { return "live" }

// Kinds implements pipeline.Sink.
func (l *Live) Kinds() pipeline.KindMask {
	return pipeline.KindForward.Mask() | pipeline.KindRetrieval.Mask() | pipeline.KindStatus.Mask() |
		pipeline.KindAudit.Mask() | pipeline.KindEvent.Mask()
}

// Write folds a batch into the producers' current seconds.
func (l *Live) Write(_ context.Context, batch []pipeline.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Events come in runs of one producer (a ring's share of a consumer
	// pass): the track is looked up when the producer changes, the nil
	// track of a producer beyond the budget included.
	var last *track
	var lastProd *pipeline.Producer
	for i := range batch {
		ev := &batch[i]
		if ev.Producer == nil {
			continue
		}
		if ev.Producer != lastProd {
			if last == nil || last.name != ev.Producer.Name {
				last = l.track(ev.Producer.Name)
			}
			lastProd = ev.Producer
			if last != nil {
				last.prod = ev.Producer
			}
		}
		if last == nil {
			l.stats.untracked++
			continue
		}
		last.observe(ev)
	}
	return nil
}

// track returns the producer's track, creating it while the budget
// allows (nil beyond it: Write counts those events). Callers hold l.mu.
func (l *Live) track(name string) *track {
	t := l.tracks[name]
	if t == nil {
		if len(l.tracks) >= l.maxTracks {
			return nil
		}
		t = newTrack(name, l.opts.History, l.opts.MaxLayers)
		l.tracks[name] = t
	}
	return t
}

// Handler returns the /ui/ handler (page, assets and /ui/ws).
func (l *Live) Handler() *Handler { return &Handler{l: l} }

// Run makes a frame at every whole second until ctx ends, then closes
// every viewer.
func (l *Live) Run(ctx context.Context) error {
	defer l.hub.closeAll()
	for {
		now := l.opts.Now()
		// Just after the second boundary, so the frame holds the whole
		// second that ended.
		next := now.Truncate(time.Second).Add(time.Second + 20*time.Millisecond)
		timer := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		l.Tick(l.opts.Now())
	}
}

// The frame sections, in the order of docs/live.md.
const (
	secHeader = iota
	secProducers
	secAlerts
	secGPUs
	secEBPF
	secAudit
	secSinks
	numSections
)

var sectionNames = [numSections]string{"header", "producers", "alerts", "gpus", "ebpf", "audit", "sinks"}

// Tick closes the second before now and sends its frame to every viewer.
// Run calls it once a second; tests call it with their own clock.
func (l *Live) Tick(now time.Time) {
	start := time.Now()
	sec := now.Unix() - 1
	if sec <= l.lastT {
		return
	}
	secs := l.collect(now)
	rows := secs.producers

	l.mu.Lock()
	present := make(map[string]int, len(rows))
	for i, r := range rows {
		present[r.Name] = i
	}
	for name, t := range l.tracks {
		i, ok := present[name]
		dropped := int64(-1)
		if ok {
			dropped = int64(rows[i].Dropped)
		}
		events := t.cur.events
		t.close(sec, ok, dropped)
		if ok {
			r := &rows[i]
			r.EventsPerS = float64(events)
			if t.prod != nil {
				id := t.prod.Identity()
				r.Model = cmp.Or(r.Model, id.Model)
				r.Pod = cmp.Or(r.Pod, id.Pod)
				r.Namespace = cmp.Or(r.Namespace, id.Namespace)
			}
		}
		if !ok && t.lastActive < sec-int64(t.n) {
			delete(l.tracks, name) // nothing of it left in the window
		}
	}
	l.mu.Unlock()

	var changed [numSections][]byte
	enc := [numSections]any{secs.header(l, sec), rows, secs.alerts, secs.gpus, secs.ebpf, secs.audit, secs.sinks}
	for i, v := range enc {
		b, err := json.Marshal(v)
		if err != nil {
			l.log.Warn("live view section not encoded", "section", sectionNames[i], "err", err)
			continue
		}
		if !bytes.Equal(b, l.sections[i]) || i == secHeader && l.lastT%5 == 0 {
			changed[i] = b
		}
		l.sections[i] = b
	}

	l.hub.mu.Lock()
	l.lastT = sec
	frame := l.frame(sec, changed)
	l.hub.broadcast(frame)
	l.hub.mu.Unlock()
	l.stats.frame(len(frame), time.Since(start))
}

// collected is what the sources said for one frame.
type collected struct {
	producers []ProducerRow
	health    HealthSummary
	alerts    Alerts
	gpus      []GPURow
	ebpf      []EBPFRow
	audit     Audit
	sinks     Sinks
}

func (l *Live) collect(now time.Time) collected {
	s := l.opts.Sources
	c := collected{producers: []ProducerRow{}, alerts: Alerts{Active: []AlertRow{}, SLO: []SLORow{}},
		gpus: []GPURow{}, ebpf: []EBPFRow{}, audit: Audit{Tail: []AuditRecord{}}, sinks: Sinks{Sinks: []SinkRow{}},
		health: HealthSummary{Status: "unknown", Failing: []Check{}}}
	if s.Producers != nil {
		c.producers = s.Producers()
	}
	if s.Health != nil {
		c.health = s.Health()
	}
	if s.Alerts != nil {
		c.alerts = s.Alerts()
	}
	if s.Gather != nil {
		fams, err := s.Gather()
		if err != nil {
			l.log.Debug("live view: gathering GPU and eBPF metrics", "err", err)
		}
		c.gpus, c.ebpf = l.fam.sections(fams)
	}
	if s.Audit != nil {
		c.audit = s.Audit()
	}
	if s.Sinks != nil {
		c.sinks = s.Sinks()
	}
	_ = now
	return c
}

func (c *collected) header(l *Live, sec int64) Header {
	h := Header{Node: l.opts.Node, Version: l.opts.Version, StartedAt: l.opts.Started.UTC().Truncate(time.Second),
		UptimeS: math.Round(float64(sec+1) - float64(l.opts.Started.UnixNano())/1e9), Health: c.health,
		Viewers: l.hub.count()}
	if h.UptimeS < 0 {
		h.UptimeS = 0
	}
	for _, a := range c.alerts.Active {
		switch a.State {
		case "firing":
			h.AlertsFiring++
		case "pending":
			h.AlertsPending++
		}
	}
	return h
}

// frame encodes the frame of second sec: the new point of every series,
// the per-layer p99s and the sections that changed. Callers hold hub.mu.
func (l *Live) frame(sec int64, changed [numSections][]byte) []byte {
	b := make([]byte, 0, 4096)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Schema, 10)
	b = append(b, `,"type":"frame","t":`...)
	b = strconv.AppendInt(b, sec, 10)
	l.mu.Lock()
	names := l.trackNames()
	b = append(b, `,"points":{`...)
	for i, name := range names {
		t := l.tracks[name]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ":{"...)
		for k := range numSeries {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, seriesNames[k]...)
			b = append(b, `":`...)
			b = appendFloat(b, t.at(k, sec))
		}
		b = append(b, '}')
	}
	b = append(b, `},"layers":{`...)
	first := true
	for _, name := range names {
		t := l.tracks[name]
		if len(t.order) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, name)
		b = append(b, `:{"ids":`...)
		b = appendStrings(b, t.ids)
		b = append(b, `,"p99_us":[`...)
		for j, s := range t.order {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendFloat(b, t.layerAt(s, sec))
		}
		b = append(b, "]}"...)
	}
	l.mu.Unlock()
	b = append(b, '}')
	for i, s := range changed {
		if s != nil {
			b = append(b, `,"`...)
			b = append(b, sectionNames[i]...)
			b = append(b, `":`...)
			b = append(b, s...)
		}
	}
	return append(b, '}')
}

// snapshot encodes the first message of a viewer: every section as last
// sent and the aggregate history. Callers hold hub.mu, so no frame is
// sent between the snapshot and the viewer's registration.
func (l *Live) snapshot() []byte {
	sec := l.lastT
	if sec == 0 { // before the first frame: an empty history ending now
		sec = l.opts.Now().Unix() - 1
	}
	n := int64(l.opts.History)
	b := make([]byte, 0, 64<<10)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Schema, 10)
	b = append(b, `,"type":"snapshot","t":`...)
	b = strconv.AppendInt(b, sec, 10)
	b = append(b, `,"interval_s":1,"history_s":`...)
	b = strconv.AppendInt(b, n, 10)
	for i, s := range l.sections {
		if s == nil {
			continue
		}
		b = append(b, `,"`...)
		b = append(b, sectionNames[i]...)
		b = append(b, `":`...)
		b = append(b, s...)
	}
	t0 := sec - n + 1
	b = append(b, `,"history":{"t0":`...)
	b = strconv.AppendInt(b, t0, 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"producers":{`...)
	l.mu.Lock()
	for i, name := range l.trackNames() {
		t := l.tracks[name]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ":{"...)
		for k := range numSeries {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, seriesNames[k]...)
			b = append(b, `":[`...)
			for s := t0; s <= sec; s++ {
				if s > t0 {
					b = append(b, ',')
				}
				b = appendFloat(b, t.at(k, s))
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	l.mu.Unlock()
	return append(b, "}}}"...)
}

// layersMessage encodes the per-layer history of one producer (nil when
// it has none).
func (l *Live) layersMessage(name string) []byte {
	l.hub.mu.Lock()
	sec := l.lastT
	l.hub.mu.Unlock()
	n := int64(l.opts.History)
	t0 := sec - n + 1
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tracks[name]
	b := make([]byte, 0, 16<<10)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Schema, 10)
	b = append(b, `,"type":"layers","producer":`...)
	b = appendString(b, name)
	b = append(b, `,"t0":`...)
	b = strconv.AppendInt(b, t0, 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"ids":`...)
	if t == nil {
		return append(b, `[],"p99_us":[]}`...)
	}
	b = appendStrings(b, t.ids)
	b = append(b, `,"p99_us":[`...)
	for j, slot := range t.order {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for s := t0; s <= sec; s++ {
			if s > t0 {
				b = append(b, ',')
			}
			b = appendFloat(b, t.layerAt(slot, s))
		}
		b = append(b, ']')
	}
	return append(b, "]}"...)
}

func (l *Live) trackNames() []string {
	names := make([]string, 0, len(l.tracks))
	for n := range l.tracks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // valid UTF-8 out, whatever a producer named itself
	return append(b, q...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendFloat writes v with 4 significant digits, null when not finite.
func appendFloat(b []byte, v float32) []byte {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e7 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	return strconv.AppendFloat(b, f, 'g', 4, 32)
}
