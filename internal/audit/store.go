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

// verifyChain checks a chain walked in storage order by each. The base is
// what the newest retention checkpoint names (the genesis without one):
// records at or below it are leftovers retention had not deleted yet when
// it was interrupted, and are skipped. stored, if not nil, is the head the
// backend recorded; witness is a head seen earlier (--expect-head).
func verifyChain(each func(fn func(*Record)) error, stored, witness *Head) (VerifyReport, error) {
	base := Head{Hash: zeroHash()}
	// The newest checkpoint in chain order names the base. Its own
	// integrity is checked by the chain walk below.
	var newestCP uint64
	if err := each(func(r *Record) {
		if r.Kind == KindCheckpoint && r.Seq >= newestCP {
			// A checkpoint can only name a base before itself: one naming
			// itself would exempt the whole chain from checking.
			if b, ok := checkpointBase(r); ok && b.Size < r.Seq {
				base, newestCP = b, r.Seq
			}
		}
	}); err != nil {
		return VerifyReport{}, err
	}
	v := &verifier{rep: VerifyReport{OK: true, Base: base, Head: base}, prev: base.Hash, expect: base.Size + 1, witness: witness}
	if err := each(v.next); err != nil {
		return VerifyReport{}, err
	}
	rep := v.finish(stored)
	if !rep.OK {
		return rep, fmt.Errorf("%s: %w", rep.Problem, ErrTampered)
	}
	return rep, nil
}

// verifier walks records in storage order and checks the chain.
type verifier struct {
	rep       VerifyReport
	prev      string
	expect    uint64
	witness   *Head
	witnessOK bool
	// left is the last leftover record seen (records at or below the base
	// that an interrupted retention had not removed yet).
	left *Record
}

func (v *verifier) fail(seq uint64, format string, a ...any) {
	if v.rep.OK {
		v.rep.OK = false
		v.rep.FirstBad = seq
		v.rep.Problem = fmt.Sprintf(format, a...)
	}
}

// next checks one record.
func (v *verifier) next(r *Record) {
	if r.Seq <= v.rep.Base.Size {
		v.leftover(r)
		return
	}
	if v.left != nil && v.left.Seq != v.rep.Base.Size {
		v.fail(v.left.Seq+1, "records %d-%d deleted below the retention base", v.left.Seq+1, v.rep.Base.Size)
	}
	v.rep.Records++
	switch {
	case r.Seq > v.expect:
		if r.Seq == v.expect+1 {
			v.fail(v.expect, "record %d deleted (found %d after %d)", v.expect, r.Seq, v.expect-1)
		} else {
			v.fail(v.expect, "records %d-%d deleted (found %d after %d)", v.expect, r.Seq-1, r.Seq, v.expect-1)
		}
	case r.Seq < v.expect:
		v.fail(r.Seq, "record %d inserted or reordered (expected %d next)", r.Seq, v.expect)
		return
	}
	want, err := chainHash(v.prev, r)
	if err != nil {
		v.fail(r.Seq, "record %d cannot be hashed: %v", r.Seq, err)
	} else if want != r.Hash {
		v.fail(r.Seq, "record %d modified (hash %s, chain expects %s)", r.Seq, short(r.Hash), short(want))
	}
	if v.witness != nil && r.Seq == v.witness.Size {
		v.witnessOK = r.Hash == v.witness.Hash
		if !v.witnessOK {
			v.fail(r.Seq, "record %d does not match the witnessed head %s", r.Seq, *v.witness)
		}
	}
	v.prev, v.expect = r.Hash, r.Seq+1
	v.rep.Head = Head{Size: r.Seq, Hash: r.Hash}
}

// leftover checks a record retention was interrupted before removing:
// leftovers must be contiguous, chain among themselves (from the genesis
// when they start at 1) and end exactly at the base.
func (v *verifier) leftover(r *Record) {
	switch {
	case v.left == nil && r.Seq == 1:
		if h, err := chainHash(zeroHash(), r); err != nil || h != r.Hash {
			v.fail(r.Seq, "record %d modified (below the retention base)", r.Seq)
		}
	case v.left == nil:
	case r.Seq != v.left.Seq+1:
		v.fail(v.left.Seq+1, "record %d deleted or reordered below the retention base (found %d after %d)", v.left.Seq+1, r.Seq, v.left.Seq)
	default:
		if h, err := chainHash(v.left.Hash, r); err != nil || h != r.Hash {
			v.fail(r.Seq, "record %d modified (below the retention base)", r.Seq)
		}
	}
	if r.Seq == v.rep.Base.Size && r.Hash != v.rep.Base.Hash {
		v.fail(r.Seq, "record %d does not match the base the retention checkpoint names", r.Seq)
	}
	if v.witness != nil && r.Seq == v.witness.Size {
		if v.witnessOK = r.Hash == v.witness.Hash; !v.witnessOK {
			v.fail(r.Seq, "record %d does not match the witnessed head %s", r.Seq, *v.witness)
		}
	}
	c := *r
	v.left = &c
}

// finish applies the checks that need the whole chain.
func (v *verifier) finish(stored *Head) VerifyReport {
	if v.rep.OK && stored != nil && v.rep.Head != *stored {
		v.fail(stored.Size, "stored head %s does not match the chain's last record %s", *stored, v.rep.Head)
	}
	if v.rep.OK && v.witness != nil {
		switch {
		case v.witness.Size > v.rep.Head.Size:
			v.fail(v.rep.Head.Size+1, "tail truncated: the witnessed head has %d records, the store %d", v.witness.Size, v.rep.Head.Size)
		case v.witness.Size > v.rep.Base.Size && !v.witnessOK:
			v.fail(v.witness.Size, "record %d of the witnessed head is missing", v.witness.Size)
		case v.witness.Size <= v.rep.Base.Size && !v.witnessOK:
			v.rep.Note = fmt.Sprintf("the witnessed head %d precedes the retained chain (base %d): retention removed it, so it was not checked; witness a newer head",
				v.witness.Size, v.rep.Base.Size)
		}
	}
	return v.rep
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// checkpointBase reads the base a checkpoint record names.
func checkpointBase(r *Record) (Head, bool) {
	var d struct {
		BaseSeq  uint64 `json:"base_seq"`
		BaseHash string `json:"base_hash"`
	}
	if err := json.Unmarshal(r.Details, &d); err != nil || d.BaseHash == "" {
		return Head{}, false
	}
	return Head{Size: d.BaseSeq, Hash: d.BaseHash}, true
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
func chainRecords(recs []*Record, head Head, hwm map[string]uint64) ([]*Record, Head, map[string]uint64, error) {
	updates := map[string]uint64{}
	mark := func(epoch string) uint64 {
		if v, ok := updates[epoch]; ok {
			return v
		}
		return hwm[epoch]
	}
	var stored []*Record
	for _, r := range recs {
		if r.RingEpoch != "" && r.RingSeq != 0 && r.RingSeq <= mark(r.RingEpoch) {
			continue // stored before an agent restart: exactly once
		}
		sanitize(r)
		r.Seq = head.Size + 1
		if err := seal(head.Hash, r); err != nil {
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
