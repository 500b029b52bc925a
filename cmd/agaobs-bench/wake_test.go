package main

import (
	"context"
	"testing"
	"time"
)

func TestWakeFor(t *testing.T) {
	for _, tc := range []struct {
		name          string
		interval, dur time.Duration
		cancel        bool
		wantErr       bool
	}{
		{name: "runs its duration", interval: time.Millisecond, dur: 30 * time.Millisecond},
		{name: "zero interval", interval: 0, dur: time.Second, wantErr: true},
		{name: "negative interval", interval: -time.Millisecond, dur: time.Second, wantErr: true},
		// A timer that would not fire for an hour: only the context ends it.
		{name: "ends with its context", interval: time.Hour, dur: time.Hour, cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			start := time.Now()
			wakes, err := wakeFor(ctx, tc.interval, tc.dur)
			el := time.Since(start)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("interval %v accepted", tc.interval)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				if wakes != 0 {
					t.Fatalf("%d wake-ups of a timer an hour away", wakes)
				}
				return
			}
			// It returns at the first wake-up past its duration, and a
			// periodic timer cannot expire more often than its interval.
			if el < tc.dur {
				t.Fatalf("returned after %v, before its %v", el, tc.dur)
			}
			if wakes < 1 || wakes > int(el/tc.interval)+1 {
				t.Fatalf("%d wake-ups in %v at %v", wakes, el, tc.interval)
			}
		})
	}
}
