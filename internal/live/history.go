package live

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// The aggregate series of a producer, in the order of seriesNames (the
// keys of docs/live.md).
const (
	sRate = iota
	sP50
	sP99
	sGate
	sEntropy
	sRetResults
	sRetInjected
	sKVUtil
	sSlotChanges
	sDrops
	numSeries
)

var seriesNames = [numSeries]string{"rate", "p50_us", "p99_us", "gate", "entropy", "ret_results", "ret_injected",
	"kv_util", "slot_changes", "drops"}

// nan marks a second without data (null on the wire).
var nan = float32(math.NaN())

// second is one producer's current second, filled by Write.
type second struct {
	forwards, events      uint64
	lat                   pipeline.LatencyHistogram // forwards without a layer until close
	gateSum, entSum       float64
	gateN, entN           uint64
	retN                  uint64
	resultsSum, injectSum float64
	// layers holds a latency histogram per layer slot, allocated when
	// the slot first sees a forward with a latency.
	layers []*pipeline.LatencyHistogram
}

// track is one producer's history and current second. Memory is fixed
// once allocated: n seconds of numSeries float32s, and n × width float32s
// of per-layer p99 (allocated at the first forward carrying a layer).
type track struct {
	name   string
	n      int
	width  int // layer slots, the last one is "other"
	series [numSeries][]float32
	layers []float32 // n × width, row = second
	lastT  int64     // last second written (0: none)
	// slotOf maps a layer index to its slot; order lists the slots sorted
	// by layer (other last), recomputed when a layer is added.
	slotOf map[int32]int
	small  [MaxLayers]int16 // slot+1 of layers 0..MaxLayers-1 (0: none yet)
	order  []int
	ids    []string
	cur    second
	// Sticky values from status events: they arrive every few seconds and
	// hold until the next one.
	kvUtil, slotChanges float32
	// dropped is the ring drop total at the previous frame (-1: unknown).
	dropped    int64
	lastActive int64 // last second with events or a ring
	// prod is the newest incarnation seen: its identity fills the
	// producers table (model, pod, namespace).
	prod *pipeline.Producer
}

func newTrack(name string, n, maxLayers int) *track {
	t := &track{name: name, n: n, width: maxLayers + 1, slotOf: map[int32]int{}, kvUtil: nan, slotChanges: nan, dropped: -1}
	for i := range t.series {
		t.series[i] = filled(n)
	}
	return t
}

func filled(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = nan
	}
	return s
}

// bytes is the memory the track holds at most (the docs' figure).
func trackBytes(n, maxLayers int) int {
	return numSeries*n*4 + n*(maxLayers+1)*4 + (maxLayers+1)*int(sizeofHist)
}

const sizeofHist = 105*8 + 16

// observe folds one event into the current second.
func (t *track) observe(ev *pipeline.Event) {
	t.cur.events++
	switch ev.Kind {
	case pipeline.KindForward:
		f := &ev.Forward
		t.cur.forwards++
		us, ok := f.Latency()
		if ok {
			d := time.Duration(us * float64(time.Microsecond))
			b := pipeline.LatencyBucket(d)
			// A forward with a layer goes to its layer's histogram only:
			// close adds those into the producer's (one histogram update
			// per event instead of two, the same counts).
			if l, has := f.LayerIdx(); has {
				t.layerHist(l).ObserveBucket(b, d)
			} else {
				t.cur.lat.ObserveBucket(b, d)
			}
		}
		if g, ok := f.Gate(); ok {
			t.cur.gateSum += g
			t.cur.gateN++
		}
		if e, ok := f.Entropy(); ok {
			t.cur.entSum += e
			t.cur.entN++
		}
	case pipeline.KindRetrieval:
		if r := ev.Retrieval; r != nil {
			t.cur.retN++
			t.cur.resultsSum += float64(r.Results())
			t.cur.injectSum += float64(r.Injected())
		}
	case pipeline.KindStatus:
		s := ev.Status
		if s == nil {
			return
		}
		if s.KVStore != nil && s.KVStore.Utilization != nil {
			t.kvUtil = float32(*s.KVStore.Utilization)
		}
		if s.SlotChangeRate != nil {
			t.slotChanges = float32(*s.SlotChangeRate)
		}
	}
}

// layerHist returns the histogram of layer l's slot: the first width-1
// distinct layers get their own, every further one shares "other".
func (t *track) layerHist(l int32) *pipeline.LatencyHistogram {
	if l >= 0 && int(l) < len(t.small) && t.small[l] > 0 && t.cur.layers != nil {
		if h := t.cur.layers[t.small[l]-1]; h != nil {
			return h // the usual case: no map lookup
		}
	}
	slot, ok := t.slotOf[l]
	if !ok {
		slot = t.width - 1
		if len(t.slotOf) < t.width-1 {
			slot = len(t.slotOf)
			t.slotOf[l] = slot
			if l >= 0 && int(l) < len(t.small) {
				t.small[l] = int16(slot + 1)
			}
			t.reorder()
		}
	}
	if t.cur.layers == nil {
		t.cur.layers = make([]*pipeline.LatencyHistogram, t.width)
	}
	h := t.cur.layers[slot]
	if h == nil {
		h = new(pipeline.LatencyHistogram)
		t.cur.layers[slot] = h
	}
	return h
}

func (t *track) reorder() {
	type kv struct {
		layer int32
		slot  int
	}
	all := make([]kv, 0, len(t.slotOf))
	for l, s := range t.slotOf {
		all = append(all, kv{l, s})
	}
	slices.SortFunc(all, func(a, b kv) int { return int(a.layer) - int(b.layer) })
	t.order, t.ids = t.order[:0], t.ids[:0]
	for _, e := range all {
		t.order = append(t.order, e.slot)
		t.ids = append(t.ids, strconv.Itoa(int(e.layer)))
	}
	if len(t.slotOf) >= t.width-1 {
		t.order = append(t.order, t.width-1)
		t.ids = append(t.ids, "other")
	}
}

// close ends second sec: the current second becomes the history's entry
// for sec (seconds skipped since the last one are null), and the current
// second starts empty. present says the producer has rings now: an idle
// present producer has a rate of 0, an absent one null. dropped is its
// ring drop total (-1: unknown).
func (t *track) close(sec int64, present bool, dropped int64) {
	if t.lastT != 0 && sec <= t.lastT {
		return // the clock went back: keep what is stored
	}
	if t.lastT != 0 {
		for s := t.lastT + 1; s < sec && s <= t.lastT+int64(t.n); s++ {
			t.clear(s)
		}
	}
	t.lastT = sec
	i := t.index(sec)
	c := &t.cur
	v := func(k int, x float32) { t.series[k][i] = x }
	for k := range numSeries {
		v(k, nan)
	}
	if present || c.events > 0 {
		t.lastActive = sec
		v(sRate, float32(c.forwards))
		v(sKVUtil, t.kvUtil)
		v(sSlotChanges, t.slotChanges)
	} else {
		t.kvUtil, t.slotChanges = nan, nan
	}
	for _, h := range c.layers {
		if h != nil {
			addHist(&c.lat, h)
		}
	}
	if c.lat.Count > 0 {
		v(sP50, us(c.lat.Quantile(0.5)))
		v(sP99, us(c.lat.Quantile(0.99)))
	}
	if c.gateN > 0 {
		v(sGate, float32(c.gateSum/float64(c.gateN)))
	}
	if c.entN > 0 {
		v(sEntropy, float32(c.entSum/float64(c.entN)))
	}
	if c.retN > 0 {
		v(sRetResults, float32(c.resultsSum/float64(c.retN)))
		v(sRetInjected, float32(c.injectSum/float64(c.retN)))
	}
	if dropped >= 0 {
		if t.dropped >= 0 && dropped >= t.dropped {
			v(sDrops, float32(dropped-t.dropped))
		}
		t.dropped = dropped
	}
	if c.layers != nil || t.layers != nil {
		if t.layers == nil {
			t.layers = filled(t.n * t.width)
		}
		row := t.layers[i*t.width : (i+1)*t.width]
		for s := range row {
			row[s] = nan
			if c.layers != nil && c.layers[s] != nil && c.layers[s].Count > 0 {
				row[s] = us(c.layers[s].Quantile(0.99))
				*c.layers[s] = pipeline.LatencyHistogram{}
			}
		}
	}
	layers := c.layers
	*c = second{layers: layers}
}

// addHist adds src's observations to dst.
func addHist(dst, src *pipeline.LatencyHistogram) {
	for i, n := range src.Buckets {
		dst.Buckets[i] += n
	}
	dst.Count += src.Count
	dst.Max = max(dst.Max, src.Max)
}

func (t *track) clear(sec int64) {
	i := t.index(sec)
	for k := range numSeries {
		t.series[k][i] = nan
	}
	if t.layers != nil {
		row := t.layers[i*t.width : (i+1)*t.width]
		for s := range row {
			row[s] = nan
		}
	}
}

func (t *track) index(sec int64) int {
	i := sec % int64(t.n)
	if i < 0 {
		i += int64(t.n)
	}
	return int(i)
}

// at returns series k at second sec (NaN when not stored).
func (t *track) at(k int, sec int64) float32 {
	if t.lastT == 0 || sec > t.lastT || sec <= t.lastT-int64(t.n) {
		return nan
	}
	return t.series[k][t.index(sec)]
}

// layerAt returns slot s's p99 at second sec (NaN when not stored).
func (t *track) layerAt(s int, sec int64) float32 {
	if t.layers == nil || t.lastT == 0 || sec > t.lastT || sec <= t.lastT-int64(t.n) {
		return nan
	}
	return t.layers[t.index(sec)*t.width+s]
}

func us(d time.Duration) float32 { return float32(float64(d) / float64(time.Microsecond)) }
