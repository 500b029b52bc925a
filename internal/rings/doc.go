// Package rings owns the agent's side of the ring directory: discovery
// (inotify plus a periodic rescan), acceptance (header, permissions, and
// that the ring's file owner is the real uid of the process it names, found
// through procfs even across pid namespaces), the producer registry (stable
// names, suffixes for live duplicates, take-over of closed or dead names,
// retention), liveness (host pid + start time, heartbeat staleness), and the
// Consumer: one goroutine that drains every ring round-robin, decodes
// records into pipeline events and releases ring space.
//
// # Waiting
//
// While data flows the consumer polls every ring_poll_interval. After a pass
// that found nothing, when records are sparse (about 50 a second or fewer)
// or 20 ms passed without data, it sets the sleeping flag in every ring,
// re-checks the tails, and waits for the doorbell FIFO (docs/ring-format.md
// §5.3) for at most ring_idle_sleep, so an idle agent costs almost nothing,
// a sparse producer about two wake-ups per record, and a busy one never
// spins. The doorbell and inotify readers wait in the Go netpoller, each
// file one-shot in an epoll set of its own (wake.go).
//
// # Shutdown
//
// Run returns after a final drain when its context ends. The owner then
// closes the pipeline Dispatcher (sinks drain, the audit store acknowledges)
// and calls Consumer.Close, which releases acknowledged audit space, stores
// every head and unmaps the rings.
package rings
