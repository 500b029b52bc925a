/*
 * agaobs forward marker: two exported no-op functions that a producer calls
 * around each hooked forward, so that agaobs-agent can time the forward out of
 * band with a uprobe on each symbol (docs/ebpf.md, "The forward marker"; metric
 * agaobs_bpf_forward_latency_seconds{producer}).
 *
 * The functions do nothing observable. They are built into
 * libagaobs_marker.so (clients/c, `make marker`) and, by the Python client's
 * build backend, into aga_observability/_agaobs_marker.so. Each call costs a
 * function call when no uprobe is attached, and a uprobe trap (~20 us on the
 * development VM) per symbol when the agent's forward_marker probe is on.
 *
 * The agent pairs begin/end per thread: call agaobs_forward_begin(layer) and
 * agaobs_forward_end(layer) on the same thread, begin first, with the same
 * layer. Nesting is not supported (the agent keeps one open begin per thread).
 *
 * ABI: the symbol names and the int argument are stable for
 * agaobs_marker_abi_version() == AGAOBS_MARKER_ABI_VERSION (1).
 */
#ifndef AGAOBS_MARKER_H
#define AGAOBS_MARKER_H

#ifdef __cplusplus
extern "C" {
#endif

#define AGAOBS_MARKER_ABI_VERSION 1

#if defined(__GNUC__) || defined(__clang__)
#define AGAOBS_MARKER_API __attribute__((visibility("default")))
#else
#define AGAOBS_MARKER_API
#endif

/* Marks the start of a forward of `layer` on the calling thread. */
AGAOBS_MARKER_API void agaobs_forward_begin(int layer);

/* Marks the end of that forward (same thread, same layer). */
AGAOBS_MARKER_API void agaobs_forward_end(int layer);

/* AGAOBS_MARKER_ABI_VERSION of the library (1). */
AGAOBS_MARKER_API int agaobs_marker_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* AGAOBS_MARKER_H */
