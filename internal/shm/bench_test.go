package shm

import "testing"

// rewind makes a drained ring readable again from the start, so benchmarks
// decode the same pre-filled records repeatedly.
func (r *Ring) rewind() { r.read, r.lastSeq = 0, 0 }

func prefill(b *testing.B, rec func(w *Writer) error) *Ring {
	b.Helper()
	w, r, _ := newTestPair(b, ClassHot, 4<<20, nil)
	for rec(w) == nil {
	}
	return r
}

// BenchmarkDrain: one op = one 64-byte record (24-byte header, 40-byte EVENT
// body) read from a pre-filled 4 MiB ring, framing checked and the body
// split (decode only, no sink).
func BenchmarkDrain(b *testing.B) {
	body := []byte(`0123456789012345678901234567890123456`) // 37 B + 3 B name hdr
	r := prefill(b, func(w *Writer) error { return w.emitEvent(1, "e", body) })
	var sink int
	b.ReportAllocs()
	b.SetBytes(64)
	b.ResetTimer()
	for n := 0; n < b.N; {
		res, _ := r.Poll(b.N-n, func(rec *Record) Disposition {
			name, data, _ := DecodeEvent(rec.Body)
			sink += len(name) + len(data)
			return Done
		})
		n += res.Records
		if !res.More {
			r.rewind()
		}
	}
	_ = sink
}

// BenchmarkDrainForward: one op = one 56-byte FORWARD record decoded into
// its fields.
func BenchmarkDrainForward(b *testing.B) {
	f := Forward{GateMean: 0.5, EntropyMean: 1, LatencyUs: 100, Layer: 3, Fields: 31}
	r := prefill(b, func(w *Writer) error { return w.EmitForward(1, &f) })
	var sum float64
	b.ReportAllocs()
	b.SetBytes(56)
	b.ResetTimer()
	for n := 0; n < b.N; {
		res, _ := r.Poll(b.N-n, func(rec *Record) Disposition {
			fw, _ := DecodeForward(rec.Body)
			sum += fw.LatencyUs
			return Done
		})
		n += res.Records
		if !res.More {
			r.rewind()
		}
	}
	_ = sum
}

// BenchmarkEmitForward: Go writer cost per FORWARD record, consumer
// releasing in batches.
func BenchmarkEmitForward(b *testing.B) {
	w, r, _ := newTestPair(b, ClassHot, 4<<20, nil)
	f := Forward{Fields: 31}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if w.EmitForward(int64(i), &f) != nil {
			for {
				res, _ := r.Poll(1<<20, func(*Record) Disposition { return Done })
				r.Commit()
				if !res.More {
					break
				}
			}
		}
	}
}
