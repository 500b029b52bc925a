/*
 * ns/event of agaobs_emit_forward into a 4 MiB caller-buffer ring from one
 * emitting thread. The benchmark plays the consumer: between batches it
 * releases everything written (stores head = tail), so no record is
 * dropped. The record timestamp is a counter, so the figure is the emit cost
 * alone (agaobs_now_ns() adds about 20 ns per event on the development VM).
 *
 * By default an idle second thread is started first: glibc's
 * pthread_mutex_lock takes a non-atomic fast path while a process has a
 * single thread, which a real host (an inference server) never is. Pass
 * --single-threaded-process as the second argument to measure that path.
 *
 * Usage: bench_emit [EVENTS [--single-threaded-process]]   (default 50000000)
 * Prints {"ns_per_event":X,"events":N}
 */
#include "agaobs_ring.h"

#include <inttypes.h>

#define CAPACITY (4u << 20)
#define BATCH 16384 /* 16384 * 56 B = 896 KiB < 4 MiB */

static void *idle_thread(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

int main(int argc, char **argv) {
    uint64_t events = argc > 1 ? strtoull(argv[1], NULL, 10) : UINT64_C(50000000);
    int single = argc > 2 && strcmp(argv[2], "--single-threaded-process") == 0;
    if (events == 0 || (argc > 2 && !single) || argc > 3) {
        fprintf(stderr, "usage: %s [EVENTS > 0 [--single-threaded-process]]\n", argv[0]);
        return 2;
    }
    if (!single) {
        pthread_t th;
        if (pthread_create(&th, NULL, idle_thread, NULL) != 0 || pthread_detach(th) != 0) {
            fprintf(stderr, "bench_emit: cannot start the idle thread\n");
            return 1;
        }
    }
    size_t len = AGAOBS_HEADER_SIZE + CAPACITY;
    uint8_t *buf = aligned_alloc(4096, len);
    if (buf == NULL) {
        perror("aligned_alloc");
        return 1;
    }
    memset(buf, 0, len);
    agaobs_ring r;
    agaobs_ring_options o;
    memset(&o, 0, sizeof o);
    o.ring_class = AGAOBS_CLASS_HOT;
    o.capacity = CAPACITY;
    o.identity_json = "{\"producer\":\"bench-c\",\"instance\":0,\"schema_version\":1}";
    int rc = agaobs_ring_init_buffer(&r, buf, len, &o);
    if (rc != 0) {
        fprintf(stderr, "init_buffer: %s\n", agaobs_strerror(rc));
        return 1;
    }
    _Atomic uint64_t *head = (_Atomic uint64_t *)(void *)(buf + AGAOBS__OFF_HEAD);
    _Atomic uint64_t *tail = (_Atomic uint64_t *)(void *)(buf + AGAOBS__OFF_TAIL);
    uint64_t failures = 0;
    /* Warm up: touch the whole data area once. */
    for (uint64_t i = 0; i < 2 * (CAPACITY / 56); i++) {
        if (i % BATCH == 0) atomic_store_explicit(head, atomic_load_explicit(tail, memory_order_acquire), memory_order_release);
        failures += agaobs_emit_forward(&r, (int64_t)i, 0.5, 1.5, 100.0, 3, 31) != 0;
    }
    int64_t t0 = agaobs_mono_ns();
    uint64_t done = 0;
    while (done < events) {
        atomic_store_explicit(head, atomic_load_explicit(tail, memory_order_acquire), memory_order_release);
        uint64_t n = events - done < BATCH ? events - done : BATCH;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t k = done + i;
            failures += agaobs_emit_forward(&r, (int64_t)k, (double)(k & 1023) * 0.001, 1.25, 100.0 + (double)(k & 7),
                                            (int32_t)(k & 31), AGAOBS_FWD_HAS_ALL | (uint32_t)(k & 1)) != 0;
        }
        done += n;
    }
    int64_t t1 = agaobs_mono_ns();
    agaobs_ring_stats st;
    agaobs_ring_get_stats(&r, &st);
    agaobs_ring_close(&r);
    free(buf);
    if (failures != 0 || st.dropped != 0) {
        fprintf(stderr, "bench_emit: %" PRIu64 " emits failed, %" PRIu64 " dropped\n", failures, st.dropped);
        return 1;
    }
    printf("{\"ns_per_event\":%.2f,\"events\":%" PRIu64 "}\n", (double)(t1 - t0) / (double)events, events);
    return 0;
}
