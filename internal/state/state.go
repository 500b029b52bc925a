package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// errLocked is returned by Open when another process holds the file.
var errLocked = errors.New("state file is locked by another process")

// Options configures Open. The zero value is valid.
type Options struct {
	// LockTimeout is how long Open waits for another agent to release the
	// file lock (default 1s).
	LockTimeout time.Duration
	// ReadOnly opens the file shared, for inspection commands.
	ReadOnly bool
}

// Store is the state file. Methods are safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens or creates the state file at path. An empty path returns a nil
// Store (persistence disabled).
func Open(path string, opts *Options) (*Store, error) {
	if path == "" {
		return nil, nil
	}
	if opts == nil {
		opts = &Options{}
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = time.Second
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("state %s: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("state %s: %w", path, errLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Path returns the file path ("" for a nil Store).
func (s *Store) Path() string {
	if s == nil {
		return ""
	}
	return s.db.Path()
}

// Put stores v as JSON under bucket/key.
func (s *Store) Put(bucket, key string, v any) error {
	if s == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state put %s/%s: %w", bucket, key, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return fmt.Errorf("state put %s/%s: %w", bucket, key, err)
		}
		return bk.Put([]byte(key), b)
	})
}

// Get decodes bucket/key into v and reports whether it existed.
func (s *Store) Get(bucket, key string, v any) (bool, error) {
	if s == nil {
		return false, nil
	}
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		raw := bk.Get([]byte(key))
		if raw == nil {
			return nil
		}
		found = true
		// Unmarshal copies: raw is only valid inside the transaction.
		return json.Unmarshal(raw, v)
	})
	if err != nil {
		return false, fmt.Errorf("state get %s/%s: %w", bucket, key, err)
	}
	return found, nil
}

// Replace makes bucket hold exactly kv (values JSON-encoded), in one
// transaction: a crash leaves either the old or the new contents.
func (s *Store) Replace(bucket string, kv map[string]any) error {
	if s == nil {
		return nil
	}
	enc := make(map[string][]byte, len(kv))
	for k, v := range kv {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("state replace %s/%s: %w", bucket, k, err)
		}
		enc[k] = b
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bucket)) != nil {
			if err := tx.DeleteBucket([]byte(bucket)); err != nil {
				return fmt.Errorf("state replace %s: %w", bucket, err)
			}
		}
		bk, err := tx.CreateBucket([]byte(bucket))
		if err != nil {
			return fmt.Errorf("state replace %s: %w", bucket, err)
		}
		for k, b := range enc {
			if err := bk.Put([]byte(k), b); err != nil {
				return fmt.Errorf("state replace %s/%s: %w", bucket, k, err)
			}
		}
		return nil
	})
}

// Delete removes bucket/key; a missing key is not an error.
func (s *Store) Delete(bucket, key string) error {
	if s == nil {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		return bk.Delete([]byte(key))
	})
}

// ForEach calls fn with a copy of every value in bucket, in key order.
func (s *Store) ForEach(bucket string, fn func(key string, raw []byte) error) error {
	if s == nil {
		return nil
	}
	return s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			return fn(string(k), append([]byte(nil), v...))
		})
	})
}

// Close closes the file.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	return s.db.Close()
}
