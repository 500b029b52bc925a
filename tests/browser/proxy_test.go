package browser

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// proxy is a TCP proxy between the browser and the agent's admin listener
// that counts the bytes the agent sends to the browser. It dials the agent
// for every connection, so it outlives an agent restart. It notes the
// count at the first message the page sends on a WebSocket (the focus
// request, which the page sends while it applies its first snapshot): the
// bytes of the first load are the assets, the handshake and the
// compressed snapshot.
type proxy struct {
	ln       net.Listener
	upstream string
	down     atomic.Int64 // agent → browser, all connections
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	loaded   int64 // down when the first WebSocket message from the page passed; -1 before
	wsDown   int64 // of which the WebSocket connection's bytes
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}, loaded: -1}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// firstLoad returns the bytes sent to the browser until its first
// WebSocket message, and those of the WebSocket connection (-1, -1 before).
func (p *proxy) firstLoad() (total, ws int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loaded, p.wsDown
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.conns == nil {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *proxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer client.Close()
	if !p.track(client, true) {
		return
	}
	defer p.track(client, false)
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return // the agent is down (a restart): the browser sees a closed connection
	}
	defer up.Close()
	if !p.track(up, true) {
		return
	}
	defer p.track(up, false)

	var connDown atomic.Int64
	done := make(chan struct{})
	go func() { // agent → browser
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				p.down.Add(int64(n))
				connDown.Add(int64(n))
				if _, werr := client.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// HTTP and WebSocket need no half-close: either side ending
		// ends the connection.
		_ = client.Close()
		_ = up.Close()
	}()
	// browser → agent
	buf := make([]byte, 32<<10)
	first, ws := true, false
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if first {
				first = false
				ws = bytes.Contains(bytes.ToLower(buf[:n]), []byte("upgrade: websocket"))
			} else if ws {
				p.mu.Lock()
				if p.loaded < 0 {
					p.loaded, p.wsDown = p.down.Load(), connDown.Load()
				}
				p.mu.Unlock()
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = up.Close()
	_ = client.Close()
	<-done
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
