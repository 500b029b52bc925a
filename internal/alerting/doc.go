// Package alerting owns the agent's alert engine: rule metrics computed
// over true time windows from the event stream (window.go), the
// Prometheus-style state machine inactive → pending → firing → resolved
// with for, keep_firing_for, the seed's cooldown re-notification and
// resolved retention (alerting.go, time passed in, never read), message
// templates (template.go), burn-rate SLOs (slo.go), persistence in the
// agent's state file (persist.go), metrics (collector.go) and the data
// behind the admin API (api.go). Notification channels are in
// alerting/notify; the Prometheus rule-file generator in
// alerting/promrules.
package alerting
