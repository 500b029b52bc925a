package rings

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/state"
)

// Tunables are the settings that a config reload may change while the
// consumer runs.
type Tunables struct {
	AllowedUIDs     []uint32
	RescanInterval  time.Duration // default 2s
	PollInterval    time.Duration // default 3ms
	IdleSleep       time.Duration // default 250ms
	MaxPerPass      int           // default 4096
	Retention       time.Duration // 0 forgets at once
	StaleAfter      time.Duration // default 5s
	RemoveDead      bool
	InitialiseLimit time.Duration // how long a ring may stay initialising; default 10s
	// MaxProducersPerUID bounds the live producers of one uid
	// (ring_max_producers); default 256.
	MaxProducersPerUID int
}

func (t *Tunables) fill() {
	if t.RescanInterval <= 0 {
		t.RescanInterval = 2 * time.Second
	}
	if t.PollInterval <= 0 {
		t.PollInterval = 3 * time.Millisecond
	}
	if t.IdleSleep <= 0 {
		t.IdleSleep = 250 * time.Millisecond
	}
	if t.MaxPerPass <= 0 {
		t.MaxPerPass = 4096
	}
	if t.StaleAfter <= 0 {
		t.StaleAfter = 5 * time.Second
	}
	if t.InitialiseLimit <= 0 {
		t.InitialiseLimit = 10 * time.Second
	}
	if t.MaxProducersPerUID <= 0 {
		t.MaxProducersPerUID = 256
	}
}

// Options configures a Consumer.
type Options struct {
	Dir string
	// Group is the gid that owns the ring directory (ring_group), or -1.
	Group      int
	Tunables   Tunables
	Dispatcher *pipeline.Dispatcher
	// State persists ring verifications and producer names; nil is fine.
	State *state.Store
	// ProcRoot is the procfs mount (default /proc).
	ProcRoot string
	Logger   *slog.Logger
}

// The consumer waits for data on its poll timer while data comes, and on
// the doorbell once it has made a pass that found nothing and either
// idleToSleep passed without data or records are sparse: fewer expected in
// one poll interval than sparsePerPoll, from an exponentially decaying
// count over rateWindow (about 50 records/s at 3 ms). Polling costs a
// wake-up per interval whether or not data came; at 20 events/s polling on
// for 20 ms after each record cost 12 context switches per record, sleeping
// after one empty pass about 2. The threshold stays where producers already
// poked once per record before (gaps of 20 ms): a poke that wakes the agent
// costs the producer's thread about 15 µs on this VM, against 0.5 µs for one
// that does not (BENCHMARKS.md, "Issue 19, fifth round").
const (
	rateWindow    = 100 * time.Millisecond
	sparsePerPoll = 0.15
	idleToSleep   = 20 * time.Millisecond
)

// midPassFlush is how many events a pass decodes before it hands them to
// the sinks and lets them run, rather than at the end of the pass. A pass
// over a backlog in 8 rings decodes 32 Ki events (ring_max_records_per_pass
// each): 32 chunks of storage held at once, most of them allocated anew
// each pass because the dispatcher keeps only a few for reuse (measured:
// 767 allocations per million events, a quarter of the pipeline's time
// with the collector's share). Two chunks' worth keeps the storage in use
// within what is reused.
const midPassFlush = 2048

// housekeepingEvery paces liveness checks, heartbeats and retention; with it
// a dead producer is reported within about 2 s.
const housekeepingEvery = time.Second

// maxTrackedCandidates bounds the ring files the consumer remembers that
// belong to no accepted producer (initialising or rejected). Anyone who can
// write the ring directory can create files; past the cap new files are not
// examined (agaobs_ring_candidates_untracked) until tracked ones go away.
const maxTrackedCandidates = 16384

// Directory-change wake-ups: a burst is served at once (producers starting
// together), a user creating and unlinking files in a loop costs one rescan
// per watchCoalesce.
const (
	watchCoalesce = 50 * time.Millisecond
	watchBurst    = 32
	// watchSettle gathers the events of one producer start (create and
	// rename of two rings) into one wake-up.
	watchSettle = 2 * time.Millisecond
	// watchedRescanFactor stretches ring_rescan_interval while inotify
	// works.
	watchedRescanFactor = 5
)

// Consumer discovers and drains the rings of one directory. Run, Close and
// the record callbacks belong to one goroutine; Rings, Ready and SetTunables
// are safe from any goroutine.
type Consumer struct {
	dir   string
	group int
	disp  *pipeline.Dispatcher
	state *state.Store
	proc  *procResolver
	log   *slog.Logger
	pid   uint32

	tun atomic.Pointer[Tunables]

	// mu guards the registry against concurrent readers (Rings); only the
	// consumer goroutine mutates it.
	mu        sync.RWMutex
	byFile    map[fileKey]*ringEntry
	producers map[string]*producer
	names     map[string]*producer
	active    []*ringEntry
	retiring  []*ringEntry

	wake      signal
	dirty     atomic.Bool
	rr        int
	more      bool
	passNow   int64
	sleepGen  uint32
	nextHouse time.Time
	nextScan  time.Time
	lastPass  atomic.Int64 // unix ns of the last pass: the liveness probe
	passes    atomic.Uint64
	dirErr    atomic.Pointer[string]
	doorbell  *reader
	watch     *reader
	ackNotify func()

	// Discovery state, owned by the consumer goroutine (read by Counters
	// under mu).
	direntBuf   []byte
	pathBuf     []byte
	scanGen     uint64
	candidates  int // tracked entries that belong to no producer
	untracked   int // ring files the last scan left unexamined (cap)
	rejects     *rejections
	checkErrors atomic.Uint64
	examined    atomic.Uint64 // ring files stat'ed by scans (tests)
	scans       atomic.Uint64
}

// Counters returns the consumer's counters. Safe from any goroutine.
func (c *Consumer) Counters() pipeline.ConsumerCounters {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.countersLocked()
}

func (c *Consumer) countersLocked() pipeline.ConsumerCounters {
	return pipeline.ConsumerCounters{CheckErrors: c.checkErrors.Load(), Rejected: c.rejects.totals(), Candidates: c.candidates, Untracked: c.untracked}
}

// New returns a Consumer. It touches nothing on disk until Run.
func New(opts Options) (*Consumer, error) {
	if opts.Dispatcher == nil {
		return nil, errors.New("rings: no dispatcher")
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	proc, err := newProcResolver(opts.ProcRoot)
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		dir: filepath.Clean(opts.Dir), group: opts.Group, disp: opts.Dispatcher, state: opts.State, proc: proc,
		log: opts.Logger, pid: uint32(os.Getpid()),
		byFile: map[fileKey]*ringEntry{}, producers: map[string]*producer{}, names: map[string]*producer{},
		wake: newSignal(), rejects: newRejections(), direntBuf: make([]byte, 32<<10),
	}
	c.ackNotify = c.wake.notify
	// Events the agent publishes reach the sinks at the next pass.
	opts.Dispatcher.SetWake(c.wake.notify)
	c.SetTunables(opts.Tunables)
	return c, nil
}

// SetTunables applies reloadable settings; the consumer picks them up at its
// next housekeeping tick.
func (c *Consumer) SetTunables(t Tunables) {
	t.fill()
	c.tun.Store(&t)
	c.wake.notify()
}

// LastPass returns when the consumer last completed a pass (for liveness).
func (c *Consumer) LastPass() time.Time { return time.Unix(0, c.lastPass.Load()) }

// Passes returns the number of passes so far (an idle consumer makes few).
func (c *Consumer) Passes() uint64 { return c.passes.Load() }

// DirError returns the last error reading the ring directory, or nil.
func (c *Consumer) DirError() error {
	if s := c.dirErr.Load(); s != nil && *s != "" {
		return errors.New(*s)
	}
	return nil
}

// Run consumes until ctx ends, then drains what is left (bounded) and
// returns. Call Close after the dispatcher has been closed.
func (c *Consumer) Run(ctx context.Context) error {
	if err := shm.EnsureDir(c.dir, c.group); err != nil {
		c.log.Error("ring directory unusable; retrying at each rescan", "dir", c.dir, "err", err)
	}
	c.startReaders()
	defer c.stopReaders()
	c.housekeeping(time.Now(), true)

	var timer sleepTimer
	if pt, err := newPollTimer(); err == nil {
		timer = pt
	} else {
		c.log.Warn("timerfd unavailable; polling on a runtime timer (about twice the wake-ups)", "err", err)
		timer = newRuntimeTimer()
	}
	defer timer.Close()
	var lastData, lastPass time.Time // the last pass that found data, the last pass
	var recent float64               // records in the last rateWindow, decayed exponentially
	for {
		if ctx.Err() != nil {
			c.finalDrain()
			return nil
		}
		now := time.Now()
		if !now.Before(c.nextHouse) || c.dirty.Load() {
			c.housekeeping(now, false)
		}
		t := c.tun.Load()
		n := c.pass()
		// The arrival rate counts every pass, those over a backlog too.
		if n > 0 {
			lastData = now
		}
		recent = recent*math.Exp(-float64(now.Sub(lastPass))/float64(rateWindow)) + float64(n)
		lastPass = now
		if c.more {
			// A ring has more than one pass's worth. Let the sink
			// goroutines take their batches before the next pass: with
			// GOMAXPROCS=1 they otherwise run only when the consumer
			// sleeps, and a backlog would overflow their queues. A sink
			// that makes no progress gets a few yields, never a wait.
			runtime.Gosched()
			for i := 0; i < 16 && c.disp.Pressure() > 0.5; i++ {
				runtime.Gosched()
			}
			continue
		}
		// Everything published was read. Wait for the next batch on the
		// timer while data comes often, else on the doorbell.
		perPoll := recent * float64(t.PollInterval) / float64(rateWindow)
		sleeping := n == 0 && (perPoll < sparsePerPoll || now.Sub(lastData) >= idleToSleep)
		if sleeping {
			if !c.armDoorbell() {
				continue // a tail moved between the pass and the flags
			}
			c.disp.Idle() // nothing lingers in a sink's queue for a sleep's length
			timer.After(min(t.IdleSleep, max(0, time.Until(c.nextHouse))))
		} else {
			// Busy: the timer ticks on by itself, so a poll costs no
			// re-arming. A tick that lands just after a wake-up pass
			// makes one early pass, which finds little.
			timer.Every(t.PollInterval)
		}
		select {
		case <-ctx.Done():
		case <-timer.C():
		case <-c.wake:
		}
		if sleeping {
			c.disarmDoorbell()
		}
	}
}

// armDoorbell stores a new sleep generation in every active ring, then
// re-reads the tails (format §5.3). Go atomics are sequentially consistent,
// so a producer that published before our flag store is seen here.
func (c *Consumer) armDoorbell() bool {
	if c.sleepGen++; c.sleepGen == 0 {
		c.sleepGen = 1
	}
	for _, e := range c.active {
		e.ring.SetSleeping(c.sleepGen)
	}
	for _, e := range c.active {
		if !e.ring.Caught() {
			c.disarmDoorbell()
			return false
		}
	}
	return true
}

func (c *Consumer) disarmDoorbell() {
	for _, e := range c.active {
		e.ring.SetSleeping(0)
	}
}

func (c *Consumer) startReaders() {
	// Both files can be written by any producer's uid: each reader wakes
	// the consumer at most once per gap, however fast it is poked.
	fd, err := openDoorbell(c.dir, c.group >= 0)
	if err == nil {
		c.doorbell, err = startReader(fd, c.wake, nil, rate.NewLimiter(rate.Every(c.tun.Load().PollInterval), 1), 0)
	}
	if err != nil {
		c.log.Warn("doorbell unavailable; polling only (idle latency up to ring_idle_sleep)", "err", err)
	}
	fd, err = openWatch(c.dir)
	if err == nil {
		c.watch, err = startReader(fd, c.wake, func([]byte) { c.dirty.Store(true) }, rate.NewLimiter(rate.Every(watchCoalesce), watchBurst), watchSettle)
	}
	if err != nil {
		c.log.Warn("inotify unavailable; discovering rings by rescan only", "err", err)
	}
}

func (c *Consumer) stopReaders() {
	if c.doorbell != nil {
		c.doorbell.Close()
		c.doorbell = nil
	}
	if c.watch != nil {
		c.watch.Close()
		c.watch = nil
	}
}

// pass polls every active ring once, round-robin from a rotating start so
// no ring is always first, and hands the decoded events to the dispatcher.
func (c *Consumer) pass() int {
	c.passNow = time.Now().UnixNano()
	c.more = false
	t := c.tun.Load()
	total := 0
	active, copied := c.active, false
	n := len(active)
	for i := 0; i < n; i++ {
		e := active[(c.rr+i)%n]
		limit := t.MaxPerPass
		if e.class == shm.ClassAudit {
			// The audit store is lossless: read no more than it can queue.
			limit = min(limit, c.disp.Room(pipeline.KindAudit))
		}
		if limit > 0 {
			res, err := e.ring.Poll(limit, e.onRecord)
			if err != nil {
				// quarantine removes e from c.active in place: finish
				// the pass over a copy.
				if !copied {
					active, copied = append([]*ringEntry(nil), active...), true
				}
				c.quarantine(e, err)
				continue
			}
			total += res.Records
			c.more = c.more || res.More
		} else if !e.ring.Caught() {
			c.more = true
		}
		// Hot: release what was decoded. Audit: release what is durable.
		e.ring.Commit()
		if c.disp.Unflushed() >= midPassFlush {
			c.disp.Flush()
			runtime.Gosched()
		}
	}
	c.rr++
	c.disp.Flush()
	c.lastPass.Store(c.passNow)
	c.passes.Add(1)
	return total
}

// recordFunc builds the Poll callback of one ring once, so passes do not
// allocate.
func (c *Consumer) recordFunc(e *ringEntry) func(*shm.Record) shm.Disposition {
	return func(rec *shm.Record) shm.Disposition {
		// Decoded straight into the dispatcher's shared storage: no copy.
		ev := c.disp.Reserve()
		if rec.Type == shm.TypeHello {
			id, err := pipeline.DecodeHello(rec, ev)
			if err != nil {
				return shm.Corrupt
			}
			id.Producer = e.prod.p.Identity().Producer // the header's name is authoritative
			e.prod.p.SetIdentity(id)
		} else if err := pipeline.Decode(rec, ev); err != nil {
			return shm.Corrupt
		}
		ev.Producer, ev.RecvNs, ev.Epoch = e.prod.p, c.passNow, e.epoch
		if e.class == shm.ClassAudit && ev.Kind == pipeline.KindAudit {
			cp := rec.Checkpoint
			ev.Ack = pipeline.NewAck(e.acker, pipeline.AckToken{cp.End, cp.Seq, cp.Lost, cp.Corrupt})
			c.disp.Commit()
			return shm.Pending
		}
		c.disp.Commit()
		return shm.Done
	}
}

func (c *Consumer) quarantine(e *ringEntry, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.state, e.reason = ringQuarantined, e.ring.Quarantined()
	c.removeActive(e)
	c.log.Error("ring quarantined", "path", e.key.path, "producer", e.prod.p.Name, "err", err)
	c.lifecycle(e.prod, pipeline.Lifecycle{Type: pipeline.RingQuarantined, Ring: e.key.path, Class: ringClass(e.class), Reason: e.reason})
}

// finalDrain reads what producers committed before shutdown, for at most
// two seconds.
func (c *Consumer) finalDrain() {
	// Rejections counted since their key's last summary reach the audit
	// trail before the agent stops.
	c.mu.Lock()
	for _, l := range c.rejects.due(time.Now().Add(rejectSummaryInterval)) {
		c.reportRejection(l)
	}
	c.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if c.pass() == 0 && !c.more {
			break
		}
	}
	c.disp.Flush()
}

// Close releases acknowledged audit space, stores every ring's head and
// unmaps the rings. Call it after the dispatcher is closed.
func (c *Consumer) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.byFile {
		if e.ring != nil {
			e.ring.Commit()
			_ = e.ring.Close()
			e.ring = nil
		}
	}
	c.active = nil
	return nil
}

func (c *Consumer) lifecycle(p *producer, l pipeline.Lifecycle) {
	ev := pipeline.Event{Kind: pipeline.KindLifecycle, Lifecycle: &l, TimeNs: time.Now().UnixNano()}
	ev.RecvNs = ev.TimeNs
	if p != nil {
		ev.Producer = p.p
	}
	c.disp.Add(ev)
}

// housekeeping rescans the directory when due, opens new rings, checks
// producer liveness, writes consumer heartbeats and applies retention.
func (c *Consumer) housekeeping(now time.Time, first bool) {
	t := c.tun.Load()
	c.nextHouse = now.Add(housekeepingEvery)
	if c.dirty.Swap(false) || !now.Before(c.nextScan) || first {
		every := t.RescanInterval
		if c.watch != nil {
			// inotify already scans on every change (and on a queue
			// overflow): the periodic scan is only a safety net, and a
			// directory of junk files makes each one cost milliseconds.
			every *= watchedRescanFactor
		}
		c.nextScan = now.Add(every)
		c.scan(now)
	}
	mono := shm.MonoNow()
	c.mu.Lock()
	defer c.disp.Flush()
	defer c.mu.Unlock()

	// New and initialising rings, in creation order so that name conflicts
	// resolve the same way after every restart.
	var opened []*ringEntry
	for _, e := range c.byFile {
		if e.state == ringPending {
			if c.open(e, now, t) {
				opened = append(opened, e)
			}
		}
	}
	sort.Slice(opened, func(i, j int) bool {
		a, b := opened[i].ring.Header(), opened[j].ring.Header()
		if a.CreateTimeNs != b.CreateTimeNs {
			return a.CreateTimeNs < b.CreateTimeNs
		}
		return opened[i].key.path < opened[j].key.path
	})
	live := c.liveByUID()
	for _, e := range opened {
		id, code, reason := c.accept(e, t)
		switch {
		case code == "" && reason != "":
			// Inconclusive (descriptor or memory exhaustion): look again
			// at the next housekeeping.
			c.log.Debug("ring acceptance deferred", "path", e.key.path, "err", reason)
			_ = e.ring.Close()
			e.ring = nil
			continue
		case code != "":
			c.reject(e, now, code, reason)
			continue
		}
		key := producerKey(id, e.ring.Header())
		if c.producers[key] == nil && live[id.RealUID] >= t.MaxProducersPerUID {
			c.reject(e, now, rejProducerLimit, fmt.Sprintf("uid %d already has %d live producers (ring_max_producers)", id.RealUID, live[id.RealUID]))
			continue
		}
		if c.producers[key] == nil {
			live[id.RealUID]++
		}
		c.register(e, id)
	}

	for _, p := range c.producers {
		c.checkProducer(p, now, mono, t)
	}
	c.trimEnded()
	c.retire(t.RemoveDead)
	// Rings turned away by the producer cap are looked at again once their
	// uid has room.
	live = c.liveByUID()
	for _, e := range c.byFile {
		if e.state == ringRejected && e.code == rejProducerLimit && live[e.fi.UID] < t.MaxProducersPerUID {
			e.state, e.code, e.reason = ringPending, "", ""
		}
	}
	for _, l := range c.rejects.due(now) {
		c.reportRejection(l)
	}
}

// maxEndedPerUID bounds the closed or dead producers of one uid kept for
// producer_retention: each holds series and windows in every sink, and a
// uid that starts and kills producers in a loop would otherwise make the
// agent hold rate × retention of them. Older ones are forgotten at once.
const maxEndedPerUID = 64

// trimEnded forgets the oldest ended producers of each uid beyond
// maxEndedPerUID. Called with c.mu held.
func (c *Consumer) trimEnded() {
	var byUID map[uint32][]*producer
	for _, p := range c.producers {
		if p.state != prodLive {
			if byUID == nil {
				byUID = map[uint32][]*producer{}
			}
			byUID[p.uid] = append(byUID[p.uid], p)
		}
	}
	for _, ps := range byUID {
		if len(ps) <= maxEndedPerUID {
			continue
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].endedAt.Before(ps[j].endedAt) })
		for _, p := range ps[:len(ps)-maxEndedPerUID] {
			c.forget(p, fmt.Sprintf("more than %d ended producers of uid %d", maxEndedPerUID, p.uid))
		}
	}
}

// liveByUID counts live producers per uid. Called with c.mu held.
func (c *Consumer) liveByUID() map[uint32]int {
	live := map[uint32]int{}
	for _, p := range c.producers {
		if p.state == prodLive {
			live[p.uid]++
		}
	}
	return live
}

// scan lists the directory and adds entries for new ring files. An
// unchanged (name, inode) costs a map lookup: no stat, no open, no log
// line. Files of no producer are tracked up to maxTrackedCandidates.
func (c *Consumer) scan(now time.Time) {
	c.scanGen++
	gen := c.scanGen
	var fresh []*ringEntry
	untracked := 0
	// Only the consumer goroutine writes byFile, so it reads it unlocked.
	room := maxTrackedCandidates - c.candidates
	err := readDirents(c.dir, c.direntBuf, func(d dirent) {
		if !isRingName(d.name) || (d.typ != unix.DT_REG && d.typ != unix.DT_UNKNOWN && d.typ != unix.DT_LNK) {
			return
		}
		// Look the file up without allocating its path: a rescan of a
		// directory of unchanged junk makes no garbage.
		c.pathBuf = append(append(c.pathBuf[:0], c.dir...), '/')
		c.pathBuf = append(c.pathBuf, d.name...)
		if e := c.byFile[fileKey{unsafe.String(unsafe.SliceData(c.pathBuf), len(c.pathBuf)), d.ino}]; e != nil {
			e.seenGen = gen
			return
		}
		path := string(c.pathBuf)
		if len(fresh) >= room {
			untracked++
			return
		}
		c.examined.Add(1)
		fi, err := shm.StatRing(path)
		if err != nil {
			return
		}
		k := fileKey{path, fi.Inode}
		if e := c.byFile[k]; e != nil { // replaced since getdents
			e.seenGen = gen
			return
		}
		fresh = append(fresh, &ringEntry{key: k, fi: fi, firstSeen: now, state: ringPending, seenGen: gen})
	})
	if err != nil {
		msg := err.Error()
		c.dirErr.Store(&msg)
		if errors.Is(err, unix.ENOENT) {
			_ = shm.EnsureDir(c.dir, c.group)
		}
		return
	}
	empty := ""
	c.dirErr.Store(&empty)
	c.mu.Lock()
	for _, e := range fresh {
		c.byFile[e.key] = e
	}
	c.candidates = 0
	for k, e := range c.byFile {
		if e.seenGen != gen {
			e.gone = true
			if e.state == ringRejected || e.state == ringPending || e.state == ringRetired {
				delete(c.byFile, k)
				continue
			}
		}
		if e.prod == nil && (e.state == ringRejected || e.state == ringPending) {
			c.candidates++
		}
	}
	c.untracked = untracked
	c.mu.Unlock()
	c.scans.Add(1)
	if untracked > 0 {
		c.log.Warn("ring directory holds more candidate files than the agent tracks; new ones wait", "tracked", c.candidates, "untracked", untracked, "limit", maxTrackedCandidates)
	}
}

// isRingName is shm.IsRingFileName on a directory entry's bytes.
func isRingName(name []byte) bool {
	return len(name) > 0 && name[0] != '.' && bytes.HasSuffix(name, []byte(".ring"))
}

// open maps a pending ring; it reports whether the ring is ready for
// acceptance. Called with c.mu held.
func (c *Consumer) open(e *ringEntry, now time.Time, t *Tunables) bool {
	if e.fi.Mode&0o002 != 0 {
		c.reject(e, now, rejWritable, fmt.Sprintf("writable by others (mode %04o)", e.fi.Mode))
		return false
	}
	r, fi, err := shm.OpenRing(e.key.path)
	var he *shm.HeaderError
	switch {
	case errors.As(err, &he) && he.Initialising:
		if now.Sub(e.firstSeen) > t.InitialiseLimit {
			c.reject(e, now, rejInitTimeout, "header never finished initialising")
		}
		return false
	case err != nil && transientErr(err):
		// Out of descriptors or memory: says nothing about the ring.
		return false
	case errors.Is(err, os.ErrNotExist):
		e.gone = true
		c.dirty.Store(true)
		return false
	case err != nil:
		// The path is the entry's own; keep only what went wrong (the
		// reason is stored per rejected file).
		c.reject(e, now, rejNotRing, strings.Clone(strings.TrimPrefix(err.Error(), "open ring "+e.key.path+": ")))
		return false
	case fi.Inode != e.key.inode:
		// Replaced between the scan and the open: the next scan sees it.
		r.Close()
		e.gone = true
		c.dirty.Store(true)
		return false
	}
	e.fi, e.ring, e.class = fi, r, r.Header().Class
	e.epoch, e.acker = r.Header().Epoch, &ringAcker{ring: r, notify: c.ackNotify}
	return true
}

// ringAcker acknowledges the audit records of one ring; the audit store
// calls it through pipeline.Ack from its own goroutine.
type ringAcker struct {
	ring   *shm.Ring
	notify func()
}

// Acknowledge implements pipeline.Acknowledger.
func (a *ringAcker) Acknowledge(t pipeline.AckToken) {
	a.ring.Ack(shm.Checkpoint{End: t[0], Seq: t[1], Lost: t[2], Corrupt: t[3]})
	a.notify() // release the space soon
}

// ringClass is the pipeline's name for a ring class.
func ringClass(c shm.Class) pipeline.RingClass {
	switch c {
	case shm.ClassHot:
		return pipeline.ClassHot
	case shm.ClassAudit:
		return pipeline.ClassAudit
	}
	return 0
}

// reject turns a ring away for good (until its file changes). Rejections
// are aggregated per (owner uid, code): a directory full of junk costs one
// log line and one audit record per key and minute. Called with c.mu held.
func (c *Consumer) reject(e *ringEntry, now time.Time, code, reason string) {
	if e.ring != nil {
		_ = e.ring.Close()
		e.ring = nil
	}
	e.state, e.code, e.reason = ringRejected, code, reason
	if l, ok := c.rejects.add(now, e.fi.UID, code, e.key.path, reason); ok {
		c.reportRejection(l)
	}
}

func (c *Consumer) reportRejection(l pipeline.Lifecycle) {
	c.log.Warn("ring rejected", "path", l.Ring, "reason", l.Reason, "uid", l.Details["uid"],
		"reason_code", l.Details["reason_code"], "count", l.Details["count"])
	c.lifecycle(nil, l)
}

// checkProducer advances one producer's lifecycle. Called with c.mu held.
func (c *Consumer) checkProducer(p *producer, now time.Time, mono int64, t *Tunables) {
	// A drained ring is no longer polled, so pass() no longer commits it;
	// audit records read in its last passes become durable after that.
	// Release their space as the store acknowledges them, not only at
	// retention or shutdown.
	for _, e := range p.rings {
		if e.state == ringDrained && e.ring != nil {
			e.ring.Commit()
		}
	}
	switch p.state {
	case prodClosed, prodDead:
		if now.Sub(p.endedAt) >= t.Retention {
			c.forget(p, "retention")
		}
		return
	}
	var newest int64
	allClosed := true
	for _, e := range p.rings {
		if e.ring == nil {
			continue
		}
		e.ring.SetConsumer(c.pid, mono)
		st := e.ring.Stats()
		newest = max(newest, st.HeartbeatMonoNs)
		if st.State != shm.StateClosed {
			allClosed = false
		}
	}
	if p.ending == prodLive {
		var lv liveness
		if !allClosed {
			var err error
			if lv, err = c.proc.check(p.p.HostPID, p.start); lv == procUnknown {
				// Not a verdict: a live producer must never be ended
				// because procfs could not be read (EMFILE, ENOMEM).
				c.checkErrors.Add(1)
				c.log.Debug("producer liveness check inconclusive; kept", "producer", p.p.Name, "err", err)
			}
		}
		switch {
		case allClosed:
			p.ending = prodClosed
		case lv == procGone:
			p.ending = prodDead
		default:
			stale := newest > 0 && time.Duration(mono-newest) > t.StaleAfter
			if stale != p.stale {
				p.stale = stale
				c.log.Warn("producer heartbeat", "producer", p.p.Name, "stale", stale, "age", time.Duration(mono-newest).Round(time.Millisecond))
			}
			return
		}
	}
	// Ending: finish each ring once everything up to its tail was read.
	done := true
	for _, e := range p.rings {
		if e.state != ringActive {
			continue
		}
		if !e.ring.Caught() {
			done = false
			continue
		}
		before := e.ring.Stats().Lost
		e.ring.Finish()
		e.ring.Commit()
		if lost := e.ring.Stats().Lost - before; lost > 0 && e.class == shm.ClassAudit {
			c.lifecycle(p, pipeline.Lifecycle{Type: pipeline.AuditGap, Ring: e.key.path, Class: ringClass(e.class), Lost: lost})
		}
		e.state = ringDrained
		c.removeActive(e)
	}
	if !done {
		return
	}
	p.state, p.endedAt = p.ending, now
	typ := pipeline.ProducerClosed
	if p.state == prodDead {
		typ = pipeline.ProducerDied
		c.log.Warn("producer died without closing its rings", "producer", p.p.Name, "host_pid", p.p.HostPID)
	} else {
		c.log.Info("producer closed", "producer", p.p.Name)
	}
	c.lifecycle(p, pipeline.Lifecycle{Type: typ})
}
