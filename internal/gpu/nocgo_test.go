//go:build !cgo

package gpu

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Without cgo the collector runs, reports NVML missing and says why.
func TestWithoutCgo(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := New(Options{Now: func() time.Time { return now }})
	err := c.Init()
	if err == nil || !strings.Contains(err.Error(), "built without cgo") {
		t.Fatalf("Init error %v, want one saying the binary was built without cgo", err)
	}
	c.Poll(now)
	reg, _ := metricsRegistry(t, c)
	want := `
# HELP agaobs_gpu_up Whether NVML is initialised (1), or 0 with the reason: nvml_missing, driver_not_loaded, version_mismatch, no_permission, unknown.
# TYPE agaobs_gpu_up gauge
agaobs_gpu_up{reason="nvml_missing"} 0
# HELP agaobs_gpu_collect_success Whether the last GPU collection succeeded (1) or failed (0).
# TYPE agaobs_gpu_collect_success gauge
agaobs_gpu_collect_success 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agaobs_gpu_up", "agaobs_gpu_collect_success"); err != nil {
		t.Fatal(err)
	}
	if ch := c.Checks(now)[0]; ch.Name != "nvml" || ch.Status != StatusUnhealthy || !strings.Contains(ch.Reason, "without cgo") {
		t.Errorf("nvml check %+v", ch)
	}

	// Run retries Init until its context ends, then returns nil.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Errorf("Run = %v", err)
	}
}
