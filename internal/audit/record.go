package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// Record kinds.
const (
	KindProducer   = "producer"   // an aga-core audit event from a ring
	KindAgent      = "agent"      // something the agent did or saw
	KindGap        = "gap"        // audit records lost before reaching the store
	KindCheckpoint = "checkpoint" // retention removed the records before it
)

// Record is one stored audit record. Seq numbers the chain from 1 without
// gaps; Hash chains it: SHA-256 over the previous record's hash and this
// record's canonical JSON (every field but Hash).
type Record struct {
	Seq            uint64          `json:"seq"`
	Time           time.Time       `json:"time"` // when the agent received it
	Kind           string          `json:"kind"`
	Producer       string          `json:"producer"`
	Operation      string          `json:"operation"`
	Details        json.RawMessage `json:"details"`
	Success        bool            `json:"success"`
	Error          *string         `json:"error"`
	EventTimestamp float64         `json:"event_timestamp"` // epoch seconds, as aga-core sent it
	RingEpoch      string          `json:"ring_epoch"`      // hex, as `rings` shows it
	RingSeq        uint64          `json:"ring_seq"`
	Lost           uint64          `json:"lost,omitempty"` // gap records: how many
	EncodeError    string          `json:"encode_error,omitempty"`
	// RawBody is the producer's body as received, for a record that had to
	// be sanitized (EncodeError set): at most MaxRawBytes of it, base64 in
	// JSON. RawSHA256 is the SHA-256 of the whole body; RawRedacted says
	// the body was withheld because it might hold an audit_redact_keys
	// value.
	RawBody      []byte `json:"raw,omitempty"`
	RawTruncated bool   `json:"raw_truncated,omitempty"`
	RawSHA256    string `json:"raw_sha256,omitempty"`
	RawRedacted  bool   `json:"raw_redacted,omitempty"`
	Hash         string `json:"hash"`

	// raw is the stored encoding, set by seal so backends marshal once.
	raw []byte
}

// canonical is the hashed form: the record without its hash.
func (r *Record) canonical() ([]byte, error) {
	c := *r
	c.Hash = ""
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// zeroHash anchors an empty chain.
func zeroHash() string { return hex.EncodeToString(make([]byte, sha256.Size)) }

// chainHash computes a record's hash from the previous one.
func chainHash(prev string, r *Record) (string, error) {
	p, err := hex.DecodeString(prev)
	if err != nil || len(p) != sha256.Size {
		return "", fmt.Errorf("previous hash %q is not a SHA-256 hex digest", prev)
	}
	c, err := r.canonical()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(p)
	h.Write(c)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashSuffix ends every canonical encoding: Hash is the last field.
var hashSuffix = []byte(`"hash":""}`)

// seal sets r.Hash from the previous hash and r.raw to the stored
// encoding: the canonical form with the hash filled in (see sealer).
func seal(prev string, r *Record) error {
	var s sealer
	return s.seal(prev, r, false)
}

// encoded returns the stored encoding of a sealed record.
func (r *Record) encoded() ([]byte, error) {
	if r.raw != nil {
		return r.raw, nil
	}
	return json.Marshal(r)
}

// sanitize makes a record encodable: details must be one JSON object,
// stored compacted. Anything else is kept, quoted, under "_unencodable"
// and the record is marked, so one bad record never poisons its batch.
// It reports whether details were found already compact (an object that
// json.Compact leaves unchanged, kept as it is): the encoder then embeds
// them without checking them again.
func sanitize(r *Record) (compact bool) {
	if len(r.Details) == 0 {
		r.Details = json.RawMessage(`{}`)
		return true
	}
	if r.Details[0] == '{' && pipeline.IsCompactJSON(r.Details) {
		return true // the common case: one pass, no copy
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, r.Details); err == nil && buf.Len() > 0 && buf.Bytes()[0] == '{' {
		r.Details = buf.Bytes()
		return false
	} else if err != nil {
		r.EncodeError = joinErr(r.EncodeError, "details: "+err.Error())
	} else {
		r.EncodeError = joinErr(r.EncodeError, "details: not a JSON object")
	}
	q, _ := json.Marshal(string(r.Details))
	r.Details = json.RawMessage(`{"_unencodable":` + string(q) + `}`)
	return false
}

// joinErr appends a sanitization reason to those already noted.
func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// MaxRawBytes bounds the body a sanitized record keeps in raw.
const MaxRawBytes = 64 << 10

// attachRaw keeps a sanitized record's body: up to MaxRawBytes of it, and
// the SHA-256 of all of it. With redaction configured the body is kept
// only when it cannot hold a redacted key (no key in it, and no escape
// that could spell one): redaction applies to what can be parsed, and a
// body that needed sanitizing may not parse.
func attachRaw(r *Record, body []byte, redactKeys map[string]bool) {
	sum := sha256.Sum256(body)
	r.RawSHA256 = hex.EncodeToString(sum[:])
	if len(redactKeys) > 0 {
		if bytes.IndexByte(body, '\\') >= 0 {
			r.RawRedacted = true
			return
		}
		for k := range redactKeys {
			if bytes.Contains(body, []byte(k)) {
				r.RawRedacted = true
				return
			}
		}
	}
	if len(body) > MaxRawBytes {
		body, r.RawTruncated = body[:MaxRawBytes], true
	}
	r.RawBody = body // the event's bytes: immutable once dispatched
}

// redact removes keys (at any depth) from details.
func redact(details json.RawMessage, keys map[string]bool) json.RawMessage {
	if len(keys) == 0 {
		return details
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(details))
	dec.UseNumber() // integers beyond 2^53 keep their digits
	if dec.Decode(&v) != nil {
		return details
	}
	v = redactValue(v, keys)
	b, err := json.Marshal(v)
	if err != nil {
		return details
	}
	return b
}

func redactValue(v any, keys map[string]bool) any {
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			if keys[k] {
				delete(x, k)
				continue
			}
			x[k] = redactValue(sub, keys)
		}
	case []any:
		for i := range x {
			x[i] = redactValue(x[i], keys)
		}
	}
	return v
}

// Head is the chain head: its length and the last record's hash. Logged
// and served so that a witness off the node can later check the chain with
// `agaobs-agent audit verify --expect-head SIZE:HASH`.
type Head struct {
	Size uint64 `json:"size"`
	Hash string `json:"hash"`
}

func (h Head) String() string { return fmt.Sprintf("%d:%s", h.Size, h.Hash) }

// ParseHead parses SIZE:HASH.
func ParseHead(s string) (Head, error) {
	size, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	n, err := strconv.ParseUint(size, 10, 64)
	if !ok || err != nil {
		return Head{}, fmt.Errorf("head %q: want SIZE:HASH", s)
	}
	b, err := hex.DecodeString(hash)
	if err != nil || len(b) != sha256.Size {
		return Head{}, fmt.Errorf("head %q: hash is not a SHA-256 hex digest", s)
	}
	// Stored hashes are lower case; accept a witness written either way.
	return Head{Size: n, Hash: hex.EncodeToString(b)}, nil
}

// Filter selects records for Query.
type Filter struct {
	Operation string
	Producer  string
	Success   *bool
	Since     time.Time // inclusive, on Time
	Until     time.Time // exclusive; zero: no bound
	Limit     int       // 0: no limit
	// After resumes after this seq (the cursor of the previous page).
	After uint64
}

func (f *Filter) match(r *Record) bool {
	if f.Operation != "" && r.Operation != f.Operation {
		return false
	}
	if f.Producer != "" && r.Producer != f.Producer {
		return false
	}
	if f.Success != nil && r.Success != *f.Success {
		return false
	}
	if !f.Since.IsZero() && r.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !r.Time.Before(f.Until) {
		return false
	}
	return r.Seq > f.After
}

// Sentinel errors.
var (
	// ErrLocked: another process (a running agent) holds the store.
	ErrLocked = errors.New("audit store is locked by another process (is an agent running on it?)")
	// ErrTampered: verification found the chain broken.
	ErrTampered = errors.New("audit chain verification failed")
)
