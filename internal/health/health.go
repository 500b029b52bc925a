package health

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a Health.
type Options struct {
	Path         string // health_path, e.g. "/health"
	Sources      []Source
	Livez        []Check
	Readyz       []Check
	OnTransition func(Transition) // called outside locks, from Run's goroutine (and from Evaluate); must not block nor call Evaluate
	Interval     time.Duration    // Run's evaluation period, default 1s
	Logger       *slog.Logger
}

// Result is the /health response.
type Result struct {
	Status     Status               `json:"status"`
	Components map[string]Component `json:"components"`
	Timestamp  float64              `json:"timestamp"` // unix seconds, as the seed
}

// defaultInterval is Run's evaluation period when Options.Interval is 0.
const defaultInterval = time.Second

// checkTimeout bounds one /livez or /readyz request.
const checkTimeout = 5 * time.Second

// Health aggregates its sources' components; see the package doc.
type Health struct {
	opts         Options
	path, prefix string // the health path without a trailing slash; the component prefix
	log          *slog.Logger
	checkTimeout time.Duration // a field so tests need not wait 5 s

	mu        sync.Mutex
	last      map[string]Component // the previous Evaluate's components
	overall   Status
	evaluated bool

	// notify is taken before mu is released, so concurrent Evaluates deliver
	// their transitions in the order they recorded them.
	notify sync.Mutex
}

// New returns a Health; it starts nothing (see Run).
func New(opts Options) *Health {
	if opts.Interval <= 0 {
		opts.Interval = defaultInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.Sources = slices.Clone(opts.Sources)
	opts.Livez = slices.Clone(opts.Livez)
	opts.Readyz = slices.Clone(opts.Readyz)
	p := opts.Path
	if p == "" {
		p = "/health"
	}
	if p = strings.TrimRight(p, "/"); !strings.HasPrefix(p, "/") {
		p = "/" + p // also turns an all-slash path back into "/"
	}
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	opts.Path = p
	return &Health{opts: opts, path: p, prefix: prefix, log: log, checkTimeout: checkTimeout}
}

// Evaluate asks every source, aggregates worst-of (Rank), records the
// statuses for the collector and calls OnTransition for every change since
// the previous Evaluate (the first one reports appearances). When two
// sources name the same component, the later source wins.
func (h *Health) Evaluate(now time.Time) Result {
	comps := make(map[string]Component)
	for i, s := range h.opts.Sources {
		for k, c := range h.ask(i, s, now) {
			comps[k] = c
		}
	}
	worst := 0
	for _, c := range comps {
		worst = max(worst, c.Status.Rank())
	}
	overall := rankStatus(worst)

	h.mu.Lock()
	prev := h.last
	h.last, h.overall, h.evaluated = comps, overall, true
	h.notify.Lock()
	h.mu.Unlock()
	h.deliver(diff(prev, comps, now))
	return Result{Status: overall, Components: maps.Clone(comps), Timestamp: float64(now.UnixNano()) / 1e9}
}

func (h *Health) deliver(ts []Transition) {
	defer h.notify.Unlock()
	for _, t := range ts {
		h.log.Debug("health transition", "component", t.Component, "from", string(t.From), "to", string(t.To))
		if h.opts.OnTransition != nil {
			h.opts.OnTransition(t)
		}
	}
}

// ask calls one source. A source that panics would take the agent down
// from Run, and dropping its components would hide whatever it watches, so
// it is reported as an unhealthy component of its own instead.
func (h *Health) ask(i int, s Source, now time.Time) (m map[string]Component) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("health source panicked", "source", i, "panic", r)
			m = map[string]Component{fmt.Sprintf("health_source%d", i): {Status: Unhealthy,
				Fields: map[string]any{"error": fmt.Sprintf("source panicked: %v", r)}}}
		}
	}()
	return s.Components(now)
}

// Run evaluates now and then every Interval until ctx ends, so transitions
// (and the gauges) follow the sources without HTTP traffic. It returns nil.
func (h *Health) Run(ctx context.Context) error {
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for ctx.Err() == nil {
		h.Evaluate(time.Now())
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return nil
}

// Last returns the overall status and the components of the last
// Evaluate, without evaluating (false before the first): the live view
// reads it every second without causing transitions.
func (h *Health) Last() (Status, map[string]Component, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.overall, maps.Clone(h.last), h.evaluated
}
