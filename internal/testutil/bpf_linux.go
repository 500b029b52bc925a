//go:build linux

package testutil

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// RequireBPF skips (or fails under AGAOBS_TEST_REQUIRE_BPF=1) unless this
// process may load eBPF programs: it tries what the agent tries first.
func RequireBPF(tb testing.TB) {
	tb.Helper()
	if err := rlimit.RemoveMemlock(); err != nil {
		SkipOrFail(tb, "eBPF not permitted: "+err.Error())
		return
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		SkipOrFail(tb, "eBPF not permitted: "+err.Error())
		return
	}
	m.Close()
}
