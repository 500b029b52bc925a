package audit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bbolt layout: meta (head, base, size), days/<YYYY-MM-DD>/<seq> → record
// JSON, daysize/<day> → stored bytes, rings/<epoch> → high-water mark.
var (
	bktMeta    = []byte("meta")
	bktDays    = []byte("days")
	bktDaySize = []byte("daysize")
	bktRings   = []byte("rings")
)

// BoltOptions configure OpenBolt.
type BoltOptions struct {
	// ReadOnly opens shared, for inspection while no agent holds the file.
	ReadOnly bool
	// LockTimeout bounds the wait for another process's lock (default 1s).
	LockTimeout time.Duration
}

type boltStore struct {
	db   *bolt.DB
	lock *os.File   // writers: flock on path + ".lock" (see CompactBolt)
	mu   sync.Mutex // serialises writers; readers use bbolt's MVCC
	pub  published  // head and size for readers that must not wait on a commit
	head Head
	base Head
	size int64
	hwm  map[string]uint64
	// seal cuts the stored encodings of a batch; bbolt is done with
	// them when the commit returns, so every batch reuses its chunks.
	seal sealer
	// lastDay is the newest day bucket: a record whose receive time is
	// older (the clock stepped back) still goes there, so storage order
	// stays chain order.
	lastDay string
}

// OpenBolt opens (creating if needed) a bbolt audit store.
func OpenBolt(path string, opts BoltOptions) (Store, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	var lock *os.File
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("audit store %s: %w", path, err)
		}
		// The side lock, taken before the file is opened, keeps a writer
		// from opening a file that CompactBolt is about to replace.
		var err error
		if lock, err = fileLock(path+".lock", true, opts.LockTimeout); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly})
	if err != nil && lock != nil {
		lock.Close()
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("audit store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("audit store %s: %w", path, err)
	}
	s := &boltStore{db: db, lock: lock, head: Head{Hash: zeroHash()}, base: Head{Hash: zeroHash()}, hwm: map[string]uint64{}}
	if !opts.ReadOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bktMeta, bktDays, bktDaySize, bktRings} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("audit store %s: %w", path, err)
		}
	}
	err = db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bktMeta); m != nil {
			s.head = readHead(m, "head", s.head)
			s.base = readHead(m, "base", s.base)
			if v := m.Get([]byte("size")); len(v) == 8 {
				s.size = int64(binary.BigEndian.Uint64(v))
			}
		}
		if d := tx.Bucket(bktDays); d != nil {
			if k, _ := d.Cursor().Last(); k != nil {
				s.lastDay = string(k)
			}
		}
		if r := tx.Bucket(bktRings); r != nil {
			return r.ForEach(func(k, v []byte) error {
				if len(v) == 8 {
					s.hwm[string(k)] = binary.BigEndian.Uint64(v)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("audit store %s: %w", path, err)
	}
	s.pub.publish(s.head, s.size)
	return s, nil
}

func readHead(m *bolt.Bucket, name string, def Head) Head {
	seq, hash := m.Get([]byte(name+"_seq")), m.Get([]byte(name+"_hash"))
	if len(seq) != 8 || len(hash) == 0 {
		return def
	}
	return Head{Size: binary.BigEndian.Uint64(seq), Hash: string(hash)}
}

func putHead(m *bolt.Bucket, name string, h Head) error {
	if err := m.Put([]byte(name+"_seq"), u64(h.Size)); err != nil {
		return err
	}
	return m.Put([]byte(name+"_hash"), []byte(h.Hash))
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func (s *boltStore) Append(recs []*Record) ([]*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.pub.publish(s.head, s.size) }()
	stored, head, hwm, err := chainRecords(recs, s.head, s.hwm, &s.seal)
	defer s.seal.reset() // after the commit: bbolt no longer reads the encodings
	if err != nil || len(stored) == 0 {
		return nil, err
	}
	size, lastDay := s.size, s.lastDay
	err = s.db.Update(func(tx *bolt.Tx) error {
		days, daySize := tx.Bucket(bktDays), tx.Bucket(bktDaySize)
		var dayB *bolt.Bucket
		var dayName string
		var day dayCache
		dayBytes := map[string]int64{}
		var dayN int64         // bytes for dayName not yet in dayBytes
		key := make([]byte, 8) // Put copies the key
		for _, r := range stored {
			v, err := r.encoded()
			if err != nil {
				return fmt.Errorf("record %d: %w", r.Seq, err)
			}
			d := max(day.of(r.Time), lastDay)
			lastDay = d
			if d != dayName || dayB == nil {
				if dayB != nil {
					dayBytes[dayName] += dayN
				}
				dayN = 0
				if dayB, err = days.CreateBucketIfNotExists([]byte(d)); err != nil {
					return err
				}
				dayB.FillPercent = 1.0 // appends only: pack pages full
				dayName = d
			}
			binary.BigEndian.PutUint64(key, r.Seq)
			if err := dayB.Put(key, v); err != nil {
				return err
			}
			dayN += int64(len(v))
			size += int64(len(v))
		}
		if dayB != nil {
			dayBytes[dayName] += dayN
		}
		for d, n := range dayBytes {
			old := int64(0)
			if v := daySize.Get([]byte(d)); len(v) == 8 {
				old = int64(binary.BigEndian.Uint64(v))
			}
			if err := daySize.Put([]byte(d), u64(uint64(old+n))); err != nil {
				return err
			}
		}
		rings := tx.Bucket(bktRings)
		for e, v := range hwm {
			if err := rings.Put([]byte(e), u64(v)); err != nil {
				return err
			}
		}
		m := tx.Bucket(bktMeta)
		if err := putHead(m, "head", head); err != nil {
			return err
		}
		return m.Put([]byte("size"), u64(uint64(size)))
	})
	if err != nil {
		// Nothing of the batch was stored; the caller keeps the records
		// (and the ring keeps them unreleased) and retries.
		unchain(stored)
		return nil, fmt.Errorf("append %d audit records: %w", len(recs), err)
	}
	s.head, s.size, s.lastDay = head, size, lastDay
	for e, v := range hwm {
		s.hwm[e] = v
	}
	for _, r := range stored {
		r.raw = nil // its chunk is reused; encoded() marshals the same bytes
	}
	return stored, nil
}

// dayCache is dayOf for the records of a batch, which mostly share a
// day: the name is formatted once per day, not once per record.
type dayCache struct {
	name       string
	start, end time.Time // the UTC day name names: [start, end)
}

func (c *dayCache) of(t time.Time) string {
	if c.name == "" || t.Before(c.start) || !t.Before(c.end) {
		y, m, d := t.UTC().Date()
		c.start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		c.end = c.start.AddDate(0, 0, 1)
		c.name = dayOf(t)
	}
	return c.name
}

// dayBuckets returns the days bucket and its day names in order (bbolt
// keeps keys sorted, and YYYY-MM-DD sorts by date).
func dayBuckets(tx *bolt.Tx) (*bolt.Bucket, []string) {
	days := tx.Bucket(bktDays)
	if days == nil {
		return nil, nil
	}
	var names []string
	_ = days.ForEach(func(k, v []byte) error {
		if v == nil { // a nested bucket: one day
			names = append(names, string(k))
		}
		return nil
	})
	return days, names
}

// eachRecord walks every record in chain order (days ascending, seq
// ascending), starting after seq after, skipping days before since.
func (s *boltStore) eachRecord(tx *bolt.Tx, after uint64, since time.Time, fn func(*Record) (bool, error)) error {
	days, names := dayBuckets(tx)
	for _, d := range names {
		// A record is filed under its receive day or, if the clock stepped
		// back, a later one: a bucket before since's day holds nothing at
		// or after since, but one after until's day may hold records
		// received before until.
		if !since.IsZero() && d < dayOf(since) {
			continue
		}
		c := days.Bucket([]byte(d)).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				r = Record{Seq: binary.BigEndian.Uint64(k), EncodeError: "stored record unreadable: " + err.Error()}
			}
			more, err := fn(&r)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

func (s *boltStore) Query(f Filter) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return s.eachRecord(tx, f.After, f.Since, func(r *Record) (bool, error) {
			if f.match(r) {
				out = append(out, *r)
			}
			return f.Limit == 0 || len(out) < f.Limit, nil
		})
	})
	return out, err
}

func (s *boltStore) Head() (Head, error) { return s.pub.Head() }

func (s *boltStore) Size() int64 { return s.pub.Size() }

func (s *boltStore) Verify(expect *Head) (VerifyReport, error) { return s.verifyProgress(expect, nil) }

func (s *boltStore) verifyProgress(expect *Head, progress ProgressFunc) (VerifyReport, error) {
	var rep VerifyReport
	var verr error
	err := s.db.View(func(tx *bolt.Tx) error {
		stored, base := Head{Hash: zeroHash()}, Head{Hash: zeroHash()}
		if m := tx.Bucket(bktMeta); m != nil {
			stored = readHead(m, "head", stored)
			base = readHead(m, "base", base)
		}
		lay := layout{backend: "bbolt", buckets: map[string]bool{}, metaBase: &base}
		_, names := dayBuckets(tx)
		for _, d := range names {
			lay.buckets[d] = true
		}
		rep, verr = verifyChain(func(fn func(*Record, string)) error { return s.eachRecordRaw(tx, fn) }, &stored, expect, lay, progress)
		return nil
	})
	if err != nil {
		return rep, err
	}
	return rep, verr
}

// eachRecordRaw walks every stored value in storage order, keys included,
// for verification: a key that disagrees with its record's seq is itself
// tampering.
func (s *boltStore) eachRecordRaw(tx *bolt.Tx, fn func(*Record, string)) error {
	days, names := dayBuckets(tx)
	for _, d := range names {
		c := days.Bucket([]byte(d)).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil || len(k) != 8 || binary.BigEndian.Uint64(k) != r.Seq {
				// Unreadable or moved: hash it as found so the chain breaks here.
				r = Record{Seq: binary.BigEndian.Uint64(append(make([]byte, 8-min(8, len(k))), k...)), Hash: "unreadable"}
			}
			fn(&r, d)
		}
	}
	return nil
}

func (s *boltStore) Retain(now time.Time, maxAge time.Duration, maxBytes int64) (RetentionResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.pub.publish(s.head, s.size) }()
	var res RetentionResult
	var cpDay string
	head, size, base := s.head, s.size, s.base
	err := s.db.Update(func(tx *bolt.Tx) error {
		days, names := dayBuckets(tx)
		daySize := tx.Bucket(bktDaySize)
		today := dayOf(now)
		cutoff := ""
		if maxAge > 0 {
			cutoff = dayOf(now.Add(-maxAge))
		}
		reason := "audit_retention_days"
		for _, d := range names {
			byAge := cutoff != "" && d < cutoff
			bySize := maxBytes > 0 && size > maxBytes && d != today
			if !byAge && !bySize {
				break
			}
			if !byAge {
				reason = "audit_max_bytes"
			}
			b := days.Bucket([]byte(d))
			var last Record
			var n uint64
			_ = b.ForEach(func(k, v []byte) error {
				n++
				return json.Unmarshal(v, &last)
			})
			if last.Seq > base.Size {
				base = Head{Size: last.Seq, Hash: last.Hash}
			}
			if v := daySize.Get([]byte(d)); len(v) == 8 {
				size -= int64(binary.BigEndian.Uint64(v))
			}
			if err := days.DeleteBucket([]byte(d)); err != nil {
				return err
			}
			_ = daySize.Delete([]byte(d))
			res.RemovedDays = append(res.RemovedDays, d)
			res.RemovedRecords += n
		}
		if len(res.RemovedDays) == 0 {
			return nil
		}
		cp := checkpoint(now, base, res.RemovedRecords, res.RemovedDays, reason, nil)
		cp.Seq = head.Size + 1
		if err := seal(head.Hash, cp); err != nil {
			return err
		}
		v := cp.raw
		cpDay = max(dayOf(cp.Time), s.lastDay)
		db, err := days.CreateBucketIfNotExists([]byte(cpDay))
		if err != nil {
			return err
		}
		if err := db.Put(u64(cp.Seq), v); err != nil {
			return err
		}
		head = Head{Size: cp.Seq, Hash: cp.Hash}
		size += int64(len(v))
		old := int64(0)
		if v := daySize.Get([]byte(cpDay)); len(v) == 8 {
			old = int64(binary.BigEndian.Uint64(v))
		}
		if err := daySize.Put([]byte(cpDay), u64(uint64(old+int64(len(v))))); err != nil {
			return err
		}
		m := tx.Bucket(bktMeta)
		if err := putHead(m, "base", base); err != nil {
			return err
		}
		if err := putHead(m, "head", head); err != nil {
			return err
		}
		res.Checkpoint = cp
		return m.Put([]byte("size"), u64(uint64(size)))
	})
	if err != nil {
		return RetentionResult{}, fmt.Errorf("audit retention: %w", err)
	}
	s.head, s.size, s.base = head, size, base
	if cpDay != "" {
		s.lastDay = cpDay
	}
	return res, nil
}

func (s *boltStore) Close() error {
	err := s.db.Close()
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close())
		s.lock = nil
	}
	return err
}

// CompactBolt copies the store at path into a fresh file and swaps it in,
// returning the space retention freed to the filesystem. The agent must
// not be running on it.
func CompactBolt(path string) (before, after int64, err error) {
	return CompactBoltProgress(path, nil)
}

// compactPoll is how often CompactBoltProgress reports.
var compactPoll = 200 * time.Millisecond

// CompactBoltProgress is CompactBolt, reporting progress (which may be nil)
// every compactPoll as bytes: done, the size of the copy so far, of total,
// the size of the original (which the copy, being compacted, may not
// reach). bbolt's copy has no hook, so progress is called from a
// goroutine of its own; never after CompactBoltProgress returns.
func CompactBoltProgress(path string, progress ProgressFunc) (before, after int64, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("compact %s: %w", path, err)
	}
	// The writers' side lock, held until the copy is in place: an agent
	// starting meanwhile waits for it (or fails with ErrLocked) and then
	// opens the new file, never the one being replaced.
	lock, err := fileLock(path+".lock", true, time.Second)
	if err != nil {
		return 0, 0, fmt.Errorf("compact: %w", err)
	}
	defer lock.Close()
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return 0, 0, fmt.Errorf("compact %s: %w", path, ErrLocked)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("compact %s: %w", path, err)
	}
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, nil)
	if err != nil {
		src.Close()
		return 0, 0, fmt.Errorf("compact %s: %w", path, err)
	}
	defer src.Close()
	if progress != nil {
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			t := time.NewTicker(compactPoll)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if fi, err := os.Stat(tmp); err == nil {
						progress(int(fi.Size()), int(st.Size()))
					}
				}
			}
		}()
		defer func() { close(stop); <-stopped }()
	}
	err = bolt.Compact(dst, src, 64<<20)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact %s: %w", path, err)
	}
	nst, _ := os.Stat(path)
	return st.Size(), nst.Size(), nil
}
