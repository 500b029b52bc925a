package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// The write path encodes and hashes every record once (seal). Its
// encoder below writes, byte for byte, what json.Marshal writes for a
// Record, without reflection and without compacting details again: the
// chain hashes json.Marshal's encoding (canonical), and verification
// recomputes it with json.Marshal from the stored JSON, so a record this
// encoder wrote differently would fail verification. Where it cannot
// tell that its output is json.Marshal's (details not known to be
// compact valid JSON, a non-finite timestamp, a time outside RFC 3339),
// seal uses json.Marshal itself. The stored format is unchanged.

// sealer seals the records of a batch: one hasher, and the stored
// encodings cut from shared chunks instead of one allocation per record.
// A backend that is done with the encodings once its commit returns
// (bbolt) keeps its sealer and calls reset: the next batch reuses the
// chunks.
type sealer struct {
	h hash.Hash
	// chunks[cur] is the chunk being cut; the chunks after it are free.
	chunks [][]byte
	cur    int
	// left is how many records of the batch are still to seal (at least
	// this one): a new chunk is sized for them, so that a small batch (a
	// memory store keeps its records) does not hold a large chunk.
	left int
	// last is the hash the sealer computed last, and its bytes: the next
	// record's previous hash, not decoded again.
	last    string
	lastSum [sha256.Size]byte
	// prev and sum are seal's, here so that they do not escape to the
	// heap per record through the hash.Hash interface.
	prev, sum [sha256.Size]byte
	// hashes holds the hex hashes of the batch: each record's Hash is a
	// slice of it (one allocation per batch, not per record). A Builder
	// only ever appends, so the strings cut from it stay as they are.
	hashes strings.Builder
}

// sealChunk is the largest chunk a sealer cuts encodings from.
const sealChunk = 64 << 10

// buf returns an empty buffer with room for about n bytes, at the end of
// the chunk being cut.
func (s *sealer) buf(n int) []byte {
	for ; s.cur < len(s.chunks); s.cur++ {
		c := s.chunks[s.cur]
		if cap(c)-len(c) >= n {
			return c[len(c):len(c)]
		}
		if len(c) == 0 {
			break // a free chunk too small: replaced below
		}
	}
	c := make([]byte, 0, max(min(sealChunk, n*max(s.left, 1)), n))
	if s.cur < len(s.chunks) {
		s.chunks[s.cur] = c
	} else {
		s.chunks = append(s.chunks, c)
	}
	return c
}

// take marks the n bytes after the end of the chunk being cut as used.
func (s *sealer) take(n int) {
	c := s.chunks[s.cur]
	s.chunks[s.cur] = c[:len(c)+n]
}

// reset makes every chunk free again: the caller no longer uses any
// encoding the sealer cut (and has cleared the records' raw). Chunks
// larger than sealChunk (a record that large) are dropped.
func (s *sealer) reset() {
	kept := s.chunks[:0]
	for _, c := range s.chunks {
		if cap(c) <= sealChunk {
			kept = append(kept, c[:0])
		}
	}
	clear(s.chunks[len(kept):])
	s.chunks, s.cur = kept, 0
	s.hashes = strings.Builder{} // the records keep the old one's strings
}

// seal sets r.Hash from the previous hash and r.raw to the stored
// encoding: the canonical form with the hash filled in. detailsCompact
// says r.Details is known to be valid JSON that json.Compact leaves
// unchanged (sanitize's check); seal checks it itself otherwise.
func (s *sealer) seal(prev string, r *Record, detailsCompact bool) error {
	p := &s.prev
	if prev != "" && prev == s.last {
		*p = s.lastSum
	} else if !decodeHash(p[:], prev) {
		return fmt.Errorf("previous hash %q is not a SHA-256 hex digest", prev)
	}
	r.Hash = ""
	buf := s.buf(encodedSize(r))
	c, ok := appendCanonical(buf, r, detailsCompact)
	if !ok {
		var err error
		if c, err = json.Marshal(r); err != nil {
			return err
		}
	}
	if !bytes.HasSuffix(c, hashSuffix) {
		return fmt.Errorf("record %d: canonical form does not end with the hash field", r.Seq)
	}
	if s.h == nil {
		s.h = sha256.New()
	}
	s.h.Reset()
	s.h.Write(p[:])
	s.h.Write(c)
	sum := &s.sum
	s.h.Sum(sum[:0])
	// The stored encoding: up to `"hash":"`, the hash, `"}`.
	raw := hex.AppendEncode(c[:len(c)-2], sum[:])
	raw = append(raw, '"', '}')
	if ok && &raw[0] == &buf[:1][0] {
		s.take(len(raw)) // it stayed in the chunk
	}
	r.raw = raw[:len(raw):len(raw)]
	if s.hashes.Cap()-s.hashes.Len() < 2*sha256.Size {
		s.hashes = strings.Builder{}
		s.hashes.Grow(2 * sha256.Size * max(s.left, 1))
	}
	off := s.hashes.Len()
	s.hashes.Write(raw[len(raw)-2-2*sha256.Size : len(raw)-2])
	r.Hash = s.hashes.String()[off:]
	s.last, s.lastSum = r.Hash, *sum
	return nil
}

// decodeHash decodes a SHA-256 hex digest into p (lower or upper case).
func decodeHash(p []byte, h string) bool {
	if len(h) != 2*len(p) {
		return false
	}
	for i := range p {
		hi, ok1 := unhex(h[2*i])
		lo, ok2 := unhex(h[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		p[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// encodedSize is the size of a record's stored encoding, the hash
// included, when its strings need no escapes (numbers at their longest).
func encodedSize(r *Record) int {
	n := len(`{"seq":,"time":"","kind":"","producer":"","operation":"","details":,"success":false,"error":null,`+
		`"event_timestamp":,"ring_epoch":"","ring_seq":,"hash":""}`) +
		20 + len(time.RFC3339Nano) + 24 + 20 + 2*sha256.Size + // seq, time, event_timestamp, ring_seq, hash
		len(r.Kind) + len(r.Producer) + len(r.Operation) + len(r.Details) + len(r.RingEpoch)
	if r.Error != nil {
		n += 2 + len(*r.Error)
	}
	if r.Lost != 0 {
		n += len(`,"lost":`) + 20
	}
	if r.EncodeError != "" {
		n += len(`,"encode_error":""`) + len(r.EncodeError)
	}
	if len(r.RawBody) > 0 {
		n += len(`,"raw":""`) + base64.StdEncoding.EncodedLen(len(r.RawBody))
	}
	if r.RawSHA256 != "" {
		n += len(`,"raw_sha256":""`) + len(r.RawSHA256)
	}
	return n + len(`,"raw_truncated":true,"raw_redacted":true`)
}

// appendCanonical appends json.Marshal's encoding of r with an empty hash
// (r.Hash is not read). It returns false where it cannot tell that the
// encoding is json.Marshal's; b's contents are then undefined.
func appendCanonical(b []byte, r *Record, detailsCompact bool) ([]byte, bool) {
	if !detailsCompact && !pipeline.IsCompactJSON(r.Details) {
		return b, false
	}
	if math.IsInf(r.EventTimestamp, 0) || math.IsNaN(r.EventTimestamp) {
		return b, false
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"time":"`...)
	var err error
	if b, err = r.Time.AppendText(b); err != nil { // json.Marshal fails the same way
		return b, false
	}
	b = append(b, `","kind":`...)
	b = appendString(b, r.Kind)
	b = append(b, `,"producer":`...)
	b = appendString(b, r.Producer)
	b = append(b, `,"operation":`...)
	b = appendString(b, r.Operation)
	b = append(b, `,"details":`...)
	b = appendHTMLEscaped(b, r.Details)
	b = append(b, `,"success":`...)
	b = strconv.AppendBool(b, r.Success)
	b = append(b, `,"error":`...)
	if r.Error == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, *r.Error)
	}
	b = append(b, `,"event_timestamp":`...)
	b = appendFloat(b, r.EventTimestamp)
	b = append(b, `,"ring_epoch":`...)
	b = appendString(b, r.RingEpoch)
	b = append(b, `,"ring_seq":`...)
	b = strconv.AppendUint(b, r.RingSeq, 10)
	if r.Lost != 0 {
		b = strconv.AppendUint(append(b, `,"lost":`...), r.Lost, 10)
	}
	if r.EncodeError != "" {
		b = appendString(append(b, `,"encode_error":`...), r.EncodeError)
	}
	if len(r.RawBody) > 0 {
		b = append(b, `,"raw":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.RawBody)
		b = append(b, '"')
	}
	if r.RawTruncated {
		b = append(b, `,"raw_truncated":true`...)
	}
	if r.RawSHA256 != "" {
		b = appendString(append(b, `,"raw_sha256":`...), r.RawSHA256)
	}
	if r.RawRedacted {
		b = append(b, `,"raw_redacted":true`...)
	}
	return append(b, `,"hash":""}`...), true
}

// appendFloat is encoding/json's float64 encoding (ES6 number to string).
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string encoding with HTML escaping, as
// json.Marshal does it: invalid UTF-8 as U+FFFD, U+2028 and U+2029
// escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendHTMLEscaped appends compact JSON as json.Marshal embeds a
// json.RawMessage: <, > and & as \u003c, \u003e, \u0026, U+2028 and
// U+2029 escaped (in valid JSON they can only be inside strings).
func appendHTMLEscaped(b, src []byte) []byte {
	if bytes.IndexByte(src, '<') < 0 && bytes.IndexByte(src, '>') < 0 && bytes.IndexByte(src, '&') < 0 && bytes.IndexByte(src, 0xE2) < 0 {
		return append(b, src...) // the common details: nothing to escape
	}
	start := 0
	for i, c := range src {
		switch {
		case c == '<' || c == '>' || c == '&':
			b = append(b, src[start:i]...)
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			b = append(b, src[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xF])
			start = i + 3
		}
	}
	return append(b, src[start:]...)
}
