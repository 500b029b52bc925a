//go:build cgo

package gpu

import (
	"context"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	agatest "github.com/agaobs/agaobs/internal/testutil"
)

func TestCriticalXID(t *testing.T) {
	for xid, want := range map[uint64]bool{
		48: true, 62: true, 64: true, 74: true, 79: true, 95: true, 119: true, 120: true,
		13: false, 31: false, 43: false, 45: false, 68: false, 109: false, // application faults
		94: false, 0: false,
	} {
		if got := criticalXID(xid); got != want {
			t.Errorf("criticalXID(%d) = %v, want %v", xid, got, want)
		}
	}
}

// A critical XID keeps the xid check unhealthy for XIDWindow after the
// last one; application XIDs are only counted.
func TestXIDWindow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events func(f *fakeNode) []scripted
		want   string // status right after the events
	}{
		{"critical", func(f *fakeNode) []scripted { return []scripted{xidOn(f.devs[1], 48)} }, StatusUnhealthy},
		{"application only", func(f *fakeNode) []scripted {
			var s []scripted
			for _, x := range []uint64{13, 31, 43, 45, 68, 109} {
				s = append(s, xidOn(f.devs[0], x))
			}
			return s
		}, StatusHealthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNode(2)
			clk := &clock{t: t0}
			c := newTestCollector(f, Options{XIDWindow: 10 * time.Minute, Now: clk.Now})
			initPoll(t, c)
			events := tc.events(f)
			feedXIDs(t, c, f, events)
			if got := countSeries(t, c, "agaobs_gpu_xid_errors_total"); got != len(events) {
				t.Errorf("%d xid series, want %d", got, len(events))
			}
			for at, want := range map[time.Duration]string{
				0:                            tc.want,
				10*time.Minute - time.Second: tc.want,
				10 * time.Minute:             StatusHealthy,
			} {
				if ch := check(t, c.Checks(t0.Add(at)), "xid"); ch.Status != want {
					t.Errorf("at +%v: %+v, want %s", at, ch, want)
				}
			}
			// The series stay after the window: they are history, not health.
			if got := countSeries(t, c, "agaobs_gpu_xid_last_seconds"); got != len(events) {
				t.Errorf("%d xid_last series, want %d", got, len(events))
			}
		})
	}
}

// Only XID events are counted: the ECC events the set may deliver are
// covered by the ECC counters.
func TestXIDIgnoresOtherEvents(t *testing.T) {
	f := newFakeNode(2)
	c := newTestCollector(f, Options{})
	initPoll(t, c)
	feedXIDs(t, c, f, []scripted{
		{data: nvml.EventData{Device: f.devs[0], EventType: nvml.EventTypeSingleBitEccError}},
		xidOn(f.devs[0], 79),
		xidOn(nil, 62), // an event NVML could not attribute
	})
	for _, tc := range []struct {
		uuid, xid string
		want      float64
	}{{uuidOf(0), "79", 1}, {"unknown", "62", 1}, {uuidOf(0), "0", 0}} {
		v := value(t, c, "agaobs_gpu_xid_errors_total", map[string]string{"uuid": tc.uuid, "xid": tc.xid})
		if tc.want == 0 && !math.IsNaN(v) || tc.want != 0 && v != tc.want {
			t.Errorf("xid %s on %s = %v, want %v", tc.xid, tc.uuid, v, tc.want)
		}
	}
}

// When the event set fails the loop frees it, backs off 1s, 2s, 4s … and
// creates a new one.
func TestXIDLoopBackoff(t *testing.T) {
	f := newFakeNode(2)
	var creates, frees atomic.Int32
	f.srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		n := creates.Add(1)
		var script []scripted
		switch n {
		case 1, 2:
			return nil, nvml.ERROR_UNKNOWN
		case 3:
			script = []scripted{{ret: nvml.ERROR_UNKNOWN}} // the set breaks
		default:
			script = []scripted{xidOn(f.devs[0], 79)}
		}
		set := newScriptedSet(script)
		set.FreeFunc = func() nvml.Return { frees.Add(1); return nvml.SUCCESS }
		return set, nvml.SUCCESS
	}
	c := newTestCollector(f, Options{})
	sl := &sleeps{}
	c.sleep = sl.sleep
	initPoll(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.xidLoop(ctx) })
	agatest.Eventually(t, 30*time.Second, func() bool {
		return value(t, c, "agaobs_gpu_xid_errors_total", map[string]string{"uuid": uuidOf(0), "xid": "79"}) == 1
	}, "XID counted after the retries")
	cancel()
	wg.Wait()
	if got, want := sl.get(), []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !reflect.DeepEqual(got, want) {
		t.Errorf("backoff %v, want %v", got, want)
	}
	if creates.Load() != 4 || frees.Load() != 2 {
		t.Errorf("%d sets created, %d freed; want 4 and 2 (each set that was created)", creates.Load(), frees.Load())
	}
}

// Without any GPU that supports XID events the loop does not spin.
func TestXIDEventsUnsupported(t *testing.T) {
	f := newFakeNode(2)
	for _, d := range f.devs {
		d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypeSingleBitEccError, nvml.SUCCESS }
	}
	c := newTestCollector(f, Options{})
	sl := &sleeps{}
	c.sleep = sl.sleep
	initPoll(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c.xidLoop(ctx)
	if n := len(f.srv.EventSetCreateCalls()); n != 1 {
		t.Errorf("event set created %d times, want 1", n)
	}
	if got := sl.get(); len(got) != 0 {
		t.Errorf("backed off %v", got)
	}
	for _, d := range f.devs {
		if n := len(d.RegisterEventsCalls()); n != 0 {
			t.Errorf("registered for events %d times", n)
		}
	}
}
