package health

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/testutil"
)

func TestTransitions(t *testing.T) {
	var got []Transition
	src := newFake(nil)
	h := New(Options{Sources: []Source{src}, OnTransition: func(tr Transition) { got = append(got, tr) }})
	steps := []struct {
		name  string
		comps map[string]Component
		want  []string // "component from->to"
	}{
		{"first evaluate reports appearances", statuses("a", "healthy", "b", "degraded"), []string{"a ->healthy", "b ->degraded"}},
		{"unchanged: nothing", statuses("a", "healthy", "b", "degraded"), nil},
		{"change", statuses("a", "unhealthy", "b", "degraded"), []string{"a healthy->unhealthy"}},
		{"unchanged again", statuses("a", "unhealthy", "b", "degraded"), nil},
		{"disappear", statuses("a", "unhealthy"), []string{"b degraded->"}},
		{"reappear", statuses("a", "unhealthy", "b", "closed"), []string{"b ->closed"}},
		{"to and from disabled", statuses("a", "disabled", "b", "closed", "c", "healthy"), []string{"a unhealthy->disabled", "c ->healthy"}},
		{"all gone", nil, []string{"a disabled->", "b closed->", "c healthy->"}},
		{"still nothing", nil, nil},
	}
	at := time.Unix(1700000000, 0)
	for i, st := range steps {
		got = nil
		src.set(st.comps)
		now := at.Add(time.Duration(i) * time.Second)
		h.Evaluate(now)
		var names []string
		for _, tr := range got {
			names = append(names, fmt.Sprintf("%s %s->%s", tr.Component, tr.From, tr.To))
			if !tr.At.Equal(now) {
				t.Errorf("%s: At %v, want %v", st.name, tr.At, now)
			}
		}
		if fmt.Sprint(names) != fmt.Sprint(st.want) {
			t.Errorf("%s: transitions %q, want %q", st.name, names, st.want)
		}
	}
}

// A transition carries the new component's fields, or the last seen ones
// when it disappears.
func TestTransitionFields(t *testing.T) {
	var got []Transition
	src := newFake(map[string]Component{"tp0/liveness": {Status: Healthy, Fields: map[string]any{"age": 1}}})
	h := New(Options{Sources: []Source{src}, OnTransition: func(tr Transition) { got = append(got, tr) }})
	h.Evaluate(time.Now())
	src.set(map[string]Component{"tp0/liveness": {Status: Unhealthy, Fields: map[string]any{"age": 9, "error": "stale"}}})
	h.Evaluate(time.Now())
	src.set(nil)
	h.Evaluate(time.Now())
	if len(got) != 3 {
		t.Fatalf("%d transitions, want 3: %+v", len(got), got)
	}
	if got[1].Fields["error"] != "stale" || got[2].Fields["age"] != 9 || got[2].To != "" || got[2].From != Unhealthy {
		t.Errorf("fields: %+v", got)
	}
}

// Run evaluates on its own, so a change is reported without any request,
// and returns nil when its context ends.
func TestRunReportsTransitionsWithoutTraffic(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	src := newFake(statuses("gpu", "healthy"))
	h := New(Options{Sources: []Source{src}, Interval: 5 * time.Millisecond, OnTransition: func(tr Transition) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s %s->%s", tr.Component, tr.From, tr.To))
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	has := func(s string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, x := range seen {
				if x == s {
					return true
				}
			}
			return false
		}
	}
	testutil.Eventually(t, 30*time.Second, has("gpu ->healthy"), "first evaluation")
	src.set(statuses("gpu", "unhealthy"))
	testutil.Eventually(t, 30*time.Second, has("gpu healthy->unhealthy"), "change seen by Run")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Errorf("transitions %q: a status seen again must not repeat", seen)
	}
}

// Concurrent Evaluates (Run plus requests) deliver each component's
// transitions in order: every From is the previous To.
func TestConcurrentEvaluateKeepsTransitionOrder(t *testing.T) {
	var mu sync.Mutex
	last := map[string]Status{}
	var broken []string
	var flips sync.WaitGroup
	src := newFake(nil)
	h := New(Options{Sources: []Source{src}, OnTransition: func(tr Transition) {
		mu.Lock()
		defer mu.Unlock()
		if last[tr.Component] != tr.From {
			broken = append(broken, fmt.Sprintf("%s: %q->%q after %q", tr.Component, tr.From, tr.To, last[tr.Component]))
		}
		last[tr.Component] = tr.To
	}})
	order := []Status{Healthy, Degraded, Unhealthy, Closed, ""}
	flips.Add(1)
	go func() {
		defer flips.Done()
		for i := 0; i < 300; i++ {
			s := order[i%len(order)]
			if s == "" {
				src.set(nil)
			} else {
				src.set(map[string]Component{"x": {Status: s}})
			}
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				h.Evaluate(time.Now())
			}
		}()
	}
	flips.Wait()
	wg.Wait()
	if len(broken) > 0 {
		t.Errorf("%d out-of-order transitions, first %s", len(broken), broken[0])
	}
}
