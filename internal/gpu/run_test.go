//go:build cgo

package gpu

import (
	"context"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	agatest "github.com/agaobs/agaobs/internal/testutil"
)

// runCollector starts Run and returns a stop function that cancels it and
// fails the test unless Run returns nil promptly.
func runCollector(t *testing.T, c *Collector) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

func collected(c *Collector) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap.sampled
}

// Run collects, serves scrapes concurrently, and on cancel shuts NVML
// down and leaves no goroutine behind.
func TestRunStopsOnCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	f := newFakeNode(4)
	f.srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return newScriptedSet([]scripted{xidOn(f.devs[2], 119)}), nvml.SUCCESS
	}
	c := newTestCollector(f, Options{Interval: 5 * time.Millisecond, ExpectedCount: 4})
	stop := runCollector(t, c)
	agatest.Eventually(t, 30*time.Second, func() bool {
		return len(f.srv.DeviceGetCountCalls()) > 5 && countSeries(t, c, "agaobs_gpu_xid_errors_total") == 1
	}, "several collections and the XID")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				gather(t, c)
				c.Checks(time.Now())
				c.Processes()
				c.GPUs()
			}
		})
	}
	wg.Wait()
	if v := countSeries(t, c, "agaobs_gpu_info"); v != 4 {
		t.Errorf("%d agaobs_gpu_info series, want 4", v)
	}
	stop()
	if n := len(f.srv.ShutdownCalls()); n != 1 {
		t.Errorf("NVML shut down %d times, want 1", n)
	}
	agatest.Eventually(t, 30*time.Second, func() bool { return runtime.NumGoroutine() <= before },
		"goroutines back to %d (now %d)", before, runtime.NumGoroutine())
}

// While Init fails Run reports why (agaobs_gpu_up{reason}), records a
// failed collection, and retries after 5s, 10s, … until it succeeds.
func TestRunInitBackoff(t *testing.T) {
	f := newFakeNode(2)
	var c *Collector
	var inits atomic.Int32
	var seenReason atomic.Value
	f.srv.InitFunc = func() nvml.Return {
		if inits.Add(1) <= 3 {
			return nvml.ERROR_DRIVER_NOT_LOADED
		}
		// What a scrape saw just before the successful Init.
		seenReason.Store(value(t, c, "agaobs_gpu_up", map[string]string{"reason": "driver_not_loaded"}) == 0 &&
			value(t, c, "agaobs_gpu_collect_success", nil) == 0)
		return nvml.SUCCESS
	}
	c = newTestCollector(f, Options{Interval: 5 * time.Millisecond})
	sl := &sleeps{}
	c.sleep = sl.sleep
	stop := runCollector(t, c)
	agatest.Eventually(t, 30*time.Second, func() bool { return collected(c) }, "a collection after Init succeeded")
	stop()
	if got, want := sl.get()[:3], []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second}; !reflect.DeepEqual(got, want) {
		t.Errorf("init backoff %v, want %v", got, want)
	}
	if ok, _ := seenReason.Load().(bool); !ok {
		t.Error("while Init failed, up{reason=driver_not_loaded} 0 and collect_success 0 were not served")
	}
	if v := value(t, c, "agaobs_gpu_up", nil); v != 1 {
		t.Errorf("up = %v after Init succeeded", v)
	}
}

// The backoff is capped at 5 minutes.
func TestInitBackoffCap(t *testing.T) {
	b := backoff{5 * time.Second, 5 * time.Minute}
	d := b.min
	var got []time.Duration
	for range 9 {
		got = append(got, d)
		d = b.next(d)
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backoff %v, want %v", got, want)
	}
}

// When NVML goes away under Run (driver unloaded or upgraded) it shuts
// down, reports it, and initialises again.
func TestRunReinitialisesWhenNVMLGoesAway(t *testing.T) {
	f := newFakeNode(2)
	var gone atomic.Bool
	var inits atomic.Int32
	f.srv.InitFunc = func() nvml.Return { inits.Add(1); gone.Store(false); return nvml.SUCCESS }
	f.srv.DeviceGetCountFunc = func() (int, nvml.Return) {
		if gone.Load() {
			return 0, nvml.ERROR_LIB_RM_VERSION_MISMATCH
		}
		return len(f.srv.Devices), nvml.SUCCESS
	}
	c := newTestCollector(f, Options{Interval: 5 * time.Millisecond})
	sl := &sleeps{}
	c.sleep = sl.sleep
	stop := runCollector(t, c)
	agatest.Eventually(t, 30*time.Second, func() bool { return collected(c) }, "first collection")
	gone.Store(true)
	agatest.Eventually(t, 30*time.Second, func() bool { return inits.Load() >= 2 && collected(c) }, "re-initialised and collecting")
	stop()
	if n, i := len(f.srv.ShutdownCalls()), int(inits.Load()); n != i {
		t.Errorf("%d Init, %d Shutdown: every Init must be shut down", i, n)
	}
}
