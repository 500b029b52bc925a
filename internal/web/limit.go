package web

import (
	"container/list"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// limitListener caps the connections a listener holds open. At the cap a
// new connection first evicts the oldest idle keep-alive connection, then
// the oldest connection that has been silent (no complete request) for
// silentAfter; with neither, it waits up to acceptWait for a connection to
// close or go idle and is closed if none does. Connections in a request and
// hijacked ones are never evicted. It sits below TLS (exporter-toolkit
// wraps it), so the cap counts TCP connections whatever the protocol.
type limitListener struct {
	net.Listener
	max         int
	acceptWait  time.Duration
	silentAfter time.Duration

	mu      sync.Mutex
	open    int
	idle    list.List // *trackedConn, oldest idle first
	fresh   list.List // *trackedConn in StateNew, oldest first
	changed chan struct{}
	done    chan struct{}
	closed  bool

	evicted, rejected, acceptErrs atomic.Uint64
	waiting                       atomic.Int32 // Accepts waiting for a slot (tests)
}

// trackedConn is one accepted connection; state and elem are guarded by
// the listener's mu.
type trackedConn struct {
	net.Conn
	l     *limitListener
	state http.ConnState
	since time.Time     // when it entered state
	elem  *list.Element // in l.idle or l.fresh, or nil
	once  sync.Once
}

// Unwrap returns the accepted connection under the tracking (a
// WebSocket handler sets its socket options).
func (c *trackedConn) Unwrap() net.Conn { return c.Conn }

func newLimitListener(inner net.Listener, limit int, acceptWait, silentAfter time.Duration) *limitListener {
	return &limitListener{Listener: inner, max: limit, acceptWait: acceptWait, silentAfter: silentAfter,
		changed: make(chan struct{}), done: make(chan struct{})}
}

// Accept returns the next connection admitted under the cap. Errors are
// returned unchanged: net/http backs off (5 ms doubling to 1 s) on
// temporary ones such as EMFILE instead of spinning. On descriptor
// exhaustion it also evicts the oldest idle connection, so the retry can
// succeed even when the descriptors went elsewhere.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				l.acceptErrs.Add(1)
				if v := l.victim(); v != nil {
					l.evicted.Add(1)
					v.Close()
				}
			}
			return nil, err
		}
		if tc := l.admit(c); tc != nil {
			return tc, nil
		}
	}
}

// admit makes room for c and tracks it, or closes it (nil) when no
// connection closed or went idle within acceptWait.
func (l *limitListener) admit(c net.Conn) *trackedConn {
	var deadline <-chan time.Time
	l.mu.Lock()
	for l.open >= l.max && !l.closed {
		if v := l.victimLocked(); v != nil {
			l.mu.Unlock()
			l.evicted.Add(1)
			v.Close() // releases its slot
			l.mu.Lock()
			continue
		}
		// Every connection is in a request (or connected only just): wait
		// for one to end, go idle or turn silent. A kubelet probe (1 s
		// timeout by default) is better served late than refused at once.
		if deadline == nil {
			t := time.NewTimer(l.acceptWait)
			defer t.Stop()
			deadline = t.C
		}
		// The oldest fresh connection becomes evictable once silent.
		silent := time.NewTimer(time.Hour)
		if e := l.fresh.Front(); e != nil && l.silentAfter > 0 {
			silent.Reset(time.Until(e.Value.(*trackedConn).since.Add(l.silentAfter)))
		}
		changed := l.changed
		l.waiting.Add(1)
		l.mu.Unlock()
		timedOut := false
		select {
		case <-changed:
		case <-silent.C:
		case <-l.done:
		case <-deadline:
			timedOut = true
		}
		silent.Stop()
		l.waiting.Add(-1)
		if timedOut {
			l.rejected.Add(1)
			c.Close()
			return nil
		}
		l.mu.Lock()
	}
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return nil
	}
	tc := &trackedConn{Conn: c, l: l, state: http.StateNew, since: time.Now()}
	tc.elem = l.fresh.PushBack(tc)
	l.open++
	l.mu.Unlock()
	return tc
}

// victim picks the connection to evict, taking it off the lists.
func (l *limitListener) victim() *trackedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.victimLocked()
}

func (l *limitListener) victimLocked() *trackedConn {
	if e := l.idle.Front(); e != nil {
		return l.take(e, &l.idle)
	}
	// StateNew connections that sent no complete request for silentAfter:
	// real clients send theirs at once, a connection flood does not.
	if e := l.fresh.Front(); e != nil && l.silentAfter > 0 && time.Since(e.Value.(*trackedConn).since) >= l.silentAfter {
		return l.take(e, &l.fresh)
	}
	return nil
}

func (l *limitListener) take(e *list.Element, from *list.List) *trackedConn {
	tc := e.Value.(*trackedConn)
	from.Remove(e)
	tc.elem = nil
	tc.state = http.StateClosed // never listed again, whatever the server reports meanwhile
	return tc
}

// signalLocked wakes a waiting admit.
func (l *limitListener) signalLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// connState is the http.Server's ConnState hook: it keeps the idle and
// fresh lists in the order connections entered them.
func (l *limitListener) connState(c net.Conn, state http.ConnState) {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = u.NetConn()
	}
	tc, ok := c.(*trackedConn)
	if !ok || tc.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if tc.state == http.StateClosed || state == http.StateNew || state == http.StateClosed {
		return // evicted or released; New was recorded by admit, Closed by Close
	}
	tc.unlistLocked()
	tc.state, tc.since = state, time.Now()
	if state == http.StateIdle {
		tc.elem = l.idle.PushBack(tc)
		l.signalLocked()
	}
}

func (tc *trackedConn) unlistLocked() {
	if tc.elem == nil {
		return
	}
	if tc.state == http.StateIdle {
		tc.l.idle.Remove(tc.elem)
	} else {
		tc.l.fresh.Remove(tc.elem)
	}
	tc.elem = nil
}

// Close closes the connection and releases its slot once, whoever closes
// it: the server, an eviction, or a handler that hijacked it.
func (tc *trackedConn) Close() error {
	err := tc.Conn.Close()
	tc.once.Do(func() {
		l := tc.l
		l.mu.Lock()
		tc.unlistLocked()
		tc.state = http.StateClosed
		l.open--
		l.signalLocked()
		l.mu.Unlock()
	})
	return err
}

// CloseWrite passes the half-close through: net/http uses it to end a
// reply without a reset when the client's request body was left unread.
func (tc *trackedConn) CloseWrite() error {
	if cw, ok := tc.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close stops accepting and wakes a waiting Accept; open connections are
// the server's to close.
func (l *limitListener) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// stats reads the counters.
func (l *limitListener) stats() Stats {
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	return Stats{Open: open, Max: l.max, Evicted: l.evicted.Load(), Rejected: l.rejected.Load(), AcceptErrors: l.acceptErrs.Load()}
}
