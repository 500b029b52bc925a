package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agaobs/agaobs/internal/live"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// TestLiveViewWiring: with an admin listener the agent serves /ui/ and
// its WebSocket; the frames carry the producer (from the rings, with the
// identity from its events), its forward rate, and the audit tail (from
// the writer); the header names the node. Without an admin listener
// there is no live view at all.
func TestLiveViewWiring(t *testing.T) {
	cfg := testConfig(t)
	cfg.NodeName, cfg.AdminListenAddress = "node-l", "127.0.0.1:0"
	if err := os.MkdirAll(cfg.RingDir, 0o755); err != nil {
		t.Fatal(err)
	}
	a, ctx := runAgent(t, cfg, Options{Version: "9.9.9"})
	if a.live == nil {
		t.Fatal("no live view with an admin listener")
	}
	id := shm.Identity{Producer: "tp0", Role: "inference", Model: "llama-x", Pod: "pod-a", Namespace: "ns-a"}
	hot, err := shm.CreateWriter(cfg.RingDir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 18, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	defer hot.Close()
	aud, err := shm.CreateWriter(cfg.RingDir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: 1 << 16, Identity: id, AuditWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer aud.Close()
	if err := aud.EmitAudit(time.Now().UnixNano(), []byte(`{"operation":"register","details":{},"success":true,"error":null}`)); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get("http://" + a.AdminAddr() + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/ui/: %s", resp.Status)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, "ws://"+a.AdminAddr()+"/ui/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(16 << 20)

	type msg struct {
		Type      string                         `json:"type"`
		Header    *live.Header                   `json:"header"`
		Producers []live.ProducerRow             `json:"producers"`
		Audit     *live.Audit                    `json:"audit"`
		Points    map[string]map[string]*float64 `json:"points"`
	}
	var header *live.Header
	var row *live.ProducerRow
	var audit *live.Audit
	var rate float64
	ok := testutil.WaitFor(60*time.Second, func() bool {
		// A few forwards every round: some second gets them.
		for range 50 {
			f := shm.Forward{LatencyUs: 150, Layer: 2, Fields: shm.FwdHasLatency | shm.FwdHasLayer}
			_ = hot.EmitForward(time.Now().UnixNano(), &f)
		}
		_, b, err := c.Read(dctx)
		if err != nil {
			t.Fatal(err)
		}
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.Header != nil {
			header = m.Header
		}
		for i := range m.Producers {
			if m.Producers[i].Name == "tp0" {
				row = &m.Producers[i]
			}
		}
		if m.Audit != nil {
			audit = m.Audit
		}
		if p := m.Points["tp0"]; p != nil && p["rate"] != nil {
			rate = max(rate, *p["rate"])
		}
		hasRegister := false
		if audit != nil {
			for _, r := range audit.Tail {
				hasRegister = hasRegister || r.Operation == "register"
			}
		}
		return header != nil && row != nil && row.Model == "llama-x" && hasRegister && rate > 0
	})
	if !ok {
		t.Fatalf("frames never carried it all: header %+v, row %+v, audit %+v, rate %v", header, row, audit, rate)
	}
	if header.Node != "node-l" || header.Version != "9.9.9" {
		t.Errorf("header %+v", header)
	}
	if row.State != "live" || row.PID != os.Getpid() || row.Pod != "pod-a" || row.Namespace != "ns-a" || row.Rings != 2 {
		t.Errorf("producer row %+v", row)
	}
	// The producer's record, among the agent's own (config, health
	// transitions), newest first.
	found := false
	for i, r := range audit.Tail {
		if i > 0 && r.Seq >= audit.Tail[i-1].Seq {
			t.Errorf("audit tail not newest first: %+v", audit.Tail)
		}
		if r.Operation == "register" && r.Producer == "tp0" && r.Seq > 0 && r.Hash != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("the producer's audit record is not in the tail: %+v", audit.Tail)
	}

	// No admin listener: no live view, no sink.
	cfg2 := testConfig(t)
	b, err := New(cfg2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range b.servers {
			s.Close()
		}
		b.closeAll()
	}()
	if b.live != nil {
		t.Error("a live view without an admin listener")
	}
	for _, s := range b.disp.Stats() {
		if s.Name == "live" {
			t.Error("the live sink is registered without an admin listener")
		}
	}
}
