package shm

import (
	"encoding/binary"
	"fmt"
	"math"
)

// RecordType is the type field of a record header.
type RecordType uint16

// Record types (docs/ring-format.md §4). 7–63 are reserved and skipped by
// readers; 64 and above are corrupt.
const (
	typePadding   RecordType = 0
	TypeHello     RecordType = 1
	TypeStatus    RecordType = 2
	TypeForward   RecordType = 3
	TypeRetrieval RecordType = 4
	TypeAudit     RecordType = 5
	TypeEvent     RecordType = 6
	maxKnownType             = TypeEvent
)

var typeNames = [...]string{"padding", "hello", "status", "forward", "retrieval", "audit", "event"}

func (t RecordType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// Record flags.
const (
	// flagTruncated marks a body cut to fit max_record_len.
	flagTruncated uint16 = 1 << 0
)

// Forward field bits (docs/ring-format.md §4.1).
const (
	FwdApplied    uint32 = 1 << 0
	FwdHasGate    uint32 = 1 << 1
	FwdHasEntropy uint32 = 1 << 2
	FwdHasLatency uint32 = 1 << 3
	FwdHasLayer   uint32 = 1 << 4
)

// ForwardBodyLen is the fixed FORWARD body length.
const ForwardBodyLen = 32

// Forward is the decoded body of an aga-core forward event.
type Forward struct {
	GateMean    float64
	EntropyMean float64
	LatencyUs   float64
	Layer       int32
	Fields      uint32
}

// Applied reports aga_applied.
func (f *Forward) Applied() bool { return f.Fields&FwdApplied != 0 }

// Has reports whether a FwdHas* bit is set.
func (f *Forward) Has(bit uint32) bool { return f.Fields&bit != 0 }

// PutForward encodes f into b, which must hold ForwardBodyLen bytes.
func PutForward(b []byte, f *Forward) {
	le := binary.LittleEndian
	_ = b[ForwardBodyLen-1]
	le.PutUint64(b[0:], math.Float64bits(f.GateMean))
	le.PutUint64(b[8:], math.Float64bits(f.EntropyMean))
	le.PutUint64(b[16:], math.Float64bits(f.LatencyUs))
	le.PutUint32(b[24:], uint32(f.Layer))
	le.PutUint32(b[28:], f.Fields)
}

// ForwardValues decodes a FORWARD body into separate values, which the
// consumer's hot path stores one by one (a returned struct is copied
// through the stack with stalled 16-byte moves); ok is false where the
// body is not one (DecodeForward says why).
func ForwardValues(b []byte) (gate, entropy, latency float64, layer int32, fields uint32, ok bool) {
	if len(b) != ForwardBodyLen {
		return 0, 0, 0, 0, 0, false
	}
	le := binary.LittleEndian
	return math.Float64frombits(le.Uint64(b[0:])), math.Float64frombits(le.Uint64(b[8:])),
		math.Float64frombits(le.Uint64(b[16:])), int32(le.Uint32(b[24:])), le.Uint32(b[28:]), true
}

// DecodeForward decodes a FORWARD body.
func DecodeForward(b []byte) (Forward, error) {
	gate, entropy, latency, layer, fields, ok := ForwardValues(b)
	if !ok {
		return Forward{}, fmt.Errorf("forward body is %d bytes, want %d: %w", len(b), ForwardBodyLen, ErrCorrupt)
	}
	return Forward{GateMean: gate, EntropyMean: entropy, LatencyUs: latency, Layer: layer, Fields: fields}, nil
}

// Retrieval field bits.
const (
	RetHasLayer    uint32 = 1 << 0
	RetHasResults  uint32 = 1 << 1
	RetHasInjected uint32 = 1 << 2
	RetHasBudget   uint32 = 1 << 3
)

const retrievalFixedLen = 24

// Retrieval is the fixed part of an aga-core retrieval event.
type Retrieval struct {
	Layer           int32
	ResultsCount    int32
	InjectedCount   int32
	BudgetRemaining int32
	Fields          uint32
}

// RetrievalView is a decoded RETRIEVAL body whose scores and ids alias the
// record bytes.
type RetrievalView struct {
	Retrieval
	scores []byte
	ids    []byte
	nIDs   int
}

// NumScores is the number of scores.
func (v *RetrievalView) NumScores() int { return len(v.scores) / 8 }

// Score returns score i.
func (v *RetrievalView) Score(i int) float64 {
	return math.Float64frombits(binary.LittleEndian.Uint64(v.scores[8*i:]))
}

// NumIDs is the number of ids.
func (v *RetrievalView) NumIDs() int { return v.nIDs }

// EachID calls fn for every id; the slice aliases the record.
func (v *RetrievalView) EachID(fn func(id []byte)) {
	b := v.ids
	for i := 0; i < v.nIDs; i++ {
		n := int(binary.LittleEndian.Uint16(b))
		fn(b[2 : 2+n])
		b = b[2+n:]
	}
}

// DecodeRetrieval decodes a RETRIEVAL body without copying.
func DecodeRetrieval(b []byte) (RetrievalView, error) {
	if len(b) < retrievalFixedLen {
		return RetrievalView{}, fmt.Errorf("retrieval body is %d bytes: %w", len(b), ErrCorrupt)
	}
	le := binary.LittleEndian
	v := RetrievalView{Retrieval: Retrieval{
		Layer:           int32(le.Uint32(b[0:])),
		ResultsCount:    int32(le.Uint32(b[4:])),
		InjectedCount:   int32(le.Uint32(b[8:])),
		BudgetRemaining: int32(le.Uint32(b[12:])),
		Fields:          le.Uint32(b[20:]),
	}}
	nScores := int(le.Uint16(b[16:]))
	nIDs := int(le.Uint16(b[18:]))
	rest := b[retrievalFixedLen:]
	if len(rest) < 8*nScores {
		return RetrievalView{}, fmt.Errorf("retrieval body: %d scores do not fit: %w", nScores, ErrCorrupt)
	}
	v.scores = rest[:8*nScores]
	rest = rest[8*nScores:]
	v.ids = rest
	for i := 0; i < nIDs; i++ {
		if len(rest) < 2 {
			return RetrievalView{}, fmt.Errorf("retrieval body: id %d header missing: %w", i, ErrCorrupt)
		}
		n := int(le.Uint16(rest))
		if len(rest) < 2+n {
			return RetrievalView{}, fmt.Errorf("retrieval body: id %d overruns the body: %w", i, ErrCorrupt)
		}
		rest = rest[2+n:]
	}
	if len(rest) != 0 {
		return RetrievalView{}, fmt.Errorf("retrieval body: %d trailing bytes: %w", len(rest), ErrCorrupt)
	}
	v.nIDs = nIDs
	return v, nil
}

// RetrievalBodyLen is the encoded length of a retrieval body.
func RetrievalBodyLen(nScores int, ids []string) int {
	n := retrievalFixedLen + 8*nScores
	for _, id := range ids {
		n += 2 + len(id)
	}
	return n
}

// PutRetrieval encodes a retrieval body into b, which must be exactly
// RetrievalBodyLen(len(scores), ids) bytes long.
func PutRetrieval(b []byte, r *Retrieval, scores []float64, ids []string) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(r.Layer))
	le.PutUint32(b[4:], uint32(r.ResultsCount))
	le.PutUint32(b[8:], uint32(r.InjectedCount))
	le.PutUint32(b[12:], uint32(r.BudgetRemaining))
	le.PutUint16(b[16:], uint16(len(scores)))
	le.PutUint16(b[18:], uint16(len(ids)))
	le.PutUint32(b[20:], r.Fields)
	p := retrievalFixedLen
	for _, s := range scores {
		le.PutUint64(b[p:], math.Float64bits(s))
		p += 8
	}
	for _, id := range ids {
		le.PutUint16(b[p:], uint16(len(id)))
		p += 2
		p += copy(b[p:], id)
	}
}

// DecodeEvent splits an EVENT body into the event name and its JSON data.
func DecodeEvent(b []byte) (name, data []byte, err error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("event body is %d bytes: %w", len(b), ErrCorrupt)
	}
	n := int(binary.LittleEndian.Uint16(b))
	if n == 0 || len(b) < 2+n {
		return nil, nil, fmt.Errorf("event body: name length %d invalid: %w", n, ErrCorrupt)
	}
	return b[2 : 2+n], b[2+n:], nil
}

// putRecordHeader writes a record header.
func putRecordHeader(b []byte, length uint32, t RecordType, flags uint16, seq uint64, timeNs int64) {
	le := binary.LittleEndian
	_ = b[RecordHeaderLen-1]
	le.PutUint32(b[0:], length)
	le.PutUint16(b[4:], uint16(t))
	le.PutUint16(b[6:], flags)
	le.PutUint64(b[8:], seq)
	le.PutUint64(b[16:], uint64(timeNs))
}
