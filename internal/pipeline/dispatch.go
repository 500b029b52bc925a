package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Sink consumes batches of events on its own goroutine. Write must not keep
// the batch or its slice after returning; the pointer fields of events may
// be kept (they are immutable).
type Sink interface {
	Name() string
	Kinds() KindMask
	Write(ctx context.Context, batch []Event) error
}

// Flusher is implemented by sinks that buffer; Flush runs once at shutdown
// after the queue has drained.
type Flusher interface {
	Flush(ctx context.Context) error
}

// SinkOptions configures a sink's queue.
type SinkOptions struct {
	// QueueSize is the queue capacity in events (default 65536).
	QueueSize int
	// Lossless sinks are never dropped from: the producer of events must
	// check Room first (audit).
	Lossless bool
	// Filter, when set, is asked per event of the sink's kinds, in Flush:
	// false leaves the event out of the sink's queue (the OTLP sink wants
	// a forward only when it becomes a span or a log record).
	Filter func(*Event) bool
}

// SinkStats are a sink's counters.
type SinkStats struct {
	Name                     string
	Depth, Capacity          int
	Written, Dropped, Errors uint64
	Lossless                 bool
	// Latency is the event → sink latency of the oldest event of every
	// batch (an upper bound for the batch), in LatencyBounds buckets.
	Latency LatencyCounts
}

// LatencyBounds are the upper bounds (seconds) of the dispatcher's
// event → sink latency buckets.
func LatencyBounds() []float64 {
	return []float64{0.0005, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
}

const numLatencyBounds = 18

// LatencyCounts is a classic histogram over LatencyBounds: non-cumulative
// bucket counts (the last one is +Inf), count and sum in seconds.
type LatencyCounts struct {
	Buckets [numLatencyBounds + 1]uint64
	Count   uint64
	Sum     float64
}

type latencyAtomic struct {
	buckets [numLatencyBounds + 1]atomic.Uint64
	count   atomic.Uint64
	sumNs   atomic.Int64
}

func (l *latencyAtomic) observe(d time.Duration, bounds []float64) {
	s := d.Seconds()
	i := 0
	for i < len(bounds) && s > bounds[i] {
		i++
	}
	l.buckets[i].Add(1)
	l.count.Add(1)
	l.sumNs.Add(int64(d))
}

func (l *latencyAtomic) load() LatencyCounts {
	var c LatencyCounts
	for i := range c.Buckets {
		c.Buckets[i] = l.buckets[i].Load()
	}
	c.Count = l.count.Load()
	c.Sum = time.Duration(l.sumNs.Load()).Seconds()
	return c
}

type queue struct {
	sink     Sink
	kinds    KindMask
	filter   func(*Event) bool
	capacity int
	lossless bool
	mu       sync.Mutex
	buf      []Event
	spare    []Event
	// initial is the buffers' resting size; quiet counts drains since a
	// grown buffer last held more than that (drain goroutine only).
	initial int
	quiet   int
	notify  chan struct{}
	written atomic.Uint64
	dropped atomic.Uint64
	errors  atomic.Uint64
	latency latencyAtomic
	bounds  []float64
	lastLog time.Time
}

const (
	// restingQueue is a sink buffer's size outside bursts (events): a few
	// consumer passes' worth at 1 M events/s.
	restingQueue = 4096
	// shrinkAfterDrains drains without a burst free a grown buffer (a few
	// seconds at the consumer's pace).
	shrinkAfterDrains = 1000
)

// MaxPublished is how many events Publish holds between two flushes; more
// are dropped and counted (AgentEventStats).
const MaxPublished = 4096

// Dispatcher fans decoded events out to sinks. Add and Flush belong to the
// one consumer goroutine; Publish and Stats may be called from anywhere.
type Dispatcher struct {
	log     *slog.Logger
	queues  []*queue
	pending []Event
	done    chan struct{}
	wg      sync.WaitGroup
	started bool

	// Events the agent makes wait in published until the next Flush.
	pubMu     sync.Mutex
	published []Event
	wake      atomic.Pointer[func()]
	pubTotal  atomic.Uint64
	pubDrops  atomic.Uint64

	// keeper makes the span keep decision once per event, for every sink
	// (Event.Span); nil: none.
	keeper *SpanKeeper
}

// SetSpanKeeper makes Flush stamp every forward, retrieval and audit event
// with the keeper's decision (Event.Span), the agent's events feeding its
// alert state, before the sinks see them: one decision, the same for every
// sink, made once. It must be called before Start.
func (d *Dispatcher) SetSpanKeeper(k *SpanKeeper) {
	if d.started {
		panic("pipeline: SetSpanKeeper after Start")
	}
	d.keeper = k
}

// NewDispatcher returns a dispatcher with no sinks. A nil logger discards.
func NewDispatcher(log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{log: log, done: make(chan struct{})}
}

// Register adds a sink. It must be called before Start.
func (d *Dispatcher) Register(s Sink, opts SinkOptions) {
	if d.started {
		panic("pipeline: Register after Start")
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 65536
	}
	// The buffers rest small and jump to full capacity only in a burst:
	// full-size preallocation (two × 64 Ki events per sink, ~100 MB for the
	// default sinks) is untouched memory that still counts as live heap, so
	// it set the GC goal to twice that and let garbage pile up to match.
	initial := min(opts.QueueSize, restingQueue)
	d.queues = append(d.queues, &queue{
		sink: s, kinds: s.Kinds(), filter: opts.Filter, capacity: opts.QueueSize, lossless: opts.Lossless, initial: initial,
		buf: make([]Event, 0, initial), spare: make([]Event, 0, initial),
		notify: make(chan struct{}, 1), bounds: LatencyBounds(),
	})
}

// Start starts one goroutine per sink. Close stops and waits for them.
func (d *Dispatcher) Start() {
	d.started = true
	for _, q := range d.queues {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.run(q)
		}()
	}
}

// Add queues an event for the next Flush.
func (d *Dispatcher) Add(ev Event) { d.pending = append(d.pending, ev) }

// SetWake sets the function Publish calls so that whoever owns Flush (the
// ring consumer) flushes soon.
func (d *Dispatcher) SetWake(fn func()) { d.wake.Store(&fn) }

// Publish is the way in for events the agent makes (config loaded or
// reloaded, alert and health transitions): safe from any goroutine, never
// blocking. The events go to the sinks with the next Flush, in the order
// they were published. At most MaxPublished wait; Publish drops the rest,
// counts them and reports false.
func (d *Dispatcher) Publish(ev Event) bool {
	d.pubMu.Lock()
	if len(d.published) >= MaxPublished {
		d.pubMu.Unlock()
		d.pubDrops.Add(1)
		return false
	}
	d.published = append(d.published, ev)
	d.pubMu.Unlock()
	d.pubTotal.Add(1)
	if fn := d.wake.Load(); fn != nil {
		(*fn)()
	}
	return true
}

// AgentEventStats returns how many events Publish accepted and dropped.
func (d *Dispatcher) AgentEventStats() (published, dropped uint64) {
	return d.pubTotal.Load(), d.pubDrops.Load()
}

// takePublished moves the published events behind the pending ones, as
// many as every lossless sink that wants them has room for (an agent event
// must not push a ring's audit record out of the audit store's queue); the
// rest wait for a later Flush.
func (d *Dispatcher) takePublished() {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	if len(d.published) == 0 {
		return
	}
	n := min(len(d.published), d.Room(KindAgent))
	d.pending = append(d.pending, d.published[:n]...)
	rest := copy(d.published, d.published[n:])
	clear(d.published[rest:])
	d.published = d.published[:rest]
}

// Flush hands the events added since the last Flush, then the published
// ones, to every sink's queue. A full non-lossless queue drops the excess
// and counts it; Flush never blocks on a sink.
func (d *Dispatcher) Flush() {
	d.takePublished()
	if len(d.pending) == 0 {
		return
	}
	if k := d.keeper; k != nil {
		for i := range d.pending {
			ev := &d.pending[i]
			switch ev.Kind {
			case KindAgent:
				k.Observe(ev)
			case KindForward, KindRetrieval, KindAudit:
				ev.Span = k.Decide(ev)
			}
		}
	}
	for _, q := range d.queues {
		q.push(d.pending)
	}
	clear(d.pending) // drop references so the GC can reclaim bodies
	d.pending = d.pending[:0]
}

// Room returns how many events of kind k can be queued without any
// lossless sink that wants k dropping one. It counts events already added
// but not yet flushed.
func (d *Dispatcher) Room(k Kind) int {
	room := int(^uint(0) >> 1)
	for _, q := range d.queues {
		if !q.lossless || !q.kinds.Has(k) {
			continue
		}
		q.mu.Lock()
		free := q.capacity - len(q.buf)
		q.mu.Unlock()
		room = min(room, free)
	}
	return max(0, room-len(d.pending))
}

// Pressure is the fullest queue's fill ratio (0..1). The consumer yields
// to sinks while it is high, which paces a backlog without ever waiting on
// a sink that makes no progress.
func (d *Dispatcher) Pressure() float64 {
	p := 0.0
	for _, q := range d.queues {
		q.mu.Lock()
		p = max(p, float64(len(q.buf))/float64(q.capacity))
		q.mu.Unlock()
	}
	return p
}

func (q *queue) push(evs []Event) {
	q.mu.Lock()
	n := 0
	for i := range evs {
		if !q.kinds.Has(evs[i].Kind) || q.filter != nil && !q.filter(&evs[i]) {
			continue
		}
		if len(q.buf) == q.capacity {
			n++
			continue
		}
		if len(q.buf) == cap(q.buf) {
			// One step to full size: doubling would allocate, copy and
			// page-fault several times the final size within one burst.
			nb := make([]Event, len(q.buf), q.capacity)
			copy(nb, q.buf)
			q.buf = nb
		}
		q.buf = append(q.buf, evs[i])
	}
	added := len(q.buf) > 0
	q.mu.Unlock()
	if n > 0 {
		q.dropped.Add(uint64(n))
	}
	if !added {
		return // nothing for this sink: do not wake its goroutine
	}
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) run(q *queue) {
	for {
		select {
		case <-q.notify:
			d.drainOnce(q)
		case <-d.done:
			// Final drain: everything pushed before Close is delivered.
			for d.drainOnce(q) {
			}
			if f, ok := q.sink.(Flusher); ok {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := d.call(q, func() error { return f.Flush(ctx) }); err != nil {
					d.log.Warn("sink flush failed", "sink", q.sink.Name(), "err", err)
				}
				cancel()
			}
			return
		}
	}
}

// drainOnce swaps the queue out and writes it; it reports whether there was
// anything to write.
func (d *Dispatcher) drainOnce(q *queue) bool {
	q.mu.Lock()
	work := q.buf
	q.buf = q.spare
	q.mu.Unlock()
	if len(work) == 0 {
		q.spare = work
		return false
	}
	if ts := work[0].TimeNs; ts > 0 {
		q.latency.observe(time.Duration(time.Now().UnixNano()-ts), q.bounds)
	}
	err := d.call(q, func() error { return q.sink.Write(context.Background(), work) })
	if err != nil {
		q.errors.Add(1)
		if time.Since(q.lastLog) > 10*time.Second {
			q.lastLog = time.Now()
			d.log.Warn("sink write failed", "sink", q.sink.Name(), "err", err, "errors_total", q.errors.Load())
		}
	}
	q.written.Add(uint64(len(work)))
	clear(work)
	// A grown buffer returns to its resting size once bursts have stopped
	// for a while; hysteresis keeps repeated bursts from reallocating.
	if cap(work) > q.initial {
		if len(work) > q.initial {
			q.quiet = 0
		} else if q.quiet++; q.quiet >= shrinkAfterDrains {
			work, q.quiet = make([]Event, 0, q.initial), 0
		}
	}
	q.spare = work[:0]
	return true
}

// call runs a sink method, turning a panic into an error: a buggy sink must
// not take the agent (and the audit trail with it) down.
func (d *Dispatcher) call(q *queue, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sink %s panicked: %v\n%s", q.sink.Name(), r, debug.Stack())
		}
	}()
	return fn()
}

// Close delivers everything already flushed, flushes the sinks and waits for
// their goroutines. Events added but not flushed are flushed first.
func (d *Dispatcher) Close() {
	d.Flush()
	select {
	case <-d.done:
		return
	default:
	}
	close(d.done)
	d.wg.Wait()
	// Published events a full lossless queue had no room for are lost.
	d.pubMu.Lock()
	d.pubDrops.Add(uint64(len(d.published)))
	d.published = nil
	d.pubMu.Unlock()
}

// Stats returns per-sink counters.
func (d *Dispatcher) Stats() []SinkStats {
	out := make([]SinkStats, 0, len(d.queues))
	for _, q := range d.queues {
		q.mu.Lock()
		depth := len(q.buf)
		q.mu.Unlock()
		out = append(out, SinkStats{
			Name: q.sink.Name(), Depth: depth, Capacity: q.capacity, Lossless: q.lossless,
			Written: q.written.Load(), Dropped: q.dropped.Load(), Errors: q.errors.Load(),
			Latency: q.latency.load(),
		})
	}
	return out
}
