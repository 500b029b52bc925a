package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

var vlT0 = time.Date(2024, 3, 11, 12, 0, 0, 0, time.UTC)

// vlLoop runs a Verifier over a store with an injected ticker and clock
// (each reading one second after the previous): tick() triggers a verify
// and returns its result, so the test needs no sleeps.
type vlLoop struct {
	t       *testing.T
	v       *Verifier
	reg     *prometheus.Registry
	ticks   chan time.Time
	results chan VerifyStatus
	logs    *syncBuffer
	stop    func()
}

// syncBuffer is a log sink written by Run's goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func vlStart(t *testing.T, st Verifiable) *vlLoop {
	t.Helper()
	l := &vlLoop{t: t, ticks: make(chan time.Time), results: make(chan VerifyStatus), logs: &syncBuffer{}}
	clock := vlT0
	l.v = NewVerifier(VerifierOptions{Store: st, Interval: time.Hour, Ticks: l.ticks,
		Now:      func() time.Time { clock = clock.Add(time.Second); return clock }, // Run's goroutine only
		Logger:   slog.New(slog.NewTextHandler(l.logs, nil)),
		Verified: func(s VerifyStatus) { l.results <- s },
	})
	set := selfmetrics.NewSet()
	set.Add("audit_verify", l.v.Collector())
	l.reg = prometheus.NewPedanticRegistry()
	l.reg.MustRegister(set)
	if err := selfmetrics.Check(set); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.gauge("agaobs_audit_verify_ok"); ok || l.v.Status().Done {
		t.Fatalf("a result before the first verify: %+v", l.v.Status())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.v.Run(ctx) }()
	l.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		if l.stop != nil {
			l.stop()
		}
	})
	return l
}

// first returns the result of the verify Run makes at its start.
func (l *vlLoop) first() VerifyStatus { return <-l.results }

// tick triggers a verify and returns its result.
func (l *vlLoop) tick() VerifyStatus {
	l.ticks <- time.Time{}
	return <-l.results
}

// gauge reads a gauge of the verifier's collector from the registry.
func (l *vlLoop) gauge(name string) (float64, bool) {
	l.t.Helper()
	mfs, err := l.reg.Gather()
	if err != nil {
		l.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// check compares the metrics with a result.
func (l *vlLoop) check(st VerifyStatus, ok float64) {
	l.t.Helper()
	if v, present := l.gauge("agaobs_audit_verify_ok"); !present || v != ok {
		l.t.Errorf("agaobs_audit_verify_ok = %v (present %v), want %v", v, present, ok)
	}
	want := float64(st.At.Unix())
	if v, present := l.gauge("agaobs_audit_last_verify_timestamp_seconds"); !present || v != want {
		l.t.Errorf("agaobs_audit_last_verify_timestamp_seconds = %v (present %v), want %v", v, present, want)
	}
	if got := l.v.Status(); got != st {
		l.t.Errorf("Status() = %+v, want the last result %+v", got, st)
	}
}

// The loop verifies at start and at every tick: intact, then tampered with
// (a record modified in place, as tamper_test.go does) in every backend;
// the metrics and Status follow, and each failure logs one ERROR line with
// the problem.
func TestVerifierDetectsTampering(t *testing.T) {
	for _, tc := range []struct {
		backend string
		tamper  func(t *testing.T, tf *stTamper)
	}{
		{"memory", func(t *testing.T, tf *stTamper) {
			m := tf.s.(*memStore)
			m.mu.Lock()
			m.recs[4] = tf.modified(5)
			m.mu.Unlock()
		}},
		{"bbolt", func(t *testing.T, tf *stTamper) {
			// On the open store, as another process writing the file would.
			if err := tf.s.(*boltStore).db.Update(tf.boltPut(5, tf.json(tf.modified(5)))); err != nil {
				t.Fatal(err)
			}
		}},
		{"file", func(t *testing.T, tf *stTamper) {
			tf.jsonlEdit(5, func(lines [][]byte, i int) [][]byte {
				lines[i] = tf.json(tf.modified(5))
				return lines
			})
		}},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			tf := stNewTamper(t, tc.backend, JSONLOptions{})
			l := vlStart(t, tf.s)

			st := l.first()
			if !st.Done || !st.OK || st.Records != 20 || st.Error != "" || st.Head != tf.head.String() ||
				!st.At.Equal(vlT0.Add(2*time.Second)) || st.Duration != time.Second {
				t.Fatalf("first verify: %+v", st)
			}
			l.check(st, 1)
			if st2 := l.tick(); !st2.OK || !st2.At.After(st.At) {
				t.Fatalf("second verify: %+v", st2)
			}
			if strings.Contains(l.logs.String(), "level=ERROR") {
				t.Errorf("an intact chain logged an error:\n%s", l.logs)
			}

			tc.tamper(t, tf)
			st = l.tick()
			if !st.Done || st.OK || !strings.Contains(st.Error, "record 5 modified") {
				t.Fatalf("verify after tampering: %+v", st)
			}
			l.check(st, 0)
			logs := l.logs.String()
			if n := strings.Count(logs, "level=ERROR"); n != 1 || !strings.Contains(logs, "record 5 modified") {
				t.Errorf("%d ERROR lines, want one naming record 5:\n%s", n, logs)
			}
			// It stays failed, one ERROR line per verify.
			if st = l.tick(); st.OK {
				t.Fatalf("the next verify: %+v", st)
			}
			l.check(st, 0)
			if n := strings.Count(l.logs.String(), "level=ERROR"); n != 2 {
				t.Errorf("%d ERROR lines after two failed verifies, want 2", n)
			}
		})
	}
}

// Each verify witnesses the head of the last intact one, so a JSONL tail
// cut between two verifies is caught (the file backend records no head of
// its own: a fresh verify of the cut store finds nothing wrong).
func TestVerifierWitnessesItsLastHead(t *testing.T) {
	tf := stNewTamper(t, "file", JSONLOptions{})
	l := vlStart(t, tf.s)
	if st := l.first(); !st.OK {
		t.Fatalf("first verify: %+v", st)
	}
	tf.jsonlEdit(20, func(lines [][]byte, i int) [][]byte { return lines[:i-1] }) // records 19 and 20
	if rep, err := tf.s.Verify(nil); err != nil || !rep.OK {
		t.Fatalf("without a witness: %v %+v", err, rep)
	}
	st := l.tick()
	if st.OK || !strings.Contains(st.Error, "tail truncated") {
		t.Fatalf("verify after the cut: %+v", st)
	}
	l.check(st, 0)
}

// failingStore cannot be read.
type failingStore struct{}

func (failingStore) Verify(*Head) (VerifyReport, error) {
	return VerifyReport{}, errors.New("read audit.db: input/output error")
}

// A verify that cannot read the store is a failure too (0, the error
// logged and kept), and the loop ends with its context.
func TestVerifierStoreError(t *testing.T) {
	l := vlStart(t, failingStore{})
	st := l.first()
	if !st.Done || st.OK || st.Error != "read audit.db: input/output error" || st.Head != "" {
		t.Fatalf("result: %+v", st)
	}
	l.check(st, 0)
	if logs := l.logs.String(); strings.Count(logs, "level=ERROR") != 1 || !strings.Contains(logs, "input/output error") {
		t.Errorf("logs:\n%s", logs)
	}
	l.stop()
	l.stop = nil
	select {
	case l.ticks <- time.Time{}:
		t.Fatal("the loop still runs after its context ended")
	default:
	}
}

// A context already done: no verify.
func TestVerifierCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	v := NewVerifier(VerifierOptions{Store: NewMemory(), Interval: time.Hour, Verified: func(VerifyStatus) { called = true }})
	if err := v.Run(ctx); err != nil || called || v.Status().Done {
		t.Errorf("Run = %v, verified %v, status %+v", err, called, v.Status())
	}
}
