// Package shm owns agaobs ring format v1 (docs/ring-format.md): the header
// layout, record framing and bodies, the single-producer writer used by Go
// producers, tests and the demo, and the consumer side used by the agent.
//
// # Layout
//
// Pure encoding over byte slices: format.go (the header, identity, classes
// and producer states) and record.go (record framing and the FORWARD,
// RETRIEVAL, AUDIT and EVENT bodies). ring.go is the consumer protocol over
// a mapped []byte plus atomics; writer.go is the producer protocol;
// file_linux.go does the system calls (ring files, the directory, the
// doorbell FIFO, procfs); fault.go guards every access to a mapping;
// errors.go holds the sentinel errors. Nothing here logs: errors are
// returned, wrapped with the ring path.
//
// # Lifetime and concurrency
//
// A [Ring] is owned by one consumer goroutine; only [Ring.Ack] and the
// read-only stat accessors may be called from other goroutines. Record bodies
// passed to [Ring.Poll]'s callback alias the shared mapping and are valid only
// until the callback returns: copy what must outlive it.
//
// A [Writer] serialises its callers with a mutex; it never blocks on a full
// hot ring (the record is dropped and counted) and waits at most
// WriterOptions.AuditWait on a full audit ring.
//
// # Caveats
//
// The producer owns lines A and B of the header and the dropped-by-type
// table; the consumer owns the consumer block. Header fields are validated
// once when a ring is opened and cached: later changes to them in shared
// memory are ignored, so a corrupted header cannot make the reader index
// outside the mapping.
//
// A producer may shrink its file under the consumer's mapping. Every
// consumer-side access to a mapping, on whatever goroutine (Poll and its
// callback, Stats from HTTP handlers, NewRing, OpenRing, InspectRing), runs
// with debug.SetPanicOnFault armed, so the SIGBUS becomes a recovered panic:
// the ring is quarantined as "truncated" and its mapping is not read again.
package shm
