package audit

import (
	"encoding/json"
	"fmt"
	"time"
)

// Store persists records. Implementations are safe for use by one writer
// and concurrent readers.
type Store interface {
	// Append numbers, chains and durably stores the records (one commit
	// for the batch), skipping ring records already stored (the same ring
	// epoch and a sequence number at or below the epoch's high-water mark)
	// and the gap records in front of them. It returns the records stored.
	// It keeps no pointer to recs or their records once it has returned
	// (a copy is fine): the Writer reuses their memory.
	Append(recs []*Record) ([]*Record, error)
	// Query returns the matching records in chain order.
	Query(f Filter) ([]Record, error)
	// Head returns the chain head.
	Head() (Head, error)
	// Verify recomputes the chain; see VerifyReport.
	Verify(expect *Head) (VerifyReport, error)
	// Retain removes the oldest whole days older than maxAge (0: keep) or
	// beyond maxBytes (0: no limit) and appends a checkpoint record.
	Retain(now time.Time, maxAge time.Duration, maxBytes int64) (RetentionResult, error)
	// Size is the bytes of stored records.
	Size() int64
	Close() error
}

// RetentionResult says what a retention run removed.
type RetentionResult struct {
	RemovedRecords uint64
	RemovedDays    []string // or files, for the file backend
	Checkpoint     *Record  // nil when nothing was removed
}

// VerifyReport is the outcome of a verification.
type VerifyReport struct {
	OK       bool   `json:"ok"`
	Records  uint64 `json:"records"` // records checked
	Base     Head   `json:"base"`    // where the retained chain starts (0 and the zero hash, or a checkpoint's base)
	Head     Head   `json:"head"`
	Problem  string `json:"problem,omitempty"`   // the first problem found, for humans
	FirstBad uint64 `json:"first_bad,omitempty"` // seq of the first bad record (0 if none or not applicable)
	// Note says what could not be checked: a witnessed head older than
	// the retained chain.
	Note string `json:"note,omitempty"`
}

// checkpoint builds the retention record naming the new base.
// marks, when not nil, are the ring high-water marks at the time: a
// backend that keeps them only in its records (JSONL) must not lose them
// with the removed records.
func checkpoint(now time.Time, base Head, removed uint64, what []string, by string, marks map[string]uint64) *Record {
	d := fmt.Sprintf(`{"base_seq":%d,"base_hash":%q,"removed_records":%d,"removed":%s,"reason":%q`,
		base.Size, base.Hash, removed, jsonStrings(what), by)
	if marks != nil {
		b, _ := json.Marshal(marks)
		d += `,"ring_marks":` + string(b)
	}
	d += "}"
	return &Record{Time: now.UTC(), Kind: KindCheckpoint, Operation: "retention", Details: []byte(d), Success: true}
}

func jsonStrings(ss []string) string {
	if ss == nil {
		ss = []string{}
	}
	b, _ := json.Marshal(ss)
	return string(b)
}

// dayOf names the day bucket (UTC) of a time.
func dayOf(t time.Time) string { return t.UTC().Format("2006-01-02") }

// chainRecords prepares a batch for a backend: it drops ring records (and
// the gap records in front of them) already stored, sanitizes, numbers and
// chains the rest from head. It returns the records to store, the new head
// and the ring high-water marks to record. Nothing is modified in hwm.
// The stored encodings are cut from s (nil: a sealer of the batch's own).
func chainRecords(recs []*Record, head Head, hwm map[string]uint64, s *sealer) ([]*Record, Head, map[string]uint64, error) {
	if s == nil {
		s = new(sealer)
	}
	updates := map[string]uint64{}
	mark := func(epoch string) uint64 {
		if v, ok := updates[epoch]; ok {
			return v
		}
		return hwm[epoch]
	}
	stored := make([]*Record, 0, len(recs))
	for i, r := range recs {
		if r.RingEpoch != "" && r.RingSeq != 0 && r.RingSeq <= mark(r.RingEpoch) {
			continue // stored before an agent restart: exactly once
		}
		compact := sanitize(r)
		r.Seq = head.Size + 1
		s.left = len(recs) - i
		if err := s.seal(head.Hash, r, compact); err != nil {
			unchain(stored)
			return nil, Head{}, nil, fmt.Errorf("record %d: %w", r.Seq, err)
		}
		head = Head{Size: r.Seq, Hash: r.Hash}
		if r.Kind == KindProducer && r.RingEpoch != "" {
			updates[r.RingEpoch] = r.RingSeq
		}
		stored = append(stored, r)
	}
	return stored, head, updates, nil
}

// unchain undoes chainRecords on records a backend failed to store.
func unchain(recs []*Record) {
	for _, r := range recs {
		r.Seq, r.Hash, r.raw = 0, "", nil
	}
}
