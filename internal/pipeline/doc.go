// Package pipeline owns what happens between a decoded ring record and the
// sinks: the Event model, the record decoder (zero-copy for FORWARD records;
// variable bodies are copied once and shared read-only by every sink), and
// the Dispatcher, which gives every sink its own bounded queue and goroutine
// so that a slow or failing sink never stalls the ring consumer. Events are
// stored once, in shared chunks the consumer decodes into; a sink's queue
// holds ranges of them, not copies, and a chunk is reused when every sink
// has written its ranges. Drops on a full queue are counted per sink, never
// silent; a lossless sink (the audit store) is never dropped from: the
// consumer asks for room before reading audit rings instead.
//
// Shutdown order: the consumer stops pushing, Dispatcher.Close drains every
// queue, calls each sink's Flush if it has one, and returns when all sink
// goroutines have ended.
package pipeline
