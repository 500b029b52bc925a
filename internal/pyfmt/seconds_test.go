package pyfmt

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAppendUnixSecondsMatchesAppendFloat: the fast path gives
// AppendFloat's bytes for random instants of its era and far outside it,
// the ends of its range, whole seconds and the values whose digits need a
// tie broken.
func TestAppendUnixSecondsMatchesAppendFloat(t *testing.T) {
	check := func(ns int64) {
		t.Helper()
		got := string(AppendUnixSeconds(nil, ns))
		want := string(AppendFloat(nil, float64(ns)/1e9))
		if got != want {
			t.Fatalf("AppendUnixSeconds(%d) = %s, AppendFloat %s", ns, got, want)
		}
	}
	lo, hi := int64(1<<30)*1e9, int64(1<<31)*1e9
	for _, ns := range []int64{0, 1, -1, 1e9, lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 1764252237135792431, 1764252237000000000,
		1764252237100000000, 1764252237999999999, 1764252238000000001, math.MaxInt64, math.MinInt64} {
		check(ns)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2_000_000 {
		check(lo + rng.Int64N(hi-lo))
	}
	for range 200_000 {
		check(rng.Int64())
		check(rng.Int64N(1e12)) // small values, all through AppendFloat
	}
	// Around whole seconds, and every instant of a few whole seconds'
	// neighbourhoods in the era.
	for range 2000 {
		s := lo + rng.Int64N(hi-lo)/1e9*1e9
		for d := int64(-300); d <= 300; d++ {
			check(s + d)
		}
	}
}

// The fast path's own cases: m / 2^22 values whose nearest 7-decimal
// digits are a tie, and one whose digits it finds.
func TestNearestDecimal(t *testing.T) {
	// m * 10^7 = m * 5^7 * 2^7 is 2^21 mod 2^22 (a tie) when m is an odd
	// multiple of 2^14 (5^7 is odd).
	m := uint64(1<<52 + 3<<14)
	if _, ok := nearestDecimal(m, 7); ok {
		t.Fatalf("tie at 7 decimals reported as found for m=%d", m)
	}
	// 1764252237.1357925 s is m = round(v * 2^22); 7 decimals find it.
	v := 1764252237.1357925
	q, ok := nearestDecimal(uint64(v*(1<<22)), 7)
	if !ok || q != 17642522371357925 {
		t.Fatalf("nearestDecimal(%v) = %d, %v; want 17642522371357925, true", v, q, ok)
	}
	if _, ok := nearestDecimal(uint64(v*(1<<22)), 5); ok {
		t.Fatalf("5 decimals reported as enough for %v", v)
	}
}

func BenchmarkAppendUnixSeconds(b *testing.B) {
	buf := make([]byte, 0, 32)
	for _, bc := range []struct {
		name string
		fn   func([]byte, int64) []byte
	}{
		{"fast", AppendUnixSeconds},
		{"float", func(b []byte, ns int64) []byte { return AppendFloat(b, float64(ns)/1e9) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ns := int64(1764252237135792431)
			for b.Loop() {
				ns += 1931
				buf = bc.fn(buf[:0], ns)
			}
		})
	}
}
