package notify

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// permanentError marks a failure that retrying cannot fix (a 4xx answer,
// an unencodable body).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// retryAfterError carries a receiver's Retry-After hint (429, 503).
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// retry runs attempt up to MaxAttempts times, each under its own Timeout,
// with backoff in between, and counts the outcome on ch. ctx is the
// dispatcher's delivery context: when it ends, retrying stops. attrs
// describe the delivery in log lines.
func (d *Dispatcher) retry(ctx context.Context, ch *channel, attempt func(context.Context) error, attrs ...any) bool {
	for n := 1; ; n++ {
		if n > 1 {
			ch.counts.retried()
		}
		actx, cancel := context.WithTimeout(ctx, d.timeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			ch.counts.success()
			return true
		}
		var perm *permanentError
		if n >= d.maxAttempts || errors.As(err, &perm) || ctx.Err() != nil {
			ch.counts.failed()
			ch.logger.Warn("alert notification failed", append(attrs, "attempts", n, "err", err)...)
			return false
		}
		wait := backoff(n, err)
		ch.logger.Debug("alert notification attempt failed; retrying", append(attrs, "attempt", n, "retry_in", wait, "err", err)...)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			ch.counts.failed()
			ch.logger.Warn("alert notification abandoned at shutdown", append(attrs, "attempts", n, "err", err)...)
			return false
		case <-t.C:
		}
	}
}

// backoff returns the wait before attempt n+1: 500ms doubling per attempt,
// capped at 30s, drawn uniformly from its upper half so that many alerts
// failing together do not retry in lockstep. A Retry-After hint raises the
// wait, within the same cap.
func backoff(n int, err error) time.Duration {
	d := backoffBase << min(n-1, 16)
	d = min(d, backoffMax)
	d = d/2 + rand.N(d/2+1)
	var ra *retryAfterError
	if errors.As(err, &ra) && ra.after > d {
		d = min(ra.after, backoffMax)
	}
	return d
}

// alertAttrs are the log attributes naming one alert.
func alertAttrs(a Alert) []any {
	return []any{slog.String("alertname", a.Name), slog.String("status", a.Status), slog.String("producer", a.Producer)}
}
