// Package reliability_test is the fault and soak suite: each test injects a
// fault the earlier packages promise to survive and asserts the promise.
// `make test` runs it shortened; `make e2e` (AGAOBS_E2E_FULL=1) at the full
// sizes RELIABILITY.md reports.
package reliability_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// full reports whether the suite runs at full size (make e2e).
func full() bool { return os.Getenv("AGAOBS_E2E_FULL") == "1" }

// size picks the short or the full count.
func size(short, long int) int {
	if full() {
		return long
	}
	return short
}

// TestMain lets the test binary act as the producers the tests kill.
func TestMain(m *testing.M) {
	switch os.Getenv("AGAOBS_RELIABILITY_HELPER") {
	case "stream":
		streamProducer()
		return
	case "paced":
		pacedProducer()
		return
	case "burst":
		burstProducer()
		return
	case "restart":
		restartProducer()
		return
	case "soak":
		soakProducer()
		return
	}
	code := m.Run()
	hostileAgentBin.Remove() // shared by several tests
	os.Exit(code)
}

// streamProducer writes forward records as fast as it can until killed.
// Every record satisfies LatencyUs == 2*GateMean, so a torn record that
// still frames correctly would show.
func streamProducer() { forwardProducer("stream", 4096, 0) }

// pacedProducer writes ~20k forward records/s until killed.
func pacedProducer() { forwardProducer("paced", 20, time.Millisecond) }

// forwardProducer writes checkable forward records into a 64 KiB hot ring
// until killed, heartbeating (and sleeping pause, if set) every every
// records.
func forwardProducer(role string, every int, pause time.Duration) {
	id := shm.Identity{Producer: os.Getenv("AGAOBS_PRODUCER"), Role: role}
	w, err := shm.CreateWriter(os.Getenv("AGAOBS_RING_DIR"), shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 16, Identity: id})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		f := shm.Forward{GateMean: float64(i), LatencyUs: 2 * float64(i), Layer: int32(i % 3), Fields: 31}
		_ = w.EmitForward(time.Now().UnixNano(), &f)
		if i%every == 0 {
			w.Heartbeat()
			if pause > 0 {
				time.Sleep(pause)
			}
		}
	}
}

// checkSink verifies every forward record and timestamps lifecycle events.
type checkSink struct {
	mu       sync.Mutex
	checked  uint64
	torn     uint64
	died     map[string]time.Time
	quarants int
}

func newCheckSink() *checkSink { return &checkSink{died: map[string]time.Time{}} }

func (s *checkSink) Name() string { return "reliability-check" }
func (s *checkSink) Kinds() pipeline.KindMask {
	return pipeline.KindForward.Mask() | pipeline.KindLifecycle.Mask()
}

func (s *checkSink) Write(_ context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		ev := &batch[i]
		switch ev.Kind {
		case pipeline.KindForward:
			s.checked++
			lat, _ := ev.Forward.LatencyUs()
			gate, _ := ev.Forward.GateMean()
			if lat != 2*gate {
				s.torn++
			}
		case pipeline.KindLifecycle:
			switch ev.Lifecycle.Type {
			case pipeline.ProducerDied:
				if ev.Producer != nil {
					s.died[ev.Producer.Name] = time.Now()
				}
			case pipeline.RingQuarantined:
				s.quarants++
			}
		}
	}
	return nil
}

func (s *checkSink) diedAt(name string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.died[name]
	return t, ok
}

// inProcessAgent runs the full agent in this process with extra sinks and
// only the listeners a test asks for.
func inProcessAgent(t *testing.T, dir string, sinks []pipeline.Sink, mutate func(*config.Config)) *agent.Agent {
	t.Helper()
	cfg := config.Default()
	tmp := t.TempDir()
	cfg.RingDir, cfg.StatePath, cfg.AuditStoragePath = dir, filepath.Join(tmp, "state.db"), filepath.Join(tmp, "audit.db")
	cfg.PrometheusEnabled, cfg.HealthEnabled, cfg.AdminListenAddress = false, false, ""
	cfg.GPUEnabled, cfg.BPFEnabled, cfg.LogEnabled = false, false, false
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := agent.New(cfg, agent.Options{Sinks: sinks})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return a
}

// A producer SIGKILLed mid-write at random points: no torn record is ever
// decoded, its death is seen within 5 s every time, and its ring files are
// removed after producer_retention.
func TestProducerKilledMidWrite(t *testing.T) {
	kills := size(10, 100)
	dir := t.TempDir()
	check := newCheckSink()
	const retention = 300 * time.Millisecond
	inProcessAgent(t, dir, []pipeline.Sink{check}, func(c *config.Config) {
		c.ProducerRetention = config.Duration(retention)
		c.RingRemoveDead = true
	})
	var detect []time.Duration
	const batch = 5 // producers alive at once, each killed at its own instant
	for i := 0; i < kills; i += batch {
		var ps []*helperProc
		var names []string
		for j := i; j < i+batch && j < kills; j++ {
			names = append(names, "stream-"+strconv.Itoa(j))
			ps = append(ps, startHelper(t, dir, names[len(names)-1], "stream"))
		}
		for j, p := range ps {
			time.Sleep(time.Duration(3+((i+j)*37)%60) * time.Millisecond) // a different instant each time
			p.kill()
		}
		for j, p := range ps {
			name := names[j]
			var died time.Time
			testutil.Eventually(t, 30*time.Second, func() bool {
				var ok bool
				died, ok = check.diedAt(name)
				return ok
			}, "%s: death not detected within 5 s", name)
			if d := died.Sub(p.killed); d > 5*time.Second {
				t.Errorf("%s: death detected after %v", name, d)
			} else {
				detect = append(detect, d)
			}
			// Reclaimed: the dead producer's ring files go after retention.
			testutil.Eventually(t, retention+5*time.Second, func() bool {
				m, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("agaobs-%d-*", p.pid)))
				return len(m) == 0
			}, "%s: ring files of pid %d not removed", name, p.pid)
		}
	}
	check.mu.Lock()
	defer check.mu.Unlock()
	if check.torn != 0 || check.checked == 0 || check.quarants != 0 {
		t.Fatalf("%d torn records of %d checked; %d rings quarantined", check.torn, check.checked, check.quarants)
	}
	sort.Slice(detect, func(i, j int) bool { return detect[i] < detect[j] })
	t.Logf("%d kills, %d records checked, none torn; death detected p50 %v, max %v", kills, check.checked,
		detect[len(detect)/2].Round(time.Millisecond), detect[len(detect)-1].Round(time.Millisecond))
	report(t, "producer SIGKILLed mid-write", fmt.Sprintf("%d kills, %d records verified", kills, check.checked),
		fmt.Sprintf("0 torn; death detected p50 %v max %v (≤ 5 s); rings removed after retention",
			detect[len(detect)/2].Round(time.Millisecond), detect[len(detect)-1].Round(time.Millisecond)))
}
