// Package audit owns the agent's audit trail: a durable, hash-chained,
// queryable store of every aga-core audit event from the producers' audit
// rings, explicit gap records for what never reached it, and the agent's
// own events.
//
// # Guarantees
//
// The Writer commits records in groups (every audit_batch_size records or
// audit_flush_interval, whichever comes first; one fsync per commit) and
// only then acknowledges the ring positions, so the audit rings release
// space only for durable records. A record re-read after an agent crash is
// recognised by its ring epoch and sequence number (each ring's records
// arrive in order, so a high-water mark per epoch suffices) and stored
// once: at-least-once from the ring, exactly-once in the store.
//
// # Tamper evidence
//
// Every record extends a SHA-256 chain. Retention removes whole days and
// appends a checkpoint record naming the new chain base, so verification
// still works from the base and still notices a deleted oldest record. The
// chain has no secret, so verification accepts a checkpoint only if the
// backend's retention could have written it and left the store as it is
// (verify.go). Truncation of the tail is only detectable against a head
// (size and hash) witnessed earlier: the head is logged periodically and
// served by the admin API for that purpose.
//
// Producers are untrusted: an AUDIT record whose body is not what the
// format says is stored sanitized, with why (encode_error) and the body as
// received (raw), never dropped.
//
// # Write path
//
// Every record is encoded and hashed once (sealer, encode.go): an
// encoder that writes exactly json.Marshal's bytes for a Record (the
// canonical form the chain hashes), falling back to json.Marshal where it
// cannot be sure; details that are already one compact JSON object are
// embedded as they are. Verification keeps recomputing hashes with
// encoding/json from the stored JSON, so it checks the encoder as well;
// the stored format is that of earlier versions (testdata holds stores
// they wrote). The bbolt backend reuses the memory of a batch's encodings
// for the next batch once its commit has returned, and the Writer reuses
// a batch's records once all of them are committed: a Store keeps no
// record after Append returns.
//
// # Backends
//
// bbolt (default; one bucket per day, retention deletes buckets), file
// (JSONL with rotation; queries span the rotated files) and memory (for
// tests and for deployments that want no persistence).
package audit
