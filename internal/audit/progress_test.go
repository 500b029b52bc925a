package audit

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// progressCalls records what a ProgressFunc was told.
type progressCalls struct{ done, total []int }

func (p *progressCalls) fn(done, total int) {
	p.done = append(p.done, done)
	p.total = append(p.total, total)
}

// check: done strictly increasing and ending at wantDone, total always wantTotal.
func (p *progressCalls) check(t *testing.T, wantDone, wantTotal int) {
	t.Helper()
	if len(p.done) == 0 {
		t.Fatalf("progress never called")
	}
	for i, d := range p.done {
		if i > 0 && d <= p.done[i-1] {
			t.Fatalf("done not increasing: %v", p.done)
		}
		if p.total[i] != wantTotal {
			t.Fatalf("call %d: total %d, want %d", i, p.total[i], wantTotal)
		}
	}
	if last := p.done[len(p.done)-1]; last != wantDone {
		t.Fatalf("last done %d, want %d", last, wantDone)
	}
}

func TestVerifyProgress(t *testing.T) {
	for _, backend := range stBackends {
		for _, n := range []int{1, 7, 250} {
			t.Run(backend, func(t *testing.T) {
				fx := stNew(t, backend)
				fx.append(stAgentsAt(stT0, n, 0)...)
				var p progressCalls
				rep, err := VerifyProgress(fx.s, nil, p.fn)
				if err != nil || !rep.OK || rep.Records != uint64(n) {
					t.Fatalf("verify: %+v %v", rep, err)
				}
				p.check(t, n, n)
				if len(p.done) != n {
					t.Fatalf("%d calls, want one per record (%d)", len(p.done), n)
				}
				// A nil ProgressFunc is allowed.
				if _, err := VerifyProgress(fx.s, nil, nil); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestExportProgress(t *testing.T) {
	for _, backend := range stBackends {
		for _, n := range []int{3, 10000, 10001} {
			t.Run(backend, func(t *testing.T) {
				if n > 100 && testing.Short() {
					t.Skip("short")
				}
				fx := stNew(t, backend)
				fx.append(stAgentsAt(stT0, n, 0)...)
				var p progressCalls
				var buf bytes.Buffer
				got, err := ExportProgress(fx.s, Filter{}, &buf, p.fn)
				if err != nil || got != n {
					t.Fatalf("export: %d %v", got, err)
				}
				p.check(t, n, n)
				if want := (n + 9999) / 10000; len(p.done) != want {
					t.Fatalf("%d calls, want one per non-empty page (%d)", len(p.done), want)
				}
			})
		}
	}
}

func TestCompactBoltProgress(t *testing.T) {
	defer func(d time.Duration) { compactPoll = d }(compactPoll)
	compactPoll = time.Millisecond
	for _, withProgress := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "audit.db")
		s, err := OpenBolt(path, BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(stAgentsAt(stT0, 2000, 200)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		var mu sync.Mutex
		var p progressCalls
		var fn ProgressFunc
		if withProgress {
			fn = func(done, total int) { mu.Lock(); p.fn(done, total); mu.Unlock() }
		}
		before, _, err := CompactBoltProgress(path, fn)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		calls := len(p.done)
		for i := range p.done {
			if p.total[i] != int(before) || p.done[i] <= 0 || (i > 0 && p.done[i] < p.done[i-1]) {
				t.Fatalf("call %d: %d/%d (before %d)", i, p.done[i], p.total[i], before)
			}
		}
		mu.Unlock()
		if !withProgress && calls != 0 {
			t.Fatal("called without a ProgressFunc")
		}
		// No call after it returned: it stops its size watcher before
		// returning, so the count cannot have moved since.
		mu.Lock()
		if len(p.done) != calls {
			t.Fatal("progress called after CompactBoltProgress returned")
		}
		mu.Unlock()
	}
}
