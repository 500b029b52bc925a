/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Shared by agaobs's BPF programs: the histogram layout the Go side reads
 * and the log2 binning. Durations are measured in nanoseconds and binned in
 * units of 2^-30 s, so bucket i counts durations in [2^(i-30), 2^(i-29))
 * seconds: exactly a Prometheus native histogram's schema-0 buckets, and
 * power-of-two classic bucket bounds in seconds. sum_ns stays exact.
 */
#ifndef AGAOBS_COMMON_H
#define AGAOBS_COMMON_H

#define HIST_SLOTS 64

/* Probe ids: the Go side maps them to metric families. */
enum probe_id {
	PROBE_OFFCPU = 1,
	PROBE_RUNQUEUE = 2,
	PROBE_PYTHON_GC = 3,
	PROBE_CUDA_SYNC = 4,
	PROBE_CUDA_GRAPH_LAUNCH = 5,
	PROBE_CUDA_LAUNCH = 6,
	PROBE_GIL_WAIT = 7,
	PROBE_FORWARD_MARKER = 8,
	PROBE_SELFTEST = 15,
};

/* offcpu sub ids */
enum offcpu_reason {
	OFFCPU_SLEEP = 0,
	OFFCPU_PREEMPTED = 1,
};

/* A histogram's identity: the producer's slot (assigned by the agent),
 * the probe, and a probe-specific sub id (offcpu reason, CUDA API). */
struct hist_key {
	__u32 slot;
	__u16 probe;
	__u16 sub;
};

struct hist {
	__u64 buckets[HIST_SLOTS];
	__u64 count;
	__u64 sum_ns;
};

/* An attach cookie packs a hist_key: slot << 32 | probe << 16 | sub. */
static __always_inline struct hist_key key_of_cookie(__u64 cookie)
{
	struct hist_key k = {
		.slot = cookie >> 32,
		.probe = (cookie >> 16) & 0xffff,
		.sub = cookie & 0xffff,
	};
	return k;
}

/* ns to 2^-30 s units without overflow for durations up to 2^34 s. */
static __always_inline __u64 ns_to_units(__u64 ns)
{
	return ((ns / 1000000000ULL) << 30) + (((ns % 1000000000ULL) << 30) / 1000000000ULL);
}

static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	if (hi)
		return log2_u32(hi) + 32;
	return log2_u32(v);
}

#endif
