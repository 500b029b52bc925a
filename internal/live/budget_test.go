package live

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// fullNode fills a live view with 15 minutes of 8 producers × 96 layers of
// noisy traffic (seeded: the same bytes every run).
func fullNode(tb testing.TB) (*Live, int64) {
	tb.Helper()
	l := New(Options{History: DefaultHistory, MaxLayers: 96, Now: func() time.Time { return time.Unix(0, 0) }})
	rnd := rand.New(rand.NewPCG(7, 11))
	prods := make([]*pipeline.Producer, 8)
	for i := range prods {
		prods[i] = pipeline.NewProducer(fmt.Sprintf("inference-tp%d", i), "k", 100+i, 1, "r", pipeline.Identity{Model: "llama"})
	}
	rows := make([]ProducerRow, len(prods))
	for i, p := range prods {
		rows[i] = ProducerRow{Name: p.Name, State: "live", PID: p.HostPID}
	}
	l.opts.Sources.Producers = func() []ProducerRow { return append([]ProducerRow(nil), rows...) }
	const start = 1_800_000_000
	batch := make([]pipeline.Event, 0, 256)
	for s := int64(start); s < start+DefaultHistory; s++ {
		for _, p := range prods {
			batch = batch[:0]
			for j := range 150 {
				layer := int32(j % 96)
				lat := 100 + float64(layer) + 40*rnd.NormFloat64()
				batch = append(batch, fwd(p, layer, math.Max(lat, 1), 0.3+0.1*rnd.Float64(), 1+rnd.Float64()))
			}
			batch = append(batch, ret(p, int32(rnd.IntN(8)), int32(rnd.IntN(3))), status(p, 0.5+0.4*rnd.Float64(), rnd.Float64()))
			_ = l.Write(context.Background(), batch)
		}
		l.Tick(time.Unix(s+1, 0))
	}
	return l, start + DefaultHistory - 1
}

// deflate compresses messages as permessage-deflate with context takeover
// does (coder/websocket: flate.BestSpeed, one stream, a flush per
// message) and returns each message's compressed size.
func deflate(tb testing.TB, msgs ...[]byte) []int {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]int, len(msgs))
	for i, m := range msgs {
		before := buf.Len()
		_, _ = w.Write(m)
		_ = w.Flush()
		out[i] = buf.Len() - before
	}
	return out
}

// TestFirstLoadBudget: the assets and the aggregate history of a full
// node fit the 300 KB first load, and a frame stays far below
// 50 KB/s per viewer. Both are byte counts: deterministic, asserted.
func TestFirstLoadBudget(t *testing.T) {
	l, last := fullNode(t)
	var assets int
	h := l.Handler()
	h.once.Do(h.load)
	for name, a := range h.assets {
		if name == "vendor/LICENSE" || name == "vendor/VERSION" {
			continue // not loaded by the page
		}
		assets += len(a.gz)
	}
	l.hub.mu.Lock()
	snap := l.snapshot()
	l.hub.mu.Unlock()
	var m struct {
		T       int64 `json:"t"`
		History struct {
			Producers map[string]map[string][]*float64 `json:"producers"`
		} `json:"history"`
	}
	if err := json.Unmarshal(snap, &m); err != nil {
		t.Fatal(err)
	}
	if m.T != last || len(m.History.Producers) != 8 {
		t.Fatalf("snapshot t %d with %d producers", m.T, len(m.History.Producers))
	}
	for name, series := range m.History.Producers {
		for _, k := range seriesNames {
			if len(series[k]) != DefaultHistory {
				t.Fatalf("%s %s: %d points", name, k, len(series[k]))
			}
		}
		if series["p99_us"][0] == nil || series["p99_us"][DefaultHistory-1] == nil {
			t.Fatalf("%s: history not full", name)
		}
	}
	snapWire := deflate(t, snap)[0]
	first := assets + snapWire
	t.Logf("RESULT live first-load | assets %.1f KB gzip + snapshot %.1f KB (raw %.1f KB) = %.1f KB | 8 producers × 96 layers, 15 min of history | goal ≤ 300 KB",
		float64(assets)/1e3, float64(snapWire)/1e3, float64(len(snap))/1e3, float64(first)/1e3)
	if first > 300_000 {
		t.Errorf("first load %d bytes (assets %d, snapshot %d), goal ≤ 300 KB", first, assets, snapWire)
	}

	// A minute of frames after the snapshot, on the same stream.
	rnd := rand.New(rand.NewPCG(3, 5))
	frames := [][]byte{snap}
	prod := pipeline.NewProducer("inference-tp0", "k", 100, 1, "r", pipeline.Identity{})
	v := &viewer{send: make(chan []byte, 128), gone: make(chan struct{})}
	l.hub.mu.Lock()
	l.hub.viewers[v] = struct{}{}
	l.hub.mu.Unlock()
	for s := last + 1; s <= last+60; s++ {
		batch := make([]pipeline.Event, 0, 96)
		for j := range 96 {
			batch = append(batch, fwd(prod, int32(j), 100+40*rnd.Float64(), 0.3, 1))
		}
		_ = l.Write(context.Background(), batch)
		l.Tick(time.Unix(s+1, 0))
		frames = append(frames, <-v.send)
	}
	sizes := deflate(t, frames...)
	total := 0
	for _, n := range sizes[1:] {
		total += n
	}
	perSec := float64(total) / 60
	t.Logf("RESULT live viewer-bandwidth | %.1f KB/s per viewer after the snapshot (frames %.1f KB raw) | goal ≤ 50 KB/s", perSec/1e3, float64(len(frames[1]))/1e3)
	if perSec > 50_000 {
		t.Errorf("%.0f bytes/s per viewer, goal ≤ 50 KB/s", perSec)
	}
}
