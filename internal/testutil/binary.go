package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binary builds a Go command once per test process. Declare one per test
// package and call Remove from TestMain.
type Binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds pkg (a path relative to the test's package) as name on
// first use and returns the binary's path.
func (b *Binary) Path(tb testing.TB, pkg, name string) string {
	tb.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "agaobs-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, name)
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

// Remove deletes the built binary.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
