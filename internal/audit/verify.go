package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// layout describes how a backend files records and what its retention
// can leave behind. The chain has no secret: anyone who can write the
// store can delete its oldest records and append a checkpoint naming the
// last deleted one, so verifyChain accepts a checkpoint only if a
// retention run of this backend could have written it and left the store
// as it is.
type layout struct {
	backend string // "bbolt", "file" or "memory"
	// buckets are bbolt's day buckets, empty ones included.
	buckets map[string]bool
	// metaBase is the base bbolt's meta bucket records (nil: none kept).
	metaBase *Head
}

// reasons are the reasons a backend's retention writes.
func (l *layout) reason(r string) bool {
	switch r {
	case "audit_retention_days", "audit_max_bytes":
		return true
	case "audit_max_files":
		return l.backend == "file"
	}
	return false
}

// walkFunc walks every stored record in storage order with where it is
// filed: its day bucket (bbolt), its file (JSONL) or "" (memory).
type walkFunc func(fn func(r *Record, loc string)) error

// cpDetails are a retention checkpoint's details (see checkpoint).
type cpDetails struct {
	BaseSeq        *uint64         `json:"base_seq"`
	BaseHash       string          `json:"base_hash"`
	RemovedRecords *uint64         `json:"removed_records"`
	Removed        []string        `json:"removed"`
	Reason         string          `json:"reason"`
	RingMarks      json.RawMessage `json:"ring_marks"`
}

// cpInfo is one checkpoint record found in the store.
type cpInfo struct {
	seq   uint64
	loc   string
	base  Head
	det   cpDetails
	marks map[string]uint64 // JSONL: the ring marks it carries
	err   string            // why retention cannot have written it ("" if it can)
}

// locRun is a run of consecutive records (storage order) filed in one
// place, with its lowest and highest seq (unreadable lines, seq 0, left
// out).
type locRun struct {
	loc      string
	min, max uint64
}

// verifyChain checks a chain walked in storage order by each. The base is
// what the newest retention checkpoint names (the genesis without one),
// once lay's rules say retention could have written it: records at or
// below the base are leftovers an interrupted retention had not deleted
// yet (JSONL) and are checked among themselves. stored, if not nil, is the
// head the backend recorded; witness is a head seen earlier
// (--expect-head).
func verifyChain(each walkFunc, stored, witness *Head, lay layout, progress ProgressFunc) (VerifyReport, error) {
	total := 0
	var cps []cpInfo
	var runs []locRun
	minSeq := uint64(math.MaxUint64)
	if err := each(func(r *Record, loc string) {
		if n := len(runs); n == 0 || runs[n-1].loc != loc {
			runs = append(runs, locRun{loc: loc, min: math.MaxUint64})
		}
		if run := &runs[len(runs)-1]; r.Seq > 0 {
			run.min, run.max = min(run.min, r.Seq), max(run.max, r.Seq)
		}
		minSeq = min(minSeq, r.Seq)
		total++
		if r.Kind == KindCheckpoint {
			cps = append(cps, parseCheckpoint(r, loc, &lay))
		}
	}); err != nil {
		return VerifyReport{}, err
	}
	genesis := Head{Hash: zeroHash()}
	cp, bad, problem := retentionBase(cps, runs, minSeq, &lay)
	base := genesis
	if cp != nil && problem == "" {
		base = cp.base
	}
	v := &verifier{rep: VerifyReport{OK: true, Base: base, Head: base}, prev: base.Hash, expect: base.Size + 1, witness: witness}
	if problem != "" {
		// Verified from the genesis instead, but this is what to report.
		v.fail(bad, "%s", problem)
	}
	if cp != nil && problem == "" && cp.marks != nil {
		v.marks, v.cpSeq = cp.marks, cp.seq
	}
	done := 0
	if err := each(func(r *Record, _ string) {
		v.visit(r)
		if done++; progress != nil {
			progress(done, total)
		}
	}); err != nil {
		return VerifyReport{}, err
	}
	rep := v.finish(stored)
	if !rep.OK {
		return rep, fmt.Errorf("%s: %w", rep.Problem, ErrTampered)
	}
	return rep, nil
}

// parseCheckpoint reads a checkpoint record and checks what any retention
// checkpoint of the backend says.
func parseCheckpoint(r *Record, loc string, lay *layout) cpInfo {
	c := cpInfo{seq: r.Seq, loc: loc}
	bad := func(format string, a ...any) cpInfo {
		c.err = fmt.Sprintf("checkpoint %d cannot come from retention: ", r.Seq) + fmt.Sprintf(format, a...)
		return c
	}
	d := &c.det
	if err := json.Unmarshal(r.Details, d); err != nil {
		return bad("its details do not parse: %v", err)
	}
	switch {
	case r.Operation != "retention":
		return bad("operation %q (retention writes \"retention\")", r.Operation)
	case d.BaseSeq == nil || *d.BaseSeq == 0 || !isDigest(d.BaseHash):
		return bad("it names no base record (base_seq and a SHA-256 base_hash)")
	case *d.BaseSeq >= r.Seq:
		// One naming itself would exempt the whole chain from checking.
		return bad("it names base %d, not a record before itself", *d.BaseSeq)
	case d.RemovedRecords == nil || *d.RemovedRecords == 0 || *d.RemovedRecords > *d.BaseSeq:
		return bad("removed_records is not between 1 and its base %d", *d.BaseSeq)
	case len(d.Removed) == 0:
		return bad("it names nothing it removed")
	case !lay.reason(d.Reason):
		return bad("reason %q is not one of the %s backend's", d.Reason, lay.backend)
	}
	c.base = Head{Size: *d.BaseSeq, Hash: d.BaseHash}
	switch lay.backend {
	case "bbolt", "memory":
		for i, day := range d.Removed {
			if t, err := time.Parse("2006-01-02", day); err != nil || t.Format("2006-01-02") != day {
				return bad("removed %q is not a day", day)
			}
			// bbolt removes its sorted buckets oldest first.
			if lay.backend == "bbolt" && i > 0 && day <= d.Removed[i-1] {
				return bad("removed days %q are not in order", d.Removed)
			}
		}
	case "file":
		for _, f := range d.Removed {
			if !rotatedName(f) {
				return bad("removed %q is not the name of a rotated file", f)
			}
		}
		// Every JSONL checkpoint carries the ring marks of the removed
		// records (exactly-once survives them).
		if json.Unmarshal(d.RingMarks, &c.marks) != nil || c.marks == nil {
			return bad("it carries no ring_marks")
		}
	}
	return c
}

// rotatedName reports whether name is the base name of a rotated JSONL
// file: <stem>.<N>.<ext> with N ≥ 1 (the active file has no N). The stem
// is not compared: a store may have been moved to another path since.
func rotatedName(name string) bool {
	if name == "" || strings.ContainsRune(name, '/') {
		return false
	}
	stem := strings.TrimSuffix(name, filepath.Ext(name))
	i := strings.LastIndexByte(stem, '.')
	if i <= 0 {
		return false
	}
	n, err := strconv.Atoi(stem[i+1:])
	return err == nil && n >= 1 && strconv.Itoa(n) == stem[i+1:]
}

// isDigest reports whether s is a SHA-256 digest as the store writes it.
func isDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// retentionBase picks the newest checkpoint (in chain order) and checks
// that the checkpoints, and the store around them, are what retention
// leaves behind. It returns the checkpoint (nil: none), and, when one is
// not acceptable, the seq to report and why.
func retentionBase(cps []cpInfo, runs []locRun, minSeq uint64, lay *layout) (*cpInfo, uint64, string) {
	genesis := Head{Hash: zeroHash()}
	if len(cps) == 0 {
		if lay.metaBase != nil && *lay.metaBase != genesis {
			return nil, lay.metaBase.Size, fmt.Sprintf("the store's meta bucket names retention base %s, but no checkpoint record does", *lay.metaBase)
		}
		return nil, 0, ""
	}
	sort.SliceStable(cps, func(i, j int) bool { return cps[i].seq < cps[j].seq })
	for i := range cps {
		c := &cps[i]
		if c.err != "" {
			return c, c.seq, c.err
		}
		if i == 0 {
			continue
		}
		// Each run removes the records after the previous run's base up
		// to its own: bbolt and memory exactly those, JSONL also any
		// leftovers of an interrupted run.
		p := &cps[i-1]
		removed, span := *c.det.RemovedRecords, c.base.Size-min(c.base.Size, p.base.Size)
		switch {
		case c.base.Size < p.base.Size:
			return c, c.seq, fmt.Sprintf("checkpoint %d cannot come from retention: its base %d is before checkpoint %d's base %d", c.seq, c.base.Size, p.seq, p.base.Size)
		case lay.backend != "file" && removed != span, lay.backend == "file" && removed < span:
			return c, c.seq, fmt.Sprintf("checkpoint %d cannot come from retention: it says it removed %d records, but its base is %d records past checkpoint %d's",
				c.seq, removed, span, p.seq)
		}
	}
	c := &cps[len(cps)-1]
	bad := func(format string, a ...any) (*cpInfo, uint64, string) {
		return c, c.seq, fmt.Sprintf("checkpoint %d cannot come from retention: ", c.seq) + fmt.Sprintf(format, a...)
	}
	switch lay.backend {
	case "bbolt":
		if lay.metaBase != nil && *lay.metaBase != c.base {
			return bad("it names base %s, the store's meta bucket %s", c.base, *lay.metaBase)
		}
		// Retention deletes whole day buckets in the transaction that
		// appends its checkpoint: nothing at or below the base remains.
		if minSeq <= c.base.Size {
			return bad("record %d, at or below its base %d, is still stored (retention deletes whole days with the checkpoint)", minSeq, c.base.Size)
		}
		var own locRun // the checkpoint's bucket
		for _, r := range runs {
			if r.loc == c.loc {
				own = r
				break
			}
		}
		// The retained records start on a later day than any removed one;
		// the same day only when the checkpoint recreated it (the clock
		// had stepped back and retention removed the newest bucket).
		first := runs[0]
		for _, day := range c.det.Removed {
			recreated := day == c.loc && own.min == c.seq
			if day > first.loc || day == first.loc && !recreated {
				return bad("day %s it says it removed is not older than the retained records (day %s)", day, first.loc)
			}
			if lay.buckets[day] && !recreated {
				return bad("day %s it says it removed is still in the store", day)
			}
		}
	case "file":
		// Retention removes whole files: no file holds records on both
		// sides of the base.
		for _, r := range runs {
			if r.max > c.base.Size {
				if r.min <= c.base.Size {
					return bad("file %s holds records on both sides of its base %d (retention removes whole files)", r.loc, c.base.Size)
				}
				break
			}
		}
	}
	return c, c.seq, ""
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
	// marks are the JSONL checkpoint's ring marks: every producer record
	// before it (cpSeq) must be covered.
	marks map[string]uint64
	cpSeq uint64
}

func (v *verifier) fail(seq uint64, format string, a ...any) {
	if v.rep.OK {
		v.rep.OK = false
		v.rep.FirstBad = seq
		v.rep.Problem = fmt.Sprintf(format, a...)
	}
}

func (v *verifier) visit(r *Record) {
	if v.marks != nil && r.Kind == KindProducer && r.RingEpoch != "" && r.Seq < v.cpSeq && r.RingSeq > v.marks[r.RingEpoch] {
		v.fail(v.cpSeq, "checkpoint %d cannot come from retention: its ring_marks do not cover record %d (ring %s, seq %d), which precedes it",
			v.cpSeq, r.Seq, r.RingEpoch, r.RingSeq)
	}
	if r.Seq <= v.rep.Base.Size {
		v.leftover(r)
		return
	}
	v.next(r)
}

// next checks one record after the base.
func (v *verifier) next(r *Record) {
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
	if v.rep.OK && v.witness != nil && !v.witnessOK {
		w, base := *v.witness, v.rep.Base
		switch {
		case w.Size > v.rep.Head.Size:
			v.fail(v.rep.Head.Size+1, "tail truncated: the witnessed head has %d records, the store %d", w.Size, v.rep.Head.Size)
		case w.Size > base.Size:
			v.fail(w.Size, "record %d of the witnessed head is missing", w.Size)
		case w.Size == base.Size && w.Hash != base.Hash:
			// The base hash is the witnessed record's hash, removed or not.
			v.fail(w.Size, "the witnessed head %s does not match the retention base %s", w, base)
		case w.Size < base.Size:
			v.rep.Note = fmt.Sprintf("the witnessed head %d precedes the retained chain (base %d): retention removed it, so it was not checked; witness a newer head",
				w.Size, base.Size)
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

// ProgressFunc is told how far a long operation (Verify, Export) has got:
// done of total records; total is 0 when it is not known in advance. It
// is called from the operation's goroutine, once per record or page, so
// it must be cheap: rendering (and rate limiting) is the caller's.
type ProgressFunc func(done, total int)

// VerifyProgress verifies s as s.Verify does, reporting progress to
// progress (which may be nil) as records are checked.
func VerifyProgress(s Store, expect *Head, progress ProgressFunc) (VerifyReport, error) {
	if p, ok := s.(interface {
		verifyProgress(*Head, ProgressFunc) (VerifyReport, error)
	}); ok {
		return p.verifyProgress(expect, progress)
	}
	return s.Verify(expect)
}
