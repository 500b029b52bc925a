package alerting

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The cached last slice gives the same slices as computing each one: a
// window fed through the cache ends equal to one that never uses it, over
// time that mostly moves forward but jumps back and ahead.
func TestWindowLastSliceCache(t *testing.T) {
	for _, longest := range []time.Duration{time.Minute, 5 * time.Hour} {
		cached, plain := newWindow(longest), newWindow(longest)
		r := rand.New(rand.NewPCG(1, 2))
		now := int64(1_700_000_000)
		for i := range 200_000 {
			switch r.IntN(100) {
			case 0:
				now -= r.Int64N(int64(2 * longest / time.Second))
			case 1:
				now += r.Int64N(int64(2 * longest / time.Second))
			default:
				if r.IntN(10) == 0 {
					now++
				}
			}
			plain.last = nil
			a, b := cached.at(now), plain.at(now)
			if a.start != b.start {
				t.Fatalf("step %d, t=%d: cached slice starts at %d, computed %d", i, now, a.start, b.start)
			}
			a.forwards++
			b.forwards++
		}
		for i := range cached.slices {
			if cached.slices[i].start != plain.slices[i].start || cached.slices[i].forwards != plain.slices[i].forwards {
				t.Fatalf("%v: slice %d differs: %+v vs %+v", longest, i, cached.slices[i].start, plain.slices[i].start)
			}
		}
	}
}
