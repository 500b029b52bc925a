//go:build cgo

package gpu

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docs/health.md lists every GPU family the golden expositions contain,
// with the collector's help text.
func TestDocsListEveryFamily(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "health.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.prom"))
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	seen := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			name, help, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# HELP "), " ")
			if !ok || !strings.HasPrefix(sc.Text(), "# HELP ") || seen[name] {
				continue
			}
			seen[name] = true
			if !strings.Contains(string(doc), "| `"+name+"` |") || !strings.Contains(string(doc), help) {
				t.Errorf("docs/health.md does not list %s with its help %q", name, help)
			}
		}
		fh.Close()
	}
	if len(seen) < 20 {
		t.Fatalf("only %d families in the golden files", len(seen))
	}
}
