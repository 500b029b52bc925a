package audit

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestHeadAndSizeDoNotWaitForACommit: while a commit holds a store's lock
// (across its fsync, seconds on a loaded disk), Head and Size answer at
// once with the last committed values: /metrics, /health and the live view
// read them every second, and a scrape that waited timed out.
func TestHeadAndSizeDoNotWaitForACommit(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		open func() (Store, *sync.Mutex)
	}{
		{"bbolt", func() (Store, *sync.Mutex) {
			s, err := OpenBolt(filepath.Join(dir, "a.db"), BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return s, &s.(*boltStore).mu
		}},
		{"file", func() (Store, *sync.Mutex) {
			s, err := OpenJSONL(filepath.Join(dir, "a.jsonl"), JSONLOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return s, &s.(*jsonlStore).mu
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, mu := c.open()
			defer s.Close()
			if h, _ := s.Head(); h.Size != 0 || h.Hash != zeroHash() {
				t.Fatalf("empty store head %v", h)
			}
			stored, err := s.Append([]*Record{stAgent(1), stAgent(2)})
			if err != nil {
				t.Fatal(err)
			}
			want := Head{Size: 2, Hash: stored[1].Hash}
			mu.Lock() // a commit in progress
			done := make(chan struct{})
			var h Head
			var size int64
			go func() {
				h, _ = s.Head()
				size = s.Size()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				mu.Unlock()
				<-done
				t.Fatal("Head and Size waited for the commit in progress")
			}
			mu.Unlock()
			if h != want || size <= 0 {
				t.Errorf("head %v size %d, want %v and the records' bytes", h, size, want)
			}
		})
	}
}
