package schema

import (
	"strings"
	"testing"
)

func TestReferenceTable(t *testing.T) {
	got := ReferenceTable("aga")
	for _, want := range []string{
		"| `aga_forward_total` | same | counter | producer, layer, applied |",
		"| `aga_forward_latency_us` | `aga_forward_latency_seconds` | histogram (buckets 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000) | producer, layer |",
		"| `aga_knowledge_count` | `aga_knowledge_items` | gauge | producer |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("reference table lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n != len(Families())+2 {
		t.Errorf("%d lines, want a header, a rule and %d families", n, len(Families()))
	}
}
