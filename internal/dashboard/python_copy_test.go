package dashboard

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The Python client answers the seed's generate_dashboard with the node
// dashboard, from a copy it ships (docs/seed-compatibility.md §12.1): the
// generator's output in the API-wrapper form with the prometheus_prefix set
// to a placeholder, which the client replaces (grafana_dashboard.py,
// render). No second generator: this test keeps the copy equal to the
// generator, and checks that the client's replacement gives the
// generator's output for other prefixes.
const (
	pythonCopy        = "../../clients/python/aga_observability/_data/dashboard.json"
	pythonPlaceholder = "AGAOBS_PREFIX"
	pythonRegenerate  = "go test ./internal/dashboard -run TestPythonDashboardCopy -update"
)

func pythonCopyOptions(prefix string) Options {
	return Options{Prefix: prefix, APIWrapper: true}
}

// pythonRender is what grafana_dashboard.py's render(prefix) does to the
// copy: the two dashboard uids first (a long prefix makes them hashed),
// then every other occurrence of the placeholder.
func pythonRender(copy []byte, prefix string) []byte {
	s := string(copy)
	s = strings.ReplaceAll(s, "agaobs-"+pythonPlaceholder+"-fleet", dashboardUID(prefix, "", true))
	s = strings.ReplaceAll(s, "agaobs-"+pythonPlaceholder, dashboardUID(prefix, "", false))
	s = strings.ReplaceAll(s, pythonPlaceholder, prefix)
	return []byte(s)
}

func TestPythonDashboardCopy(t *testing.T) {
	want, err := Render(pythonCopyOptions(pythonPlaceholder))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.FromSlash(pythonCopy)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (regenerate it: %s)", err, pythonRegenerate)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: it differs from the generator's output; regenerate it: %s", pythonCopy, pythonRegenerate)
	}
	// The placeholder must be nothing the dashboard says otherwise.
	def, err := Render(pythonCopyOptions(""))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(def, []byte(pythonPlaceholder)) {
		t.Fatalf("the default dashboard contains the placeholder %q", pythonPlaceholder)
	}

	long := strings.Repeat("p", 40) // hashed uids
	for _, prefix := range []string{"aga", "myaga", "test_aga", "AGA_obs2", long} {
		t.Run(prefix, func(t *testing.T) {
			want, err := Render(pythonCopyOptions(prefix))
			if err != nil {
				t.Fatal(err)
			}
			if got := pythonRender(got, prefix); !bytes.Equal(got, want) {
				t.Fatalf("replacing the placeholder with %q does not give the generator's output:\n%s", prefix, firstDiff(got, want))
			}
		})
	}
}

// firstDiff names the first differing line of two texts.
func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  client:    %s\n  generator: %s", i+1, x, y)
		}
	}
	return "(equal)"
}
