package health

import (
	"context"
	"time"
)

// Source yields components keyed by name at evaluation time. Producer
// sources use "<producer>/<component>" keys (e.g. "tp0/kv_store"); agent
// components are unprefixed ("gpu", "bpf", "audit", "alerting",
// "pipeline"). Sources must be fast and safe for concurrent use: every
// /health request and every Run tick asks all of them.
type Source interface {
	Components(now time.Time) map[string]Component
}

// SourceFunc adapts a function to Source.
type SourceFunc func(now time.Time) map[string]Component

// Components calls f.
func (f SourceFunc) Components(now time.Time) map[string]Component { return f(now) }

// Check is a named liveness or readiness check; a nil error means passed.
// Fn gets a context that ends after 5 s or when the request is cancelled.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}
