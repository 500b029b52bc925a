package shm

import (
	"errors"
	"os"
)

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrCorrupt marks a record or body that violates the format.
	ErrCorrupt = errors.New("corrupt ring data")
	// ErrFull is returned by a Writer when a record was dropped because the
	// ring was full (after the bounded wait, for audit rings).
	ErrFull = errors.New("ring full: record dropped")
	// ErrTooLarge is returned when a record cannot fit max_record_len even
	// after truncation.
	ErrTooLarge = errors.New("record larger than max_record_len")
	// ErrClosed is returned by operations on a closed Writer or Ring.
	ErrClosed = os.ErrClosed
	// ErrQuarantined is returned by Ring.Poll once the ring has been
	// quarantined; Ring.Quarantined says why.
	ErrQuarantined = errors.New("ring quarantined")
	// ErrTruncated marks a ring file that shrank under the agent's mapping:
	// its producer truncated it after it was accepted.
	ErrTruncated = errors.New("ring file truncated")
)
