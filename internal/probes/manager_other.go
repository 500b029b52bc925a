//go:build !linux

package probes

import (
	"context"
	"errors"
)

// platform is empty where eBPF does not exist.
type platform struct{}

// Start reports eBPF unavailable (not supported) off Linux.
func (m *Manager) Start() error {
	m.mu.Lock()
	m.available, m.reason, m.detail = false, ReasonNotSupported, "eBPF needs Linux"
	m.mu.Unlock()
	if m.opts.Require {
		return errors.New("bpf_require: eBPF needs Linux")
	}
	return nil
}

// Run waits for ctx.
func (m *Manager) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Sync does nothing off Linux.
func (m *Manager) Sync() error { return nil }
