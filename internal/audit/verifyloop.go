package audit

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Verifiable is what a Verifier needs of a store: Store's Verify.
type Verifiable interface {
	Verify(expect *Head) (VerifyReport, error)
}

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	Store Verifiable
	// Interval is the time between two verifies (audit_verify_interval);
	// Run verifies once at its start, then at every tick of a ticker of
	// Interval.
	Interval time.Duration
	// Ticks, if set, replaces the ticker (tests): Run verifies once for
	// every value received.
	Ticks <-chan time.Time
	// Now is the clock of the results (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Verified, if set, hears each result, from Run's goroutine, after
	// Status returns it.
	Verified func(VerifyStatus)
}

// VerifyStatus is the result of the last background verify.
type VerifyStatus struct {
	// Done is false until the first verify has finished; the other
	// fields are then zero.
	Done bool `json:"done"`
	// OK: the chain was intact. False when it was found tampered with or
	// could not be read (Error says which).
	OK bool `json:"ok"`
	// At is when the verify finished.
	At       time.Time     `json:"at"`
	Records  uint64        `json:"records"` // records checked
	Duration time.Duration `json:"duration_ns"`
	// Head is the head the verify reached ("" when it failed to read).
	Head  string `json:"head,omitempty"`
	Error string `json:"error,omitempty"`
}

// Verifier re-verifies the whole hash chain of an audit store in the
// background (audit_verify_interval) and keeps the last result for the
// live view (Status) and the metrics (Collector). Each verify after the
// first passes the head the last intact verify reached as its witness,
// so a tail truncated between two verifies is caught in every backend,
// not only in bbolt (which records its head).
type Verifier struct {
	opts VerifierOptions
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	last    VerifyStatus
	witness *Head // the head of the last intact verify
}

// NewVerifier returns a verifier of opts.Store; Run starts it.
func NewVerifier(opts VerifierOptions) *Verifier {
	v := &Verifier{opts: opts, log: opts.Logger, now: opts.Now}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v
}

// Run verifies at once, then at every tick, until ctx ends. A verify in
// progress is not interrupted (it streams the store and yields the CPU as
// it goes). It returns nil.
func (v *Verifier) Run(ctx context.Context) error {
	ticks := v.opts.Ticks
	if ticks == nil {
		t := time.NewTicker(v.opts.Interval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		v.VerifyOnce()
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}

// yieldEvery is how many records a verify checks between two yields of
// the CPU: under agent_gomaxprocs 1 the ring consumer shares one thread
// with it.
const yieldEvery = 1024

// VerifyOnce verifies the store now, records the result and returns it.
// Run calls it; it is not safe to call concurrently with itself.
func (v *Verifier) VerifyOnce() VerifyStatus {
	v.mu.Lock()
	witness := v.witness
	v.mu.Unlock()
	start := v.now()
	rep, err := v.verify(witness)
	st := VerifyStatus{Done: true, OK: err == nil && rep.OK, At: v.now(), Records: rep.Records}
	st.Duration = st.At.Sub(start)
	switch {
	case err == nil && rep.OK:
		st.Head = rep.Head.String()
		h := rep.Head
		witness = &h
		v.log.Info("audit chain verified", "records", rep.Records, "head", st.Head, "duration", st.Duration, "note", rep.Note)
	case errors.Is(err, ErrTampered) || (err == nil && !rep.OK):
		st.Head = rep.Head.String()
		st.Error = rep.Problem
		if st.Error == "" {
			st.Error = err.Error()
		}
		v.log.Error("audit chain verification failed: the audit trail was tampered with", "problem", st.Error,
			"first_bad", rep.FirstBad, "records", rep.Records, "head", st.Head)
	default:
		st.Error = err.Error()
		v.log.Error("audit chain verification could not run", "err", err)
	}
	v.mu.Lock()
	v.last, v.witness = st, witness
	v.mu.Unlock()
	if v.opts.Verified != nil {
		v.opts.Verified(st)
	}
	return st
}

// verify runs the store's verification, yielding the CPU every
// yieldEvery records where the store reports its progress.
func (v *Verifier) verify(witness *Head) (VerifyReport, error) {
	yield := func(done, _ int) {
		if done%yieldEvery == 0 {
			runtime.Gosched()
		}
	}
	if p, ok := v.opts.Store.(interface {
		verifyProgress(*Head, ProgressFunc) (VerifyReport, error)
	}); ok {
		return p.verifyProgress(witness, yield)
	}
	return v.opts.Store.Verify(witness)
}

// Status returns the result of the last verify (Done false before the
// first).
func (v *Verifier) Status() VerifyStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last
}

// Collector exports the last result; before the first verify it has no
// data (the families are absent, so an alert on them does not fire on a
// starting agent).
func (v *Verifier) Collector() selfmetrics.Collector {
	f := new(selfmetrics.Families)
	const p = "agaobs_audit_"
	return &verifyCollector{v: v, fams: f,
		ok: f.Gauge(p+"verify_ok", "1 when the last background verify of the audit hash chain (audit_verify_interval) found it intact, "+
			"0 when it found it tampered with or could not read the store; absent before the first verify."),
		at: f.Gauge(p+"last_verify_timestamp_seconds", "When the last background verify of the audit hash chain finished (unix seconds); absent before the first verify."),
	}
}

type verifyCollector struct {
	v      *Verifier
	ok, at *prometheus.Desc
	fams   *selfmetrics.Families
}

func (c *verifyCollector) Describe() []selfmetrics.Family { return *c.fams }

func (c *verifyCollector) Update(ch chan<- prometheus.Metric) error {
	st := c.v.Status()
	if !st.Done {
		return selfmetrics.ErrNoData
	}
	ok := 0.0
	if st.OK {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ok, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(c.at, prometheus.GaugeValue, float64(st.At.UnixNano())/1e9)
	return nil
}
