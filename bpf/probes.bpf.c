/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * agaobs latency probes on AGA producer processes. Everything accumulates
 * in in-kernel log2 histograms (hists) and counters (counts) keyed by the
 * producer's slot, the probe and a sub id; the agent reads the maps at
 * scrape time. No per-event traffic to user space.
 *
 * Scheduler probes (offcpu, runqueue) run on every context switch and
 * filter on the tgids map, which the agent fills with the producers' host
 * pids. Uprobe programs are attached per producer process with an attach
 * cookie that names the histogram (see common.h), so they need no lookup.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the agent before loading (bpf_probes: offcpu, runqueue). */
const volatile bool want_offcpu = true;
const volatile bool want_runqueue = true;

/* host tgid -> producer slot */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct hist_key);
	__type(value, __u64);
} counts SEC(".maps");

/* A zeroed histogram to create entries from: 528 bytes do not fit the
 * 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} zero_hist SEC(".maps");

/* Uprobe entry timestamps, keyed by thread and cookie so nested probed
 * calls (a runtime API calling a probed driver API) do not collide. LRU:
 * a thread killed between entry and exit leaves nothing behind. */
struct start_key {
	__u32 tid;
	__u32 pad;
	__u64 cookie;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct start_key);
	__type(value, __u64);
} starts SEC(".maps");

/* When a tracked thread left the CPU, and why. */
struct off_val {
	__u64 ts;
	__u32 reason;
	__u32 slot;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct off_val);
} offstart SEC(".maps");

/* When a tracked thread became runnable. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} wakeups SEC(".maps");

static __always_inline void hist_add(struct hist_key *key, __u64 ns)
{
	struct hist *h = bpf_map_lookup_elem(&hists, key);

	if (!h) {
		__u32 zero = 0;
		struct hist *z = bpf_map_lookup_elem(&zero_hist, &zero);

		if (!z)
			return;
		bpf_map_update_elem(&hists, key, z, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, key);
		if (!h)
			return;
	}
	__u32 slot = log2_u64(ns_to_units(ns)) & (HIST_SLOTS - 1);

	__sync_fetch_and_add(&h->buckets[slot], 1);
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum_ns, ns);
}

static __always_inline void count_add(struct hist_key *key)
{
	__u64 one = 1, *c = bpf_map_lookup_elem(&counts, key);

	if (c) {
		__sync_fetch_and_add(c, 1);
		return;
	}
	if (bpf_map_update_elem(&counts, key, &one, BPF_NOEXIST) != 0) {
		/* Another CPU created it first. */
		c = bpf_map_lookup_elem(&counts, key);
		if (c)
			__sync_fetch_and_add(c, 1);
	}
}

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	struct task_struct___pre514 *old = (void *)t;

	return BPF_CORE_READ(old, state);
}

static __always_inline __u32 *slot_of(struct task_struct *t)
{
	__u32 tgid = BPF_CORE_READ(t, tgid);

	return bpf_map_lookup_elem(&tgids, &tgid);
}

static __always_inline void on_wakeup(struct task_struct *p)
{
	if (!want_runqueue || !slot_of(p))
		return;
	__u32 tid = BPF_CORE_READ(p, pid);
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&wakeups, &tid, &now, BPF_ANY);
}

static __always_inline void on_switch(bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 *slot = slot_of(prev);

	if (slot) {
		__u32 tid = BPF_CORE_READ(prev, pid);
		/* Still runnable when switched out: preempted (or yielded),
		 * back on the run queue at once. */
		bool runnable = preempt || task_state(prev) == 0;
		struct off_val v = { .ts = now, .reason = runnable ? OFFCPU_PREEMPTED : OFFCPU_SLEEP, .slot = *slot };

		if (want_offcpu)
			bpf_map_update_elem(&offstart, &tid, &v, BPF_ANY);
		if (runnable && want_runqueue)
			bpf_map_update_elem(&wakeups, &tid, &now, BPF_ANY);
	}
	slot = slot_of(next);
	if (!slot)
		return;
	__u32 tid = BPF_CORE_READ(next, pid);
	struct off_val *off = bpf_map_lookup_elem(&offstart, &tid);

	if (off) {
		struct hist_key k = { .slot = off->slot, .probe = PROBE_OFFCPU, .sub = off->reason };

		if (now > off->ts)
			hist_add(&k, now - off->ts);
		bpf_map_delete_elem(&offstart, &tid);
	}
	__u64 *woken = bpf_map_lookup_elem(&wakeups, &tid);

	if (woken) {
		struct hist_key k = { .slot = *slot, .probe = PROBE_RUNQUEUE };

		if (now > *woken)
			hist_add(&k, now - *woken);
		bpf_map_delete_elem(&wakeups, &tid);
	}
}

/* BTF-typed tracepoints where the kernel has them; raw_tp twins otherwise
 * (the agent loads one set). */
SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	on_switch(preempt, prev, next);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(wakeup_btf, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(wakeup_new_btf, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	on_switch(preempt, prev, next);
	return 0;
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(wakeup_raw, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(wakeup_new_raw, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

/* Entry of a timed call (uprobe), the begin marker, or python:gc__start. */
SEC("uprobe")
int call_enter(void *ctx)
{
	struct start_key k = { .tid = (__u32)bpf_get_current_pid_tgid(), .cookie = bpf_get_attach_cookie(ctx) };
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&starts, &k, &now, BPF_ANY);
	return 0;
}

/* Return of a timed call (uretprobe), the end marker, or
 * python:gc__done: the time since the same thread's entry. */
SEC("uprobe")
int call_exit(void *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct start_key k = { .tid = (__u32)bpf_get_current_pid_tgid(), .cookie = cookie };
	__u64 *start = bpf_map_lookup_elem(&starts, &k);

	if (!start)
		return 0;
	__u64 now = bpf_ktime_get_ns();

	if (now > *start) {
		struct hist_key hk = key_of_cookie(cookie);

		hist_add(&hk, now - *start);
	}
	bpf_map_delete_elem(&starts, &k);
	return 0;
}

/* A counted call (entry only). */
SEC("uprobe")
int call_count(void *ctx)
{
	struct hist_key hk = key_of_cookie(bpf_get_attach_cookie(ctx));

	count_add(&hk);
	return 0;
}

/* BPF_PROG_TEST_RUN target for the histogram math: bins args[0] (ns)
 * into the selftest histogram and returns the bucket. */
SEC("raw_tp/agaobs_selftest")
int selftest(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 ns = ctx->args[0];
	struct hist_key k = { .slot = 0, .probe = PROBE_SELFTEST };

	hist_add(&k, ns);
	return log2_u64(ns_to_units(ns)) & (HIST_SLOTS - 1);
}
