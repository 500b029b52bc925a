package shm

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Default ring sizes (config keys ring_hot_bytes, ring_audit_bytes) and the
// audit ring's bounded wait (ring_audit_wait_us).
const (
	defaultHotBytes   = 4 << 20
	defaultAuditBytes = 1 << 20
	defaultAuditWait  = 200 * time.Microsecond
	// defaultMaxRecordLen caps the default max_record_len for big rings.
	defaultMaxRecordLen = 1 << 20
)

// WriterOptions configures a Writer. Zero fields take the documented
// defaults; the process fields default to the calling process.
type WriterOptions struct {
	Class Class
	// Capacity of the data area: a power of two ≥ 4096. Default 4 MiB for
	// hot rings, 1 MiB for audit rings.
	Capacity uint64
	// MaxRecordLen defaults to min(Capacity/8, 1 MiB).
	MaxRecordLen uint32
	Identity     Identity
	Instance     uint32
	// AuditWait bounds how long an audit ring waits for space. Default
	// 200µs; negative means no wait.
	AuditWait time.Duration
	// Epoch defaults to a random non-zero value.
	Epoch uint64
	// CreateTimeNs defaults to now.
	CreateTimeNs int64
	// PID, PIDNSInode and StartTimeTicks default to this process's values.
	PID            uint32
	PIDNSInode     uint64
	StartTimeTicks uint64
	// MonoNow returns CLOCK_MONOTONIC ns for heartbeats; default monoNow.
	MonoNow func() int64
	// Doorbell is poked when the consumer sleeps (format §5.3); nil
	// disables poking.
	Doorbell Doorbell
}

// Doorbell wakes a sleeping consumer. Poke must not block.
type Doorbell interface{ Poke() }

func (o *WriterOptions) fill() error {
	if o.Class != ClassHot && o.Class != ClassAudit {
		return fmt.Errorf("writer: unknown ring class %d", o.Class)
	}
	if o.Capacity == 0 {
		o.Capacity = defaultHotBytes
		if o.Class == ClassAudit {
			o.Capacity = defaultAuditBytes
		}
	}
	if o.Capacity < minCapacity || o.Capacity&(o.Capacity-1) != 0 {
		return fmt.Errorf("writer: capacity %d is not a power of two ≥ %d", o.Capacity, minCapacity)
	}
	if o.MaxRecordLen == 0 {
		o.MaxRecordLen = uint32(min(o.Capacity/8, defaultMaxRecordLen))
	}
	if o.MaxRecordLen%8 != 0 || o.MaxRecordLen < minMaxRecordLen || uint64(o.MaxRecordLen) > o.Capacity/8 {
		return fmt.Errorf("writer: max record length %d outside [%d, capacity/8]", o.MaxRecordLen, minMaxRecordLen)
	}
	if o.AuditWait == 0 {
		o.AuditWait = defaultAuditWait
	}
	if o.Epoch == 0 {
		var b [8]byte
		for o.Epoch == 0 {
			if _, err := rand.Read(b[:]); err != nil {
				return fmt.Errorf("writer: epoch: %w", err)
			}
			o.Epoch = binary.LittleEndian.Uint64(b[:])
		}
	}
	if o.CreateTimeNs == 0 {
		o.CreateTimeNs = time.Now().UnixNano()
	}
	if o.MonoNow == nil {
		o.MonoNow = monoNow
	}
	if o.Identity.Producer == "" {
		return errors.New("writer: identity has no producer name")
	}
	if o.Identity.SchemaVersion == 0 {
		o.Identity.SchemaVersion = schemaVersion
	}
	o.Identity.Instance = int(o.Instance)
	return nil
}

// Writer is the producer side of one ring. It is safe for concurrent use:
// callers are serialised by a mutex, as the format requires.
type Writer struct {
	mu        sync.Mutex
	mem       []byte
	data      []byte
	opts      WriterOptions
	mask      uint64
	tail      uint64
	headCache uint64
	seq       uint64
	written   uint64
	dropped   uint64
	auditLost uint64
	lastPoke  uint32
	// pendingTotal is the span (padding + record) of the reserved record.
	pendingTotal uint64
	closed       bool
	path         string
	release      func() error
}

// NewBufferWriter initialises a ring in buf (HeaderSize + Capacity bytes,
// zeroed), writes the HELLO record and then the magic. CreateWriter is the
// file-backed variant.
func NewBufferWriter(buf []byte, opts WriterOptions) (*Writer, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	idJSON, err := json.Marshal(opts.Identity)
	if err != nil {
		return nil, fmt.Errorf("writer: identity: %w", err)
	}
	return newBufferWriter(buf, opts, idJSON)
}

// newBufferWriterRawIdentity is NewBufferWriter with pre-encoded identity
// JSON, so test vectors can pin its exact bytes.
func newBufferWriterRawIdentity(buf []byte, opts WriterOptions, idJSON []byte) (*Writer, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	return newBufferWriter(buf, opts, idJSON)
}

func newBufferWriter(buf []byte, opts WriterOptions, idJSON []byte) (*Writer, error) {
	if uint64(len(buf)) != HeaderSize+opts.Capacity {
		return nil, fmt.Errorf("writer: buffer is %d bytes, want %d", len(buf), HeaderSize+opts.Capacity)
	}
	if len(idJSON) > maxIdentityLen {
		return nil, fmt.Errorf("writer: identity is %d bytes, max %d", len(idJSON), maxIdentityLen)
	}
	w := &Writer{mem: buf, data: buf[HeaderSize:], opts: opts, mask: opts.Capacity - 1}
	h := Header{
		VersionMajor: versionMajor, VersionMinor: versionMinor, HeaderSize: HeaderSize,
		Class: opts.Class, Capacity: opts.Capacity, MaxRecordLen: opts.MaxRecordLen,
		Epoch: opts.Epoch, CreateTimeNs: opts.CreateTimeNs, PID: opts.PID, Instance: opts.Instance,
		PIDNSInode: opts.PIDNSInode, StartTimeTicks: opts.StartTimeTicks,
		SchemaVersion: schemaVersion, IdentityJSON: idJSON,
	}
	encodeHeader(buf, &h)
	atomic.StoreUint32(w.u32(offState), uint32(stateRunning))
	w.Heartbeat()
	if err := w.Emit(TypeHello, 0, opts.CreateTimeNs, idJSON); err != nil {
		return nil, fmt.Errorf("writer: hello: %w", err)
	}
	// Release store: the header is complete before a reader can see the
	// magic (format §2.1).
	atomic.StoreUint64(w.u64(offMagic), magic)
	return w, nil
}

func (w *Writer) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&w.mem[off])) }
func (w *Writer) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&w.mem[off])) }

// Epoch returns the ring epoch.
func (w *Writer) Epoch() uint64 { return w.opts.Epoch }

// reserve returns the body slice of a new record of the given length, with
// its header written, or ok=false when the record was dropped. Called with
// w.mu held.
func (w *Writer) reserve(t RecordType, flags uint16, timeNs int64, length uint32) (body []byte, ok bool) {
	capacity := w.opts.Capacity
	need := align8(uint64(length))
	off := w.tail & w.mask
	var pad uint64
	if off+need > capacity {
		pad = capacity - off
	}
	total := pad + need
	if w.tail+total-w.headCache > capacity {
		// Acquire load, pairs with the consumer's release of head.
		w.headCache = atomic.LoadUint64(w.u64(offHead))
		if w.tail+total-w.headCache > capacity && !w.waitForSpace(total) {
			w.seq++
			w.dropped++
			atomic.StoreUint64(w.u64(offLastSeq), w.seq)
			atomic.StoreUint64(w.u64(offDroppedTotal), w.dropped)
			p := w.u64(offDroppedByType + 8*int(t))
			atomic.StoreUint64(p, atomic.LoadUint64(p)+1)
			return nil, false
		}
	}
	le := binary.LittleEndian
	if pad > 0 {
		le.PutUint32(w.data[off:], uint32(pad))
		le.PutUint16(w.data[off+4:], uint16(typePadding))
		le.PutUint16(w.data[off+6:], 0)
		off = 0
	}
	w.seq++
	putRecordHeader(w.data[off:], length, t, flags, w.seq, timeNs)
	w.pendingTotal = total
	return w.data[off+RecordHeaderLen : off+uint64(length)], true
}

// waitForSpace implements the audit ring's bounded wait (format §5.1 step
// 3). Hot rings never wait.
func (w *Writer) waitForSpace(total uint64) bool {
	if w.opts.Class != ClassAudit || w.opts.AuditWait < 0 {
		return false
	}
	w.poke(true)
	deadline := time.Now().Add(w.opts.AuditWait)
	for time.Now().Before(deadline) {
		runtime.Gosched()
		w.headCache = atomic.LoadUint64(w.u64(offHead))
		if w.tail+total-w.headCache <= w.opts.Capacity {
			return true
		}
	}
	return false
}

// commit publishes the record reserved last. Called with w.mu held.
func (w *Writer) commit() {
	w.written++
	w.tail += w.pendingTotal
	atomic.StoreUint64(w.u64(offLastSeq), w.seq)
	atomic.StoreUint64(w.u64(offEventsWritten), w.written)
	// Release store: the commit point (format §5.1 step 5).
	atomic.StoreUint64(w.u64(offTail), w.tail)
	w.poke(false)
}

// poke rings the doorbell when the consumer sleeps and this writer has not
// poked that sleep generation yet (format §5.3). force pokes regardless of
// the generation (a waiting audit writer).
func (w *Writer) poke(force bool) {
	if w.opts.Doorbell == nil {
		return
	}
	gen := atomic.LoadUint32(w.u32(offConsumerSleeping))
	if gen == 0 || (gen == w.lastPoke && !force) {
		return
	}
	w.lastPoke = gen
	w.opts.Doorbell.Poke()
}

// Emit appends one record with a raw body. It returns ErrFull when the
// record was dropped, errTooLarge when it cannot fit max_record_len.
func (w *Writer) Emit(t RecordType, flags uint16, timeNs int64, body []byte) error {
	if uint64(len(body))+RecordHeaderLen > uint64(w.opts.MaxRecordLen) {
		return errTooLarge
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	dst, ok := w.reserve(t, flags, timeNs, uint32(len(body))+RecordHeaderLen)
	if !ok {
		return ErrFull
	}
	copy(dst, body)
	w.commit()
	return nil
}

// EmitForward appends a FORWARD record without allocating.
func (w *Writer) EmitForward(timeNs int64, f *Forward) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	dst, ok := w.reserve(TypeForward, 0, timeNs, RecordHeaderLen+ForwardBodyLen)
	if !ok {
		return ErrFull
	}
	PutForward(dst, f)
	w.commit()
	return nil
}

// EmitRetrieval appends a RETRIEVAL record; ids that do not fit are left
// out and the record is flagged truncated.
func (w *Writer) EmitRetrieval(timeNs int64, r *Retrieval, scores []float64, ids []string) error {
	var flags uint16
	maxBody := int(w.opts.MaxRecordLen) - RecordHeaderLen
	if retrievalFixedLen+8*len(scores) > maxBody || len(scores) > 0xffff {
		return errTooLarge
	}
	for RetrievalBodyLen(len(scores), ids) > maxBody || len(ids) > 0xffff {
		ids = ids[:len(ids)-1]
		flags |= flagTruncated
	}
	n := RetrievalBodyLen(len(scores), ids)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	dst, ok := w.reserve(TypeRetrieval, flags, timeNs, uint32(RecordHeaderLen+n))
	if !ok {
		return ErrFull
	}
	PutRetrieval(dst, r, scores, ids)
	w.commit()
	return nil
}

// EmitAudit appends an AUDIT record carrying the JSON object obj (the
// aga-core audit payload). lost_before is maintained by the writer. An
// object too large for the ring is stored with its details replaced by a
// truncation marker.
func (w *Writer) EmitAudit(timeNs int64, obj []byte) error {
	var flags uint16
	if 8+len(obj)+RecordHeaderLen > int(w.opts.MaxRecordLen) {
		t, err := truncateAudit(obj)
		if err != nil {
			return err
		}
		obj, flags = t, flagTruncated
		if 8+len(obj)+RecordHeaderLen > int(w.opts.MaxRecordLen) {
			return errTooLarge
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	dst, ok := w.reserve(TypeAudit, flags, timeNs, uint32(RecordHeaderLen+8+len(obj)))
	if !ok {
		w.auditLost++
		return ErrFull
	}
	binary.LittleEndian.PutUint64(dst, w.auditLost)
	copy(dst[8:], obj)
	w.auditLost = 0
	w.commit()
	return nil
}

func truncateAudit(obj []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, fmt.Errorf("audit object: %w", err)
	}
	m["details"] = json.RawMessage(fmt.Sprintf(`{"_truncated":true,"_original_bytes":%d}`, len(obj)))
	return json.Marshal(m)
}

// EmitStatus appends a STATUS snapshot (JSON object).
func (w *Writer) EmitStatus(timeNs int64, obj []byte) error {
	return w.Emit(TypeStatus, 0, timeNs, obj)
}

// Heartbeat stores the producer heartbeat (CLOCK_MONOTONIC).
func (w *Writer) Heartbeat() {
	atomic.StoreUint64(w.u64(offHeartbeat), uint64(w.opts.MonoNow()))
}

// WriterStats are the producer's own counters.
type WriterStats struct {
	Tail, LastSeq, Written, Dropped uint64
}

// Stats returns the producer counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WriterStats{Tail: w.tail, LastSeq: w.seq, Written: w.written, Dropped: w.dropped}
}

// markClosed marks the ring closed (format §5.1) without releasing it.
func (w *Writer) markClosed(timeNs int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	atomic.StoreUint64(w.u64(offClosedTime), uint64(timeNs))
	atomic.StoreUint32(w.u32(offState), uint32(StateClosed))
	w.poke(true)
}

// Close marks the ring closed and releases the mapping. The file stays for
// the agent to drain.
func (w *Writer) Close() error {
	w.markClosed(time.Now().UnixNano())
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.release == nil {
		return nil
	}
	err := w.release()
	w.release = nil
	return err
}
