package eventlog

import (
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// The sink's counters are described and exist (at 0) for every level from
// the start.
func TestCollector(t *testing.T) {
	s, err := New(Options{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	set := selfmetrics.NewSet()
	set.Add("eventlog", s.Collector())
	if err := selfmetrics.Check(set); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(set, "agaobs_log_lines_total"); n != len(s.lines) {
		t.Errorf("%d agaobs_log_lines_total series, want one per level (%d)", n, len(s.lines))
	}
}
