/*
 * agaobs forward marker (see include/agaobs_marker.h): the uprobe anchors of
 * the agent's forward_marker probe.
 *
 * A uprobe at a symbol fires once per call only if the symbol is a real,
 * distinct function that every call enters. So each function is
 *   - exported (default visibility) and `used`, so it stays in .dynsym;
 *   - `noinline`, so callers inside this library never inline it;
 *   - given a body the compiler can neither remove nor merge with the other
 *     one: a compiler barrier and a relaxed store of `layer` to its own
 *     volatile sink. Two different sinks make the bodies differ, so identical
 *     code folding (gcc -fipa-icf at -O2, linker --icf) cannot turn one symbol
 *     into an alias of, or a jump into, the other (a jump would make one
 *     call hit both probes).
 * A relaxed atomic store is a plain store on x86-64 and aarch64: no fence,
 * no lock, and no data race between threads calling concurrently.
 *
 * On x86-64 each marker starts with a 5-byte NOP (`nopl 0(%rax,%rax,1)`, after
 * `endbr64` when built with -fcf-protection): the kernel emulates a probed
 * NOP instead of single-stepping a copy of the instruction, and kernels that
 * optimise uprobes on 5-byte NOPs (uprobe syscall trampolines) can do so here.
 * It costs nothing when no probe is attached.
 *
 * Build: cc -shared -fPIC -O2 -Iinclude marker/agaobs_marker.c -o libagaobs_marker.so
 */
#include "agaobs_marker.h"

#if !defined(__GNUC__) && !defined(__clang__)
#error "agaobs_marker.c needs GCC or Clang (attributes, inline asm, __atomic builtins)"
#endif

#if defined(__x86_64__)
#define AGAOBS_MARKER_NOP() __asm__ volatile(".byte 0x0f, 0x1f, 0x44, 0x00, 0x00" ::: "memory")
#else
#define AGAOBS_MARKER_NOP() __asm__ volatile("" ::: "memory")
#endif

static volatile int agaobs_marker_begin_sink;
static volatile int agaobs_marker_end_sink;

__attribute__((noinline, used)) void agaobs_forward_begin(int layer)
{
    AGAOBS_MARKER_NOP();
    __atomic_store_n(&agaobs_marker_begin_sink, layer, __ATOMIC_RELAXED);
}

__attribute__((noinline, used)) void agaobs_forward_end(int layer)
{
    AGAOBS_MARKER_NOP();
    __atomic_store_n(&agaobs_marker_end_sink, layer, __ATOMIC_RELAXED);
}

__attribute__((noinline, used)) int agaobs_marker_abi_version(void)
{
    return AGAOBS_MARKER_ABI_VERSION;
}
