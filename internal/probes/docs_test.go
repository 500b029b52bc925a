package probes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docs/ebpf.md lists every probe's metric with the collector's help text.
func TestDocsListEveryFamily(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "ebpf.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range All() {
		name, help, _, _ := familyOf(p)
		if !strings.Contains(string(doc), "| `"+name+"` |") || !strings.Contains(string(doc), help) {
			t.Errorf("docs/ebpf.md does not list %s with its help %q", name, help)
		}
		if !strings.Contains(string(doc), "| `"+p.Name+"` |") {
			t.Errorf("docs/ebpf.md has no row for probe %s", p.Name)
		}
	}
}
