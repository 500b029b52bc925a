//go:build linux

package probes

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/agaobs/agaobs/internal/testutil"
)

// Every program of the committed object passes the verifier on this
// kernel, in both scheduler variants (a regression test for the verifier).
func TestObjectLoads(t *testing.T) {
	testutil.RequireBPF(t)
	for _, drop := range [][]string{
		{"switch_raw", "wakeup_raw", "wakeup_new_raw"},
		{"switch_btf", "wakeup_btf", "wakeup_new_btf"},
	} {
		spec, err := loadProbes()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range drop {
			delete(spec.Programs, n)
		}
		coll, err := ebpf.NewCollection(spec)
		if err != nil {
			t.Fatalf("load without %v: %v", drop, err)
		}
		if len(coll.Programs) != len(spec.Programs) || len(coll.Programs) < 7 {
			t.Fatalf("%d programs loaded of %d", len(coll.Programs), len(spec.Programs))
		}
		coll.Close()
	}
}

// The in-kernel binning, driven through BPF_PROG_TEST_RUN: known
// durations land in the buckets [2^(i-30), 2^(i-29)) s, the count and the
// nanosecond sum are exact.
func TestHistogramMathInKernel(t *testing.T) {
	testutil.RequireBPF(t)
	spec, err := loadProbes()
	if err != nil {
		t.Fatal(err)
	}
	for n := range spec.Programs {
		if n != "selftest" {
			delete(spec.Programs, n)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	cases := []struct {
		ns   uint64
		want uint32
	}{
		{0, 0},
		{1, 0},
		{900, 9},          // 0.9 µs < 2^-20 s (0.954 µs)
		{1000, 10},        // 1 µs in [2^-20, 2^-19)
		{1_000_000, 20},   // 1 ms in [2^-10, 2^-9)
		{999_999_999, 29}, // just under 1 s
		{1_000_000_000, 30},
		{1_500_000_000, 30},
		{2_000_000_000, 31},
		{3600_000_000_000, 41}, // an hour: 2^11.8 s
	}
	var sum uint64
	for _, tc := range cases {
		ctx := make([]byte, 8)
		binary.LittleEndian.PutUint64(ctx, tc.ns)
		ret, err := coll.Programs["selftest"].Run(&ebpf.RunOptions{Context: ctx})
		if err != nil {
			t.Fatal(err)
		}
		if ret != tc.want {
			t.Errorf("%d ns → bucket %d, want %d", tc.ns, ret, tc.want)
		}
		// Cross-check with the exact math.
		if tc.ns > 0 {
			if exact := uint32(math.Floor(math.Log2(float64(tc.ns) * (1 << 30) / 1e9))); exact != tc.want && tc.ns > 1 {
				t.Errorf("%d ns: table says %d, log2 says %d", tc.ns, tc.want, exact)
			}
		}
		sum += tc.ns
	}
	r := &collReader{coll: coll}
	hs, err := r.hists()
	if err != nil || len(hs) != 1 {
		t.Fatalf("hists %v %v", hs, err)
	}
	h := hs[0]
	if h.Probe != idSelftest || h.Count != uint64(len(cases)) || h.SumNs != sum {
		t.Fatalf("probe %d count %d sum %d", h.Probe, h.Count, h.SumNs)
	}
	want := map[int]uint64{0: 2, 9: 1, 10: 1, 20: 1, 29: 1, 30: 2, 31: 1, 41: 1}
	for i, n := range h.Buckets {
		if n != want[i] {
			t.Errorf("bucket %d holds %d, want %d", i, n, want[i])
		}
	}
}
