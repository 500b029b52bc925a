package audit

import "sync/atomic"

// published is a store's head and size as of its last commit, readable
// without the store's lock: a commit holds that lock across its fsync,
// which a loaded disk can stretch to seconds, and /metrics, /health and
// the live view read the head and size every second. (Scrapes that waited
// on a commit took 2–4 s under load, and Prometheus marked the node's
// series stale.)
type published struct {
	head atomic.Pointer[Head]
	size atomic.Int64
}

// publish records head and size; callers hold the store's lock, so
// publications are in commit order.
func (p *published) publish(h Head, size int64) {
	p.head.Store(&h)
	p.size.Store(size)
}

func (p *published) Head() (Head, error) {
	if h := p.head.Load(); h != nil {
		return *h, nil
	}
	return Head{Hash: zeroHash()}, nil
}

func (p *published) Size() int64 { return p.size.Load() }
