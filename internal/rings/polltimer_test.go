package rings

import (
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/testutil"
)

func TestSleepTimers(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func(*testing.T) sleepTimer
	}{
		{"timerfd", func(t *testing.T) sleepTimer {
			pt, err := newPollTimer()
			if err != nil {
				t.Fatal(err)
			}
			return pt
		}},
		{"runtime", func(*testing.T) sleepTimer { return newRuntimeTimer() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := tc.new(t)
			defer tm.Close()

			// Fires after the duration, never before it.
			const d = 2 * time.Millisecond
			start := time.Now()
			tm.After(d)
			waitFire(t, tm)
			if el := time.Since(start); el < d {
				t.Fatalf("fired after %v, armed for %v", el, d)
			}

			// A zero duration still fires (a zero timerfd value would disarm).
			tm.After(0)
			waitFire(t, tm)

			// Every keeps firing without being re-armed.
			tm.Every(time.Millisecond)
			for range 3 {
				waitFire(t, tm)
				tm.Every(time.Millisecond) // a no-op while already periodic
			}

			// Stop disarms and drops a pending tick.
			tm.After(time.Nanosecond)
			waitTick(t, tm)
			tm.Stop()
			select {
			case <-tm.C():
				t.Fatal("a tick arrived after Stop drained and disarmed the timer")
			default:
			}
			if pt, ok := tm.(*pollTimer); ok {
				if left, _ := pt.armed(); left != 0 {
					t.Fatalf("timerfd still armed after Stop: %v left", left)
				}
				pt.Every(time.Hour)
				if left, every := pt.armed(); left < 59*time.Minute || every != time.Hour {
					t.Fatalf("timerfd armed for %v every %v after Every(1h)", left, every)
				}
				pt.Every(time.Hour) // must not restart the period
				pt.After(time.Minute)
				if left, every := pt.armed(); left > time.Minute || every != 0 {
					t.Fatalf("timerfd armed for %v every %v after After(1m)", left, every)
				}
				pt.Every(time.Hour) // periodic again after a one-shot
				if _, every := pt.armed(); every != time.Hour {
					t.Fatalf("Every after After left the interval at %v", every)
				}
			}
		})
	}
}

func waitFire(t *testing.T, tm sleepTimer) {
	t.Helper()
	select {
	case <-tm.C():
	case <-time.After(30 * time.Second):
		t.Fatal("armed timer never fired")
	}
}

// waitTick waits until the timer's tick is pending without taking it, then
// leaves it for Stop to drop.
func waitTick(t *testing.T, tm sleepTimer) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, func() bool { return len(tm.C()) > 0 }, "tick never arrived")
}

func TestPollTimerCloseStopsReader(t *testing.T) {
	pt, err := newPollTimer()
	if err != nil {
		t.Fatal(err)
	}
	pt.Every(time.Hour)
	if err := pt.Close(); err != nil { // waits for the reader goroutine
		t.Fatal(err)
	}
	// After Close, calls must not touch a reused descriptor number.
	pt.After(time.Millisecond)
	pt.Stop()
	if left, _ := pt.armed(); left != 0 {
		t.Fatalf("closed timer reports %v armed", left)
	}
}
