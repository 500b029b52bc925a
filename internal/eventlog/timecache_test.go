package eventlog

import (
	"testing"
	"time"
)

// The cached timestamp is the one AppendFormat gives, across millisecond
// boundaries, times going back and a change of zone.
func TestAppendTimeCache(t *testing.T) {
	s := &Sink{}
	base := time.Date(2026, 12, 7, 18, 30, 0, 999_000_000, time.UTC)
	zone := time.FixedZone("X", 5*3600+1800)
	steps := []time.Duration{0, 100 * time.Microsecond, 900 * time.Microsecond, time.Millisecond, -2 * time.Millisecond, 0, time.Second}
	now := base
	for i, d := range steps {
		now = now.Add(d)
		for _, tm := range []time.Time{now, now.In(zone), now} {
			got := string(s.appendTime(nil, tm))
			want := tm.Format("2006-01-02T15:04:05.000Z07:00")
			if got != want {
				t.Fatalf("step %d: %q, want %q", i, got, want)
			}
		}
	}
}
