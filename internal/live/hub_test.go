package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// message is the part of a server message the tests read.
type message struct {
	V         int                            `json:"v"`
	Type      string                         `json:"type"`
	T         int64                          `json:"t"`
	Points    map[string]map[string]*float64 `json:"points"`
	Layers    json.RawMessage                `json:"layers"`
	Producers []ProducerRow                  `json:"producers"`
	Header    *Header                        `json:"header"`
	History   *struct {
		T0        int64                            `json:"t0"`
		N         int                              `json:"n"`
		Producers map[string]map[string][]*float64 `json:"producers"`
	} `json:"history"`
	Producer string       `json:"producer"`
	IDs      []string     `json:"ids"`
	P99      [][]*float64 `json:"p99_us"`
}

type fixture struct {
	l    *Live
	srv  *httptest.Server
	prod *pipeline.Producer
	mu   sync.Mutex
	rows []ProducerRow
}

func newFixture(t *testing.T, maxViewers int) *fixture {
	t.Helper()
	f := &fixture{prod: pipeline.NewProducer("tp0", "k", 42, 42, "r", pipeline.Identity{})}
	f.rows = []ProducerRow{{Name: "tp0", State: "alive", PID: 42}, {Name: "idle", State: "alive", PID: 43}}
	f.l = New(Options{Node: "node-a", Version: "test", History: 60, MaxLayers: 8, MaxViewers: maxViewers,
		Now: func() time.Time { return time.Unix(1000, 0) },
		Sources: Sources{Producers: func() []ProducerRow {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]ProducerRow(nil), f.rows...)
		}}})
	mux := http.NewServeMux()
	mux.Handle("/ui/", f.l.Handler())
	f.srv = httptest.NewUnstartedServer(mux)
	// Small socket buffers: a viewer that stops reading fills them, and
	// its send buffer, within a few frames.
	f.srv.Listener = smallBuffers{f.srv.Listener}
	f.srv.Start()
	t.Cleanup(func() {
		f.l.hub.closeAll()
		f.srv.Close()
	})
	return f
}

func (f *fixture) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dialer := &net.Dialer{}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+"/ui/ws",
		&websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func read(t *testing.T, c *websocket.Conn) message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v: %.300s", err, b)
	}
	if m.V != Schema {
		t.Fatalf("v = %d", m.V)
	}
	return m
}

func (f *fixture) second(sec int64, latUs float64, n int) {
	batch := make([]pipeline.Event, n)
	for i := range batch {
		batch[i] = fwd(f.prod, int32(i%3), latUs, 0.5, 1)
	}
	_ = f.l.Write(context.Background(), batch)
	f.l.Tick(time.Unix(sec+1, 0))
}

func TestSnapshotThenFrames(t *testing.T) {
	f := newFixture(t, 5)
	// History before anyone watches.
	for s := int64(1000); s < 1010; s++ {
		f.second(s, 200, 50)
	}
	c := f.dial(t)
	snap := read(t, c)
	if snap.Type != "snapshot" || snap.T != 1009 || snap.History == nil {
		t.Fatalf("first message: type %q t %d history %v", snap.Type, snap.T, snap.History != nil)
	}
	h := snap.History
	if h.N != 60 || h.T0 != 1009-59 {
		t.Fatalf("history t0 %d n %d", h.T0, h.N)
	}
	rate := h.Producers["tp0"]["rate"]
	if len(rate) != 60 {
		t.Fatalf("rate has %d points", len(rate))
	}
	for i, v := range rate {
		sec := h.T0 + int64(i)
		switch {
		case sec < 1000 && v != nil:
			t.Fatalf("rate at %d = %v before the producer existed", sec, *v)
		case sec >= 1000 && (v == nil || *v != 50):
			t.Fatalf("rate at %d = %v, want 50", sec, v)
		}
	}
	if len(snap.Producers) != 2 || snap.Header == nil || snap.Header.Node != "node-a" {
		t.Fatalf("snapshot sections: producers %v header %+v", snap.Producers, snap.Header)
	}

	// The next second: a latency spike. The frame carries it.
	f.second(1010, 5000, 100)
	fr := read(t, c)
	if fr.Type != "frame" || fr.T != 1010 {
		t.Fatalf("frame type %q t %d", fr.Type, fr.T)
	}
	p := fr.Points["tp0"]
	if p["rate"] == nil || *p["rate"] != 100 || p["p99_us"] == nil || !within(float32(*p["p99_us"]), 5000) {
		t.Fatalf("tp0 points %v", fmtPoints(p))
	}
	if fr.Producers[0].Name != "tp0" || fr.Producers[0].EventsPerS != 100 {
		t.Errorf("producers row %+v: events_per_s want 100", fr.Producers[0])
	}
	var layers map[string]struct {
		IDs []string   `json:"ids"`
		P99 []*float64 `json:"p99_us"`
	}
	if err := json.Unmarshal(fr.Layers, &layers); err != nil {
		t.Fatal(err)
	}
	if l := layers["tp0"]; len(l.IDs) != 3 || len(l.P99) != 3 || l.P99[2] == nil || !within(float32(*l.P99[2]), 5000) {
		t.Errorf("tp0 layers %+v", l)
	}

	// An unchanged section is left out of the next frame.
	f.mu.Lock()
	f.rows[0].HeartbeatAgeS = 0
	f.mu.Unlock()
	_ = f.l.Write(context.Background(), []pipeline.Event{fwd(f.prod, 0, 100, 0, 0)})
	f.l.Tick(time.Unix(1012, 0))
	_ = f.l.Write(context.Background(), []pipeline.Event{fwd(f.prod, 0, 100, 0, 0)})
	f.l.Tick(time.Unix(1013, 0))
	read(t, c)
	if fr := read(t, c); fr.Producers != nil {
		t.Errorf("an unchanged producers section was sent again: %+v", fr.Producers)
	}

	// Focus: the per-layer history.
	if err := c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"focus","producer":"tp0"}`)); err != nil {
		t.Fatal(err)
	}
	lm := read(t, c)
	if lm.Type != "layers" || lm.Producer != "tp0" || len(lm.IDs) != 3 || len(lm.P99) != 3 || len(lm.P99[0]) != 60 {
		t.Fatalf("layers reply: type %q producer %q ids %v rows %d", lm.Type, lm.Producer, lm.IDs, len(lm.P99))
	}
	if v := lm.P99[2][1010-(1012-59)]; v == nil || !within(float32(*v), 5000) {
		t.Errorf("layer 2 at the spike = %v", v)
	}
}

func fmtPoints(p map[string]*float64) string {
	var b strings.Builder
	for k, v := range p {
		if v == nil {
			fmt.Fprintf(&b, "%s=null ", k)
		} else {
			fmt.Fprintf(&b, "%s=%g ", k, *v)
		}
	}
	return b.String()
}

func TestTooManyViewers(t *testing.T) {
	f := newFixture(t, 1)
	f.second(1000, 100, 1)
	c1 := f.dial(t)
	read(t, c1)
	c2 := f.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := c2.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != closeTooMany || !strings.Contains(ce.Reason, "ui_max_viewers=1") {
		t.Fatalf("second viewer: %v, want close 1013 naming ui_max_viewers", err)
	}
	// The first one is unaffected.
	f.second(1001, 100, 1)
	if m := read(t, c1); m.Type != "frame" || m.T != 1001 {
		t.Fatalf("first viewer got %s %d", m.Type, m.T)
	}
}

// TestSlowViewerDropped: a viewer that stops reading is disconnected
// once its buffer is full, and the other viewer gets every frame.
func TestSlowViewerDropped(t *testing.T) {
	f := newFixture(t, 5)
	// Big frames, so the stuck viewer's socket buffers fill quickly.
	f.mu.Lock()
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		// Random names: frames that do not compress away.
		f.rows = append(f.rows, ProducerRow{Name: fmt.Sprintf("p%05d-%016x%016x", i, rnd.Uint64(), rnd.Uint64()), State: "alive"})
	}
	f.mu.Unlock()
	f.second(1000, 100, 1)
	slow := f.dial(t)
	read(t, slow)
	fast := f.dial(t)
	read(t, fast)

	sec := int64(1001)
	dropped := func() bool { return f.l.hub.count() == 1 }
	for ; !dropped(); sec++ {
		if sec > 1000+100000 {
			t.Fatal("the stuck viewer was never dropped")
		}
		f.mu.Lock()
		f.rows[0].HeartbeatAgeS = float64(sec) // a changed section each second
		f.mu.Unlock()
		f.second(sec, 100, 1)
		if m := read(t, fast); m.T != sec {
			t.Fatalf("fast viewer got t %d, want %d", m.T, sec)
		}
	}
	f.l.stats.mu.Lock()
	n := f.l.stats.drops["slow"]
	f.l.stats.mu.Unlock()
	if n != 1 {
		t.Errorf("slow drops = %d, want 1", n)
	}
}

// TestHostileViewerMessages: garbage is counted and ignored; a message
// over the read limit closes only that viewer.
func TestHostileViewerMessages(t *testing.T) {
	f := newFixture(t, 5)
	f.second(1000, 100, 1)
	bad := f.dial(t)
	read(t, bad)
	good := f.dial(t)
	read(t, good)
	ctx := context.Background()
	for _, m := range []string{"", "{", `{"type":"focus","producer":`, `{"type":"nope"}`, "\xff\xfe"} {
		if err := bad.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	// Focus on a producer that does not exist: an empty reply.
	if err := bad.Write(ctx, websocket.MessageText, []byte(`{"type":"focus","producer":"<script>"}`)); err != nil {
		t.Fatal(err)
	}
	if m := read(t, bad); m.Type != "layers" || m.Producer != "<script>" || len(m.IDs) != 0 {
		t.Fatalf("focus on an unknown producer: %+v", m)
	}
	f.l.stats.mu.Lock()
	n := f.l.stats.badReqs
	f.l.stats.mu.Unlock()
	if n != 5 {
		t.Errorf("bad requests = %d, want 5", n)
	}
	_ = bad.Write(ctx, websocket.MessageText, []byte(strings.Repeat("a", readLimit+1)))
	if _, _, err := bad.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("oversized message: %v, want close 1009", err)
	}
	f.second(1001, 100, 1)
	if m := read(t, good); m.T != 1001 {
		t.Errorf("good viewer t = %d", m.T)
	}
}

func TestAssets(t *testing.T) {
	f := newFixture(t, 1)
	for _, c := range []struct {
		path, ctype string
		code        int
	}{
		{"/ui/", "text/html", 200},
		{"/ui/app.js", "javascript", 200},
		{"/ui/style.css", "text/css", 200},
		{"/ui/favicon.svg", "image/svg+xml", 200},
		{"/ui/vendor/uPlot.iife.min.js", "javascript", 200},
		{"/ui/nope.js", "", 404},
		{"/ui/../admin.go", "", 404},
	} {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+c.path, nil)
		req.Header.Set("Accept-Encoding", "gzip") // by hand: the client leaves the body and headers as sent
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(resp.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("%s: %d %q, want %d %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.code, c.ctype)
		}
		if c.code == 200 && (resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("ETag") == "") {
			t.Errorf("%s: served without gzip or ETag: %v", c.path, resp.Header)
		}
	}
}

// TestCrossOriginRefused: a page on another site cannot open the
// WebSocket through an operator's browser.
func TestCrossOriginRefused(t *testing.T) {
	f := newFixture(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+"/ui/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin dial: %v (%v), want 403", err, resp)
	}
	if f.l.hub.count() != 0 {
		t.Error("a cross-origin viewer was registered")
	}
}
