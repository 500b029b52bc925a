// Package notify delivers alert notifications to their channels: a log line
// (always on), an HTTP webhook (the reference JSON body or Alertmanager's
// webhook v4 message, optionally HMAC-signed), Alertmanager's
// POST /api/v2/alerts on every configured URL, and an external command.
//
// The webhook and alertmanager channels each have their own HTTP client,
// built by prometheus/common's config.NewClientFromConfig from
// [Options.WebhookHTTPConfig] and [Options.AlertmanagerHTTPConfig] (TLS,
// mTLS, basic auth, bearer tokens, proxy); without one, [DefaultHTTPConfig].
//
// The package owns delivery only: the alert engine decides what to send and
// when (firing, resolved, re-notification after the cooldown) and hands the
// result to [Dispatcher.Notify]. Notify never blocks the engine: each
// channel has its own bounded queue and goroutine, so a slow or dead receiver
// delays only its own channel, and a full queue drops the notification and
// counts it (result "dropped"). Each delivery attempt has a timeout and
// transient failures are retried with jittered exponential backoff.
//
// The one piece of alert state kept here is the alertmanager channel's set of
// firing alerts: Alertmanager expires an alert at its endsAt, so, as
// Prometheus does, the channel re-sends every firing alert each
// ResendInterval with endsAt = now + 4 × max(EvalInterval, ResendInterval).
//
// Counters per channel and result are available from [Dispatcher.Stats] and
// exported as agaobs_alert_notifications_total{channel,result} by
// [Dispatcher.Collector]. A counted unit is one delivery: one log line, one
// webhook POST, one POST to one Alertmanager URL, one command run; "dropped"
// counts alerts that did not fit a queue.
package notify
