// Package live is the agent's live view: a per-second page of the node at
// /ui/ on the admin listener, pushed over WebSocket.
//
// It is a sink. Write folds forward, retrieval and status events into the
// current second of each producer; once a second Run closes that second
// into a fixed-size 15-minute history per producer, asks the agent's
// sources (rings, health, alerts, GPUs, eBPF, audit, sinks) for the other
// sections, encodes one frame and hands the same bytes to every viewer.
// Viewers cost a send each, not a computation; a viewer whose buffer is
// full is disconnected. The protocol is docs/live.md.
package live
