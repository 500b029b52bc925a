package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	Store Store
	// BatchSize commits after this many records (audit_batch_size).
	BatchSize int
	// FlushInterval commits at the latest this long after the first
	// pending record (audit_flush_interval).
	FlushInterval time.Duration
	// RedactKeys are removed from details before storage and hashing.
	RedactKeys []string
	// RetentionDays and MaxBytes drive the hourly retention run.
	RetentionDays int
	MaxBytes      int64
	// HeadLogInterval logs the chain head for a witness (default 5m).
	HeadLogInterval time.Duration
	Logger          *slog.Logger
}

type pendingRec struct {
	rec   *Record
	ack   *pipeline.Ack
	evtNs int64 // the event's own time, for the event → durable latency
	// slab holds rec when rec is one of its records.
	slab *recSlab
}

// recSlab holds the records of one Write in one allocation. Run gives it
// back for the next Write once every one of them is committed: stores
// keep no record after Append returns (see Store).
type recSlab struct {
	recs []Record
	left int // records not yet committed: set by Write, counted down by Run
}

// freeSlabs is how many committed slabs (and handed-over item slices) a
// Writer keeps for reuse.
const freeSlabs = 8

// Writer is the audit sink: the pipeline hands it audit and lifecycle
// events (Write), one goroutine (Run) commits them in groups and only then
// acknowledges the ring positions. When the store cannot write, Run stops
// taking records, Write blocks, the audit sink's queue fills and the ring
// consumer stops reading audit rings: records wait in the rings (or become
// gap records at the producer) until the store recovers.
type Writer struct {
	opts   WriterOptions
	log    *slog.Logger
	redact map[string]bool
	in     chan []pendingRec
	done   chan struct{}
	// Memory handed back by Run for Write to reuse: record slabs whose
	// records are all committed, item slices whose items Run has taken.
	freeSlabs chan *recSlab
	freeItems chan []pendingRec
	recs      []*Record // commitBatch's (Run's goroutine only)

	closing   chan struct{}
	closeOnce sync.Once

	queued     atomic.Int64
	up         atomic.Bool
	lastErr    atomic.Pointer[string]
	lastCommit atomic.Int64 // unix ns of the last successful commit
	writeErrs  atomic.Uint64
	lastRetain atomic.Int64
	created    time.Time
	downSince  atomic.Int64 // unix ns of the first failed commit of an outage
	failures   int          // consecutive failed commits (Run's goroutine only)

	mu       sync.Mutex // guards the counters below (metrics)
	records  map[[2]string]uint64
	commit   latencyCounts
	durable  latencyCounts
	dropped  uint64 // agent events dropped at shutdown
	headSize uint64
	// recent is a ring of the newest stored records (Recent).
	recent     [RecentRecords]Recent
	recentNext int
}

// NewWriter returns a Writer over store.
func NewWriter(opts WriterOptions) *Writer {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 50 * time.Millisecond
	}
	if opts.HeadLogInterval <= 0 {
		opts.HeadLogInterval = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{opts: opts, log: opts.Logger, redact: map[string]bool{}, in: make(chan []pendingRec),
		done: make(chan struct{}), closing: make(chan struct{}), records: map[[2]string]uint64{}, created: time.Now(),
		freeSlabs: make(chan *recSlab, freeSlabs), freeItems: make(chan []pendingRec, freeSlabs)}
	for _, k := range opts.RedactKeys {
		w.redact[k] = true
	}
	w.up.Store(true)
	if h, err := opts.Store.Head(); err == nil {
		w.headSize = h.Size
	}
	return w
}

// Name implements pipeline.Sink.
func (w *Writer) Name() string { return "audit" }

// Kinds implements pipeline.Sink: producer audit events, the ring
// layer's lifecycle events and the events the agent publishes.
func (w *Writer) Kinds() pipeline.KindMask {
	return pipeline.KindAudit.Mask() | pipeline.KindLifecycle.Mask() | pipeline.KindAgent.Mask()
}

// Write implements pipeline.Sink. It blocks while the writer is busy or
// the store is failing: the audit sink is lossless and its queue, not
// memory, absorbs the wait.
func (w *Writer) Write(ctx context.Context, batch []pipeline.Event) error {
	items := w.itemsFor(len(batch) + 1)
	// The batch's records in one slab (gap records come on top).
	cb := convBuf{slab: w.slabFor(len(batch))}
	for i := range batch {
		items = w.appendRecords(items, &cb, &batch[i])
	}
	cb.slab.left = len(cb.slab.recs)
	if len(items) == 0 {
		return nil
	}
	w.queued.Add(int64(len(items)))
	select {
	case w.in <- items:
		return nil
	case <-w.done:
	case <-w.closing:
		// Shutting down: wait for a working store a little, not for a
		// broken one at all.
		if w.up.Load() {
			t := time.NewTimer(2 * time.Second)
			defer t.Stop()
			select {
			case w.in <- items:
				return nil
			case <-w.done:
			case <-t.C:
			}
		}
	}
	w.queued.Add(-int64(len(items)))
	// Not acknowledged: the records stay in their rings for the next agent
	// to store.
	return fmt.Errorf("audit writer stopping; %d records left in their rings", len(items))
}

// Closing tells the writer the agent is shutting down (before the
// pipeline's final drain): Write stops waiting for a store that cannot
// write. Run keeps committing until its context ends.
func (w *Writer) Closing() {
	w.closeOnce.Do(func() { close(w.closing) })
}

// slabFor returns an empty slab with room for n records: one Run gave
// back, or a new one.
func (w *Writer) slabFor(n int) *recSlab {
	select {
	case s := <-w.freeSlabs:
		if cap(s.recs) >= n {
			return s
		}
	default:
	}
	return &recSlab{recs: make([]Record, 0, n)}
}

// itemsFor returns an empty item slice with room for n items.
func (w *Writer) itemsFor(n int) []pendingRec {
	select {
	case it := <-w.freeItems:
		if cap(it) >= n {
			return it
		}
	default:
	}
	return make([]pendingRec, 0, n)
}

// released counts committed records down in their slabs and keeps the
// slabs that have none left for reuse (Run's goroutine, after the
// commit's last use of the records).
func (w *Writer) released(pend []pendingRec) {
	for i := range pend {
		s := pend[i].slab
		if s == nil {
			continue
		}
		if s.left--; s.left == 0 {
			clear(s.recs) // no references into events kept alive
			s.recs = s.recs[:0]
			select {
			case w.freeSlabs <- s:
			default:
			}
		}
	}
}

// convBuf is what the records of one Write share: their memory, and the
// ring epoch's text (a batch's records mostly come from a few rings).
type convBuf struct {
	slab     *recSlab
	epoch    uint64
	epochHex string
}

// newRecord returns a zero record in the next free place of the slab (and
// the slab), or one of its own where there is none: the slab never grows,
// so earlier records stay put.
func (cb *convBuf) newRecord() (*Record, *recSlab) {
	if cb == nil || cb.slab == nil || len(cb.slab.recs) == cap(cb.slab.recs) {
		return new(Record), nil
	}
	s := cb.slab
	s.recs = s.recs[:len(s.recs)+1]
	return &s.recs[len(s.recs)-1], s
}

// epochText is fmt.Sprintf("%016x", epoch), formatted once per epoch.
func (cb *convBuf) epochText(epoch uint64) string {
	if cb == nil {
		return epochHex(epoch)
	}
	if cb.epochHex == "" || cb.epoch != epoch {
		cb.epoch, cb.epochHex = epoch, epochHex(epoch)
	}
	return cb.epochHex
}

// convert turns one event into records: an aga-core audit event (after a
// gap record when the producer lost some before it), or an agent event.
func (w *Writer) convert(ev *pipeline.Event) []pendingRec { return w.appendRecords(nil, nil, ev) }

// appendRecords appends convert's records of ev to out, taking their
// memory from cb where it has room (cb may be nil).
func (w *Writer) appendRecords(out []pendingRec, cb *convBuf, ev *pipeline.Event) []pendingRec {
	now := time.Unix(0, ev.RecvNs).UTC()
	if ev.RecvNs == 0 {
		now = time.Now().UTC()
	}
	producer := ""
	if ev.Producer != nil {
		producer = ev.Producer.Name
	}
	switch ev.Kind {
	case pipeline.KindAudit:
		a := ev.Audit
		epoch := ""
		if ev.Ack != nil { // a record of an audit ring
			epoch = cb.epochText(ev.Epoch)
		}
		if a.LostBefore > 0 {
			msg := fmt.Sprintf("%d audit records lost: the producer's audit ring stayed full", a.LostBefore)
			out = append(out, pendingRec{rec: &Record{Time: now, Kind: KindGap, Producer: producer, Operation: "audit_gap",
				Details: json.RawMessage(fmt.Sprintf(`{"lost":%d}`, a.LostBefore)), Error: &msg, Lost: a.LostBefore,
				RingEpoch: epoch, RingSeq: ev.Seq}})
		}
		ts := a.Timestamp
		if ts == 0 {
			ts = float64(ev.TimeNs) / 1e9
		}
		details := a.Details
		if len(w.redact) > 0 {
			details = redact(details, w.redact)
		}
		rec, slab := cb.newRecord()
		*rec = Record{Time: now, Kind: KindProducer, Producer: producer, Operation: a.Operation,
			Details: details, Success: a.Success, Error: a.Error, EventTimestamp: ts, RingEpoch: epoch, RingSeq: ev.Seq}
		if a.EncodeError != "" {
			// Sanitized at decode: the record says why and keeps the body.
			rec.EncodeError = a.EncodeError
			attachRaw(rec, a.Raw, w.redact)
		}
		out = append(out, pendingRec{rec: rec, ack: ev.Ack, evtNs: ev.TimeNs, slab: slab})
	case pipeline.KindLifecycle, pipeline.KindAgent:
		l := ev.Lifecycle
		d := map[string]any{}
		if l.Ring != "" {
			d["ring"] = l.Ring
		}
		if l.Class != 0 {
			d["class"] = l.Class.String()
		}
		if l.Reason != "" {
			d["reason"] = l.Reason
		}
		if l.Keys != nil {
			d["keys"] = l.Keys
		}
		for k, v := range l.Details {
			d[k] = v
		}
		if p, ok := l.Details["producer"].(string); ok && producer == "" {
			producer = p // a per-producer alert: --producer finds it
		}
		b, _ := json.Marshal(d)
		kind, success := KindAgent, true
		var errp *string
		if l.Type == pipeline.AuditGap {
			kind, success = KindGap, false
			msg := fmt.Sprintf("%d audit records lost: dropped after the producer's last committed record", l.Lost)
			errp = &msg
		}
		out = append(out, pendingRec{rec: &Record{Time: now, Kind: kind, Producer: producer, Operation: string(l.Type),
			Details: b, Success: success, Error: errp, Lost: l.Lost, EventTimestamp: float64(ev.TimeNs) / 1e9}})
	}
	return out
}

// epochHex is fmt.Sprintf("%016x", epoch) without fmt (once per record).
func epochHex(epoch uint64) string {
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hexDigits[epoch&0xf]
		epoch >>= 4
	}
	return string(b[:])
}

// Run commits until ctx ends, then commits what is pending (retrying for
// at most 2 s) and returns.
func (w *Writer) Run(ctx context.Context) error {
	defer close(w.done)
	var pend []pendingRec
	var deadline <-chan time.Time
	var timer *time.Timer
	retryAt := time.Time{}
	headTick := time.NewTicker(w.opts.HeadLogInterval)
	defer headTick.Stop()
	retain := time.NewTimer(0) // a retention run at start, then hourly
	defer retain.Stop()
	for {
		in := w.in
		if len(pend) >= w.opts.BatchSize || !retryAt.IsZero() {
			in = nil // full, or backing off after a failure
		}
		var retry <-chan time.Time
		if !retryAt.IsZero() {
			retry = time.After(time.Until(retryAt))
		}
		select {
		case items := <-in:
			if len(pend) == 0 {
				timer = time.NewTimer(w.opts.FlushInterval)
				deadline = timer.C
			}
			pend = append(pend, items...)
			clear(items) // the items are pend's now: the slice goes back to Write
			select {
			case w.freeItems <- items[:0]:
			default:
			}
			pend, retryAt = w.commitPending(pend, false)
		case <-deadline:
			pend, retryAt = w.commitPending(pend, true)
		case <-retry:
			pend, retryAt = w.commitPending(pend, true)
		case <-headTick.C:
			if h, err := w.opts.Store.Head(); err == nil {
				w.log.Info("audit head", "size", h.Size, "hash", h.Hash)
			}
		case <-retain.C:
			retain.Reset(time.Hour)
			w.retain(time.Now())
		case <-ctx.Done():
			stopBy := time.Now().Add(2 * time.Second)
			for len(pend) > 0 && time.Now().Before(stopBy) {
				if pend, _ = w.commitPending(pend, true); len(pend) > 0 {
					time.Sleep(200 * time.Millisecond)
				}
			}
			if h, err := w.opts.Store.Head(); err == nil {
				w.log.Info("audit head", "size", h.Size, "hash", h.Hash)
			}
			return nil
		}
		if len(pend) == 0 && timer != nil {
			timer.Stop()
			timer, deadline = nil, nil
		}
	}
}

// commitPending stores pend in commits of at most BatchSize records: every full
// batch, or everything when all is set. On failure it keeps what is left
// and returns when to retry.
func (w *Writer) commitPending(pend []pendingRec, all bool) ([]pendingRec, time.Time) {
	for len(pend) >= w.opts.BatchSize || all && len(pend) > 0 {
		n := min(len(pend), w.opts.BatchSize)
		retryAt, err := w.commitBatch(pend[:n])
		if err != nil {
			return pend, retryAt
		}
		rest := copy(pend, pend[n:])
		clear(pend[rest:])
		pend = pend[:rest]
	}
	return pend, time.Time{}
}

// commitBatch stores pend in one commit and acknowledges it. On failure it
// acknowledges nothing and schedules a retry with backoff.
func (w *Writer) commitBatch(pend []pendingRec) (time.Time, error) {
	recs := w.recs[:0]
	for i := range pend {
		recs = append(recs, pend[i].rec)
	}
	w.recs = recs
	defer clear(recs) // no records kept alive by the next commit's slice
	start := time.Now()
	stored, err := w.opts.Store.Append(recs)
	if err != nil {
		n := w.writeErrs.Add(1)
		msg := err.Error()
		w.lastErr.Store(&msg)
		if w.up.Swap(false) {
			w.downSince.Store(time.Now().UnixNano())
			w.log.Error("audit store cannot write; audit rings hold the records until it recovers", "err", err, "pending", len(pend))
		} else if n%30 == 0 {
			w.log.Error("audit store cannot write; audit rings hold the records until it recovers", "err", err, "pending", len(pend))
		}
		w.failures++
		// 0.5 s, 1 s, 2 s, ... at most 7.5 s between attempts of one outage.
		backoff := time.Duration(min(30, 1<<min(w.failures, 5))) * time.Second / 4
		return time.Now().Add(backoff), err
	}
	now := time.Now()
	w.failures = 0
	w.counted(stored)
	w.mu.Lock()
	w.commit.observe(now.Sub(start))
	for i := range pend {
		if pend[i].evtNs > 0 {
			w.durable.observe(now.Sub(time.Unix(0, pend[i].evtNs)))
		}
	}
	w.mu.Unlock()
	// Only now may the rings release these records (duplicates skipped by
	// the store are acknowledged too: they were already durable).
	for i := range pend {
		if pend[i].ack != nil {
			pend[i].ack.Ack()
		}
	}
	w.queued.Add(-int64(len(pend)))
	if !w.up.Swap(true) {
		down := time.Duration(now.UnixNano() - w.downSince.Load())
		w.log.Info("audit store writable again", "down", down.Round(time.Millisecond))
		w.appendAgent(now, "audit_store_recovered", map[string]any{"down_seconds": down.Seconds(), "error": w.LastError()})
	}
	w.lastCommit.Store(now.UnixNano())
	w.released(pend) // the last use of these records
	return time.Time{}, nil
}

func (w *Writer) retain(now time.Time) {
	if w.opts.RetentionDays <= 0 && w.opts.MaxBytes <= 0 {
		return
	}
	res, err := w.opts.Store.Retain(now, time.Duration(w.opts.RetentionDays)*24*time.Hour, w.opts.MaxBytes)
	if err != nil {
		w.log.Warn("audit retention failed", "err", err)
		return
	}
	w.lastRetain.Store(now.UnixNano())
	if res.Checkpoint != nil {
		// The checkpoint record is this run's entry in the trail.
		w.log.Info("audit retention", "removed_records", res.RemovedRecords, "removed", res.RemovedDays, "checkpoint_seq", res.Checkpoint.Seq)
		w.counted([]*Record{res.Checkpoint})
		return
	}
	w.appendAgent(now, "retention", map[string]any{"removed_records": 0, "max_age_days": w.opts.RetentionDays, "max_bytes": w.opts.MaxBytes})
}

// appendAgent stores one agent record directly (from Run's goroutine,
// the store's only writer). A failure is logged, not retried: these are
// the agent's own notes, not records a ring is waiting to release.
func (w *Writer) appendAgent(now time.Time, op string, details map[string]any) {
	b, err := json.Marshal(details)
	if err != nil {
		b = []byte(`{}`)
	}
	stored, err := w.opts.Store.Append([]*Record{{Time: now.UTC(), Kind: KindAgent, Operation: op, Details: b, Success: true,
		EventTimestamp: float64(now.UnixNano()) / 1e9}})
	if err != nil {
		w.log.Warn("audit: cannot record agent event", "operation", op, "err", err)
		return
	}
	w.counted(stored)
}

// counted updates the per-operation counters and the head size.
func (w *Writer) counted(stored []*Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Runs of records of one operation and outcome (the common batch)
	// are counted with one map update.
	for i := 0; i < len(stored); {
		r := stored[i]
		n := 1
		for i+n < len(stored) && stored[i+n].Operation == r.Operation && stored[i+n].Success == r.Success {
			n++
		}
		k := [2]string{r.Operation, strconv.FormatBool(r.Success)}
		if _, ok := w.records[k]; !ok && len(w.records) >= 256 {
			k[0] = "other" // bounded cardinality: aga-core's operations are few
		}
		w.records[k] += uint64(n)
		for _, r := range stored[i : i+n] {
			w.headSize = max(w.headSize, r.Seq)
		}
		i += n
	}
	// The newest RecentRecords records, kept by value without details:
	// the live view's audit tail reads them, never the store.
	for _, r := range stored[max(0, len(stored)-RecentRecords):] {
		w.recent[w.recentNext%RecentRecords] = Recent{Seq: r.Seq, Time: r.Time, Kind: r.Kind, Operation: r.Operation,
			Producer: r.Producer, Success: r.Success, Hash: r.Hash}
		w.recentNext++
	}
}

// RecentRecords is how many of the newest stored records Recent returns.
const RecentRecords = 20

// Recent is a stored record's summary.
type Recent struct {
	Seq       uint64
	Time      time.Time
	Kind      string
	Operation string
	Producer  string
	Success   bool
	Hash      string
}

// Recent returns the newest stored records this writer committed (at
// most RecentRecords), newest first.
func (w *Writer) Recent() []Recent {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(w.recentNext, RecentRecords)
	out := make([]Recent, 0, n)
	for i := range n {
		out = append(out, w.recent[(w.recentNext-1-i)%RecentRecords])
	}
	return out
}

// Status reports whether the store accepts writes, the last error, and the
// records waiting to be committed (for health).
func (w *Writer) Status() (writable bool, lastErr string, pending int64) {
	return w.up.Load(), w.LastError(), w.queued.Load()
}

// Lag is how long records have waited for a commit: zero when nothing is
// pending, else the time since the last successful commit (or since the
// writer started), for health.
func (w *Writer) Lag(now time.Time) time.Duration {
	if w.queued.Load() == 0 {
		return 0
	}
	last := w.lastCommit.Load()
	if last == 0 {
		last = w.created.UnixNano()
	}
	return max(0, now.Sub(time.Unix(0, last)))
}

// LastError is the last commit failure ("" if none yet).
func (w *Writer) LastError() string {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// latencyCounts is a small fixed histogram (seconds).
type latencyCounts struct {
	buckets [len(latencyBounds) + 1]uint64
	count   uint64
	sum     float64
}

var latencyBounds = [...]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func (l *latencyCounts) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	l.buckets[i]++
	l.count++
	l.sum += s
}

// quantile returns the upper bound of the bucket holding q (for tests and
// benchmarks).
func (l *latencyCounts) quantile(q float64) float64 {
	rank := uint64(q * float64(l.count))
	var seen uint64
	for i, c := range l.buckets {
		seen += c
		if seen > rank {
			if i < len(latencyBounds) {
				return latencyBounds[i]
			}
			break
		}
	}
	return latencyBounds[len(latencyBounds)-1]
}
