package agent

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README metrics reference")

const (
	beginMetrics = "<!-- BEGIN METRICS (generated: go test ./internal/agent -run TestREADMEMetricsReference -update) -->\n"
	endMetrics   = "<!-- END METRICS -->"
)

func TestREADMEMetricsReference(t *testing.T) {
	path := "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, beginMetrics), strings.Index(s, endMetrics)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the metrics reference markers")
	}
	want := s[:i+len(beginMetrics)] + MetricsReference() + s[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != s {
		t.Fatal("README.md metrics reference is out of date: run go test ./internal/agent -run TestREADMEMetricsReference -update")
	}
}
