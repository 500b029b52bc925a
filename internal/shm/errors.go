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
	// errTooLarge is returned when a record cannot fit max_record_len even
	// after truncation.
	errTooLarge = errors.New("record larger than max_record_len")
	// errClosed is returned by operations on a closed Writer or Ring.
	errClosed = os.ErrClosed
	// errQuarantined is returned by Ring.Poll once the ring has been
	// quarantined; Ring.Quarantined says why.
	errQuarantined = errors.New("ring quarantined")
	// errTruncated marks a ring file that shrank under the agent's mapping:
	// its producer truncated it after it was accepted.
	errTruncated = errors.New("ring file truncated")
)
