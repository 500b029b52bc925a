package anomaly

import (
	"slices"
	"testing"

	"github.com/agaobs/agaobs/internal/schema"
)

// TestSignalsMatchSchema keeps the signal constants in step with the
// schema's names, which configuration validation reads.
func TestSignalsMatchSchema(t *testing.T) {
	names := schema.AnomalySignals()
	if len(names) != int(NumSignals) {
		t.Fatalf("schema has %d anomaly signals, the detector %d", len(names), NumSignals)
	}
	var got []string
	for _, s := range Signals() {
		got = append(got, s.String())
	}
	if !slices.Equal(got, names) {
		t.Fatalf("signal names %v, schema %v", got, names)
	}
	// The constants are in the schema's order.
	for _, tc := range []struct {
		sig  Signal
		name string
	}{
		{LatencyP50, "latency_p50"}, {LatencyP99, "latency_p99"}, {AppliedRatio, "applied_ratio"},
		{GateMean, "gate_mean"}, {EntropyMean, "entropy_mean"}, {ForwardRate, "forward_rate"},
		{RetrievalResults, "retrieval_results"}, {RetrievalInjected, "retrieval_injected"},
		{KVUtilization, "kv_utilization"}, {SlotChangeRate, "slot_change_rate"}, {DropRate, "drop_rate"},
		{OffCPUP99, "offcpu_p99"}, {GCPauseP99, "gc_pause_p99"}, {GPUUtilization, "gpu_utilization"},
	} {
		if tc.sig.String() != tc.name || names[tc.sig] != tc.name {
			t.Errorf("signal %d: String %q, schema %q, want %q", tc.sig, tc.sig.String(), names[tc.sig], tc.name)
		}
	}

	var strag []string
	for _, s := range StragglerSignals() {
		strag = append(strag, s.String())
	}
	if want := schema.StragglerSignals(); !slices.Equal(strag, want) {
		t.Fatalf("straggler signals %v, schema %v", strag, want)
	}

	// ParseSignal round trips every name and rejects others.
	for i, name := range names {
		s, found := ParseSignal(name)
		if !found || s != Signal(i) || s.String() != name {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", name, s, found, i)
		}
	}
	for _, name := range []string{"", "LATENCY_P50", "latency_p95", "latency_p50 ", "signal(3)", "straggler"} {
		if s, found := ParseSignal(name); found {
			t.Errorf("ParseSignal(%q) = %d, found", name, s)
		}
	}
	if got := Signal(NumSignals).String(); got != "signal(14)" {
		t.Errorf("String of an unknown signal: %q", got)
	}
	if got := Signal(255).String(); got != "signal(255)" {
		t.Errorf("String of signal 255: %q", got)
	}
}

func TestSignalFacts(t *testing.T) {
	for _, s := range Signals() {
		if want := s < NumLayerSignals; s.PerLayer() != want {
			t.Errorf("%s: PerLayer %v, want %v", s, s.PerLayer(), want)
		}
		f := SignalFloors(s)
		if !(f.Floor > 0) || f.Rel < 0 || f.Rel >= 1 {
			t.Errorf("%s: floors %+v; a floor must be positive and the relative one in [0, 1)", s, f)
		}
	}
	for _, sig := range []Signal{LatencyP50, LatencyP99, OffCPUP99, GCPauseP99} {
		if sig.Unit() != "µs" {
			t.Errorf("%s: unit %q, want µs", sig, sig.Unit())
		}
	}
	for _, sig := range []Signal{AppliedRatio, KVUtilization, DropRate, GPUUtilization} {
		if sig.Unit() != "ratio" {
			t.Errorf("%s: unit %q, want ratio", sig, sig.Unit())
		}
	}
	for _, sig := range StragglerSignals() {
		if sig >= NumSignals {
			t.Errorf("straggler signal %d out of range", sig)
		}
	}
	// Straggler signals are the slow-rank ones: higher is worse.
	if got := StragglerSignals(); !slices.Equal(got, []Signal{LatencyP99, LatencyP50, OffCPUP99}) {
		t.Errorf("StragglerSignals() = %v", got)
	}
}

func TestSensitivityThresholds(t *testing.T) {
	for _, th := range []struct {
		name string
		f    func(Sensitivity) float64
	}{
		{"Threshold", Sensitivity.Threshold},
		{"StragglerThreshold", Sensitivity.StragglerThreshold},
	} {
		low, medium, high := th.f(Low), th.f(Medium), th.f(High)
		if !(low > medium && medium > high && high > 0) {
			t.Errorf("%s: low %g, medium %g, high %g; want low > medium > high > 0", th.name, low, medium, high)
		}
		if got := th.f(""); got != medium {
			t.Errorf("%s of the empty sensitivity %g, want medium's %g", th.name, got, medium)
		}
		for _, s := range []Sensitivity{"unknown", "LOW", "Medium", " high"} {
			if got := th.f(s); got != 0 {
				t.Errorf("%s(%q) = %g, want 0", th.name, s, got)
			}
		}
	}
	// docs/anomaly.md's table of sensitivities.
	for _, tc := range []struct {
		s                 Sensitivity
		anomaly, straggle float64
	}{{Low, 7, 8}, {Medium, 5, 6}, {High, 4, 4}} {
		if tc.s.Threshold() != tc.anomaly || tc.s.StragglerThreshold() != tc.straggle {
			t.Errorf("%s: thresholds %g and %g, docs/anomaly.md says %g and %g", tc.s, tc.s.Threshold(), tc.s.StragglerThreshold(), tc.anomaly, tc.straggle)
		}
	}
	// A threshold of 0 means never: an unknown sensitivity alerts on nothing.
	if (Finding{Z: 100}).Anomalous(Up, Sensitivity("bogus").Threshold()) {
		t.Error("an unknown sensitivity alerts")
	}
	if (StragglerFinding{Score: 100, Effect: 1}).Straggling(Sensitivity("bogus").StragglerThreshold()) {
		t.Error("an unknown sensitivity finds stragglers")
	}
}
