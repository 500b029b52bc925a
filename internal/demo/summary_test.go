package demo

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
)

// The first table comes after FirstSummary (2 s by default), not after a
// whole SummaryEvery, so a newcomer sees it within seconds.
func TestFirstSummaryEarly(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the first table")
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- Run(ctx, Options{Exe: "/bin/true", Producers: 1, SummaryEvery: time.Minute, Out: pw,
			Rings: func() []rings.RingInfo { return nil }, Counter: pipeline.NewCounter()})
	}()
	defer func() { cancel(); <-done }()
	got := make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "== agaobs demo,") {
				got <- time.Since(start)
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	// With SummaryEvery a minute, a table within 30 s can only be the
	// early first one (FirstSummary, 2 s); how early is not asserted, a
	// loaded machine may be slow.
	select {
	case el := <-got:
		t.Logf("first table after %v", el.Round(10*time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("no table within 30s (SummaryEvery 1m): the first one waits a whole SummaryEvery")
	}
}
