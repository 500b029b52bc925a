package live

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Viewer limits.
const (
	// sendBuffer is the frames a viewer may be behind before it is
	// disconnected.
	sendBuffer = 8
	// writeTimeout bounds one message's write to a viewer; a viewer that
	// times out is dropped as too slow, like one whose buffer filled.
	writeTimeout = 10 * time.Second
	// socketBuffer is the kernel send buffer of a viewer's connection. On
	// loopback (every ssh -L or kubectl port-forward) Linux gives a socket
	// megabytes, which a stuck viewer would take hours to fill at a few
	// kilobytes a second: a small one makes "the send buffer is full"
	// happen within seconds, and bounds what a stuck viewer holds.
	socketBuffer = 16 << 10
	// readLimit bounds a client message (a focus request is < 300 bytes).
	readLimit = 4096
	// focusEvery is the shortest interval between two focus replies to
	// one viewer: each is up to a few hundred kilobytes.
	focusEvery = 250 * time.Millisecond
)

// Close codes the page understands (docs/live.md).
const (
	closeTooSlow   websocket.StatusCode = 1008 // policy violation: the buffer was full
	closeTooMany   websocket.StatusCode = 1013 // try again later
	closeGoingAway                      = websocket.StatusGoingAway
)

// hub holds the viewers. mu orders frames and registrations: a viewer
// registered under mu got a snapshot of every frame before it and gets
// every frame after it.
type hub struct {
	l       *Live
	max     int
	mu      sync.Mutex
	viewers map[*viewer]struct{}
	n       atomic.Int64
	closed  bool
}

type viewer struct {
	send chan []byte
	// gone is closed when the hub drops the viewer (too slow, or the
	// agent stops); reason says why.
	gone   chan struct{}
	once   sync.Once
	reason string
	code   websocket.StatusCode
}

func newHub(l *Live, maxViewers int) *hub {
	return &hub{l: l, max: maxViewers, viewers: map[*viewer]struct{}{}}
}

func (h *hub) count() int { return int(h.n.Load()) }

// broadcast queues the frame for every viewer, dropping those whose
// buffer is full. Callers hold h.mu.
func (h *hub) broadcast(frame []byte) {
	for v := range h.viewers {
		select {
		case v.send <- frame:
		default:
			h.dropLocked(v, closeTooSlow, "too slow: the send buffer is full")
			h.l.stats.dropped("slow")
		}
	}
}

func (h *hub) dropLocked(v *viewer, code websocket.StatusCode, reason string) {
	if _, ok := h.viewers[v]; !ok {
		return
	}
	delete(h.viewers, v)
	h.n.Add(-1)
	v.once.Do(func() {
		v.code, v.reason = code, reason
		close(v.gone)
	})
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for v := range h.viewers {
		h.dropLocked(v, closeGoingAway, "agent stopping")
	}
}

// join registers a viewer and returns its snapshot, or an error when the
// hub is full or closed.
func (h *hub) join() (*viewer, []byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, errors.New("agent stopping")
	}
	if len(h.viewers) >= h.max {
		return nil, nil, errTooMany
	}
	v := &viewer{send: make(chan []byte, sendBuffer), gone: make(chan struct{})}
	h.viewers[v] = struct{}{}
	h.n.Add(1)
	return v, h.l.snapshot(), nil
}

func (h *hub) leave(v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(v, websocket.StatusNormalClosure, "")
}

var errTooMany = errors.New("too many viewers")

// serveWS upgrades to a WebSocket and streams the snapshot then frames.
func (h *hub) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(smallSendBuffer{w}, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionContextTakeover})
	if err != nil {
		return // Accept answered the request
	}
	defer conn.CloseNow()
	conn.SetReadLimit(readLimit)
	v, snap, err := h.join()
	if err != nil {
		if errors.Is(err, errTooMany) {
			h.l.stats.dropped("too_many")
			_ = conn.Close(closeTooMany, "too many viewers (ui_max_viewers="+strconv.Itoa(h.max)+")")
			return
		}
		_ = conn.Close(closeGoingAway, err.Error())
		return
	}
	defer h.leave(v)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// The reader: focus requests, and control frames (the library needs
	// a reader for pings and the close handshake).
	focus := make(chan string, 1)
	go func() {
		defer cancel()
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var req struct {
				Type     string `json:"type"`
				Producer string `json:"producer"`
			}
			if json.Unmarshal(msg, &req) != nil || req.Type != "focus" {
				h.l.stats.badRequest()
				continue
			}
			select { // the newest request wins
			case <-focus:
			default:
			}
			focus <- req.Producer
		}
	}()

	write := func(b []byte) bool {
		wctx, wcancel := context.WithTimeout(ctx, writeTimeout)
		defer wcancel()
		if err := conn.Write(wctx, websocket.MessageText, b); err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				h.l.stats.dropped("slow") // stuck in the socket: as slow as a full buffer
			}
			return false
		}
		h.l.stats.sent(len(b))
		return true
	}
	if !write(snap) {
		return
	}
	var lastFocus time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.gone:
			_ = conn.Close(v.code, v.reason)
			return
		case b := <-v.send:
			if !write(b) {
				return
			}
		case name := <-focus:
			if wait := focusEvery - time.Since(lastFocus); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
			lastFocus = time.Now()
			if !write(h.l.layersMessage(name)) {
				return
			}
		}
	}
}

// smallSendBuffer sets socketBuffer on the connection the WebSocket
// library hijacks (through TLS and the listener's wrappers).
type smallSendBuffer struct{ http.ResponseWriter }

func (w smallSendBuffer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("live: the connection cannot be hijacked")
	}
	c, rw, err := hj.Hijack()
	if err == nil {
		setSendBuffer(c, socketBuffer)
	}
	return c, rw, err
}

// setSendBuffer finds the TCP socket under c's wrappers (a TLS
// connection, a listener's counting wrapper) and sets its send buffer.
func setSendBuffer(c net.Conn, n int) bool {
	for range 8 {
		switch x := c.(type) {
		case interface{ SetWriteBuffer(int) error }:
			return x.SetWriteBuffer(n) == nil
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		case interface{ Unwrap() net.Conn }:
			c = x.Unwrap()
		default:
			return false
		}
	}
	return false
}
