package shm

import (
	"encoding/binary"
	"fmt"
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
}

// ringStats mirrors consumer counters for readers on other goroutines.
type ringStats struct {
	consumed, lost, corrupt, unknown, read atomic.Uint64
}

// NewRing validates the header in mem and restores the consumer state from
// the consumer block. mem must be the whole ring (header and data); writes to
// it are visible to the producer. closeFn, if non-nil, is called by Close.
func NewRing(mem []byte, closeFn func() error) (*Ring, error) {
	if len(mem) < HeaderSize {
		return nil, &HeaderError{Reason: "file shorter than the header"}
	}
	r := &Ring{mem: mem, close: closeFn}
	// Pairs with the producer's release store of the magic after the rest
	// of the header: once it is seen, the header fields are complete.
	if atomic.LoadUint64(r.u64(offMagic)) == 0 {
		return nil, &HeaderError{Reason: "magic not yet written (ring initialising)", Initialising: true}
	}
	h, err := ParseHeader(mem, int64(len(mem)))
	if err != nil {
		return nil, err
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
	return r, nil
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

// Quarantined returns the reason the ring was quarantined, or "".
func (r *Ring) Quarantined() string { return r.quarantine }

func (r *Ring) quarantinef(format string, a ...any) error {
	if r.quarantine == "" {
		r.quarantine = fmt.Sprintf(format, a...)
	}
	return fmt.Errorf("%s: %w", r.quarantine, ErrQuarantined)
}

// Poll hands at most max records between the read position and the tail to
// fn, in order. Padding, reserved types and records already consumed before
// an agent restart are skipped. A frame that violates the format is counted
// corrupt and the read position jumps to the tail loaded by this pass.
func (r *Ring) Poll(max int, fn func(*Record) Disposition) (PollResult, error) {
	if r.quarantine != "" {
		return PollResult{}, fmt.Errorf("%s: %w", r.quarantine, ErrQuarantined)
	}
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
	var res PollResult
	var rec Record
	for r.read < tail {
		if res.Records >= max {
			res.More = true
			break
		}
		off := r.read & r.mask
		length := uint64(le.Uint32(r.data[off:]))
		typ := RecordType(le.Uint16(r.data[off+4:]))
		if typ == TypePadding {
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
		case typ >= DroppedTypes:
			r.corrupt++
			continue
		case typ > maxKnownType:
			r.unknown++
			continue
		}
		rec = Record{
			Type:       typ,
			Flags:      le.Uint16(r.data[off+6:]),
			Seq:        seq,
			TimeNs:     int64(le.Uint64(r.data[off+16:])),
			Body:       r.data[off+RecordHeaderLen : off+length],
			Checkpoint: Checkpoint{End: r.read, Seq: seq, Lost: r.lost, Corrupt: r.corrupt},
		}
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
	if r.finished || r.quarantine != "" {
		return
	}
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
	if r.quarantine != "" {
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
	r.committed = target
	return target
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

// Caught reports whether the consumer has read everything published.
func (r *Ring) Caught() bool { return atomic.LoadUint64(r.u64(offTail)) == r.read }

// SetSleeping stores the consumer's sleep generation (0 = awake).
func (r *Ring) SetSleeping(gen uint32) { atomic.StoreUint32(r.u32(offConsumerSleeping), gen) }

// SetConsumer stores the consumer pid and heartbeat.
func (r *Ring) SetConsumer(pid uint32, monoNs int64) {
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
func (r *Ring) Stats() Stats {
	s := Stats{
		Tail:            atomic.LoadUint64(r.u64(offTail)),
		Head:            atomic.LoadUint64(r.u64(offHead)),
		ReadPos:         r.stats.read.Load(),
		LastSeq:         atomic.LoadUint64(r.u64(offLastSeq)),
		Written:         atomic.LoadUint64(r.u64(offEventsWritten)),
		Dropped:         atomic.LoadUint64(r.u64(offDroppedTotal)),
		Lost:            r.stats.lost.Load(),
		Corrupt:         r.stats.corrupt.Load(),
		Unknown:         r.stats.unknown.Load(),
		Consumed:        r.stats.consumed.Load(),
		HeartbeatMonoNs: int64(atomic.LoadUint64(r.u64(offHeartbeat))),
		ClosedTimeNs:    int64(atomic.LoadUint64(r.u64(offClosedTime))),
		State:           State(atomic.LoadUint32(r.u32(offState))),
		Capacity:        r.hdr.Capacity,
	}
	for i := range s.DroppedByType {
		s.DroppedByType[i] = atomic.LoadUint64(r.u64(offDroppedByType + 8*i))
	}
	if s.Tail >= s.Head && s.Tail-s.Head <= s.Capacity {
		s.FillRatio = float64(s.Tail-s.Head) / float64(s.Capacity)
	}
	return s
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
