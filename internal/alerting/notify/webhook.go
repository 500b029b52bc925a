package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the HMAC-SHA256 of the webhook body when a secret
// is configured: "sha256=" followed by the lowercase hex digest.
const SignatureHeader = "X-Agaobs-Signature"

const userAgent = "agaobs-agent"

// webhook is the webhook channel.
type webhook struct {
	d      *Dispatcher
	ch     *channel
	client *http.Client // from alert_webhook_http_config
	url    string
	format string
	secret []byte
}

func (w *webhook) deliver(ctx context.Context, batch []Alert) {
	if w.format == FormatAlertmanager {
		for _, group := range groupByNameStatus(batch) {
			msg := newWebhookMessage(group)
			body, err := json.Marshal(msg)
			if err != nil {
				w.ch.counts.failed()
				w.ch.logger.Error("encode alertmanager webhook message", "group_key", msg.GroupKey, "err", err)
				continue
			}
			w.d.retry(ctx, w.ch, func(ctx context.Context) error {
				return w.d.post(ctx, w.client, w.url, body, w.secret)
			}, "group_key", msg.GroupKey, "status", msg.Status, "alerts", len(group))
		}
		return
	}
	for _, a := range batch {
		body, err := referenceJSON(a, w.d.now())
		if err != nil {
			w.ch.counts.failed()
			w.ch.logger.Error("encode webhook body", append(alertAttrs(a), "err", err)...)
			continue
		}
		w.d.retry(ctx, w.ch, func(ctx context.Context) error {
			return w.d.post(ctx, w.client, w.url, body, w.secret)
		}, alertAttrs(a)...)
	}
}

// groupByNameStatus splits a batch into groups of equal alertname and
// status, in order of first appearance: a v4 message has one status and
// its groupLabels name one alertname.
func groupByNameStatus(batch []Alert) [][]Alert {
	type key struct{ name, status string }
	idx := make(map[key]int)
	var groups [][]Alert
	for _, a := range batch {
		k := key{a.labelSet()["alertname"], a.Status}
		i, ok := idx[k]
		if !ok {
			i = len(groups)
			idx[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], a)
	}
	return groups
}

// post sends one JSON body. Network errors, 5xx and 429 are retryable;
// any other non-2xx answer is permanent.
func (d *Dispatcher) post(ctx context.Context, client *http.Client, target string, body, secret []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return permanent(fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if secret != nil {
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		req.Header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the full URL, and webhook URLs (Slack and the
		// like) carry their secret in the path: keep only the host.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", hostOf(target), err)
	}
	defer resp.Body.Close()
	// Read a little for the error message, then drain (bounded) so the
	// keep-alive connection can be reused.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("post to %s: %s: %s", hostOf(target), resp.Status, strings.TrimSpace(string(head)))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		if after, ok := parseRetryAfter(resp.Header.Get("Retry-After")); ok {
			return &retryAfterError{err: err, after: after}
		}
		return err
	default:
		return permanent(err)
	}
}

// parseRetryAfter reads the delay-seconds form of Retry-After; the
// HTTP-date form is rare from webhook receivers and is ignored.
func parseRetryAfter(v string) (time.Duration, bool) {
	secs, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || secs < 0 {
		return 0, false
	}
	return time.Duration(secs) * time.Second, true
}

func hostOf(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return "(invalid url)"
	}
	return u.Scheme + "://" + u.Host
}
