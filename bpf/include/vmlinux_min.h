/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The kernel types agaobs's BPF programs use, written by hand instead of a
 * 2.8 MB bpftool dump. Structs carry preserve_access_index, so field
 * offsets are relocated against the running kernel's BTF (CO-RE).
 */
#ifndef AGAOBS_VMLINUX_MIN_H
#define AGAOBS_VMLINUX_MIN_H

typedef unsigned char __u8;
typedef short int __s16;
typedef short unsigned int __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long int __s64;
typedef long long unsigned int __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_LRU_HASH = 9,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

/* raw_tp programs get the tracepoint's arguments as u64s. */
struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

struct task_struct {
	unsigned int __state;
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

/* Kernels before 5.14 named __state "state" (a long). */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

#endif
