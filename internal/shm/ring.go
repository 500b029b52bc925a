package shm

import (
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Record is one record handed to a Poll callback. Body aliases the shared
// mapping and is valid only until the callback returns.
type Record struct {
	Type   RecordType
	Flags  uint16
	Seq    uint64
	TimeNs int64
	Body   []byte
	// Checkpoint is the consumer state just after this record; an audit
	// store passes it back to Ring.Ack once the record is durable.
	Checkpoint Checkpoint
}

// Checkpoint is a consistent consumer position: what a commit slot holds.
type Checkpoint struct {
	End     uint64 // position after the record (the head to release)
	Seq     uint64 // sequence number of the record ending at End
	Lost    uint64 // lost_total (sequence gaps) up to End
	Corrupt uint64 // corrupt_total up to End
}

// Disposition is what a Poll callback did with a record.
type Disposition uint8

// Dispositions.
const (
	// Done: the record needs no acknowledgement.
	Done Disposition = iota
	// Pending: the record was handed to a store that will call Ring.Ack
	// with its Checkpoint (audit rings).
	Pending
	// Corrupt: the body did not decode; it is counted in corrupt_total.
	Corrupt
)

// PollResult summarises one Poll pass.
type PollResult struct {
	Records int  // records handed to the callback
	More    bool // records remain before the tail loaded by this pass
}

// Ring is the consumer side of one ring (docs/ring-format.md §5.2) over a
// mapped file or any byte slice holding a whole ring. Poll, Commit, Finish
// and the consumer-block setters belong to one goroutine; Ack and Stats may
// be called from any goroutine.
//
// No method can be killed by the producer shrinking its file: a fault on
// the mapping, on any goroutine, marks the ring truncated (fault.go). From
// then on the mapping is never touched again, Poll quarantines the ring with
// the reason "truncated", Stats returns the last producer counters it read,
// and Commit and the setters do nothing.
type Ring struct {
	mem  []byte
	data []byte
	hdr  Header
	mask uint64

	// Consumer state, owned by the polling goroutine.
	read       uint64
	lastSeq    uint64
	lost       uint64
	corrupt    uint64
	unknown    uint64
	consumed   uint64
	pending    uint64 // audit records returned as Pending
	committed  Checkpoint
	quarantine string
	finished   bool

	ackMu  sync.Mutex
	acked  Checkpoint
	ackedN uint64

	stats ringStats
	close func() error

	// faulted is set by whichever goroutine faulted on the mapping (or saw
	// the file shrink); the polling goroutine turns it into the quarantine.
	faulted atomic.Bool
	// fileSize, if set, returns the current size of the mapped file, so
	// that a shrink is noticed even while no access would fault (OpenRing).
	fileSize func() (int64, error)

	// last holds the producer counters of the last Stats that read them,
	// served once the mapping is gone.
	lastMu sync.Mutex
	last   Stats
}

// ringStats mirrors consumer counters for readers on other goroutines.
type ringStats struct {
	consumed, lost, corrupt, unknown, read atomic.Uint64
}

// NewRing validates the header in mem and restores the consumer state from
// the consumer block. mem must be the whole ring (header and data); writes to
// it are visible to the producer. closeFn, if non-nil, is called by Close.
// A mapping whose file shrank under it gives an error wrapping errTruncated.
func NewRing(mem []byte, closeFn func() error) (*Ring, error) {
	if len(mem) < HeaderSize {
		return nil, &HeaderError{Reason: "file shorter than the header"}
	}
	r := &Ring{mem: mem, close: closeFn}
	err := r.open()
	if r.faulted.Load() {
		return nil, fmt.Errorf("ring header: %w", errTruncated)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// open is NewRing's work on the mapping, guarded against a shrinking file.
func (r *Ring) open() error {
	defer r.unguard(debug.SetPanicOnFault(true))
	mem := r.mem
	// Pairs with the producer's release store of the magic after the rest
	// of the header: once it is seen, the header fields are complete.
	if atomic.LoadUint64(r.u64(offMagic)) == 0 {
		return &HeaderError{Reason: "magic not yet written (ring initialising)", Initialising: true}
	}
	h, err := parseHeader(mem, int64(len(mem)))
	if err != nil {
		return err
	}
	r.hdr = h
	r.data = mem[h.HeaderSize : uint64(h.HeaderSize)+h.Capacity]
	r.mask = h.Capacity - 1

	gen := atomic.LoadUint64(r.u64(offCommitGen))
	cp := r.slot(gen & 1)
	tail := atomic.LoadUint64(r.u64(offTail))
	if cp.End%8 != 0 || cp.End > tail || tail-cp.End > h.Capacity {
		r.quarantine = fmt.Sprintf("consumer commit slot (head %d) inconsistent with tail %d", cp.End, tail)
	}
	r.committed, r.acked = cp, cp
	r.read, r.lastSeq, r.lost, r.corrupt = cp.End, cp.Seq, cp.Lost, cp.Corrupt
	// A previous agent may have died between the slot commit and the head
	// store; the slot wins.
	if atomic.LoadUint64(r.u64(offHead)) != cp.End && r.quarantine == "" {
		atomic.StoreUint64(r.u64(offHead), cp.End)
	}
	r.publishStats()
	r.readProducer(&r.last)
	return nil
}

func (r *Ring) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.mem[off])) }
func (r *Ring) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }

func (r *Ring) slot(i uint64) Checkpoint {
	base := offCommitSlot0 + int(i)*commitSlotLen
	return Checkpoint{
		End:     atomic.LoadUint64(r.u64(base)),
		Seq:     atomic.LoadUint64(r.u64(base + 8)),
		Lost:    atomic.LoadUint64(r.u64(base + 16)),
		Corrupt: atomic.LoadUint64(r.u64(base + 24)),
	}
}

// Header returns the validated, cached header.
func (r *Ring) Header() *Header { return &r.hdr }

// Quarantined returns the reason the ring was quarantined, or "". A ring
// whose file shrank under its mapping reports "truncated" as soon as any
// goroutine noticed, even before the next Poll.
func (r *Ring) Quarantined() string {
	if r.quarantine == "" && r.faulted.Load() {
		return QuarantineTruncated
	}
	return r.quarantine
}

// QuarantineTruncated is the quarantine reason of a ring whose file shrank
// under the agent's mapping.
const QuarantineTruncated = "truncated"

// checkFault turns a fault seen on any goroutine into the quarantine.
// Polling goroutine only.
func (r *Ring) checkFault() {
	if r.faulted.Load() && r.quarantine == "" {
		r.quarantine = QuarantineTruncated
	}
}

func (r *Ring) quarantinef(format string, a ...any) error {
	if r.quarantine == "" {
		r.quarantine = fmt.Sprintf(format, a...)
	}
	return r.quarantineErr()
}

// Poll hands at most max records between the read position and the tail to
// fn, in order. Padding, reserved types and records already consumed before
// an agent restart are skipped. A frame that violates the format is counted
// corrupt and the read position jumps to the tail loaded by this pass.
//
// fn runs with faults on the mapping recovered: a Body that vanishes because
// the producer shrank its file while fn reads it quarantines the ring
// ("truncated"), and Poll returns an error wrapping errQuarantined and
// errTruncated.
func (r *Ring) Poll(max int, fn func(*Record) Disposition) (PollResult, error) {
	r.checkFault()
	if r.quarantine != "" {
		return PollResult{}, r.quarantineErr()
	}
	res, err := r.poll(max, fn)
	if r.faulted.Load() {
		r.checkFault()
		// Records handed out before the fault stay counted.
		r.publishStats()
		return res, r.quarantineErr()
	}
	return res, err
}

func (r *Ring) quarantineErr() error {
	if r.quarantine == QuarantineTruncated {
		return fmt.Errorf("%s: %w (%w)", r.quarantine, errQuarantined, errTruncated)
	}
	return fmt.Errorf("%s: %w", r.quarantine, errQuarantined)
}

func (r *Ring) poll(max int, fn func(*Record) Disposition) (res PollResult, err error) {
	defer r.unguard(debug.SetPanicOnFault(true))
	// Acquire load, pairs with the producer's release store of the tail
	// after writing the records (format §5.1 step 5). Read once per pass.
	tail := atomic.LoadUint64(r.u64(offTail))
	if tail == r.read {
		return PollResult{}, nil
	}
	if tail < r.read {
		return PollResult{}, r.quarantinef("tail %d went backwards (read position %d)", tail, r.read)
	}
	if tail-r.committed.End > r.hdr.Capacity {
		return PollResult{}, r.quarantinef("tail %d is more than capacity ahead of head %d (producer overwrote unread data)", tail, r.committed.End)
	}
	// last_seq is stored before the tail, so every visible record has a
	// sequence number ≤ this value; larger ones are corrupt.
	maxSeq := atomic.LoadUint64(r.u64(offLastSeq))
	le := binary.LittleEndian
	capacity := r.hdr.Capacity
	maxLen := uint64(r.hdr.MaxRecordLen)
	var rec Record
	for r.read < tail {
		if res.Records >= max {
			res.More = true
			break
		}
		off := r.read & r.mask
		length := uint64(le.Uint32(r.data[off:]))
		typ := RecordType(le.Uint16(r.data[off+4:]))
		if typ == typePadding {
			if length != capacity-off || r.read+length > tail {
				r.corruptFrame(tail)
				break
			}
			r.read += length
			continue
		}
		size := align8(length)
		if length < RecordHeaderLen || length > maxLen || off+size > capacity || r.read+size > tail {
			r.corruptFrame(tail)
			break
		}
		seq := le.Uint64(r.data[off+8:])
		if seq > maxSeq || seq == 0 {
			r.corruptFrame(tail)
			break
		}
		r.read += size
		if seq <= r.lastSeq {
			// Consumed before a restart whose head store did not land.
			continue
		}
		if seq > r.lastSeq+1 {
			r.lost += seq - r.lastSeq - 1
		}
		r.lastSeq = seq
		switch {
		case typ >= droppedTypes:
			r.corrupt++
			continue
		case typ > maxKnownType:
			r.unknown++
			continue
		}
		// Field by field: a composite literal is built on the stack with
		// narrow stores and copied out in 16-byte loads, which cannot be
		// forwarded from those stores (about 7 ns a record, perf annotate).
		rec.Type, rec.Flags = typ, le.Uint16(r.data[off+6:])
		rec.Seq, rec.TimeNs = seq, int64(le.Uint64(r.data[off+16:]))
		rec.Body = r.data[off+RecordHeaderLen : off+length]
		rec.Checkpoint.End, rec.Checkpoint.Seq = r.read, seq
		rec.Checkpoint.Lost, rec.Checkpoint.Corrupt = r.lost, r.corrupt
		res.Records++
		switch fn(&rec) {
		case Pending:
			r.pending++
		case Corrupt:
			r.corrupt++
			continue
		}
		r.consumed++
	}
	r.publishStats()
	return res, nil
}

// corruptFrame counts one corrupt frame and resumes at the tail, where the
// producer's next record will start.
func (r *Ring) corruptFrame(tail uint64) {
	r.corrupt++
	// Records in the skipped span still advance the producer's sequence;
	// the gap is counted as lost when the next record arrives.
	r.read = tail
}

// Finish accounts for records the producer dropped after its last committed
// one. Call it once the producer is closed or dead and Poll has read up to
// the tail. It is idempotent.
func (r *Ring) Finish() {
	if r.finished || r.quarantine != "" || r.faulted.Load() {
		return
	}
	defer r.unguard(debug.SetPanicOnFault(true))
	if atomic.LoadUint64(r.u64(offTail)) != r.read {
		return
	}
	if last := atomic.LoadUint64(r.u64(offLastSeq)); last > r.lastSeq {
		r.lost += last - r.lastSeq
		r.lastSeq = last
	}
	r.finished = true
	r.publishStats()
}

// Ack reports that every record up to cp.End is durable. Safe from any
// goroutine; acks must arrive in record order.
func (r *Ring) Ack(cp Checkpoint) {
	r.ackMu.Lock()
	if cp.End > r.acked.End {
		r.acked = cp
	}
	r.ackedN++
	r.ackMu.Unlock()
}

// Commit releases ring space: a hot ring up to the read position, an audit
// ring up to the last acknowledged record (or the read position once every
// Pending record is acknowledged). It returns the released checkpoint.
func (r *Ring) Commit() Checkpoint {
	if r.quarantine != "" || r.faulted.Load() {
		return r.committed
	}
	target := Checkpoint{End: r.read, Seq: r.lastSeq, Lost: r.lost, Corrupt: r.corrupt}
	if r.hdr.Class == ClassAudit {
		r.ackMu.Lock()
		acked, ackedN := r.acked, r.ackedN
		r.ackMu.Unlock()
		if ackedN != r.pending {
			target = acked
		}
	}
	if target == r.committed || target.End < r.committed.End {
		return r.committed
	}
	if r.storeCommit(target) {
		r.committed = target
	}
	return r.committed
}

// storeCommit writes target to the free commit slot and releases up to it;
// false when the mapping faulted.
func (r *Ring) storeCommit(target Checkpoint) (ok bool) {
	defer r.unguard(debug.SetPanicOnFault(true))
	gen := atomic.LoadUint64(r.u64(offCommitGen)) + 1
	base := offCommitSlot0 + int(gen&1)*commitSlotLen
	atomic.StoreUint64(r.u64(base), target.End)
	atomic.StoreUint64(r.u64(base+8), target.Seq)
	atomic.StoreUint64(r.u64(base+16), target.Lost)
	atomic.StoreUint64(r.u64(base+24), target.Corrupt)
	// The generation flips the valid slot in one store; head follows, and
	// NewRing repairs head if we die in between.
	atomic.StoreUint64(r.u64(offCommitGen), gen)
	atomic.StoreUint64(r.u64(offHead), target.End)
	return true
}

// Pending reports audit records handed out and not yet acknowledged.
func (r *Ring) Pending() uint64 {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	return r.pending - r.ackedN
}

func (r *Ring) publishStats() {
	r.stats.consumed.Store(r.consumed)
	r.stats.lost.Store(r.lost)
	r.stats.corrupt.Store(r.corrupt)
	r.stats.unknown.Store(r.unknown)
	r.stats.read.Store(r.read)
}

// Caught reports whether the consumer has read everything published. A
// truncated ring is never caught up, so that the consumer polls it (and
// Poll reports the quarantine) rather than draining it as finished.
func (r *Ring) Caught() (caught bool) {
	if r.faulted.Load() {
		return false
	}
	defer r.unguard(debug.SetPanicOnFault(true))
	return atomic.LoadUint64(r.u64(offTail)) == r.read
}

// SetSleeping stores the consumer's sleep generation (0 = awake).
func (r *Ring) SetSleeping(gen uint32) {
	if r.faulted.Load() {
		return
	}
	defer r.unguard(debug.SetPanicOnFault(true))
	atomic.StoreUint32(r.u32(offConsumerSleeping), gen)
}

// SetConsumer stores the consumer pid and heartbeat. The consumer calls it
// about once a second, so it also checks that the file still has the
// mapped size: a producer that shrinks an idle ring is noticed here, before
// an access would fault.
func (r *Ring) SetConsumer(pid uint32, monoNs int64) {
	if r.faulted.Load() {
		return
	}
	if r.fileSize != nil {
		if size, err := r.fileSize(); err == nil && size < int64(len(r.mem)) {
			r.faulted.Store(true)
			return
		}
	}
	defer r.unguard(debug.SetPanicOnFault(true))
	atomic.StoreUint32(r.u32(offConsumerPID), pid)
	atomic.StoreUint64(r.u64(offConsumerHeartbeat), uint64(monoNs))
}

// Stats is a point-in-time view of a ring's counters.
type Stats struct {
	Tail, Head, ReadPos           uint64
	LastSeq, Written, Dropped     uint64
	Lost, Corrupt, Unknown        uint64
	Consumed                      uint64 // records delivered by this Ring value
	HeartbeatMonoNs, ClosedTimeNs int64
	State                         State
	Capacity                      uint64
	FillRatio                     float64
	DroppedByType                 [maxKnownType + 1]uint64
}

// Stats reads the producer and consumer counters. Safe from any goroutine.
// Once the ring is truncated the producer counters are the last ones read.
func (r *Ring) Stats() Stats {
	var s Stats
	if !r.faulted.Load() && r.readProducer(&s) {
		r.lastMu.Lock()
		r.last = s
		r.lastMu.Unlock()
	} else {
		r.lastMu.Lock()
		s = r.last
		r.lastMu.Unlock()
	}
	s.ReadPos = r.stats.read.Load()
	s.Lost = r.stats.lost.Load()
	s.Corrupt = r.stats.corrupt.Load()
	s.Unknown = r.stats.unknown.Load()
	s.Consumed = r.stats.consumed.Load()
	s.Capacity = r.hdr.Capacity
	s.FillRatio = 0
	if s.Tail >= s.Head && s.Tail-s.Head <= s.Capacity && s.Capacity > 0 {
		s.FillRatio = float64(s.Tail-s.Head) / float64(s.Capacity)
	}
	return s
}

// readProducer loads the header counters into s; false when the mapping
// faulted (s is then partly filled and must be discarded).
func (r *Ring) readProducer(s *Stats) (ok bool) {
	defer r.unguard(debug.SetPanicOnFault(true))
	s.Tail = atomic.LoadUint64(r.u64(offTail))
	s.Head = atomic.LoadUint64(r.u64(offHead))
	s.LastSeq = atomic.LoadUint64(r.u64(offLastSeq))
	s.Written = atomic.LoadUint64(r.u64(offEventsWritten))
	s.Dropped = atomic.LoadUint64(r.u64(offDroppedTotal))
	s.HeartbeatMonoNs = int64(atomic.LoadUint64(r.u64(offHeartbeat)))
	s.ClosedTimeNs = int64(atomic.LoadUint64(r.u64(offClosedTime)))
	s.State = State(atomic.LoadUint32(r.u32(offState)))
	for i := range s.DroppedByType {
		s.DroppedByType[i] = atomic.LoadUint64(r.u64(offDroppedByType + 8*i))
	}
	return true
}

// Close releases the mapping. The Ring must not be used afterwards.
func (r *Ring) Close() error {
	if r.close == nil {
		return nil
	}
	err := r.close()
	r.close = nil
	return err
}
