package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"
)

// alertmanager is the alertmanager channel: POST /api/v2/alerts to every
// URL, plus the periodic re-send that keeps firing alerts alive there.
type alertmanager struct {
	d        *Dispatcher
	ch       *channel
	client   *http.Client  // from alertmanager_http_config
	urls     []string      // full .../api/v2/alerts endpoints
	validFor time.Duration // 4 × max(EvalInterval, ResendInterval)

	// firing holds the latest notification of every firing alert, keyed by
	// fingerprint. Notify updates it (accept) even when the queue is full,
	// so a dropped firing notification is still re-sent at the next tick
	// and a dropped resolved one at least stops the re-sends, letting
	// Alertmanager resolve the alert when its endsAt passes.
	mu     sync.Mutex
	firing map[uint64]Alert
}

func (am *alertmanager) accept(a Alert) {
	fp := a.fingerprint()
	am.mu.Lock()
	defer am.mu.Unlock()
	switch {
	case a.resolved():
		delete(am.firing, fp)
	case !a.StartsAt.IsZero():
		am.firing[fp] = a
	}
}

func (am *alertmanager) deliver(ctx context.Context, batch []Alert) {
	send := batch[:0:0]
	for _, a := range batch {
		if !a.resolved() && a.StartsAt.IsZero() {
			// Alertmanager would stamp its own arrival time as startsAt,
			// and every re-send would then restart the alert.
			am.ch.logger.Warn("firing alert without StartsAt not sent to alertmanager", alertAttrs(a)...)
			continue
		}
		send = append(send, a)
	}
	if len(send) > 0 {
		am.send(ctx, send)
	}
}

// resend re-sends every firing alert, so that Alertmanager does not expire
// it at its endsAt while it still fires.
func (am *alertmanager) resend(ctx context.Context) {
	am.mu.Lock()
	fps := make([]uint64, 0, len(am.firing))
	for fp := range am.firing {
		fps = append(fps, fp)
	}
	slices.Sort(fps)
	alerts := make([]Alert, len(fps))
	for i, fp := range fps {
		alerts[i] = am.firing[fp]
	}
	am.mu.Unlock()
	for chunk := range slices.Chunk(alerts, maxBatch) {
		am.send(ctx, chunk)
	}
}

// send posts alerts to every URL concurrently, each URL with its own retry
// sequence and its own count, and waits for all of them so that the order
// of notifications (firing before resolved) holds per URL.
func (am *alertmanager) send(ctx context.Context, alerts []Alert) {
	now := am.d.now()
	postable := make([]postableAlert, len(alerts))
	for i, a := range alerts {
		// Prometheus's rule: a firing alert is valid until
		// now + 4 × max(eval interval, resend delay), which allows two
		// evaluation or send failures before Alertmanager resolves it.
		endsAt := now.Add(am.validFor)
		if a.resolved() {
			endsAt = a.EndsAt
			if endsAt.IsZero() {
				endsAt = now
			}
		}
		postable[i] = postableAlert{
			Labels:       a.labelSet(),
			Annotations:  a.annotationSet(),
			StartsAt:     a.StartsAt.UTC(),
			EndsAt:       endsAt.UTC(),
			GeneratorURL: a.GeneratorURL,
		}
	}
	body, err := json.Marshal(postable)
	if err != nil {
		for range am.urls {
			am.ch.counts.failed()
		}
		am.ch.logger.Error("encode alertmanager alerts", "alerts", len(alerts), "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, u := range am.urls {
		wg.Go(func() {
			am.d.retry(ctx, am.ch, func(ctx context.Context) error {
				return am.d.post(ctx, am.client, u, body, nil)
			}, "url", hostOf(u), "alerts", len(alerts))
		})
	}
	wg.Wait()
}
