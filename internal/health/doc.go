// Package health owns the agent's health model and its HTTP face.
//
// Sources (source.go) report components at evaluation time: a producer's
// as "<producer>/<component>" (e.g. "tp0/kv_store"), the agent's own
// unprefixed ("gpu", "bpf", "audit", "alerting", "pipeline"). Evaluate
// (health.go) aggregates them worst-of into healthy, degraded or
// unhealthy, where disabled, closed and unknown statuses never worsen the
// result (status.go), and reports every change of a component's status to
// OnTransition (transition.go) for the log and the audit trail; Run
// evaluates periodically so changes are seen without HTTP traffic.
//
// Handler (http.go) serves the seed-compatible JSON at health_path, one
// component at health_path/<component>, and Kubernetes-style /livez and
// /readyz checks (checks.go); Collector (collector.go) exports
// agaobs_health_status and agaobs_health_overall_status.
//
// The package does not decide what a component's status is: its sources
// do, against the health_* thresholds.
package health
