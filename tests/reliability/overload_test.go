package reliability_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// overloadResult is what the burst producer prints.
type overloadResult struct {
	UnloadedP99 float64 `json:"unloaded_p99_ns"`
	LoadedP99   float64 `json:"loaded_p99_ns"`
	Written     uint64  `json:"written"`
	Dropped     uint64  `json:"dropped"`
	Attempts    uint64  `json:"attempts"`
}

func p99(ns []int64) float64 {
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	return float64(ns[len(ns)*99/100])
}

// burstProducer measures EmitForward latency on a 4 KiB hot ring: first
// paced (the ring has room), then in bursts of 10× the ring's capacity
// (the ring is full for most of each burst), then writes one more record
// paced so the consumer sees the gap, prints an overloadResult and stays
// alive until stdin closes.
func burstProducer() {
	id := shm.Identity{Producer: os.Getenv("AGAOBS_PRODUCER"), Role: "burst"}
	const capacity = 4096
	w, err := shm.CreateWriter(os.Getenv("AGAOBS_RING_DIR"), shm.WriterOptions{Class: shm.ClassHot, Capacity: capacity, Identity: id})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n') // the test says go
	f := shm.Forward{LatencyUs: 100, Layer: 0, Fields: shm.FwdHasLatency | shm.FwdHasLayer}
	var attempts uint64
	timed := func() int64 {
		t0 := time.Now()
		_ = w.EmitForward(t0.UnixNano(), &f)
		attempts++
		return time.Since(t0).Nanoseconds()
	}
	var unloaded, loaded []int64
	for i := 0; i < 20000; i++ {
		unloaded = append(unloaded, timed())
		if i%16 == 0 {
			time.Sleep(200 * time.Microsecond) // let the consumer keep the ring empty
		}
	}
	perBurst := 10 * capacity / 64 // 10× what fits (64-byte frames)
	rounds := 60
	if os.Getenv("AGAOBS_E2E_FULL") == "1" {
		rounds = 600
	}
	for r := 0; r < rounds; r++ {
		for i := 0; i < perBurst; i++ {
			loaded = append(loaded, timed())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	timed() // commits again: the gap becomes visible
	w.Heartbeat()
	st := w.Stats()
	json.NewEncoder(os.Stdout).Encode(overloadResult{UnloadedP99: p99(unloaded), LoadedP99: p99(loaded), Written: st.Written, Dropped: st.Dropped, Attempts: attempts})
	io.Copy(io.Discard, os.Stdin)
}

// 10× overload of a hot ring: the producer never blocks (emit p99 within
// 2× its unloaded p99), the agent's drop accounting is exact (sequence
// gaps == producer drops), and /metrics and /health keep answering fast
// while it happens.
func TestHotRingOverload(t *testing.T) {
	dir := t.TempDir()
	metricsAddr, healthAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	a := inProcessAgent(t, dir, nil, func(c *config.Config) {
		host, port, _ := net.SplitHostPort(metricsAddr)
		c.PrometheusEnabled, c.PrometheusHost = true, host
		c.PrometheusPort, _ = strconv.Atoi(port)
		host, port, _ = net.SplitHostPort(healthAddr)
		c.HealthEnabled, c.HealthHost = true, host
		c.HealthPort, _ = strconv.Atoi(port)
		c.LogEnabled = true
		c.LogFile = t.TempDir() + "/events.log"
	})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AGAOBS_RELIABILITY_HELPER=burst", "AGAOBS_RING_DIR="+dir, "AGAOBS_PRODUCER=burst")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	if line, _ := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("producer: %q", line)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { _, ok := ringOf(a, "burst"); return ok }, "ring not attached")
	// Probe the agent's endpoints while the overload runs.
	stop := make(chan struct{})
	lat := map[string][]int64{}
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, u := range []string{"http://" + metricsAddr + "/metrics", "http://" + healthAddr + "/health"} {
				t0 := time.Now()
				resp, err := http.Get(u)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					lat[u] = append(lat[u], time.Since(t0).Nanoseconds())
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	io.WriteString(stdin, "go\n")
	var res overloadResult
	if err := json.NewDecoder(out).Decode(&res); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-probed
	if res.Dropped == 0 || res.Dropped < res.Attempts/3 {
		t.Fatalf("the ring was not overloaded: %+v", res)
	}
	if res.LoadedP99 > 2*res.UnloadedP99 {
		t.Errorf("emit p99 %.0f ns under overload, %.0f ns unloaded: the producer slowed down", res.LoadedP99, res.UnloadedP99)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { r, _ := ringOf(a, "burst"); return r.Consumed+r.Lost >= res.Written+res.Dropped-0 },
		"the agent did not catch up")
	r, _ := ringOf(a, "burst")
	if r.Lost != res.Dropped || r.Dropped != res.Dropped || r.Corrupt != 0 || r.Consumed != res.Written {
		t.Fatalf("accounting: agent lost %d consumed %d (ring says dropped %d), producer dropped %d wrote %d", r.Lost, r.Consumed, r.Dropped, res.Dropped, res.Written)
	}
	mp99, hp99 := p99(lat["http://"+metricsAddr+"/metrics"])/1e6, p99(lat["http://"+healthAddr+"/health"])/1e6
	if hp99 > 10 {
		t.Errorf("/health p99 %.2f ms during the overload, goal 10 ms", hp99)
	}
	if mp99 > 30 {
		t.Errorf("/metrics p99 %.2f ms during the overload, scrape goal 30 ms", mp99)
	}
	report(t, "10× overload of a hot ring", fmt.Sprintf("%d emits, bursts of 10× a 4 KiB ring", res.Attempts),
		fmt.Sprintf("emit p99 %.0f ns overloaded vs %.0f ns unloaded (≤ 2×); dropped %d == sequence gaps %d; /metrics p99 %.2f ms, /health p99 %.2f ms (≤ 10 ms)",
			res.LoadedP99, res.UnloadedP99, res.Dropped, r.Lost, mp99, hp99))
}
