package shm

import (
	"encoding/binary"
	"testing"
)

// FuzzParseHeader: arbitrary header bytes never panic, and a header either
// parses to a valid value or is rejected with an error.
func FuzzParseHeader(f *testing.F) {
	_, _, good := newTestPair(f, ClassHot, 4096, nil)
	f.Add(good[:HeaderSize])
	f.Add(make([]byte, HeaderSize))
	bad := append([]byte(nil), good[:HeaderSize]...)
	binary.LittleEndian.PutUint32(bad[offIdentityLen:], 0xffffffff)
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < HeaderSize {
			b = append(b, make([]byte, HeaderSize-len(b))...)
		}
		h, err := parseHeader(b[:HeaderSize], -1)
		if err == nil && (h.Identity.Producer == "" || h.Capacity&(h.Capacity-1) != 0 || h.Epoch == 0) {
			t.Fatalf("accepted invalid header %+v", h)
		}
		if err != nil && h.Capacity != 0 {
			t.Fatalf("error %v with non-zero header", err)
		}
	})
}

// FuzzPoll: arbitrary data-area bytes and positions never panic the
// consumer, and it never reads past the published tail.
func FuzzPoll(f *testing.F) {
	w, _, buf := newTestPair(f, ClassHot, 4096, nil)
	fw := Forward{Fields: 31}
	for i := 0; i < 30; i++ {
		_ = w.EmitForward(int64(i), &fw)
	}
	ret := Retrieval{}
	_ = w.EmitRetrieval(1, &ret, []float64{1, 2}, []string{"a", "bb"})
	_ = w.emitEvent(2, "x", []byte(`{}`))
	f.Add(append([]byte(nil), buf[HeaderSize:]...), uint64(0), uint64(w.Stats().Tail), uint64(w.Stats().LastSeq))
	f.Add(make([]byte, 4096), uint64(8), uint64(4000), uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, head, tail, lastSeq uint64) {
		mem := append([]byte(nil), buf[:HeaderSize]...)
		d := make([]byte, 4096)
		copy(d, data)
		mem = append(mem, d...)
		head &^= 7
		le := binary.LittleEndian
		le.PutUint64(mem[offCommitSlot0:], head)
		le.PutUint64(mem[offHead:], head)
		le.PutUint64(mem[offTail:], tail)
		le.PutUint64(mem[offLastSeq:], lastSeq)
		r, err := NewRing(mem, nil)
		if err != nil {
			return
		}
		for i := 0; i < 4; i++ {
			res, err := r.Poll(100, func(rec *Record) Disposition {
				switch rec.Type {
				case TypeForward:
					if _, err := DecodeForward(rec.Body); err != nil {
						return Corrupt
					}
				case TypeRetrieval:
					v, err := DecodeRetrieval(rec.Body)
					if err != nil {
						return Corrupt
					}
					v.EachID(func([]byte) {})
					for j := 0; j < v.NumScores(); j++ {
						_ = v.Score(j)
					}
				case TypeAudit:
					if _, _, err := decodeAudit(rec.Body); err != nil {
						return Corrupt
					}
				case TypeEvent:
					if _, _, err := DecodeEvent(rec.Body); err != nil {
						return Corrupt
					}
				}
				return Done
			})
			if err != nil {
				return
			}
			if r.read > tail {
				t.Fatalf("read position %d past tail %d", r.read, tail)
			}
			r.Commit()
			if !res.More {
				break
			}
		}
	})
}

// FuzzDecodeRetrieval: the variable-length body decoder never panics and
// its view stays inside the body.
func FuzzDecodeRetrieval(f *testing.F) {
	b := make([]byte, RetrievalBodyLen(2, []string{"x", "yz"}))
	PutRetrieval(b, &Retrieval{Layer: 1, Fields: 15}, []float64{0.5, 1}, []string{"x", "yz"})
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeRetrieval(b)
		if err != nil {
			return
		}
		total := 0
		v.EachID(func(id []byte) { total += len(id) })
		if total > len(b) || 8*v.NumScores() > len(b) {
			t.Fatalf("view larger than body")
		}
	})
}
