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

// Sink consumes batches of events on its own goroutine. Write must neither
// keep the batch or its slice after returning nor modify its events: the
// same events are handed to every sink. The pointer fields of events may be
// kept (they are immutable).
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
	// check Room first (audit). Their events are copied into a buffer of
	// their own at Flush rather than shared: they are few, and a lossless
	// queue must not run out of room for want of chunks to pin.
	Lossless bool
	// Filter, when set, is asked per event of the sink's kinds, at Flush:
	// false leaves the event out of the sink's queue (the OTLP sink wants
	// a forward only when it becomes a span or a log record). The events it
	// keeps are copied, as a lossless sink's are: a few in a range, and a
	// range it wants nothing of neither queues nor wakes the sink. It must
	// not keep the event.
	Filter func(*Event) bool
	// Linger lets events wait up to this long for more before the sink's
	// goroutine is woken (0: at every Flush). A sink with no latency goal
	// of its own then wakes a few tens of times a second at low rates
	// instead of at every consumer pass; a chunk's worth of events (1024)
	// or a quarter of its queue, or the consumer going idle (Idle), wakes
	// it sooner.
	Linger time.Duration
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

// chunkEvents is the size of a chunk, the unit in which event storage is
// shared by the sinks, reused and freed (128 KiB).
const chunkEvents = 1024

// restingCopies is the size (events) a lossless sink's buffer of copies
// keeps between bursts; one four times larger is freed after its drain.
const restingCopies = 4096

// maxFreeChunks chunks are kept for reuse when the sinks release them; more
// go to the garbage collector, so a burst's storage does not outlive it.
const maxFreeChunks = 8

// A chunk holds events in the order the consumer added them. The consumer
// fills it and publishes ranges of it (spans) to the sinks that want them;
// it is reused when the consumer has moved past it and every span is
// released. Published events are never written again until then.
type chunk struct {
	events [chunkEvents]Event
	n      int // events added (consumer goroutine)
	pub    int // events published (consumer goroutine)
	// refs counts the queued and in-flight spans, plus one while the
	// consumer may still add to the chunk.
	refs atomic.Int32
}

// A span is a published range of a chunk in one sink's queue.
type span struct {
	c      *chunk
	lo, hi int32
	// kinds are the kinds present in the range; n is how many of them the
	// sink wants (its queue depth counts those).
	kinds KindMask
	n     int32
}

type queue struct {
	sink     Sink
	kinds    KindMask
	filter   func(*Event) bool
	capacity int
	lossless bool
	linger   time.Duration
	mu       sync.Mutex
	spans    []span
	depth    int // events of the sink's kinds in spans
	// chunks is the number of distinct chunks spans refer to: bounded, so
	// a stalled sink pins at most about capacity events' worth of storage
	// even when each span is a single event.
	chunks    int
	maxChunks int
	oldest    int64 // when the first queued span arrived (Unix ns), for Linger
	// copies holds a lossless or filtering sink's events, copied: a
	// lossless sink must never drop one for want of chunks, and both want
	// few events of a range (audit records amid forwards, OTLP's kept
	// spans), so pinning a 128 KiB chunk for each would be the costlier
	// way to keep them.
	copies []Event
	notify chan struct{}
	// Sink goroutine only.
	spare       []span
	copiesSpare []Event
	scratch     []Event
	written     atomic.Uint64
	dropped     atomic.Uint64
	errors      atomic.Uint64
	latency     latencyAtomic
	bounds      []float64
	lastLog     time.Time
}

// MaxPublished is how many events Publish holds between two flushes; more
// are dropped and counted (AgentEventStats).
const MaxPublished = 4096

// Dispatcher fans decoded events out to sinks without copying them: the
// consumer adds events into shared chunks, Flush hands each sink the
// ranges it wants, and a chunk is reused once every sink is done with it
// (the LMAX Disruptor's shape, with per-sink bounded queues of ranges).
// Add, Reserve, Commit, Flush and Idle belong to the one consumer
// goroutine; Publish and Stats may be called from anywhere.
type Dispatcher struct {
	log    *slog.Logger
	queues []*queue
	open   []*chunk // chunks with unpublished events; the last is cur
	cur    *chunk
	unpub  int // events added since the last Flush
	// allocated counts chunks made new rather than reused.
	allocated atomic.Uint64
	// peakUnflushed is the most events a Flush handed over at once.
	peakUnflushed atomic.Int64
	dirty         bool // the slot Reserve returned may hold an uncommitted event
	done          chan struct{}
	wg            sync.WaitGroup
	started       bool

	freeMu sync.Mutex
	free   []*chunk

	// Events the agent makes wait in published until the next Flush.
	pubMu     sync.Mutex
	published []Event
	wake      atomic.Pointer[func()]
	pubTotal  atomic.Uint64
	pubDrops  atomic.Uint64

	// keeper makes the span keep decision once per event, for every sink
	// (Event.Span); nil: none.
	keeper *SpanKeeper
	now    func() int64
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
	return &Dispatcher{log: log, done: make(chan struct{}), now: func() int64 { return time.Now().UnixNano() }}
}

// Register adds a sink. It must be called before Start.
func (d *Dispatcher) Register(s Sink, opts SinkOptions) {
	if d.started {
		panic("pipeline: Register after Start")
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 65536
	}
	d.queues = append(d.queues, &queue{
		sink: s, kinds: s.Kinds(), filter: opts.Filter, capacity: opts.QueueSize, lossless: opts.Lossless,
		linger: max(0, opts.Linger), maxChunks: (opts.QueueSize+chunkEvents-1)/chunkEvents + 1,
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

// Reserve returns a zeroed event slot for the next event; Commit keeps
// what was written there, and a slot not committed is reused by the next
// Reserve. The consumer decodes records straight into it.
func (d *Dispatcher) Reserve() *Event {
	c := d.cur
	if c == nil || c.n == chunkEvents {
		c = d.newChunk()
	}
	ev := &c.events[c.n]
	if d.dirty {
		// Written but not committed: chunks are otherwise zero already
		// (new, or cleared when released).
		*ev = Event{}
	}
	d.dirty = true
	return ev
}

// Commit adds the event written into the slot Reserve returned.
func (d *Dispatcher) Commit() {
	d.cur.n++
	d.unpub++
	d.dirty = false
}

// Add queues an event for the next Flush.
func (d *Dispatcher) Add(ev Event) {
	*d.Reserve() = ev
	d.Commit()
}

func (d *Dispatcher) newChunk() *chunk {
	if d.cur != nil && d.cur.pub == chunkEvents {
		// Full and published: the consumer's part in it ends.
		d.open = d.open[:len(d.open)-1]
		d.release(d.cur)
	}
	var c *chunk
	d.freeMu.Lock()
	if n := len(d.free); n > 0 {
		c, d.free[n-1] = d.free[n-1], nil
		d.free = d.free[:n-1]
	}
	d.freeMu.Unlock()
	if c == nil {
		c = new(chunk)
		d.allocated.Add(1)
	}
	c.n, c.pub = 0, 0
	c.refs.Store(1)
	d.dirty = false
	d.cur = c
	d.open = append(d.open, c)
	return c
}

// release drops one reference to c; the last one clears it (its events'
// pointers must not keep bodies alive) and keeps it for reuse.
func (d *Dispatcher) release(c *chunk) {
	if c.refs.Add(-1) != 0 {
		return
	}
	clear(c.events[:c.n])
	d.freeMu.Lock()
	if len(d.free) < maxFreeChunks {
		d.free = append(d.free, c)
	}
	d.freeMu.Unlock()
}

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

// takePublished adds the published events behind the ones added, as many
// as every lossless sink that wants them has room for (an agent event must
// not push a ring's audit record out of the audit store's queue); the rest
// wait for a later Flush.
func (d *Dispatcher) takePublished() {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	if len(d.published) == 0 {
		return
	}
	n := min(len(d.published), d.Room(KindAgent))
	for i := range n {
		d.Add(d.published[i])
	}
	rest := copy(d.published, d.published[n:])
	clear(d.published[rest:])
	d.published = d.published[:rest]
}

// Flush hands the events added since the last Flush, then the published
// ones, to every sink that wants them. A full non-lossless queue drops the
// excess and counts it; Flush never blocks on a sink. It also wakes the
// sinks whose events have lingered long enough.
func (d *Dispatcher) Flush() {
	if d.unpub > int(d.peakUnflushed.Load()) {
		d.peakUnflushed.Store(int64(d.unpub))
	}
	d.takePublished()
	now := d.now()
	for _, c := range d.open {
		if c.pub < c.n {
			d.publish(c, c.pub, c.n, now)
			c.pub = c.n
		}
	}
	d.unpub = 0
	// Keep only the current chunk open; the others are full and published.
	if n := len(d.open); n > 1 {
		for _, c := range d.open[:n-1] {
			d.release(c)
		}
		d.open[0] = d.open[n-1]
		clear(d.open[1:])
		d.open = d.open[:1]
	}
	for _, q := range d.queues {
		if q.linger > 0 {
			q.mu.Lock()
			due := q.depth > 0 && now-q.oldest >= int64(q.linger)
			q.mu.Unlock()
			if due {
				q.wake()
			}
		}
	}
}

// Idle wakes every sink with queued events: the consumer calls it before
// it sleeps, so nothing lingers for a sleep's length.
func (d *Dispatcher) Idle() {
	for _, q := range d.queues {
		q.mu.Lock()
		queued := q.depth > 0
		q.mu.Unlock()
		if queued {
			q.wake()
		}
	}
}

// publish hands c.events[lo:hi] to every sink that wants some of them.
func (d *Dispatcher) publish(c *chunk, lo, hi int, now int64) {
	evs := c.events[lo:hi]
	if k := d.keeper; k != nil {
		k.Stamp(evs)
	}
	var count [numKinds]int32
	for i := range evs {
		if k := evs[i].Kind; k < numKinds {
			count[k]++
		}
	}
	var kinds KindMask
	for k := range count {
		if count[k] > 0 {
			kinds |= Kind(k).Mask()
		}
	}
	for _, q := range d.queues {
		if q.kinds&kinds == 0 {
			continue
		}
		var n int32
		for k := range count {
			if q.kinds.Has(Kind(k)) {
				n += count[k]
			}
		}
		if q.lossless || q.filter != nil {
			q.pushCopies(evs, now)
			continue
		}
		q.push(d, span{c: c, lo: int32(lo), hi: int32(hi), kinds: kinds, n: n}, now)
	}
}

// pushCopies appends the events of evs a lossless or filtering sink wants
// to its own buffer; past its capacity they are dropped and counted (for a
// lossless sink, Room prevents that).
func (q *queue) pushCopies(evs []Event, now int64) {
	q.mu.Lock()
	room := q.capacity - q.depth
	if q.depth == 0 {
		q.oldest = now
	}
	added, dropped := 0, 0
	for i := range evs {
		if !q.kinds.Has(evs[i].Kind) || q.filter != nil && !q.filter(&evs[i]) {
			continue
		}
		if room == 0 {
			dropped++
			continue
		}
		q.copies = append(q.copies, evs[i])
		room--
		added++
	}
	q.depth += added
	due := q.linger == 0 || q.depth >= min(q.capacity/4, chunkEvents) || now-q.oldest >= int64(q.linger)
	q.mu.Unlock()
	if dropped > 0 {
		q.dropped.Add(uint64(dropped))
	}
	if due && added > 0 {
		q.wake()
	}
}

func (q *queue) push(d *Dispatcher, s span, now int64) {
	q.mu.Lock()
	last := len(q.spans) - 1
	newChunk := last < 0 || q.spans[last].c != s.c
	if room := q.capacity - q.depth; int(s.n) > room || newChunk && q.chunks >= q.maxChunks {
		if newChunk && q.chunks >= q.maxChunks {
			room = 0
		}
		dropped := s.n
		if room > 0 {
			s = q.cut(s, room)
			dropped -= s.n
		}
		q.dropped.Add(uint64(dropped))
		if room <= 0 {
			q.mu.Unlock()
			return
		}
	}
	if q.depth == 0 {
		q.oldest = now
	}
	q.depth += int(s.n)
	if !newChunk && q.spans[last].hi == s.lo {
		// Contiguous with the queued span: one batch, one reference.
		q.spans[last].hi = s.hi
		q.spans[last].kinds |= s.kinds
		q.spans[last].n += s.n
	} else {
		if newChunk {
			q.chunks++
		}
		s.c.refs.Add(1)
		q.spans = append(q.spans, s)
	}
	// A chunk's worth is enough to wait for: at high rates a lingering
	// sink wakes as often as any other, and pins no more storage.
	due := q.linger == 0 || q.depth >= min(q.capacity/4, chunkEvents) || now-q.oldest >= int64(q.linger)
	q.mu.Unlock()
	if due {
		q.wake()
	}
}

// cut shortens s to its first room events of the sink's kinds (room > 0).
func (q *queue) cut(s span, room int) span {
	n := int32(0)
	var kinds KindMask
	for i := s.lo; i < s.hi; i++ {
		k := s.c.events[i].Kind
		if !q.kinds.Has(k) {
			continue
		}
		if int(n) == room {
			s.hi = i
			break
		}
		n++
		kinds |= k.Mask()
	}
	s.n, s.kinds = n, kinds|(s.kinds&^q.kinds)
	return s
}

func (q *queue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
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
		free := q.capacity - q.depth
		q.mu.Unlock()
		room = min(room, free)
	}
	return max(0, room-d.unpub)
}

// Pressure is the fullest queue's fill ratio (0..1). The consumer yields
// to sinks while it is high, which paces a backlog without ever waiting on
// a sink that makes no progress.
// Unflushed returns the events added since the last Flush (consumer
// goroutine only).
func (d *Dispatcher) Unflushed() int { return d.unpub }

// ChunksAllocated returns how many chunks of event storage were allocated
// rather than reused.
func (d *Dispatcher) ChunksAllocated() uint64 { return d.allocated.Load() }

// PeakUnflushed returns the most events one Flush handed to the sinks: the
// storage the consumer held at once.
func (d *Dispatcher) PeakUnflushed() int { return int(d.peakUnflushed.Load()) }

func (d *Dispatcher) Pressure() float64 {
	p := 0.0
	for _, q := range d.queues {
		q.mu.Lock()
		p = max(p, float64(q.depth)/float64(q.capacity))
		q.mu.Unlock()
	}
	return p
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

// drainOnce takes the queued spans and writes them; it reports whether
// there was anything to write.
func (d *Dispatcher) drainOnce(q *queue) bool {
	q.mu.Lock()
	work, copies := q.spans, q.copies
	q.spans, q.spare = q.spare[:0], nil
	q.copies, q.copiesSpare = q.copiesSpare[:0], nil
	q.depth, q.chunks = 0, 0
	q.mu.Unlock()
	if len(copies) > 0 {
		if ts := copies[0].TimeNs; ts > 0 {
			q.latency.observe(time.Duration(time.Now().UnixNano()-ts), q.bounds)
		}
		d.write(q, copies)
		clear(copies)
		if cap(copies) > 4*restingCopies {
			copies = nil // a burst's buffer goes; the next one grows again
		}
	}
	q.copiesSpare = copies[:0]
	if len(work) == 0 {
		q.spare = work
		return len(copies) > 0
	}
	first := &work[0].c.events[work[0].lo]
	if ts := first.TimeNs; ts > 0 && len(copies) == 0 {
		q.latency.observe(time.Duration(time.Now().UnixNano()-ts), q.bounds)
	}
	for i := range work {
		s := &work[i]
		batch := s.c.events[s.lo:s.hi]
		viewed := s.kinds&^q.kinds != 0
		if viewed {
			batch = q.view(batch)
		}
		if len(batch) > 0 {
			d.write(q, batch)
		}
		if viewed {
			// Drop the copies' references, once: left at its length,
			// the scratch was cleared again after every later span
			// (128 KiB each, ~5 ns per pipeline event).
			clear(q.scratch)
			q.scratch = q.scratch[:0]
		}
		d.release(s.c)
	}
	clear(work)
	if cap(work) > 4096 {
		work = nil // a burst's span list is not kept
	}
	q.spare = work[:0]
	return true
}

// view returns the events of batch of the sink's kinds, copied into its
// scratch buffer (only when the range holds other kinds).
func (q *queue) view(batch []Event) []Event {
	out := q.scratch[:0]
	for i := range batch {
		if q.kinds.Has(batch[i].Kind) {
			out = append(out, batch[i])
		}
	}
	if cap(out) > chunkEvents {
		q.scratch = nil
	} else {
		q.scratch = out
	}
	return out
}

func (d *Dispatcher) write(q *queue, batch []Event) {
	err := d.call(q, func() error { return q.sink.Write(context.Background(), batch) })
	if err != nil {
		q.errors.Add(1)
		if time.Since(q.lastLog) > 10*time.Second {
			q.lastLog = time.Now()
			d.log.Warn("sink write failed", "sink", q.sink.Name(), "err", err, "errors_total", q.errors.Load())
		}
	}
	q.written.Add(uint64(len(batch)))
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
		depth := q.depth
		q.mu.Unlock()
		out = append(out, SinkStats{
			Name: q.sink.Name(), Depth: depth, Capacity: q.capacity, Lossless: q.lossless,
			Written: q.written.Load(), Dropped: q.dropped.Load(), Errors: q.errors.Load(),
			Latency: q.latency.load(),
		})
	}
	return out
}
