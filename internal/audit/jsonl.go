package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// JSONLOptions configure OpenJSONL.
type JSONLOptions struct {
	// MaxFileBytes rotates the active file beyond this size (default 100 MiB).
	MaxFileBytes int64
	// MaxFiles keeps this many files, the active one included (default 10);
	// the oldest beyond it is removed with a retention checkpoint.
	MaxFiles int
	// ReadOnly opens for queries and verification only.
	ReadOnly bool
	// LockTimeout bounds the wait for another process's lock (default 1s).
	LockTimeout time.Duration
}

// jsonlStore appends one JSON record per line to path; rotated files are
// path with ".1", ".2", … before the extension (aga_audit.1.jsonl is the
// newest rotated one), as the seed rotated. Queries and verification span
// every file, oldest first.
type jsonlStore struct {
	mu     sync.Mutex
	pub    published // head and size for readers that must not wait on a commit
	path   string
	opts   JSONLOptions
	f      *os.File
	lock   *os.File // flock on path + ".lock"
	active int64
	head   Head
	hwm    map[string]uint64
	size   int64
}

// JSONLPath maps the configured audit_storage_path to the file backend's
// path (.db → .jsonl, as the seed did).
func JSONLPath(p string) string {
	if strings.HasSuffix(p, ".db") {
		return strings.TrimSuffix(p, ".db") + ".jsonl"
	}
	return p
}

// OpenJSONL opens the file store, scanning every file to restore the head
// and the ring high-water marks. A torn last line (a crash mid-write, so
// never acknowledged) is cut off.
func OpenJSONL(path string, opts JSONLOptions) (Store, error) {
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = 100 << 20
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = 10
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	s := &jsonlStore{path: path, opts: opts, head: Head{Hash: zeroHash()}, hwm: map[string]uint64{}}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("audit store %s: %w", path, err)
		}
	}
	var err error
	if s.lock, err = fileLock(path+".lock", !opts.ReadOnly, opts.LockTimeout); err != nil {
		if opts.ReadOnly && errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("audit store %s: no such store", path)
		}
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.lock.Close()
		}
	}()
	if !opts.ReadOnly {
		if err := s.repairTail(); err != nil {
			return nil, err
		}
	}
	err = s.each(func(r *Record) {
		if r.Seq > s.head.Size {
			s.head = Head{Size: r.Seq, Hash: r.Hash}
		}
		if r.Kind == KindProducer && r.RingEpoch != "" && r.RingSeq > s.hwm[r.RingEpoch] {
			s.hwm[r.RingEpoch] = r.RingSeq
		}
		if r.Kind == KindCheckpoint {
			// The marks of records in files retention removed.
			var d struct {
				Marks map[string]uint64 `json:"ring_marks"`
			}
			if json.Unmarshal(r.Details, &d) == nil {
				for e, v := range d.Marks {
					s.hwm[e] = max(s.hwm[e], v)
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for _, p := range s.files() {
		if st, err := os.Stat(p); err == nil {
			s.size += st.Size()
		}
	}
	if !opts.ReadOnly {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit store %s: %w", path, err)
		}
		st, _ := f.Stat()
		s.f, s.active = f, st.Size()
	}
	s.pub.publish(s.head, s.size)
	ok = true
	return s, nil
}

// rotated returns the name of rotated file i (1 = newest).
func (s *jsonlStore) rotated(i int) string {
	ext := filepath.Ext(s.path)
	return strings.TrimSuffix(s.path, ext) + "." + strconv.Itoa(i) + ext
}

// rotatedIndexes lists the numbers of the rotated files on disk, highest
// (oldest) first. The directory is listed rather than probing 1..MaxFiles:
// audit_max_files may have been lowered since they were written, and a
// crash during rotation may leave a hole in the numbering.
func (s *jsonlStore) rotatedIndexes() []int {
	ext := filepath.Ext(s.path)
	prefix := strings.TrimSuffix(filepath.Base(s.path), ext) + "."
	ents, err := os.ReadDir(filepath.Dir(s.path))
	if err != nil {
		return nil
	}
	var idx []int
	for _, e := range ents {
		mid, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if mid, ok = strings.CutSuffix(mid, ext); !ok {
			continue
		}
		if n, err := strconv.Atoi(mid); err == nil && n >= 1 && strconv.Itoa(n) == mid {
			idx = append(idx, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(idx)))
	return idx
}

// files lists existing files oldest first, the active one last.
func (s *jsonlStore) files() []string {
	var out []string
	for _, i := range s.rotatedIndexes() {
		out = append(out, s.rotated(i))
	}
	if _, err := os.Stat(s.path); err == nil {
		out = append(out, s.path)
	}
	return out
}

// each walks every line of every file in order; an unparsable line is
// passed as a record that cannot verify.
func (s *jsonlStore) each(fn func(*Record)) error {
	return s.eachIn(func(r *Record, _ string) { fn(r) })
}

// eachIn is each, with the name of the file holding the record.
func (s *jsonlStore) eachIn(fn func(*Record, string)) error {
	for _, p := range s.files() {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("audit store %s: %w", p, err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				r = Record{Hash: "unreadable", EncodeError: fmt.Sprintf("%s: unreadable line: %v", filepath.Base(p), err)}
			}
			fn(&r, filepath.Base(p))
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("audit store %s: %w", p, err)
		}
	}
	return nil
}

// repairTail cuts a partial last line of the active file.
func (s *jsonlStore) repairTail() error {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit store %s: %w", s.path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("audit store %s: %w", s.path, err)
	}
	if len(b) == 0 || b[len(b)-1] == '\n' {
		return nil
	}
	cut := bytes.LastIndexByte(b, '\n') + 1
	if err := f.Truncate(int64(cut)); err != nil {
		return fmt.Errorf("audit store %s: cut a torn last line: %w", s.path, err)
	}
	return f.Sync()
}

func (s *jsonlStore) Append(recs []*Record) ([]*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.pub.publish(s.head, s.size) }()
	if s.f == nil {
		return nil, fmt.Errorf("audit store %s: opened read-only", s.path)
	}
	stored, head, hwm, err := chainRecords(recs, s.head, s.hwm, nil)
	if err != nil || len(stored) == 0 {
		return nil, err
	}
	var buf bytes.Buffer
	for _, r := range stored {
		b, err := r.encoded()
		if err != nil {
			unchain(stored)
			return nil, fmt.Errorf("record %d: %w", r.Seq, err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if s.active > 0 && s.active+int64(buf.Len()) > s.opts.MaxFileBytes {
		if err := s.rotate(); err != nil {
			unchain(stored)
			return nil, err
		}
	}
	n, err := s.f.Write(buf.Bytes())
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// Cut what was written so the file keeps whole, chained lines.
		_ = s.f.Truncate(s.active)
		unchain(stored)
		return nil, fmt.Errorf("append %d audit records to %s: %w", len(stored), s.path, err)
	}
	s.active += int64(n)
	s.size += int64(n)
	s.head = head
	for e, v := range hwm {
		s.hwm[e] = v
	}
	// Files beyond audit_max_files go after the batch is stored, so their
	// checkpoint follows it in the chain. A failure here loses nothing:
	// the next rotation tries again.
	if err := s.dropBeyond(time.Now(), s.opts.MaxFiles, "audit_max_files"); err != nil {
		return stored, nil
	}
	return stored, nil
}

// rotate moves the active file to .1 (shifting the others); files beyond
// MaxFiles are removed by retention with a checkpoint.
func (s *jsonlStore) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("rotate %s: %w", s.path, err)
	}
	for _, i := range s.rotatedIndexes() { // highest first: nothing is overwritten
		if err := os.Rename(s.rotated(i), s.rotated(i+1)); err != nil {
			return fmt.Errorf("rotate %s: %w", s.path, err)
		}
	}
	if err := os.Rename(s.path, s.rotated(1)); err != nil {
		return fmt.Errorf("rotate %s: %w", s.path, err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", s.path, err)
	}
	s.f, s.active = f, 0
	return nil
}

// dropBeyond removes the oldest rotated files beyond keep, after a
// checkpoint naming the new base is durable.
func (s *jsonlStore) dropBeyond(now time.Time, keep int, reason string) error {
	files := s.files()
	if len(files) <= keep {
		return nil
	}
	_, err := s.removeOldest(now, files[:len(files)-keep], reason)
	return err
}

// removeOldest appends the checkpoint, then deletes the files. A crash in
// between leaves files the next verification skips (they precede the base).
func (s *jsonlStore) removeOldest(now time.Time, victims []string, reason string) (RetentionResult, error) {
	var res RetentionResult
	var base Head
	for _, p := range victims {
		_ = s.eachFile(p, func(r *Record) {
			res.RemovedRecords++
			if r.Seq > base.Size {
				base = Head{Size: r.Seq, Hash: r.Hash}
			}
		})
		res.RemovedDays = append(res.RemovedDays, filepath.Base(p))
	}
	if res.RemovedRecords == 0 {
		return res, nil
	}
	cp := checkpoint(now, base, res.RemovedRecords, res.RemovedDays, reason, s.hwm)
	stored, head, _, err := chainRecords([]*Record{cp}, s.head, nil, nil)
	if err != nil {
		return RetentionResult{}, err
	}
	b, _ := stored[0].encoded()
	b = append(b, '\n')
	if _, err := s.f.Write(b); err != nil {
		return RetentionResult{}, fmt.Errorf("audit retention: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return RetentionResult{}, fmt.Errorf("audit retention: %w", err)
	}
	s.active += int64(len(b))
	s.head = head
	for _, p := range victims {
		if st, err := os.Stat(p); err == nil {
			s.size -= st.Size()
		}
		if err := os.Remove(p); err != nil {
			return res, fmt.Errorf("audit retention: %w", err)
		}
	}
	s.size += int64(len(b))
	res.Checkpoint = stored[0]
	return res, nil
}

func (s *jsonlStore) eachFile(p string, fn func(*Record)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			fn(&r)
		}
	}
	return sc.Err()
}

func (s *jsonlStore) Query(f Filter) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	err := s.each(func(r *Record) {
		if (f.Limit == 0 || len(out) < f.Limit) && r.Seq > 0 && f.match(r) {
			out = append(out, *r)
		}
	})
	return out, err
}

func (s *jsonlStore) Head() (Head, error) { return s.pub.Head() }

func (s *jsonlStore) Size() int64 { return s.pub.Size() }

func (s *jsonlStore) Verify(expect *Head) (VerifyReport, error) { return s.verifyProgress(expect, nil) }

func (s *jsonlStore) verifyProgress(expect *Head, progress ProgressFunc) (VerifyReport, error) {
	snap, err := s.snapshot()
	if err != nil {
		return VerifyReport{}, err
	}
	defer snap.close()
	// The head is whatever the last line says: there is no separate record
	// of it to compare (truncation needs --expect-head).
	return verifyChain(snap.each, nil, expect, layout{backend: "file"}, progress)
}

// jsonlSnapshot is the store's files as they were at one instant: open
// descriptors (a rotation renames and retention unlinks paths, not open
// files) and the active file's committed length. A verify reads it
// without the store's lock, so commits go on during a long verify.
type jsonlSnapshot struct {
	files []snapFile
}

type snapFile struct {
	name  string
	f     *os.File
	limit int64 // bytes to read; -1: the whole file
}

func (s *jsonlStore) snapshot() (*jsonlSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := &jsonlSnapshot{}
	for _, p := range s.files() {
		f, err := os.Open(p)
		if err != nil {
			snap.close()
			return nil, fmt.Errorf("audit store %s: %w", p, err)
		}
		limit := int64(-1)
		if p == s.path && s.f != nil {
			limit = s.active // what later commits append is not part of this instant
		}
		snap.files = append(snap.files, snapFile{name: filepath.Base(p), f: f, limit: limit})
	}
	return snap, nil
}

func (snap *jsonlSnapshot) close() {
	for _, sf := range snap.files {
		sf.f.Close()
	}
}

// each walks the snapshot's lines in order, as eachIn does the files;
// verifyChain walks twice.
func (snap *jsonlSnapshot) each(fn func(*Record, string)) error {
	for _, sf := range snap.files {
		if _, err := sf.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("audit store %s: %w", sf.name, err)
		}
		var r io.Reader = sf.f
		if sf.limit >= 0 {
			r = io.LimitReader(sf.f, sf.limit)
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var rec Record
			if err := json.Unmarshal(line, &rec); err != nil {
				rec = Record{Hash: "unreadable", EncodeError: fmt.Sprintf("%s: unreadable line: %v", sf.name, err)}
			}
			fn(&rec, sf.name)
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("audit store %s: %w", sf.name, err)
		}
	}
	return nil
}

// Retain removes whole rotated files whose newest record is older than
// maxAge, or beyond maxBytes (oldest first, never the active file).
func (s *jsonlStore) Retain(now time.Time, maxAge time.Duration, maxBytes int64) (RetentionResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.pub.publish(s.head, s.size) }()
	if s.f == nil {
		return RetentionResult{}, fmt.Errorf("audit store %s: opened read-only", s.path)
	}
	files := s.files()
	var victims []string
	size := s.size
	reason := "audit_retention_days"
	for _, p := range files[:max(0, len(files)-1)] {
		var newest time.Time
		_ = s.eachFile(p, func(r *Record) {
			if r.Time.After(newest) {
				newest = r.Time
			}
		})
		st, _ := os.Stat(p)
		byAge := maxAge > 0 && newest.Before(now.Add(-maxAge))
		bySize := maxBytes > 0 && size > maxBytes
		if !byAge && !bySize {
			break
		}
		if !byAge {
			reason = "audit_max_bytes"
		}
		victims = append(victims, p)
		if st != nil {
			size -= st.Size()
		}
	}
	if len(victims) == 0 {
		return RetentionResult{}, nil
	}
	return s.removeOldest(now, victims, reason)
}

func (s *jsonlStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.f != nil {
		err = s.f.Close()
		s.f = nil
	}
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close()) // releases the flock
		s.lock = nil
	}
	return err
}
