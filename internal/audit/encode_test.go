package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// sealReference is seal as it was before the encoder (json.Marshal of the
// record): the sealer must write the same bytes and hash.
func sealReference(prev string, r *Record) error {
	p, err := hex.DecodeString(prev)
	if err != nil || len(p) != sha256.Size {
		return errPrev
	}
	r.Hash = ""
	c, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if !bytes.HasSuffix(c, hashSuffix) {
		return errPrev
	}
	h := sha256.New()
	h.Write(p)
	h.Write(c)
	r.Hash = hex.EncodeToString(h.Sum(nil))
	r.raw = append(append(c[:len(c)-2:len(c)-2], r.Hash...), '"', '}')
	return nil
}

var errPrev = json.Unmarshal([]byte("x"), new(int)) // any error

func encStr(s string) *string { return &s }

// encRecords are records whose encoding could part from json.Marshal's:
// every escape of strings and of embedded details, every float format,
// times out of RFC 3339, the omitempty fields.
func encRecords() []*Record {
	t0 := time.Date(2026, 12, 7, 17, 22, 52, 123456789, time.UTC)
	base := func() *Record {
		return &Record{Seq: 7, Time: t0, Kind: KindProducer, Producer: "tp0", Operation: "register",
			Details: json.RawMessage(`{"id":"k-1","reliability":0.93,"pinned":false,"metadata":{"source":"wiki"},"store_count":48211}`),
			Success: true, EventTimestamp: 1796664170.123456, RingEpoch: "00000000000000aa", RingSeq: 42}
	}
	var out []*Record
	add := func(f func(r *Record)) {
		r := base()
		f(r)
		out = append(out, r)
	}
	add(func(r *Record) {})
	for _, s := range []string{"", "<script>&amp;</script>", "quote\" back\\slash", "\x00\x01\x07\x08\x0c\n\r\t\x1f\x7f",
		"é中文😀", "\u2028\u2029", "bad\xffutf8\xc3", "\xe2\x80", "/slash"} {
		add(func(r *Record) { r.Producer, r.Operation, r.Kind, r.RingEpoch = s, s, s, s })
		add(func(r *Record) { r.Error, r.EncodeError, r.RawSHA256 = encStr(s), s, s })
	}
	for _, d := range []string{`{}`, `{"a":"<b>&</b>"}`, "{\"a\":\"\u2028\u2029\"}", "{\"a\":\"\xe2\x80\xa8\"}", "{\"a\":\"bad\xff\"}",
		`{"a":[1,2.5e-7,-0,true,null,{"b":[]}],"c":"\u003c\n\\"}`, `{"a": 1}`, ` {"a":1}`, `{"a":1} `, `[1]`, `"s"`, `null`, `{`, ``} {
		add(func(r *Record) { r.Details = json.RawMessage(d) })
	}
	add(func(r *Record) { r.Details = nil })
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1.5, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 1e20, 1e21, 123456789e15, -1e300,
		math.SmallestNonzeroFloat64, math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1)} {
		add(func(r *Record) { r.EventTimestamp = f })
	}
	for _, tm := range []time.Time{{}, time.Unix(0, 0), t0.In(time.FixedZone("x", 5*3600+1800)), t0.In(time.FixedZone("s", 61)),
		t0.In(time.FixedZone("far", 25*3600)), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 100, time.UTC)} {
		add(func(r *Record) { r.Time = tm })
	}
	add(func(r *Record) {
		r.Kind, r.Lost, r.Error, r.RingSeq, r.Seq = KindGap, 12, encStr("12 audit records lost"), 0, math.MaxUint64
	})
	add(func(r *Record) {
		r.EncodeError, r.RawBody, r.RawTruncated, r.RawSHA256, r.RawRedacted = "details: not a JSON object", []byte("{\x00\xff<>"), true, strings.Repeat("a", 64), true
	})
	add(func(r *Record) { r.RawBody = []byte{} })
	add(func(r *Record) { r.Hash = "ignored: the canonical form has an empty hash" })
	return out
}

// appendCanonical writes json.Marshal's bytes wherever it says it can,
// and it can for the common records.
func TestAppendCanonicalIsMarshal(t *testing.T) {
	taken := 0
	for i, r := range encRecords() {
		c := *r
		c.Hash = ""
		want, werr := json.Marshal(&c)
		for _, compact := range []bool{false, true} {
			if compact && !isCompactRef(r.Details) {
				continue // sanitize says compact only of what is
			}
			got, ok := appendCanonical(nil, r, compact)
			if !ok {
				continue
			}
			taken++
			if werr != nil {
				t.Errorf("record %d: encoded %s where json.Marshal fails: %v", i, got, werr)
			} else if !bytes.Equal(got, want) {
				t.Errorf("record %d:\n got %s\nwant %s", i, got, want)
			}
		}
	}
	if taken < 60 {
		t.Errorf("the encoder took %d records, want most of them", taken)
	}
	if _, ok := appendCanonical(nil, encRecords()[0], false); !ok {
		t.Error("the common record was left to json.Marshal")
	}
}

func isCompactRef(b []byte) bool {
	var buf bytes.Buffer
	return len(b) > 0 && json.Compact(&buf, b) == nil && bytes.Equal(buf.Bytes(), b)
}

// The sealer and the reference agree on the hash and the stored bytes,
// chained, and a stored record read back re-hashes to its hash (what
// verification does).
func TestSealerMatchesReference(t *testing.T) {
	prevA, prevB := zeroHash(), zeroHash()
	var s sealer
	for i, r := range encRecords() {
		a, b := *r, *r
		compact := sanitize(&a)
		sanitize(&b)
		s.left = 3
		errA := s.seal(prevA, &a, compact)
		errB := sealReference(prevB, &b)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("record %d: sealer error %v, reference error %v", i, errA, errB)
		}
		if errA != nil {
			continue
		}
		if a.Hash != b.Hash || !bytes.Equal(a.raw, b.raw) {
			t.Fatalf("record %d:\n sealer %s %s\n    ref %s %s", i, a.Hash, a.raw, b.Hash, b.raw)
		}
		if !utf8.ValidString(a.Producer+a.Operation+a.Kind+a.RingEpoch+a.EncodeError+a.RawSHA256) || a.Error != nil && !utf8.ValidString(*a.Error) {
			// json.Marshal stores invalid UTF-8 as \ufffd, which reads back
			// as U+FFFD: such a record would not re-hash (before the
			// encoder too). Decode and the ring layer keep these strings
			// valid UTF-8.
			prevA, prevB = a.Hash, b.Hash
			continue
		}
		var back Record
		if err := json.Unmarshal(a.raw, &back); err != nil {
			t.Fatalf("record %d: stored bytes do not parse: %v", i, err)
		}
		if h, err := chainHash(prevA, &back); err != nil || h != a.Hash {
			t.Fatalf("record %d: read back hashes to %s (%v), stored %s", i, h, err, a.Hash)
		}
		prevA, prevB = a.Hash, b.Hash
	}
	// Upper-case previous hashes are accepted, as hex.DecodeString does.
	r := encRecords()[0]
	if err := seal(strings.ToUpper(strings.Repeat("ab", 32)), r); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "00", strings.Repeat("g", 64), strings.Repeat("0", 63), strings.Repeat("0", 66)} {
		if err := seal(bad, r); err == nil {
			t.Errorf("seal accepted previous hash %q", bad)
		}
	}
}

// Encodings cut from one chunk do not overlap: each is capped, and an
// append to one cannot write into the next.
func TestSealerChunks(t *testing.T) {
	var s sealer
	recs := make([]*Record, 300)
	prev := zeroHash()
	for i := range recs {
		recs[i] = encRecords()[0]
		recs[i].Seq = uint64(i + 1)
		s.left = len(recs) - i
		if err := s.seal(prev, recs[i], true); err != nil {
			t.Fatal(err)
		}
		prev = recs[i].Hash
	}
	want := make([][]byte, len(recs))
	for i, r := range recs {
		want[i] = bytes.Clone(r.raw)
		if cap(r.raw) != len(r.raw) {
			t.Fatalf("record %d: stored encoding not capped", i)
		}
		_ = append(r.raw, "garbage"...)
	}
	shared := 0
	for i, r := range recs {
		if !bytes.Equal(r.raw, want[i]) {
			t.Fatalf("record %d changed by another's append", i)
		}
		if i > 0 && sameChunk(recs[i-1].raw, r.raw) {
			shared++
		}
	}
	if shared < len(recs)*9/10 {
		t.Errorf("%d of %d encodings follow the previous one in its chunk", shared, len(recs))
	}
	// A one-record batch gets a chunk sized for one record, not 64 KiB.
	var one sealer
	one.left = 1
	r := encRecords()[0]
	if err := one.seal(zeroHash(), r, true); err != nil {
		t.Fatal(err)
	}
	if len(one.chunks) != 1 || cap(one.chunks[0]) > 2048 {
		t.Errorf("a one-record batch holds chunks of %d bytes", cap(one.chunks[0]))
	}
	// After reset the next batch is cut from the same chunks, from the
	// start, and the encodings stay what the reference writes.
	first := &s.chunks[0][:1][0]
	n := len(s.chunks)
	s.reset()
	prev = zeroHash()
	for i := range recs {
		r := encRecords()[0]
		r.Seq = uint64(i + 1)
		s.left = len(recs) - i
		if err := s.seal(prev, r, true); err != nil {
			t.Fatal(err)
		}
		ref := encRecords()[0]
		ref.Seq = uint64(i + 1)
		if err := sealReference(prev, ref); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.raw, ref.raw) || r.Hash != ref.Hash {
			t.Fatalf("record %d after reset:\n %s\n %s", i, r.raw, ref.raw)
		}
		if i == 0 && &r.raw[0] != first {
			t.Fatal("the first encoding after reset is not at the start of the first chunk")
		}
		prev = r.Hash
	}
	if len(s.chunks) != n {
		t.Fatalf("%d chunks after reuse, %d before", len(s.chunks), n)
	}
	// Sealing allocates per batch (chunks, the hashes), not per record.
	s.reset()
	batch := make([]Record, 1001)
	for i := range batch {
		batch[i] = *encRecords()[0]
	}
	i := 0
	if allocs := testing.AllocsPerRun(1000, func() {
		s.left = len(batch) - i
		if err := s.seal(prev, &batch[i], true); err != nil {
			t.Fatal(err)
		}
		prev = batch[i].Hash
		i++
	}); allocs != 0 {
		t.Errorf("%v allocations per record sealed", allocs)
	}
	for j := 1; j < i; j++ {
		if h, err := chainHash(batch[j-1].Hash, &batch[j]); err != nil || h != batch[j].Hash {
			t.Fatalf("record %d of the batch: hash %s, chain says %s (%v)", j, batch[j].Hash, h, err)
		}
	}
	// A record larger than a chunk gets its own, which reset drops.
	big := encRecords()[0]
	big.Details = json.RawMessage(`{"a":"` + strings.Repeat("x", sealChunk) + `"}`)
	if err := s.seal(prev, big, true); err != nil {
		t.Fatal(err)
	}
	s.reset()
	for _, c := range s.chunks {
		if cap(c) > sealChunk {
			t.Fatalf("reset kept a %d-byte chunk", cap(c))
		}
	}
}

// A bbolt store reuses its chunks for every batch: the records it
// returns no longer hold their encodings, and encoded() gives the same
// bytes from the record (what the chunk held).
func TestBoltReusesEncodings(t *testing.T) {
	fx := stNew(t, "bbolt")
	var all []*Record
	for b := 0; b < 5; b++ {
		recs := stAgentsAt(stT0.Add(time.Duration(b)*time.Second), 400, 300)
		stored := fx.append(recs...)
		for _, r := range stored {
			if r.raw != nil {
				t.Fatalf("record %d still holds its encoding", r.Seq)
			}
		}
		all = append(all, stored...)
	}
	fx.close()
	vals := stBoltValues(t, fx.path())
	fx.open(false)
	if len(vals) != len(all) {
		t.Fatalf("%d values stored, %d records", len(vals), len(all))
	}
	for i, r := range all {
		b, err := r.encoded()
		if err != nil || !bytes.Equal(b, vals[i]) {
			t.Fatalf("record %d: encoded %s (%v), stored %s", r.Seq, b, err, vals[i])
		}
	}
	fx.verifyOK(nil, uint64(len(all)))
}

// sameChunk reports whether b starts right where a ends (a's capacity is
// capped at its length, so this compares addresses).
func sameChunk(a, b []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(a)))+uintptr(len(a)) == uintptr(unsafe.Pointer(unsafe.SliceData(b)))
}

func FuzzSealEncoding(f *testing.F) {
	f.Add("tp0", "register", `{"id":"k-1","n":0.93}`, "", 1796664170.123456, int64(1796664170), []byte(nil))
	f.Add("<p>", "\u2028", "{\"a\":\"\xe2\x80\xa9&\"}", "e\x00rr", 1e-7, int64(-62135596801), []byte("raw\xff"))
	f.Add("\xff", "op", `{"a" : [1, 2]}`, "x", 1e21, int64(253402300800), []byte{})
	f.Fuzz(func(t *testing.T, producer, op, details, errs string, ts float64, sec int64, raw []byte) {
		ns := sec
		r := &Record{Seq: 3, Time: time.Unix(ns, ns%1e9).UTC(), Kind: KindProducer, Producer: producer, Operation: op,
			Details: json.RawMessage(details), Success: len(op)%2 == 0, EventTimestamp: ts, RingEpoch: producer, RingSeq: uint64(len(details)),
			Lost: uint64(len(errs)), EncodeError: errs, RawBody: raw, RawTruncated: len(raw) > 3, RawSHA256: op}
		if len(errs) > 2 {
			r.Error = &errs
		}
		a, b := *r, *r
		var s sealer
		s.left = 1
		errA := s.seal(zeroHash(), &a, isCompactRef(a.Details))
		errB := sealReference(zeroHash(), &b)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("sealer error %v, reference error %v", errA, errB)
		}
		if errA == nil && (a.Hash != b.Hash || !bytes.Equal(a.raw, b.raw)) {
			t.Fatalf("\n sealer %s\n    ref %s", a.raw, b.raw)
		}
		// What sanitize passes on is sealed the same way too.
		a, b = *r, *r
		compact := sanitize(&a)
		sanitize(&b)
		errA = s.seal(zeroHash(), &a, compact)
		errB = sealReference(zeroHash(), &b)
		if (errA == nil) != (errB == nil) || errA == nil && !bytes.Equal(a.raw, b.raw) {
			t.Fatalf("after sanitize: sealer %s (%v)\n    ref %s (%v)", a.raw, errA, b.raw, errB)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	r := encRecords()[0]
	for _, bc := range []struct {
		name string
		fn   func(*Record) error
	}{
		{"sealer", func(r *Record) error {
			compact := sanitize(r)
			benchSealer.left = 1000
			return benchSealer.seal(zeroHash(), r, compact)
		}},
		{"marshal", func(r *Record) error { sanitizeReference(r); return sealReference(zeroHash(), r) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c := *r
				if err := bc.fn(&c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchSealer sealer

// sanitizeReference is sanitize before its one-pass check: json.Compact.
func sanitizeReference(r *Record) {
	var buf bytes.Buffer
	if json.Compact(&buf, r.Details) == nil {
		r.Details = buf.Bytes()
	}
}
