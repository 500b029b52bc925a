package live

import (
	"os"
	"strings"
	"testing"
)

// TestSelfMetricsDocumented: every family of the live view's collector
// is in docs/live.md's self-metrics table.
func TestSelfMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/live.md")
	if err != nil {
		t.Fatal(err)
	}
	fams := New(Options{}).Collector().Describe()
	if len(fams) == 0 {
		t.Fatal("the collector describes no family")
	}
	for _, f := range fams {
		if !strings.Contains(string(doc), "`"+f.Name+"`") && !strings.Contains(string(doc), "`"+f.Name+"{") {
			t.Errorf("%s is not in docs/live.md", f.Name)
		}
	}
}
