package shm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"strings"
	"unicode/utf8"
)

// magic is the header's first word, the bytes "AGARING\0" read little-endian.
const magic uint64 = 0x00474E4952414741

// Format version written by this package.
const (
	versionMajor  = 1
	versionMinor  = 0
	schemaVersion = 1
)

// Header geometry.
const (
	HeaderSize     = 4096
	identityOffset = 0x800
	// maxIdentityLen bounds the identity JSON, in the header and as a
	// HELLO body alike.
	maxIdentityLen = 2048
	// MaxIdentityField bounds every string of a parsed identity, in bytes:
	// they become label values and log fields.
	MaxIdentityField = 256
	minCapacity      = 4096
	minMaxRecordLen  = 64
	RecordHeaderLen  = 24
	// droppedTypes is the length of the dropped-by-type table.
	droppedTypes = 64
)

// Header field offsets (docs/ring-format.md §2).
const (
	offMagic          = 0x000
	offVersionMajor   = 0x008
	offVersionMinor   = 0x00A
	offHeaderSize     = 0x00C
	offClass          = 0x010
	offFlags          = 0x014
	offCapacity       = 0x018
	offMaxRecordLen   = 0x020
	offIdentityLen    = 0x024
	offEpoch          = 0x028
	offCreateTime     = 0x030
	offPID            = 0x038
	offInstance       = 0x03C
	offPIDNSInode     = 0x040
	offStartTime      = 0x048
	offIdentityOffset = 0x050
	offSchemaVersion  = 0x054

	// Producer line A: written on every record.
	offTail          = 0x100
	offLastSeq       = 0x108
	offEventsWritten = 0x110
	offDroppedTotal  = 0x118

	// Producer line B: housekeeping.
	offHeartbeat  = 0x180
	offState      = 0x188
	offClosedTime = 0x190

	// Consumer block.
	offHead              = 0x200
	offConsumerSleeping  = 0x208
	offConsumerPID       = 0x20C
	offConsumerHeartbeat = 0x210
	offCommitGen         = 0x218
	offCommitSlot0       = 0x220
	commitSlotLen        = 0x20

	offDroppedByType = 0x400
)

// Class is the ring class: what the ring carries and its full-ring policy.
type Class uint32

// Ring classes.
const (
	ClassHot   Class = 1
	ClassAudit Class = 2
)

func (c Class) String() string {
	switch c {
	case ClassHot:
		return "hot"
	case ClassAudit:
		return "audit"
	}
	return fmt.Sprintf("class(%d)", uint32(c))
}

// State is the producer state word.
type State uint32

// Producer states.
const (
	stateInit    State = 0
	stateRunning State = 1
	StateClosed  State = 2
)

func (s State) String() string {
	switch s {
	case stateInit:
		return "init"
	case stateRunning:
		return "running"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// Identity is the producer identity carried in the header and in HELLO
// records. Zero values are omitted when encoded.
type Identity struct {
	Producer      string `json:"producer"`
	Role          string `json:"role,omitempty"`
	Instance      int    `json:"instance"`
	Rank          *int   `json:"rank,omitempty"`
	WorldSize     *int   `json:"world_size,omitempty"`
	Model         string `json:"model,omitempty"`
	AGAVersion    string `json:"aga_version,omitempty"`
	HiddenDim     *int   `json:"hidden_dim,omitempty"`
	BottleneckDim *int   `json:"bottleneck_dim,omitempty"`
	MaxSlots      *int   `json:"max_slots,omitempty"`
	Device        string `json:"device,omitempty"`
	Pod           string `json:"pod,omitempty"`
	Namespace     string `json:"namespace,omitempty"`
	Container     string `json:"container,omitempty"`
	Process       string `json:"process,omitempty"`
	Client        string `json:"client,omitempty"`
	SchemaVersion int    `json:"schema_version"`
}

// ParseIdentity decodes and checks identity JSON: the header's and every
// HELLO body. More than maxIdentityLen bytes is corrupt (ErrCorrupt), so an
// oversized HELLO cannot replace the producer's identity; every string is
// made valid UTF-8 and cut to MaxIdentityField bytes, since producers are
// untrusted and identities end up in metric labels.
func ParseIdentity(b []byte) (Identity, error) {
	if len(b) > maxIdentityLen {
		return Identity{}, fmt.Errorf("identity: %d bytes, more than %d: %w", len(b), maxIdentityLen, ErrCorrupt)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	for _, f := range []*string{&id.Producer, &id.Role, &id.Model, &id.AGAVersion, &id.Device,
		&id.Pod, &id.Namespace, &id.Container, &id.Process, &id.Client} {
		*f = clampIdentityField(*f)
	}
	if id.Producer == "" {
		return Identity{}, fmt.Errorf("identity: producer name is empty")
	}
	return id, nil
}

// clampIdentityField returns s as valid UTF-8 (invalid bytes become
// U+FFFD) of at most MaxIdentityField bytes, cut at a rune boundary.
func clampIdentityField(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxIdentityField {
		return s
	}
	i := MaxIdentityField
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// Header is the immutable part of a ring header, validated and cached by
// readers.
type Header struct {
	VersionMajor   uint16
	VersionMinor   uint16
	HeaderSize     uint32
	Class          Class
	Flags          uint32
	Capacity       uint64
	MaxRecordLen   uint32
	Epoch          uint64
	CreateTimeNs   int64
	PID            uint32
	Instance       uint32
	PIDNSInode     uint64
	StartTimeTicks uint64
	SchemaVersion  uint32
	Identity       Identity
	// IdentityJSON is the raw identity, copied out of the mapping.
	IdentityJSON []byte
}

// HeaderError says why a header was rejected. Initialising is set when the
// magic is still zero: the producer has not finished creating the ring and
// the reader should retry later rather than reject it.
type HeaderError struct {
	Reason       string
	Initialising bool
}

func (e *HeaderError) Error() string { return "invalid ring header: " + e.Reason }

func headerErr(format string, a ...any) error {
	return &HeaderError{Reason: fmt.Sprintf(format, a...)}
}

// parseHeader validates the header at the start of b, which must hold at
// least HeaderSize bytes. fileSize is the size of the whole ring file, or -1
// to skip that check. It reads the magic with a plain load: callers that race
// with a creating producer load it atomically first (see Ring).
func parseHeader(b []byte, fileSize int64) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, headerErr("file shorter than the %d-byte header", HeaderSize)
	}
	le := binary.LittleEndian
	switch m := le.Uint64(b[offMagic:]); {
	case m == 0:
		return Header{}, &HeaderError{Reason: "magic not yet written (ring initialising)", Initialising: true}
	case m != magic:
		return Header{}, headerErr("bad magic %#016x", m)
	}
	h := Header{
		VersionMajor:   le.Uint16(b[offVersionMajor:]),
		VersionMinor:   le.Uint16(b[offVersionMinor:]),
		HeaderSize:     le.Uint32(b[offHeaderSize:]),
		Class:          Class(le.Uint32(b[offClass:])),
		Flags:          le.Uint32(b[offFlags:]),
		Capacity:       le.Uint64(b[offCapacity:]),
		MaxRecordLen:   le.Uint32(b[offMaxRecordLen:]),
		Epoch:          le.Uint64(b[offEpoch:]),
		CreateTimeNs:   int64(le.Uint64(b[offCreateTime:])),
		PID:            le.Uint32(b[offPID:]),
		Instance:       le.Uint32(b[offInstance:]),
		PIDNSInode:     le.Uint64(b[offPIDNSInode:]),
		StartTimeTicks: le.Uint64(b[offStartTime:]),
		SchemaVersion:  le.Uint32(b[offSchemaVersion:]),
	}
	if h.VersionMajor != versionMajor {
		return Header{}, headerErr("unsupported version %d.%d (this agent reads %d.x)", h.VersionMajor, h.VersionMinor, versionMajor)
	}
	if h.HeaderSize < HeaderSize || h.HeaderSize%HeaderSize != 0 {
		return Header{}, headerErr("header_size %d is not a multiple of %d", h.HeaderSize, HeaderSize)
	}
	if h.Class != ClassHot && h.Class != ClassAudit {
		return Header{}, headerErr("unknown ring class %d", uint32(h.Class))
	}
	if h.Capacity < minCapacity || bits.OnesCount64(h.Capacity) != 1 || h.Capacity > 1<<40 {
		return Header{}, headerErr("data_capacity %d is not a power of two in [%d, 2^40]", h.Capacity, minCapacity)
	}
	if h.MaxRecordLen%8 != 0 || h.MaxRecordLen < minMaxRecordLen || uint64(h.MaxRecordLen) > h.Capacity/8 {
		return Header{}, headerErr("max_record_len %d outside [%d, capacity/8] or not a multiple of 8", h.MaxRecordLen, minMaxRecordLen)
	}
	if h.Epoch == 0 {
		return Header{}, headerErr("ring_epoch is zero")
	}
	idLen := le.Uint32(b[offIdentityLen:])
	idOff := le.Uint32(b[offIdentityOffset:])
	if idLen > maxIdentityLen || uint64(idOff)+uint64(idLen) > uint64(HeaderSize) || idOff < offDroppedByType+8*droppedTypes {
		return Header{}, headerErr("identity (offset %d, length %d) outside the header", idOff, idLen)
	}
	if fileSize >= 0 && uint64(fileSize) != uint64(h.HeaderSize)+h.Capacity {
		return Header{}, headerErr("file size %d != header_size %d + data_capacity %d", fileSize, h.HeaderSize, h.Capacity)
	}
	h.IdentityJSON = append([]byte(nil), b[idOff:idOff+idLen]...)
	id, err := ParseIdentity(h.IdentityJSON)
	if err != nil {
		return Header{}, headerErr("%v", err)
	}
	h.Identity = id
	return h, nil
}

// encodeHeader writes every immutable header field except the magic.
func encodeHeader(b []byte, h *Header) {
	le := binary.LittleEndian
	le.PutUint16(b[offVersionMajor:], h.VersionMajor)
	le.PutUint16(b[offVersionMinor:], h.VersionMinor)
	le.PutUint32(b[offHeaderSize:], h.HeaderSize)
	le.PutUint32(b[offClass:], uint32(h.Class))
	le.PutUint32(b[offFlags:], h.Flags)
	le.PutUint64(b[offCapacity:], h.Capacity)
	le.PutUint32(b[offMaxRecordLen:], h.MaxRecordLen)
	le.PutUint32(b[offIdentityLen:], uint32(len(h.IdentityJSON)))
	le.PutUint64(b[offEpoch:], h.Epoch)
	le.PutUint64(b[offCreateTime:], uint64(h.CreateTimeNs))
	le.PutUint32(b[offPID:], h.PID)
	le.PutUint32(b[offInstance:], h.Instance)
	le.PutUint64(b[offPIDNSInode:], h.PIDNSInode)
	le.PutUint64(b[offStartTime:], h.StartTimeTicks)
	le.PutUint32(b[offIdentityOffset:], identityOffset)
	le.PutUint32(b[offSchemaVersion:], h.SchemaVersion)
	copy(b[identityOffset:], h.IdentityJSON)
}

// align8 rounds n up to a multiple of 8.
func align8(n uint64) uint64 { return (n + 7) &^ 7 }
