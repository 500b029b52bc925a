package audit

import (
	"fmt"
	"path/filepath"
	"time"
)

// OpenOptions select and configure a backend (the audit_* config keys).
type OpenOptions struct {
	// Backend is bbolt, file, memory, or sqlite (a deprecated alias of
	// bbolt, kept so the reference's configs keep working).
	Backend string
	// Path is audit_storage_path; the file backend uses it with .db →
	// .jsonl.
	Path         string
	ReadOnly     bool
	LockTimeout  time.Duration
	MaxFileBytes int64
	MaxFiles     int
}

// Open opens the configured store. It returns the store and its absolute
// path ("" for memory), which the admin API reports so a CLI can tell
// whether a running agent serves the store it was asked about.
func Open(o OpenOptions) (Store, string, error) {
	switch o.Backend {
	case "memory":
		if o.ReadOnly {
			return nil, "", fmt.Errorf("audit_storage_backend memory keeps records in the agent only: query the running agent")
		}
		return NewMemory(), "", nil
	case "bbolt", "sqlite", "": // the config loader warns about sqlite, once

		p, err := filepath.Abs(o.Path)
		if err != nil {
			return nil, "", fmt.Errorf("audit_storage_path %q: %w", o.Path, err)
		}
		s, err := OpenBolt(p, BoltOptions{ReadOnly: o.ReadOnly, LockTimeout: o.LockTimeout})
		return s, p, err
	case "file":
		p, err := filepath.Abs(JSONLPath(o.Path))
		if err != nil {
			return nil, "", fmt.Errorf("audit_storage_path %q: %w", o.Path, err)
		}
		s, err := OpenJSONL(p, JSONLOptions{ReadOnly: o.ReadOnly, LockTimeout: o.LockTimeout,
			MaxFileBytes: o.MaxFileBytes, MaxFiles: o.MaxFiles})
		return s, p, err
	}
	return nil, "", fmt.Errorf("audit_storage_backend %q: want bbolt, file or memory", o.Backend)
}
