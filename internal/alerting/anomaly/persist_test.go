package anomaly

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

var persistCfg = Config{MaxLayers: 16}

// persistDetector is a detector with every kind of state: a peer group of
// three (straggler baselines), a producer with layers (one of them
// reporting only some signals, one not at all), one with every signal, and
// one anomalous series (since set).
func persistDetector(t testing.TB) *Detector {
	t.Helper()
	d := New(persistCfg)
	g := newGroup("tp-group", 3, 21)
	lp := layered{"layered", 6, newRand(22)}
	r := newRand(23)
	for m := range int64(200) {
		batch := g.minute(same)
		s := lp.sample(unscaled)
		s.Layers[4] = [NumLayerSignals]Value{} // never reports
		s.Values[GateMean] = ok(0.5)
		s.Layers[5][GateMean] = ok(0.4)
		batch = append(batch, s)
		full := Sample{Producer: "full"}
		for sig := range NumSignals {
			full.Values[sig] = ok(noisy(r, float64(sig+1), 0.05))
		}
		if m == 199 {
			full.Values[DropRate] = ok(1000) // anomalous: since != 0
		}
		batch = append(batch, full)
		d.Observe(m0+m, batch)
	}
	if f, _ := d.Worst("full", DropRate, Up); f.Since == 0 {
		t.Fatal("setup: full's drop_rate is not anomalous")
	}
	return d
}

// sameProducer compares the persisted state of two producers.
func sameProducer(t *testing.T, a, b *producer) {
	t.Helper()
	if a.name != b.name || a.group != b.group || a.first != b.first || a.last != b.last || a.count != b.count {
		t.Fatalf("producer %q: name %q group %q first %d last %d count %d; restored %q %q %d %d %d",
			a.name, a.name, a.group, a.first, a.last, a.count, b.name, b.group, b.first, b.last, b.count)
	}
	sameSeries := func(where string, x, y []*series) {
		for i := range x {
			switch {
			case (x[i] == nil) != (y[i] == nil):
				t.Fatalf("%s %d: present %v, restored %v", where, i, x[i] != nil, y[i] != nil)
			case x[i] != nil && (x[i].b != y[i].b || x[i].since != y[i].since):
				t.Fatalf("%s %d: baseline differs after restore", where, i)
			}
		}
	}
	sameSeries(a.name+" signal", a.sig[:], b.sig[:])
	if len(a.layers) != len(b.layers) {
		t.Fatalf("%s: %d layers, restored %d", a.name, len(a.layers), len(b.layers))
	}
	for l := range a.layers {
		sameSeries(a.name+" layer", a.layers[l][:], b.layers[l][:])
	}
	for k := range a.strag {
		if (a.strag[k] == nil) != (b.strag[k] == nil) || (a.strag[k] != nil && a.strag[k].b != b.strag[k].b) {
			t.Fatalf("%s straggler %d differs after restore", a.name, k)
		}
	}
}

// TestPersistRoundTrip: Marshal, Restore into a fresh detector, Marshal
// again gives the same bytes and the same state, and the restored
// detector scores the next minute as the original does.
func TestPersistRoundTrip(t *testing.T) {
	d := persistDetector(t)
	d2 := New(persistCfg)
	for _, name := range d.Producers() {
		blob, found := d.Marshal(name)
		if !found || len(blob) == 0 {
			t.Fatalf("Marshal(%q): %v", name, found)
		}
		if err := d2.Restore(name, blob); err != nil {
			t.Fatalf("Restore(%q): %v", name, err)
		}
		again, _ := d2.Marshal(name)
		if !bytes.Equal(blob, again) {
			t.Fatalf("%q: Marshal after Restore differs (%d vs %d bytes)", name, len(blob), len(again))
		}
		sameProducer(t, d.producers[name], d2.producers[name])
	}
	if !slices.Equal(d.Producers(), d2.Producers()) || d.Series() != d2.Series() || countSeries(t, d2) != d.Series() {
		t.Fatalf("restored %v with %d series, want %v with %d", d2.Producers(), d2.Series(), d.Producers(), d.Series())
	}
	// Restored series are not fresh until their producer reports again.
	if _, found := d2.Worst("full", LatencyP50, Both); found {
		t.Fatal("a restored series is fresh before its producer reports")
	}
	if fs, st := d2.Findings(Filter{}); len(fs)+len(st) != 0 {
		t.Fatalf("%d findings right after Restore", len(fs)+len(st))
	}
	// The next minute scores the same in both.
	g := newGroup("tp-group", 3, 31)
	next := append(g.minute(slowRankOnP99(1, 1.5)), sample("full", "", map[Signal]float64{LatencyP50: 3, DropRate: 1000}))
	d.Observe(m0+200, next)
	d2.Observe(m0+200, next)
	for _, tc := range []struct {
		producer string
		sig      Signal
	}{{"full", LatencyP50}, {"full", DropRate}, {"tp-group-r0", LatencyP99}, {"tp-group-r1", OffCPUP99}} {
		a, fa := d.Worst(tc.producer, tc.sig, Both)
		b, fb := d2.Worst(tc.producer, tc.sig, Both)
		if !fa || !fb || a.Score != b.Score || a.Z != b.Z || a.Sustained != b.Sustained || a.Baseline != b.Baseline ||
			a.Sigma != b.Sigma || a.Samples != b.Samples || a.Since != b.Since || a.Learning != b.Learning {
			t.Errorf("%s %s after restore: %+v, original %+v", tc.producer, tc.sig, b, a)
		}
	}
	for _, name := range g.ranks {
		for _, sig := range stragglerSignals {
			a, _ := d.Straggler(name, sig)
			b, _ := d2.Straggler(name, sig)
			if a.Score != b.Score || a.Effect != b.Effect || a.Learned != b.Learned || a.Learning != b.Learning {
				t.Errorf("straggler %s %s after restore: %+v, original %+v", name, sig, b, a)
			}
		}
	}
	if a, _ := d.Straggler("tp-group-r1", LatencyP99); !a.Straggling(Medium.StragglerThreshold()) {
		t.Errorf("rank 1 at x1.5 on latency_p99 does not straggle: %+v", a)
	}
}

func slowRankOnP99(rank int, f float64) func(int, Signal) float64 {
	return func(i int, s Signal) float64 {
		if i == rank && s == LatencyP99 {
			return f
		}
		return 1
	}
}

// TestPersistRestoreOtherName: a blob does not hold the producer's name;
// it loads under any name (a producer taking a dead one's name over).
func TestPersistRestoreOtherName(t *testing.T) {
	d := persistDetector(t)
	blob, _ := d.Marshal("layered")
	d2 := New(persistCfg)
	if err := d2.Restore("successor", blob); err != nil {
		t.Fatal(err)
	}
	if got, _ := d2.Marshal("successor"); !bytes.Equal(got, blob) {
		t.Fatal("round trip under another name differs")
	}
	if d2.producers["successor"].name != "successor" {
		t.Fatalf("restored producer named %q", d2.producers["successor"].name)
	}
	if _, found := d2.Marshal("layered"); found {
		t.Fatal("Marshal of a producer never restored: found")
	}
	if b, found := New(persistCfg).Marshal("nobody"); found || b != nil {
		t.Fatal("Marshal of an unknown producer")
	}
}

// recordSizes are the encoded sizes of a series and a straggler baseline.
var (
	seriesSize = binary.Size(Baseline{}) + 8
	stragSize  = binary.Size(ratioBaseline{})
)

// TestPersistErrors: malformed blobs are errors and load nothing.
func TestPersistErrors(t *testing.T) {
	d := persistDetector(t)
	full, _ := d.Marshal("full")
	layers, _ := d.Marshal("layered")
	ranked, _ := d.Marshal("tp-group-r0")
	// full: version, first, last, group length 0, then the signal mask.
	sigMask := 1 + 8 + 8 + 2
	if binary.LittleEndian.Uint16(full[sigMask:]) != 1<<NumSignals-1 {
		t.Fatalf("setup: full's signal mask %#x", binary.LittleEndian.Uint16(full[sigMask:]))
	}
	edit := func(b []byte, f func([]byte) []byte) []byte { return f(slices.Clone(b)) }
	tests := []struct {
		name string
		cfg  Config
		blob []byte
		want string // in the error
	}{
		{"empty", persistCfg, nil, "EOF"},
		{"version 0", persistCfg, edit(full, func(b []byte) []byte { b[0] = 0; return b }), "version"},
		{"version 2", persistCfg, edit(full, func(b []byte) []byte { b[0] = 2; return b }), "version"},
		{"version 255", persistCfg, edit(full, func(b []byte) []byte { b[0] = 255; return b }), "version"},
		{"trailing byte", persistCfg, append(slices.Clone(full), 0), "trailing"},
		{"trailing blob", persistCfg, append(slices.Clone(full), full...), "trailing"},
		{"group key too long", persistCfg, edit(full, func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[1+8+8:], maxGroupLen+1)
			return b
		}), "group key"},
		{"group key past the end", persistCfg, edit(full, func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[1+8+8:], maxGroupLen)
			return b[:1+8+8+2+100]
		}), "EOF"},
		{"signal mask beyond the signals", persistCfg, edit(full, func(b []byte) []byte {
			b[sigMask+1] |= 0x80
			return b
		}), "series mask"},
		{"signal mask with one more series than the data", persistCfg, edit(full, func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[sigMask:], 1<<NumSignals-1)
			return b[:sigMask+2+3*seriesSize]
		}), "EOF"},
		{"too many layers", Config{MaxLayers: 4}, layers, "6 layers, at most 4"},
		{"layer mask beyond the layer signals", persistCfg, edit(ranked, func(b []byte) []byte {
			// ranked has no layers: append one layer with a bad mask.
			n := len(b) - 1 - 3*stragSize
			if binary.LittleEndian.Uint16(b[n-2:]) != 0 {
				t.Fatalf("setup: tp-group-r0 has %d layers", binary.LittleEndian.Uint16(b[n-2:]))
			}
			binary.LittleEndian.PutUint16(b[n-2:], 1)
			return slices.Concat(b[:n], []byte{1 << NumLayerSignals, 0}, b[n:])
		}), "series mask"},
		{"straggler mask beyond the signals", persistCfg, edit(full, func(b []byte) []byte {
			b[len(b)-1] = 1 << len(stragglerSignals)
			return b
		}), "straggler mask"},
		{"straggler mask without the data", persistCfg, edit(full, func(b []byte) []byte {
			b[len(b)-1] = 1
			return b
		}), "EOF"},
		{"NaN straggler baseline", persistCfg, edit(ranked, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[len(b)-stragSize+4:], math.Float32bits(float32(math.NaN())))
			return b
		}), "non-finite straggler"},
		{"Inf straggler spread", persistCfg, edit(ranked, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[len(b)-4:], math.Float32bits(float32(math.Inf(1))))
			return b
		}), "non-finite straggler"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d2 := New(tc.cfg)
			err := d2.Restore("p", tc.blob)
			if err == nil {
				t.Fatal("Restore succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"p"`) {
				t.Fatalf("error %q, want it to name the producer and contain %q", err, tc.want)
			}
			if len(d2.Producers()) != 0 || d2.Series() != 0 {
				t.Fatalf("a failed Restore loaded %v, %d series", d2.Producers(), d2.Series())
			}
		})
	}
	if err := New(persistCfg).Restore("p", append(slices.Clone(full), 0)); !errors.Is(err, errTrailing) {
		t.Fatalf("trailing bytes: %v, want errTrailing", err)
	}
}

// TestPersistTruncated: a proper prefix of a valid blob is an error: every
// prefix within 128 bytes of either end, and every 31st in between (all
// of them take seconds under -race).
func TestPersistTruncated(t *testing.T) {
	d := persistDetector(t)
	for _, name := range d.Producers() {
		blob, _ := d.Marshal(name)
		for n := range len(blob) {
			if n > 128 && n < len(blob)-128 && n%31 != 0 {
				continue
			}
			d2 := New(persistCfg)
			if err := d2.Restore(name, blob[:n]); err == nil {
				t.Fatalf("%s: a blob cut to %d of %d bytes restored", name, n, len(blob))
			}
			if d2.Series() != 0 || len(d2.Producers()) != 0 {
				t.Fatalf("%s cut to %d bytes: loaded %d series", name, n, d2.Series())
			}
		}
	}
}

// TestPersistNonFinite: a baseline holding NaN or an infinity anywhere is
// not restored.
func TestPersistNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name   string
		mutate func(p *producer)
	}{
		{"NaN center", func(p *producer) { p.sig[LatencyP50].b.C = nan }},
		{"Inf spread", func(p *producer) { p.sig[LatencyP99].b.S = inf }},
		{"-Inf sustained state", func(p *producer) { p.sig[GateMean].b.E = -inf }},
		{"NaN slot center", func(p *producer) { p.sig[DropRate].b.SC[17] = nan }},
		{"Inf slot spread", func(p *producer) { p.sig[GPUUtilization].b.SS[SlotsPerDay-1] = inf }},
		{"NaN layer baseline", func(p *producer) { p.layers[2][LatencyP50].b.C = nan }},
		{"NaN straggler center", func(p *producer) { p.strag[0] = &straggler{b: ratioBaseline{N: 3, C: nan}} }},
		{"Inf straggler spread", func(p *producer) { p.strag[2] = &straggler{b: ratioBaseline{N: 3, S: -inf}} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := persistDetector(t)
			name := "full"
			if strings.Contains(tc.name, "layer") {
				name = "layered"
			}
			tc.mutate(d.producers[name])
			blob, _ := d.Marshal(name)
			d2 := New(persistCfg)
			if err := d2.Restore(name, blob); err == nil || !strings.Contains(err.Error(), "non-finite") {
				t.Fatalf("Restore of a non-finite baseline: %v", err)
			}
			if d2.Series() != 0 {
				t.Fatal("loaded series")
			}
		})
	}
}

// TestPersistLongGroup: Marshal cuts a group key beyond maxGroupLen, so
// the blob restores.
func TestPersistLongGroup(t *testing.T) {
	d := New(persistCfg)
	long := strings.Repeat("g", maxGroupLen+100)
	d.Observe(m0, []Sample{sample("a", long, map[Signal]float64{LatencyP50: 1})})
	blob, _ := d.Marshal("a")
	d2 := New(persistCfg)
	if err := d2.Restore("a", blob); err != nil {
		t.Fatal(err)
	}
	if got := d2.producers["a"].group; got != long[:maxGroupLen] {
		t.Fatalf("group of %d bytes restored, want the first %d", len(got), maxGroupLen)
	}
}

// TestPersistReplace: restoring over an existing producer replaces its
// series, and the count follows.
func TestPersistReplace(t *testing.T) {
	d := persistDetector(t)
	small := New(persistCfg)
	small.Observe(m0, []Sample{sample("x", "", map[Signal]float64{LatencyP50: 1, GateMean: 0.3})})
	smallBlob, _ := small.Marshal("x")
	fullBlob, _ := d.Marshal("full")
	before := d.Series()
	if err := d.Restore("full", smallBlob); err != nil {
		t.Fatal(err)
	}
	if want := before - int(NumSignals) + 2; d.Series() != want || countSeries(t, d) != want {
		t.Fatalf("replacing 14 series by 2: Series() = %d (held %d), want %d", d.Series(), countSeries(t, d), want)
	}
	for range 3 {
		if err := d.Restore("full", fullBlob); err != nil {
			t.Fatal(err)
		}
		if d.Series() != before || countSeries(t, d) != before {
			t.Fatalf("restoring the same producer again: Series() = %d, want %d", d.Series(), before)
		}
	}
	if got, _ := d.Marshal("full"); !bytes.Equal(got, fullBlob) {
		t.Fatal("restored producer differs")
	}
}

// TestPersistBudget: a restore that would exceed MaxSeries is an error
// and loads nothing.
func TestPersistBudget(t *testing.T) {
	d := persistDetector(t)
	blob, _ := d.Marshal("full")
	d2 := New(Config{MaxSeries: int(NumSignals) - 1, MaxLayers: 16})
	if err := d2.Restore("full", blob); err == nil || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("14 series into a budget of 13: %v", err)
	}
	if d2.Series() != 0 || len(d2.Producers()) != 0 {
		t.Fatalf("loaded %d series", d2.Series())
	}
	d3 := New(Config{MaxSeries: int(NumSignals), MaxLayers: 16})
	if err := d3.Restore("full", blob); err != nil || d3.Series() != int(NumSignals) {
		t.Fatalf("14 series into a budget of 14: %v, %d series", err, d3.Series())
	}
}

// TestPersistOverBudgetReplaceKeepsCount: a Restore over an existing
// producer that fails for the budget leaves that producer and the series
// count as they were.
//
// BUG: persist.go Restore (lines 81-86) subtracts the old producer's
// count from d.series before the budget check and returns the error
// without adding it back, while the old producer stays in the map: Series()
// under-reports from then on (here 17 instead of 19) and the budget lets
// that many more series in. Fix: compute `base := d.series - old.count`
// in a local, check `base+n > MaxSeries`, and only then set
// `d.series = base + n`.
func TestPersistOverBudgetReplaceKeepsCount(t *testing.T) {
	src := persistDetector(t)
	fullBlob, _ := src.Marshal("full") // 14 series
	d := New(Config{MaxSeries: 20})
	d.Observe(m0, []Sample{
		sample("b", "", map[Signal]float64{LatencyP50: 1, LatencyP99: 2, GateMean: 0.5}),
		sample("a", "", map[Signal]float64{LatencyP50: 1, LatencyP99: 2}),
	})
	if err := d.Restore("c", fullBlob); err != nil { // 5 + 14 = 19
		t.Fatal(err)
	}
	if err := d.Restore("a", fullBlob); err == nil { // 19 - 2 + 14 = 31 > 20
		t.Fatal("Restore over the budget succeeded")
	}
	if held := countSeries(t, d); d.Series() != held || held != 19 {
		t.Fatalf("after a failed Restore: Series() = %d, %d series held, want 19", d.Series(), held)
	}
}

// FuzzRestore: arbitrary bytes never panic Restore, never take the
// detector past MaxSeries, and either are an error that loads nothing or
// load a producer that Marshal writes back byte for byte.
func FuzzRestore(f *testing.F) {
	// Small valid blobs (a series record is 892 bytes; large inputs spend
	// the fuzzing time minimizing): a producer-level series, a layer
	// series, a rank's straggler baseline, three series (over the fresh
	// detector's budget below).
	seeds := New(Config{})
	for m := range int64(3) {
		var batch []Sample
		for _, name := range []string{"r0", "r1", "r2"} {
			batch = append(batch, sample(name, "g", map[Signal]float64{LatencyP99: 100}))
		}
		s := sample("x", "", map[Signal]float64{LatencyP50: 1})
		s.Layers = [][NumLayerSignals]Value{{}, {LatencyP50: ok(1)}}
		batch = append(batch, s, sample("z", "", map[Signal]float64{LatencyP50: 1, LatencyP99: 2, GateMean: 0.5}))
		seeds.Observe(m0+m, batch)
	}
	for _, name := range []string{"x", "r0", "z"} {
		blob, _ := seeds.Marshal(name)
		f.Add(blob)
		f.Add(blob[:len(blob)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{persistVersion})
	f.Add([]byte{persistVersion, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxLayers = 6
		// Into a detector that holds the name already (4 series) and 2 more,
		// with room for 2; and into an empty one with room for 2.
		d := New(Config{MaxSeries: 8, MaxLayers: maxLayers})
		d.Observe(m0, []Sample{
			sample("x", "", map[Signal]float64{LatencyP50: 1, LatencyP99: 2, GateMean: 0.5, DropRate: 0.01}),
			sample("y", "", map[Signal]float64{LatencyP50: 1, EntropyMean: 2}),
		})
		before, _ := d.Marshal("x")
		for _, tc := range []struct {
			d    *Detector
			name string
			old  []byte
		}{{d, "x", before}, {New(Config{MaxSeries: 2, MaxLayers: maxLayers}), "fresh", nil}} {
			maxSeries := tc.d.cfg.MaxSeries
			err := tc.d.Restore(tc.name, data)
			held := countSeries(t, tc.d)
			if held > maxSeries || tc.d.Series() > maxSeries {
				t.Fatalf("%d series held (Series() %d), MaxSeries %d", held, tc.d.Series(), maxSeries)
			}
			p := tc.d.producers[tc.name]
			if p != nil && len(p.layers) > maxLayers {
				t.Fatalf("%d layers, MaxLayers %d", len(p.layers), maxLayers)
			}
			got, found := tc.d.Marshal(tc.name)
			if err != nil {
				// Loads nothing: what the detector held stays.
				if found != (tc.old != nil) || !bytes.Equal(got, tc.old) {
					t.Fatalf("a failed Restore (%v) changed %q", err, tc.name)
				}
				continue
			}
			if held != tc.d.Series() {
				t.Fatalf("after Restore: Series() %d, %d held", tc.d.Series(), held)
			}
			if !found || !bytes.Equal(got, data) {
				t.Fatalf("Restore succeeded but Marshal gives %d bytes, input %d", len(got), len(data))
			}
			// What loaded must be usable: observe a minute and score it.
			s := sample(tc.name, p.group, map[Signal]float64{LatencyP50: 2, OffCPUP99: 3})
			s.Layers = make([][NumLayerSignals]Value, maxLayers+1)
			for l := range s.Layers {
				s.Layers[l][LatencyP50] = ok(2)
			}
			tc.d.Observe(max(p.last, m0)+1, []Sample{s})
			if held := countSeries(t, tc.d); held > maxSeries || held != tc.d.Series() {
				t.Fatalf("after observing the restored producer: %d series held, Series() %d", held, tc.d.Series())
			}
			tc.d.Each(func(Finding) {})
			tc.d.Findings(Filter{AllLayers: true})
		}
	})
}
