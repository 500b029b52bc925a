package rings

import (
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// Rejection reason codes: the stable part of a rejection, which keys the
// aggregation and the agaobs_rings_rejected_total{reason} counter. The
// free-text reason (with paths, modes and pids) only travels as an example.
const (
	rejWritable      = "writable_by_others"
	rejUIDNotAllowed = "uid_not_allowed"
	rejOwnerMismatch = "owner_mismatch"
	rejUnverifiable  = "owner_unverifiable"
	rejNotRing       = "not_a_ring"
	rejInitTimeout   = "initialise_timeout"
	rejProducerLimit = "producer_limit"
)

// RejectCodes lists every rejection reason code, for zero-valued series.
var RejectCodes = [...]string{rejWritable, rejUIDNotAllowed, rejOwnerMismatch, rejUnverifiable, rejNotRing, rejInitTimeout, rejProducerLimit}

// rejectSummaryInterval is how often at most one log line and one audit
// record are written per (uid, reason code): anyone who can write the ring
// directory can create junk files far faster than an operator reads.
const rejectSummaryInterval = time.Minute

// maxRejectKeys bounds the aggregation table; further keys share one
// overflow key (uid 0xffffffff).
const maxRejectKeys = 1024

const overflowUID = ^uint32(0)

type rejectKey struct {
	uid  uint32
	code string
}

type rejectCount struct {
	lastEmit time.Time
	pending  uint64 // rejections since lastEmit not yet reported
	path     string // newest example
	reason   string
}

// rejections aggregates ring rejections per (uid, code): the first one of
// a key is reported at once, later ones as one summary with a count per
// rejectSummaryInterval. Owned by the consumer goroutine.
type rejections struct {
	keys  map[rejectKey]*rejectCount
	total map[string]uint64 // by code, for the metric
}

func newRejections() *rejections {
	return &rejections{keys: map[rejectKey]*rejectCount{}, total: map[string]uint64{}}
}

// add counts one rejection and returns a summary to report now, if due.
func (r *rejections) add(now time.Time, uid uint32, code, path, reason string) (pipeline.Lifecycle, bool) {
	r.total[code]++
	k := rejectKey{uid, code}
	rc := r.keys[k]
	if rc == nil {
		if len(r.keys) >= maxRejectKeys {
			k.uid = overflowUID
			rc = r.keys[k]
		}
		if rc == nil {
			rc = &rejectCount{}
			r.keys[k] = rc
		}
	}
	rc.pending++
	rc.path, rc.reason = path, reason
	if !rc.lastEmit.IsZero() && now.Sub(rc.lastEmit) < rejectSummaryInterval {
		return pipeline.Lifecycle{}, false
	}
	return r.emit(now, k, rc), true
}

// due returns the summaries whose interval has passed and forgets keys
// that stayed quiet for two intervals.
func (r *rejections) due(now time.Time) []pipeline.Lifecycle {
	var out []pipeline.Lifecycle
	for k, rc := range r.keys {
		if now.Sub(rc.lastEmit) < rejectSummaryInterval {
			continue
		}
		if rc.pending > 0 {
			out = append(out, r.emit(now, k, rc))
		} else if now.Sub(rc.lastEmit) >= 2*rejectSummaryInterval {
			delete(r.keys, k)
		}
	}
	return out
}

func (r *rejections) emit(now time.Time, k rejectKey, rc *rejectCount) pipeline.Lifecycle {
	l := pipeline.Lifecycle{
		Type: pipeline.RingRejected, Ring: rc.path, Reason: rc.reason,
		Details: map[string]any{"uid": k.uid, "reason_code": k.code, "count": rc.pending,
			"interval_seconds": rejectSummaryInterval.Seconds()},
	}
	rc.lastEmit, rc.pending = now, 0
	return l
}

// totals copies the per-code counters.
func (r *rejections) totals() map[string]uint64 {
	out := make(map[string]uint64, len(RejectCodes))
	for _, c := range RejectCodes {
		out[c] = r.total[c]
	}
	return out
}
