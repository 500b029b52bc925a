package web

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agaobs/agaobs/internal/selfmetrics"
	"github.com/agaobs/agaobs/internal/testutil"
)

// inBlock counts requests inside /block (tests using it do not run in
// parallel).
var inBlock atomic.Int32

// startServer runs a listener with opts (and webConfig, if any) until the
// test ends. /block answers only once release is closed.
func startServer(t *testing.T, opts Options, webConfig string, release <-chan struct{}) *Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		inBlock.Add(1)
		defer inBlock.Add(-1)
		<-release
		io.WriteString(w, "released")
	})
	return startServerWith(t, opts, webConfig, mux)
}

// startServerHandler runs h on a plain HTTP listener until the test ends.
func startServerHandler(t *testing.T, opts Options, h http.Handler) *Server {
	t.Helper()
	return startServerWith(t, opts, "", h)
}

func startServerWith(t *testing.T, opts Options, webConfig string, h http.Handler) *Server {
	t.Helper()
	s, err := Listen("test", "127.0.0.1:0", h, webConfig, opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return s
}

// keepAlive is a raw HTTP/1.1 client connection that stays open between
// requests.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, br: bufio.NewReader(c)}
}

// get sends one request and reads the reply (10 s at most).
func (k *keepAlive) get(path string) (string, error) {
	k.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// closedByServer reports whether the server closed the connection: a read
// returns EOF (or a reset) rather than data or the 10 s deadline.
func (k *keepAlive) closedByServer() (bool, error) {
	k.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := k.br.ReadByte()
	var ne net.Error
	switch {
	case err == nil:
		return false, errors.New("unexpected data on an idle connection")
	case errors.As(err, &ne) && ne.Timeout():
		return false, nil
	default:
		return true, nil // io.EOF or ECONNRESET
	}
}

// fresh makes one request on a new connection.
func fresh(url string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

func idleCount(s *Server) int {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	return s.l.idle.Len()
}

// At web_max_connections idle keep-alive connections, a new client is
// still served: the oldest idle connection is closed for it, the others
// stay usable, and the eviction is counted.
func TestMaxConnectionsEvictsOldestIdle(t *testing.T) {
	const max = 4
	s := startServer(t, Options{MaxConnections: max}, "", nil)
	conns := make([]*keepAlive, max)
	for i := range conns {
		conns[i] = dialKeepAlive(t, s.Addr())
		if body, err := conns[i].get("/"); err != nil || body != "ok" {
			t.Fatalf("conn %d: %q %v", i, body, err)
		}
		// One at a time, so they go idle in dial order.
		testutil.Eventually(t, 30*time.Second, func() bool { return idleCount(s) == i+1 }, "conn %d not idle", i)
	}
	if body, err := fresh("http://" + s.Addr() + "/"); err != nil || body != "ok" {
		t.Fatalf("new client at the cap: %q %v", body, err)
	}
	if closed, err := conns[0].closedByServer(); err != nil || !closed {
		t.Fatalf("oldest idle connection not closed (%v)", err)
	}
	for i := 1; i < max; i++ {
		if body, err := conns[i].get("/"); err != nil || body != "ok" {
			t.Errorf("conn %d after the eviction: %q %v", i, body, err)
		}
	}
	st := s.Stats()
	if st.Evicted != 1 || st.Rejected != 0 || st.Max != max {
		t.Errorf("stats %+v, want 1 eviction, no rejection, max %d", st, max)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return s.Stats().Open <= max }, "open %d > %d", s.Stats().Open, max)

	set := selfmetrics.NewSet()
	set.Add("web", Collector(func() []*Server { return []*Server{s} }))
	if err := selfmetrics.Check(set); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)
	want := "# HELP agaobs_web_connections_evicted_total Idle keep-alive (or silent) connections closed to admit a new one at the cap.\n" +
		"# TYPE agaobs_web_connections_evicted_total counter\nagaobs_web_connections_evicted_total{listener=\"test\"} 1\n"
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want), "agaobs_web_connections_evicted_total"); err != nil {
		t.Error(err)
	}
}

// web_idle_timeout closes idle keep-alive connections and frees their
// slots.
func TestIdleTimeoutClosesConnections(t *testing.T) {
	s := startServer(t, Options{IdleTimeout: 50 * time.Millisecond}, "", nil)
	k := dialKeepAlive(t, s.Addr())
	if _, err := k.get("/"); err != nil {
		t.Fatal(err)
	}
	if closed, err := k.closedByServer(); err != nil || !closed {
		t.Fatalf("idle connection still open 10 s past a 50 ms idle timeout (%v)", err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return s.Stats().Open == 0 }, "%d connections still counted", s.Stats().Open)
}

// Connections in a request are never evicted: at the cap with every
// connection active, a new one waits for a slot, and each request
// completes.
func TestActiveConnectionsNotEvicted(t *testing.T) {
	release := make(chan struct{})
	s := startServer(t, Options{MaxConnections: 2, AcceptWait: time.Minute}, "", release)
	type result struct {
		body string
		err  error
	}
	blocked := make(chan result, 2)
	for range 2 {
		go func() {
			body, err := fresh("http://" + s.Addr() + "/block")
			blocked <- result{body, err}
		}()
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return inBlock.Load() == 2 }, "two requests not in the handler")
	third := make(chan result, 1)
	go func() {
		body, err := fresh("http://" + s.Addr() + "/")
		third <- result{body, err}
	}()
	testutil.Eventually(t, 30*time.Second, func() bool { return s.l.waiting.Load() == 1 }, "third connection not waiting for a slot")
	close(release)
	for range 2 {
		if r := <-blocked; r.err != nil || r.body != "released" {
			t.Errorf("active request: %q %v", r.body, r.err)
		}
	}
	if r := <-third; r.err != nil || r.body != "ok" {
		t.Errorf("waiting request: %q %v", r.body, r.err)
	}
	if st := s.Stats(); st.Evicted != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v: an active connection was evicted or the new one refused", st)
	}
}

// When every connection stays in a request for AcceptWait, the new
// connection is closed and counted.
func TestRejectAfterAcceptWait(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startServer(t, Options{MaxConnections: 1, AcceptWait: 20 * time.Millisecond}, "", release)
	go fresh("http://" + s.Addr() + "/block")
	testutil.Eventually(t, 30*time.Second, func() bool { return inBlock.Load() == 1 }, "blocking request not in the handler")
	if body, err := fresh("http://" + s.Addr() + "/"); err == nil {
		t.Fatalf("served %q past a full, busy listener", body)
	}
	if st := s.Stats(); st.Rejected != 1 || st.Evicted != 0 {
		t.Errorf("stats %+v, want 1 rejection", st)
	}
}

// Connections that never send a request (a connection flood) are evicted
// once silent for SilentAfter, like idle ones.
func TestSilentConnectionsEvicted(t *testing.T) {
	s := startServer(t, Options{MaxConnections: 2, SilentAfter: 50 * time.Millisecond, AcceptWait: time.Minute}, "", nil)
	silent := []*keepAlive{dialKeepAlive(t, s.Addr()), dialKeepAlive(t, s.Addr())}
	testutil.Eventually(t, 30*time.Second, func() bool { return s.Stats().Open == 2 }, "silent connections not accepted")
	if body, err := fresh("http://" + s.Addr() + "/"); err != nil || body != "ok" {
		t.Fatalf("new client behind silent connections: %q %v", body, err)
	}
	if closed, err := silent[0].closedByServer(); err != nil || !closed {
		t.Errorf("oldest silent connection not closed (%v)", err)
	}
	if st := s.Stats(); st.Evicted != 1 {
		t.Errorf("stats %+v, want 1 eviction", st)
	}
}

// The cap holds with TLS: exporter-toolkit's TLS listener wraps the
// limiting one, and idle TLS connections are recognised and evicted.
func TestMaxConnectionsWithTLS(t *testing.T) {
	cfg := writeTLSConfig(t)
	s := startServer(t, Options{MaxConnections: 2}, cfg, nil)
	var conns []*tls.Conn
	for i := range 2 {
		c, err := tls.Dial("tcp", s.Addr(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		k := &keepAlive{c: c, br: bufio.NewReader(c)}
		if body, err := k.get("/"); err != nil || body != "ok" {
			t.Fatalf("tls conn %d: %q %v", i, body, err)
		}
		testutil.Eventually(t, 30*time.Second, func() bool { return idleCount(s) == i+1 }, "tls conn %d not idle", i)
		conns = append(conns, c)
	}
	if body, err := fresh("https://" + s.Addr() + "/"); err != nil || body != "ok" {
		t.Fatalf("new TLS client at the cap: %q %v", body, err)
	}
	k := &keepAlive{c: conns[0], br: bufio.NewReader(conns[0])}
	if closed, err := k.closedByServer(); err != nil || !closed {
		t.Errorf("oldest idle TLS connection not closed (%v)", err)
	}
	if st := s.Stats(); st.Evicted != 1 || st.Rejected != 0 {
		t.Errorf("stats %+v, want 1 eviction", st)
	}
}

// writeTLSConfig writes a self-signed certificate and an exporter-toolkit
// web config serving it.
func writeTLSConfig(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert := write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyf := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	return write("web.yml", []byte("tls_server_config:\n  cert_file: "+cert+"\n  key_file: "+keyf+"\n"))
}

// fakeListener returns its queued connections, then EMFILE as accept4
// does when the process is out of descriptors.
type fakeListener struct {
	conns chan net.Conn
}

func (f *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	default:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
}
func (f *fakeListener) Close() error   { return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// EMFILE from accept reaches net/http unchanged, as a temporary error it
// retries with back-off (no spinning), and frees a descriptor by evicting
// the oldest idle connection.
func TestAcceptEMFILE(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	f := &fakeListener{conns: make(chan net.Conn, 1)}
	f.conns <- a
	l := newLimitListener(f, 10, time.Second, time.Second)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	l.connState(c, http.StateActive)
	l.connState(c, http.StateIdle)
	_, err = l.Accept()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Temporary() || !errors.Is(err, syscall.EMFILE) { //nolint:staticcheck // net/http still keys its back-off on Temporary
		t.Fatalf("accept error %v: want a temporary net.Error wrapping EMFILE", err)
	}
	st := l.stats()
	if st.AcceptErrors != 1 || st.Evicted != 1 || st.Open != 0 {
		t.Errorf("stats %+v, want 1 accept error, 1 eviction, 0 open", st)
	}
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection not closed: %v", err)
	}
}

func TestFitMaxConnections(t *testing.T) {
	for _, c := range []struct {
		want, listeners int
		nofile          uint64
		got             int
	}{
		{512, 3, 256, 64},      // 256 - 64 reserved, over 3 listeners
		{512, 3, 1024, 256},    // a quarter reserved
		{512, 3, 1 << 20, 512}, // plenty: unchanged
		{512, 0, 256, 512},
		{512, 3, 50, 1},
	} {
		if got := fitMaxConnections(c.want, c.listeners, c.nofile); got != c.got {
			t.Errorf("fitMaxConnections(%d, %d, %d) = %d, want %d", c.want, c.listeners, c.nofile, got, c.got)
		}
	}
}
