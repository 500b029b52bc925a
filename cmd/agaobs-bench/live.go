package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/pflag"
)

// liveResult is the live view's cost: agent CPU with no viewer and with
// n viewers, interleaved window by window, and what a viewer receives.
type liveResult struct {
	Producers     int       `json:"producers"`
	Layers        int       `json:"layers"`
	RatePerProd   int       `json:"rate_per_producer"`
	Viewers       int       `json:"viewers"`
	WindowSec     float64   `json:"window_seconds"`
	CPUOffPct     []float64 `json:"cpu_no_viewer_pct"`   // agent CPU, % of one core, per window without viewers
	CPUOnPct      []float64 `json:"cpu_viewers_pct"`     // ... with the viewers connected
	ExtraPct      float64   `json:"extra_cpu_pct"`       // mean(on) − mean(off), percentage points of one core
	ViewerKBps    float64   `json:"viewer_kb_per_s"`     // wire bytes per viewer per second after the snapshot (mean)
	ViewerKBpsMax float64   `json:"viewer_kb_per_s_max"` // the busiest viewer
	SnapshotKB    float64   `json:"snapshot_wire_kb"`    // one viewer's snapshot on the wire (compressed)
	AssetsKB      float64   `json:"assets_gzip_kb"`      // the page's assets as served (gzip)
	Dropped       float64   `json:"viewers_dropped"`     // agaobs_ui_viewers_dropped_total over the run
	FrameRawKB    float64   `json:"frame_raw_kb"`        // mean frame size before compression
}

// countConn counts the bytes read from the socket: the wire size of what
// the agent sent (permessage-deflate included).
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type liveViewer struct {
	conn     *websocket.Conn
	wire     atomic.Int64
	snapshot int64 // wire bytes when the snapshot had arrived
	done     chan struct{}
}

func dialViewer(ctx context.Context, admin string) (*liveViewer, error) {
	v := &liveViewer{done: make(chan struct{})}
	var d net.Dialer
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countConn{c, &v.wire}, nil
	}}}
	c, _, err := websocket.Dial(ctx, "ws://"+admin+"/ui/ws", &websocket.DialOptions{HTTPClient: client,
		CompressionMode: websocket.CompressionContextTakeover})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(64 << 20)
	v.conn = c
	if _, _, err := c.Read(ctx); err != nil { // the snapshot
		return nil, err
	}
	v.snapshot = v.wire.Load()
	go func() {
		defer close(v.done)
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	return v, nil
}

func liveBench(args []string) error {
	fs := pflag.NewFlagSet("live", pflag.ContinueOnError)
	agentBin := fs.String("agent", "bin/agaobs-agent", "agent binary")
	viewers := fs.Int("viewers", 20, "viewers connected in the measured windows")
	producers := fs.Int("producers", 8, "producer processes")
	layers := fs.Int("layers", 96, "layers each producer's forwards cycle through")
	rate := fs.Int("rate", 10000, "forward events per second per producer")
	window := fs.Duration("window", 20*time.Second, "one measurement window")
	pairs := fs.Int("pairs", 3, "window pairs (no viewer, viewers), interleaved")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ag, err := startPacedAgent(*agentBin, "live", 18190, "--ui-max-viewers", strconv.Itoa(max(*viewers, 1)))
	if err != nil {
		return err
	}
	defer ag.Close()
	if err := ag.Load(*producers, *rate, *layers, time.Duration(2**pairs)*(*window+3*time.Second)+20*time.Second); err != nil {
		return err
	}
	admin := ag.admin
	metrics := ag.metrics
	// Every producer tracked and a few seconds of history.
	for deadline := time.Now().Add(60 * time.Second); ; {
		if counterSum(scrapeBody(metrics), "agaobs_ui_history_producers") >= float64(*producers) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the live view did not track %d producers", *producers)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	res := liveResult{Producers: *producers, Layers: *layers, RatePerProd: *rate, Viewers: *viewers, WindowSec: window.Seconds()}
	res.AssetsKB = assetsKB(admin)
	body0 := scrapeBody(metrics)
	var perViewer []float64
	for range *pairs {
		off, err := cpuOver(ag.Pid(), *window)
		if err != nil {
			return err
		}
		res.CPUOffPct = append(res.CPUOffPct, off)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		vs := make([]*liveViewer, 0, *viewers)
		for range *viewers {
			v, err := dialViewer(ctx, admin)
			if err != nil {
				cancel()
				return fmt.Errorf("viewer: %w", err)
			}
			vs = append(vs, v)
		}
		cancel()
		res.SnapshotKB = float64(vs[0].snapshot) / 1e3
		time.Sleep(2 * time.Second) // past the snapshots' own cost
		start := make([]int64, len(vs))
		for i, v := range vs {
			start[i] = v.wire.Load()
		}
		on, err := cpuOver(ag.Pid(), *window)
		if err != nil {
			return err
		}
		res.CPUOnPct = append(res.CPUOnPct, on)
		var wg sync.WaitGroup
		for i, v := range vs {
			perViewer = append(perViewer, float64(v.wire.Load()-start[i])/window.Seconds()/1e3)
			wg.Add(1)
			go func() { defer wg.Done(); v.conn.Close(websocket.StatusNormalClosure, ""); <-v.done }()
		}
		wg.Wait()
	}
	body1 := scrapeBody(metrics)
	res.ExtraPct = mean(res.CPUOnPct) - mean(res.CPUOffPct)
	res.ViewerKBps = mean(perViewer)
	sort.Float64s(perViewer)
	res.ViewerKBpsMax = perViewer[len(perViewer)-1]
	res.Dropped = counterSum(body1, "agaobs_ui_viewers_dropped_total") - counterSum(body0, "agaobs_ui_viewers_dropped_total")
	if f := counterSum(body1, "agaobs_ui_frames_total"); f > 0 {
		res.FrameRawKB = counterSum(body1, "agaobs_ui_frame_bytes_total") / f / 1e3
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("| producers × layers | rate | viewers | agent CPU, no viewer | with viewers | extra | per viewer after the snapshot | snapshot (wire) | assets (gzip) | frame (raw) | dropped |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d × %d | %d/s each | %d | %.2f %% | %.2f %% | %+.2f pp | %.1f KB/s (max %.1f) | %.1f KB | %.1f KB | %.1f KB | %.0f |\n",
		res.Producers, res.Layers, res.RatePerProd, res.Viewers, mean(res.CPUOffPct), mean(res.CPUOnPct), res.ExtraPct,
		res.ViewerKBps, res.ViewerKBpsMax, res.SnapshotKB, res.AssetsKB, res.FrameRawKB, res.Dropped)
	return nil
}

func cpuOver(pid int, d time.Duration) (float64, error) {
	c0, err := procCPU(pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(d)
	c1, err := procCPU(pid)
	if err != nil {
		return 0, err
	}
	return 100 * (c1 - c0).Seconds() / time.Since(t0).Seconds(), nil
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// assetsKB is what the page's assets weigh as served (gzip).
func assetsKB(admin string) float64 {
	total := 0
	for _, p := range []string{"", "app.js", "style.css", "favicon.svg", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+admin+"/ui/"+p, nil)
		req.Header.Set("Accept-Encoding", "gzip") // set by hand: the body stays compressed
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var buf [32 << 10]byte
		for {
			n, err := resp.Body.Read(buf[:])
			total += n
			if err != nil {
				break
			}
		}
		resp.Body.Close()
	}
	return float64(total) / 1e3
}
