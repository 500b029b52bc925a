package audit

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestJSONLVerifyDoesNotHoldCommits: a verify of the file backend reads a
// snapshot of its files without the store's lock, so a commit made while
// the verify runs (from its progress callback, mid-walk) goes through —
// holding the lock for the whole read stalled the audit writer for as long
// as a verify of a large store took. The verify covers the records of the
// instant it started, across a rotation during it.
func TestJSONLVerifyDoesNotHoldCommits(t *testing.T) {
	st, err := OpenJSONL(filepath.Join(t.TempDir(), "audit.jsonl"), JSONLOptions{MaxFileBytes: 2048, MaxFiles: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 30 {
		if _, err := st.Append([]*Record{stAgent(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	appended := make(chan error, 1)
	rep, err := VerifyProgress(st, nil, func(done, total int) {
		once.Do(func() {
			go func() {
				var err error
				for i := range 20 { // enough to rotate the active file
					if _, err = st.Append([]*Record{stAgent(100 + i)}); err != nil {
						break
					}
				}
				appended <- err
			}()
			select {
			case err := <-appended:
				if err != nil {
					t.Errorf("append during the verify: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("appends during a verify did not complete: the verify holds the store")
			}
		})
	})
	if err != nil || !rep.OK || rep.Records != 30 {
		t.Fatalf("verify: %v, %+v; want OK over the 30 records of its start", err, rep)
	}
	if rep, err := st.Verify(nil); err != nil || !rep.OK || rep.Records != 50 {
		t.Fatalf("verify after: %v, %+v; want OK over 50", err, rep)
	}
}
