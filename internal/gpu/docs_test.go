package gpu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docs/health.md lists every GPU family the collector describes, with its
// help text.
func TestDocsListEveryFamily(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "health.md"))
	if err != nil {
		t.Fatal(err)
	}
	fams := New(Options{}).Metrics().Describe()
	if len(fams) < 20 {
		t.Fatalf("only %d families described", len(fams))
	}
	for _, f := range fams {
		if !strings.Contains(string(doc), "| `"+f.Name+"` |") || !strings.Contains(string(doc), f.Help) {
			t.Errorf("docs/health.md does not list %s with its help %q", f.Name, f.Help)
		}
	}
}
