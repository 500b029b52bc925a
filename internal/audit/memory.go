package audit

import (
	"sync"
	"time"
)

// memStore keeps the chain in memory: nothing survives a restart. It is
// the `memory` backend and a reference for the others' semantics.
type memStore struct {
	mu   sync.Mutex
	recs []Record
	head Head
	hwm  map[string]uint64
	size int64
}

// NewMemory returns an empty in-memory store.
func NewMemory() Store {
	return &memStore{head: Head{Hash: zeroHash()}, hwm: map[string]uint64{}}
}

func (m *memStore) Append(recs []*Record) ([]*Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	stored, head, hwm, err := chainRecords(recs, m.head, m.hwm, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range stored {
		m.recs = append(m.recs, *r)
		if b, err := r.encoded(); err == nil {
			m.size += int64(len(b))
		}
	}
	m.head = head
	for e, v := range hwm {
		m.hwm[e] = v
	}
	return stored, nil
}

func (m *memStore) Query(f Filter) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Record
	for i := range m.recs {
		if f.match(&m.recs[i]) {
			out = append(out, m.recs[i])
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
		}
	}
	return out, nil
}

func (m *memStore) Head() (Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.head, nil
}

func (m *memStore) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

func (m *memStore) Verify(expect *Head) (VerifyReport, error) { return m.verifyProgress(expect, nil) }

func (m *memStore) verifyProgress(expect *Head, progress ProgressFunc) (VerifyReport, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	head := m.head
	return verifyChain(func(fn func(*Record, string)) error {
		for i := range m.recs {
			r := m.recs[i]
			fn(&r, "")
		}
		return nil
	}, &head, expect, layout{backend: "memory"}, progress)
}

func (m *memStore) Retain(now time.Time, maxAge time.Duration, maxBytes int64) (RetentionResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var res RetentionResult
	cutoff := ""
	if maxAge > 0 {
		cutoff = dayOf(now.Add(-maxAge))
	}
	today := dayOf(now)
	var base Head
	cut := 0
	reason := "audit_retention_days"
	for cut < len(m.recs) {
		d := dayOf(m.recs[cut].Time)
		byAge := cutoff != "" && d < cutoff
		if !byAge && !(maxBytes > 0 && m.size > maxBytes && d != today) {
			break
		}
		if !byAge {
			reason = "audit_max_bytes"
		}
		// Remove the whole day.
		for cut < len(m.recs) && dayOf(m.recs[cut].Time) == d {
			base = Head{Size: m.recs[cut].Seq, Hash: m.recs[cut].Hash}
			if b, err := m.recs[cut].encoded(); err == nil {
				m.size -= int64(len(b))
			}
			cut++
			res.RemovedRecords++
		}
		res.RemovedDays = append(res.RemovedDays, d)
	}
	if cut == 0 {
		return res, nil
	}
	m.recs = append([]Record(nil), m.recs[cut:]...)
	cp := checkpoint(now, base, res.RemovedRecords, res.RemovedDays, reason, nil)
	stored, head, _, err := chainRecords([]*Record{cp}, m.head, nil, nil)
	if err != nil {
		return RetentionResult{}, err
	}
	m.recs = append(m.recs, *stored[0])
	if b, err := stored[0].encoded(); err == nil {
		m.size += int64(len(b))
	}
	m.head = head
	res.Checkpoint = stored[0]
	return res, nil
}

func (m *memStore) Close() error { return nil }
