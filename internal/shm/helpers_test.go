package shm

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

func ptr(b []byte, off int) unsafe.Pointer { return unsafe.Pointer(&b[off]) }

// abandon releases the mapping without marking the ring closed, as if the
// process had died (tests only: a real producer just exits).
func (w *Writer) abandon() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.release == nil {
		return nil
	}
	err := w.release()
	w.release = nil
	return err
}

// The helpers below are the parts of the format's Go side that only tests
// need (vectors, fuzzing): agent code never writes EVENT records, decodes
// AUDIT bodies here (package pipeline does) or parses a class name.

// emitEvent appends an EVENT record (any other EventBus event type).
func (w *Writer) emitEvent(timeNs int64, name string, data []byte) error {
	if name == "" || len(name) > 0xffff {
		return fmt.Errorf("event name length %d: %w", len(name), errTooLarge)
	}
	n := 2 + len(name) + len(data)
	if n+RecordHeaderLen > int(w.opts.MaxRecordLen) {
		return errTooLarge
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errClosed
	}
	dst, ok := w.reserve(TypeEvent, 0, timeNs, uint32(RecordHeaderLen+n))
	if !ok {
		return ErrFull
	}
	binary.LittleEndian.PutUint16(dst, uint16(len(name)))
	copy(dst[2:], name)
	copy(dst[2+len(name):], data)
	w.commit()
	return nil
}

// parseClass maps "hot" and "audit" to their Class.
func parseClass(s string) (Class, error) {
	switch s {
	case "hot":
		return ClassHot, nil
	case "audit":
		return ClassAudit, nil
	}
	return 0, fmt.Errorf("unknown ring class %q", s)
}

// decodeAudit splits an AUDIT body into lost_before and the JSON object.
func decodeAudit(b []byte) (lostBefore uint64, obj []byte, err error) {
	if len(b) < 8+2 {
		return 0, nil, fmt.Errorf("audit body is %d bytes: %w", len(b), ErrCorrupt)
	}
	return binary.LittleEndian.Uint64(b), b[8:], nil
}

// truncated reports whether the ring's file was found shorter than its
// mapping. Safe from any goroutine.
func (r *Ring) truncated() bool { return r.faulted.Load() }
