/*
 * agaobs_ring.h - header-only C11 producer for the agaobs shared-memory ring
 * format v1 (docs/ring-format.md). Linux only.
 *
 * A producing process creates one ring file per class (hot, audit) in the
 * ring directory and appends records to it; agaobs-agent maps the file and
 * consumes it. This header is the C counterpart of the Go writer in
 * internal/shm (writer.go, file_linux.go) and reproduces its bytes exactly
 * (testdata/ring/vectors.txt).
 *
 * Usage:
 *
 *     #include "agaobs_ring.h"       // include it first (see below)
 *
 *     agaobs_ring hot;
 *     agaobs_ring_options o = {0};
 *     o.ring_class = AGAOBS_CLASS_HOT;
 *     o.identity_json = "{\"producer\":\"my-worker\",\"instance\":0,\"schema_version\":1}";
 *     if (agaobs_ring_create(&hot, NULL, &o) != 0) {
 *         // fail-open: warn once; every emit on `hot` now returns AGAOBS_ECLOSED
 *     }
 *     agaobs_emit_forward(&hot, agaobs_now_ns(), 0.4, 1.2, 85.0, 3,
 *                         AGAOBS_FWD_APPLIED | AGAOBS_FWD_HAS_ALL);
 *     ... call agaobs_ring_heartbeat(&hot) at least once a second ...
 *     agaobs_ring_close(&hot);
 *
 * Feature macros: the header needs POSIX.1-2008 and a few Linux interfaces
 * (clock_gettime, pthread_sigmask, sigtimedwait, mmap, getrandom). It defines
 * _GNU_SOURCE when nothing else did, which only takes effect when this header
 * is included before any system header. Otherwise compile with -D_GNU_SOURCE
 * (or -std=gnu11).
 *
 * Thread safety: every agaobs_ring holds a pthread mutex that serialises the
 * emit functions, agaobs_ring_heartbeat, agaobs_ring_mark_closed and
 * agaobs_ring_close, as the format requires a single writer per ring (§5.1).
 * Any thread may emit. A user that emits from one thread pays for one
 * uncontended lock/unlock pair: about 9 ns in a multi-threaded process
 * (13-14 ns per FORWARD in total, see README.md), less while the process has
 * a single thread (glibc then skips the atomics). For the lowest cost under
 * contention give each hot emitting thread its own ring (its own
 * `instance`). Do not call agaobs_ring_create or agaobs_ring_init_buffer on
 * a ring other threads use. After fork() the child must not use the
 * parent's rings (the header names the parent's pid): create new ones.
 *
 * Failure model (fail-open): no function aborts, raises a signal or
 * allocates memory on the emit path. Emits never block, except that a full
 * audit ring waits at most audit_wait_us (§5.1 step 3). The doorbell write
 * cannot kill the process with SIGPIPE when the agent died (SIGPIPE is
 * blocked around the write and a SIGPIPE it raised is consumed).
 *
 * Return codes: 0 = ok; AGAOBS_EDROPPED = the ring was full, the record was
 * dropped and counted (dropped_total, dropped_by_type, a sequence gap);
 * AGAOBS_ETOOLARGE = the record cannot fit max_record_len; AGAOBS_ECLOSED =
 * the ring is closed or was never created; otherwise -errno. All error codes
 * are negative; agaobs_strerror() names them.
 */
#ifndef AGAOBS_RING_H
#define AGAOBS_RING_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#if !defined(__linux__)
#error "agaobs_ring.h supports Linux only"
#endif
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "agaobs_ring.h writes the little-endian ring format with native stores: little-endian hosts only"
#endif

/* ------------------------------------------------------------------------ */
/* Constants (docs/ring-format.md)                                          */
/* ------------------------------------------------------------------------ */

/* Ring classes (header ring_class). */
#define AGAOBS_CLASS_HOT 1u
#define AGAOBS_CLASS_AUDIT 2u

/* Record types (§4). */
#define AGAOBS_TYPE_PADDING 0u
#define AGAOBS_TYPE_HELLO 1u
#define AGAOBS_TYPE_STATUS 2u
#define AGAOBS_TYPE_FORWARD 3u
#define AGAOBS_TYPE_RETRIEVAL 4u
#define AGAOBS_TYPE_AUDIT 5u
#define AGAOBS_TYPE_EVENT 6u

/* Record flags: bit 0 = body truncated to fit max_record_len. */
#define AGAOBS_FLAG_TRUNCATED 1u

/* FORWARD `fields` bits (§4.1). */
#define AGAOBS_FWD_APPLIED (1u << 0)     /* aga_applied */
#define AGAOBS_FWD_HAS_GATE (1u << 1)    /* gate_mean present */
#define AGAOBS_FWD_HAS_ENTROPY (1u << 2) /* entropy_mean present */
#define AGAOBS_FWD_HAS_LATENCY (1u << 3) /* latency_us present */
#define AGAOBS_FWD_HAS_LAYER (1u << 4)   /* layer_idx present */
#define AGAOBS_FWD_HAS_ALL (AGAOBS_FWD_HAS_GATE | AGAOBS_FWD_HAS_ENTROPY | AGAOBS_FWD_HAS_LATENCY | AGAOBS_FWD_HAS_LAYER)

/* RETRIEVAL `fields` bits (§4.1). */
#define AGAOBS_RET_HAS_LAYER (1u << 0)
#define AGAOBS_RET_HAS_RESULTS (1u << 1)
#define AGAOBS_RET_HAS_INJECTED (1u << 2)
#define AGAOBS_RET_HAS_BUDGET (1u << 3)
#define AGAOBS_RET_HAS_ALL (AGAOBS_RET_HAS_LAYER | AGAOBS_RET_HAS_RESULTS | AGAOBS_RET_HAS_INJECTED | AGAOBS_RET_HAS_BUDGET)

/* Return codes besides 0 and -errno (chosen outside the errno range). */
#define AGAOBS_EDROPPED (-10001)  /* ring full: record dropped and counted */
#define AGAOBS_ETOOLARGE (-10002) /* record larger than max_record_len */
#define AGAOBS_ECLOSED (-10003)   /* ring closed or never created */

/* Geometry. */
#define AGAOBS_HEADER_SIZE 4096u
#define AGAOBS_IDENTITY_OFFSET 0x800u
#define AGAOBS_MAX_IDENTITY_LEN 2048u
#define AGAOBS_MIN_CAPACITY 4096u
#define AGAOBS_MIN_MAX_RECORD_LEN 64u
#define AGAOBS_RECORD_HEADER_LEN 24u
#define AGAOBS_FORWARD_BODY_LEN 32u
#define AGAOBS_RETRIEVAL_FIXED_LEN 24u
#define AGAOBS_DEFAULT_HOT_BYTES (4u << 20)
#define AGAOBS_DEFAULT_AUDIT_BYTES (1u << 20)
#define AGAOBS_DEFAULT_AUDIT_WAIT_US 200
#define AGAOBS_DEFAULT_RING_DIR "/dev/shm/agaobs"
#define AGAOBS_DOORBELL_NAME "agaobs.doorbell"
#define AGAOBS_MAGIC UINT64_C(0x00474E4952414741) /* "AGARING\0" */

/* Header offsets (§2). */
#define AGAOBS__OFF_MAGIC 0x000u
#define AGAOBS__OFF_VERSION_MAJOR 0x008u
#define AGAOBS__OFF_VERSION_MINOR 0x00Au
#define AGAOBS__OFF_HEADER_SIZE 0x00Cu
#define AGAOBS__OFF_CLASS 0x010u
#define AGAOBS__OFF_FLAGS 0x014u
#define AGAOBS__OFF_CAPACITY 0x018u
#define AGAOBS__OFF_MAX_RECORD_LEN 0x020u
#define AGAOBS__OFF_IDENTITY_LEN 0x024u
#define AGAOBS__OFF_EPOCH 0x028u
#define AGAOBS__OFF_CREATE_TIME 0x030u
#define AGAOBS__OFF_PID 0x038u
#define AGAOBS__OFF_INSTANCE 0x03Cu
#define AGAOBS__OFF_PIDNS_INODE 0x040u
#define AGAOBS__OFF_START_TIME 0x048u
#define AGAOBS__OFF_IDENTITY_OFFSET 0x050u
#define AGAOBS__OFF_SCHEMA_VERSION 0x054u
#define AGAOBS__OFF_TAIL 0x100u
#define AGAOBS__OFF_LAST_SEQ 0x108u
#define AGAOBS__OFF_EVENTS_WRITTEN 0x110u
#define AGAOBS__OFF_DROPPED_TOTAL 0x118u
#define AGAOBS__OFF_HEARTBEAT 0x180u
#define AGAOBS__OFF_STATE 0x188u
#define AGAOBS__OFF_CLOSED_TIME 0x190u
#define AGAOBS__OFF_HEAD 0x200u
#define AGAOBS__OFF_CONSUMER_SLEEPING 0x208u
#define AGAOBS__OFF_DROPPED_BY_TYPE 0x400u

#define AGAOBS__STATE_RUNNING 1u
#define AGAOBS__STATE_CLOSED 2u

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * Options of agaobs_ring_create / agaobs_ring_init_buffer. Zero-initialise
 * and set what you need; zero fields take the documented defaults.
 */
typedef struct agaobs_ring_options {
    uint32_t ring_class;       /* AGAOBS_CLASS_HOT=1, AGAOBS_CLASS_AUDIT=2 (required) */
    uint64_t capacity;         /* data area, power of two >= 4096; 0 -> 4 MiB hot / 1 MiB audit */
    uint32_t max_record_len;   /* multiple of 8 in [64, capacity/8]; 0 -> min(capacity/8, 1 MiB) */
    const char *identity_json; /* identity JSON (§2.2), stored verbatim in the header and the
                                  HELLO record; <= 2048 bytes, must contain "producer" */
    uint32_t instance;         /* per-process ring-pair counter, from 0 */
    int64_t audit_wait_us;     /* audit ring bounded wait; 0 -> 200; < 0 -> no wait */
    uint64_t epoch;            /* ring_epoch; 0 -> random non-zero */
    int64_t create_time_ns;    /* CLOCK_REALTIME ns; 0 -> now */
    uint32_t pid;              /* pid / pidns_inode / start_time_ticks of the producer;  */
    uint64_t pidns_inode;      /* pid == 0 -> all three are taken from this process      */
    uint64_t start_time_ticks; /* (getpid, /proc/self/ns/pid, /proc/self/stat field 22)  */
    int64_t (*mono_now)(void); /* heartbeat clock, ns; NULL -> CLOCK_MONOTONIC */
} agaobs_ring_options;

/*
 * The producer side of one ring. Treat the fields as private; the struct is
 * public only so it can live on the stack or inside another struct without
 * allocation.
 */
typedef struct agaobs_ring {
    pthread_mutex_t mu;
    uint8_t *mem;  /* header page + data area */
    uint8_t *data; /* mem + 4096 */
    uint64_t cap, mask;
    uint64_t tail, head_cache, seq, written, dropped, audit_lost;
    uint64_t pending_total; /* padding + record of the reserved record */
    uint64_t epoch;
    uint32_t max_record_len;
    uint32_t ring_class;
    uint32_t last_poke; /* consumer sleep generation last poked */
    int closed;
    int initialised; /* mu is valid */
    int64_t audit_wait_ns;
    int64_t (*mono_now)(void);
    /* File-backed rings only. */
    size_t map_len; /* 0 for caller buffers */
    int doorbell_enabled;
    int doorbell_fd;
    int64_t doorbell_next_open; /* CLOCK_MONOTONIC ns */
    char path[PATH_MAX];
    char doorbell_path[PATH_MAX];
} agaobs_ring;

/* The writer's own counters (agaobs_ring_get_stats). */
typedef struct agaobs_ring_stats {
    uint64_t tail;     /* bytes ever written (position) */
    uint64_t last_seq; /* newest sequence number committed or dropped */
    uint64_t written;  /* records committed, HELLO included, padding excluded */
    uint64_t dropped;  /* records dropped because the ring was full */
} agaobs_ring_stats;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

#define AGAOBS__A64(r, off) ((_Atomic uint64_t *)(void *)((r)->mem + (off)))
#define AGAOBS__A32(r, off) ((_Atomic uint32_t *)(void *)((r)->mem + (off)))

/* CLOCK_REALTIME in ns since the Unix epoch: the time_ns of records. */
static inline int64_t agaobs_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CLOCK_MONOTONIC in ns: the heartbeat clock. */
static inline int64_t agaobs_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A static description of a return code. */
static inline const char *agaobs_strerror(int rc) {
    switch (rc) {
    case 0:
        return "ok";
    case AGAOBS_EDROPPED:
        return "ring full: record dropped";
    case AGAOBS_ETOOLARGE:
        return "record larger than max_record_len";
    case AGAOBS_ECLOSED:
        return "ring closed";
    }
    return rc < 0 ? strerror(-rc) : "unknown agaobs return code";
}

static inline void agaobs__put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void agaobs__put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void agaobs__put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static inline uint64_t agaobs__align8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* Fills buf with random bytes: getrandom, else a clock/pid mix. */
static inline void agaobs__random(void *buf, size_t n) {
    uint8_t *p = (uint8_t *)buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(p + got, n - got, GRND_NONBLOCK);
        if (k <= 0) {
            break;
        }
        got += (size_t)k;
    }
    if (got < n) {
        /* splitmix64 over the clocks and the pid: unpredictable enough for an
           epoch and a temporary name (both also O_EXCL / non-zero checked). */
        uint64_t x = (uint64_t)agaobs_now_ns() ^ ((uint64_t)agaobs_mono_ns() << 17) ^ ((uint64_t)getpid() << 40) ^
                     (uint64_t)(uintptr_t)buf;
        for (; got < n; got++) {
            x += UINT64_C(0x9E3779B97F4A7C15);
            uint64_t z = x;
            z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
            p[got] = (uint8_t)(z ^ (z >> 31));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Doorbell (§5.3)                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Writes one byte to the agent's FIFO. Opens it lazily, non-blocking,
 * retrying at most once a second while there is no reader. A full pipe
 * (EAGAIN) is ignored; any other error closes the descriptor so a later
 * poke reopens it. SIGPIPE is blocked around the write, and a SIGPIPE the
 * write raised (EPIPE: the agent died) is consumed before the mask is
 * restored, so the host never sees it. Called with r->mu held.
 */
static inline void agaobs__doorbell_write(agaobs_ring *r) {
    if (r->doorbell_fd < 0) {
        int64_t now = agaobs_mono_ns();
        if (now < r->doorbell_next_open) {
            return;
        }
        int fd = open(r->doorbell_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            r->doorbell_next_open = now + 1000000000;
            return;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
            close(fd);
            r->doorbell_next_open = now + 1000000000;
            return;
        }
        r->doorbell_fd = fd;
    }
    int saved_errno = errno;
    sigset_t pipe_set, old_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    int masked = pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set) == 0;
    /* A SIGPIPE already pending (blocked by the host) is not ours to take. */
    int was_pending = 0;
    if (sigpending(&pending) == 0) {
        was_pending = sigismember(&pending, SIGPIPE) == 1;
    }
    static const uint8_t one = 1;
    ssize_t n = write(r->doorbell_fd, &one, 1);
    int err = n < 0 ? errno : 0;
    if (err == EPIPE && masked && !was_pending) {
        static const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    if (masked) {
        pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    }
    if (n < 0 && err != EAGAIN && err != EINTR) {
        close(r->doorbell_fd);
        r->doorbell_fd = -1;
    }
    errno = saved_errno;
}

/*
 * Rings the doorbell when the consumer sleeps and this writer has not poked
 * that sleep generation yet; force pokes regardless of the generation (an
 * audit writer waiting for space, close). Called with r->mu held.
 */
static inline void agaobs__poke(agaobs_ring *r, int force) {
    if (!r->doorbell_enabled) {
        return;
    }
    uint32_t gen = atomic_load_explicit(AGAOBS__A32(r, AGAOBS__OFF_CONSUMER_SLEEPING), memory_order_acquire);
    if (gen == 0 || (gen == r->last_poke && !force)) {
        return;
    }
    r->last_poke = gen;
    agaobs__doorbell_write(r);
}

/* ------------------------------------------------------------------------ */
/* Reserve / commit (§5.1)                                                   */
/* ------------------------------------------------------------------------ */

/* The audit ring's bounded wait (§5.1 step 3). Hot rings never wait. */
static inline int agaobs__wait_for_space(agaobs_ring *r, uint64_t total) {
    if (r->ring_class != AGAOBS_CLASS_AUDIT || r->audit_wait_ns < 0) {
        return 0;
    }
    agaobs__poke(r, 1);
    int64_t deadline = agaobs_mono_ns() + r->audit_wait_ns;
    while (agaobs_mono_ns() < deadline) {
        sched_yield();
        r->head_cache = atomic_load_explicit(AGAOBS__A64(r, AGAOBS__OFF_HEAD), memory_order_acquire);
        if (r->tail + total - r->head_cache <= r->cap) {
            return 1;
        }
    }
    return 0;
}

/*
 * Reserves a record of `len` bytes (header included), writes its header and
 * a padding record if it wraps, and returns its body in *body. Returns
 * AGAOBS_EDROPPED (after counting the drop) when the ring stays full.
 * Called with r->mu held on an open ring.
 */
static inline int agaobs__reserve(agaobs_ring *r, uint16_t type, uint16_t flags, int64_t time_ns, uint32_t len,
                                  uint8_t **body) {
    const uint64_t cap = r->cap;
    const uint64_t need = agaobs__align8(len);
    uint64_t off = r->tail & r->mask;
    const uint64_t pad = off + need > cap ? cap - off : 0;
    const uint64_t total = pad + need;
    if (r->tail + total - r->head_cache > cap) {
        /* Acquire: pairs with the consumer's release of head. */
        r->head_cache = atomic_load_explicit(AGAOBS__A64(r, AGAOBS__OFF_HEAD), memory_order_acquire);
        if (r->tail + total - r->head_cache > cap && !agaobs__wait_for_space(r, total)) {
            r->seq++;
            r->dropped++;
            atomic_store_explicit(AGAOBS__A64(r, AGAOBS__OFF_LAST_SEQ), r->seq, memory_order_relaxed);
            atomic_store_explicit(AGAOBS__A64(r, AGAOBS__OFF_DROPPED_TOTAL), r->dropped, memory_order_relaxed);
            _Atomic uint64_t *bt = AGAOBS__A64(r, AGAOBS__OFF_DROPPED_BY_TYPE + 8u * (type & 63u));
            atomic_store_explicit(bt, atomic_load_explicit(bt, memory_order_relaxed) + 1, memory_order_relaxed);
            return AGAOBS_EDROPPED;
        }
    }
    if (pad > 0) {
        /* Only the first 8 bytes of the padding record are written. */
        uint8_t *p = r->data + off;
        agaobs__put32(p, (uint32_t)pad);
        agaobs__put16(p + 4, AGAOBS_TYPE_PADDING);
        agaobs__put16(p + 6, 0);
        off = 0;
    }
    r->seq++;
    uint8_t *h = r->data + off;
    agaobs__put32(h, len);
    agaobs__put16(h + 4, type);
    agaobs__put16(h + 6, flags);
    agaobs__put64(h + 8, r->seq);
    agaobs__put64(h + 16, (uint64_t)time_ns);
    r->pending_total = total;
    *body = h + AGAOBS_RECORD_HEADER_LEN;
    return 0;
}

/* Publishes the reserved record (§5.1 step 5) and checks the doorbell. */
static inline void agaobs__commit(agaobs_ring *r) {
    r->written++;
    r->tail += r->pending_total;
    atomic_store_explicit(AGAOBS__A64(r, AGAOBS__OFF_LAST_SEQ), r->seq, memory_order_relaxed);
    atomic_store_explicit(AGAOBS__A64(r, AGAOBS__OFF_EVENTS_WRITTEN), r->written, memory_order_relaxed);
    /* The commit point: one 8-byte release store. */
    atomic_store_explicit(AGAOBS__A64(r, AGAOBS__OFF_TAIL), r->tail, memory_order_release);
    agaobs__poke(r, 0);
}

/* Locks r and checks that it is open. Returns 0 with the lock held. */
static inline int agaobs__lock_open(agaobs_ring *r) {
    if (!r->initialised) {
        return AGAOBS_ECLOSED;
    }
    pthread_mutex_lock(&r->mu);
    if (r->closed) {
        pthread_mutex_unlock(&r->mu);
        return AGAOBS_ECLOSED;
    }
    return 0;
}

/* Appends one record whose body is the concatenation of up to three parts. */
static inline int agaobs__emit_parts(agaobs_ring *r, uint16_t type, uint16_t flags, int64_t time_ns, const void *a,
                                     size_t alen, const void *b, size_t blen, const void *c, size_t clen) {
    uint64_t len = (uint64_t)AGAOBS_RECORD_HEADER_LEN + alen + blen + clen;
    int rc = agaobs__lock_open(r);
    if (rc != 0) {
        return rc;
    }
    if (len > r->max_record_len) {
        pthread_mutex_unlock(&r->mu);
        return AGAOBS_ETOOLARGE;
    }
    uint8_t *body;
    rc = agaobs__reserve(r, type, flags, time_ns, (uint32_t)len, &body);
    if (rc == 0) {
        if (alen) memcpy(body, a, alen);
        if (blen) memcpy(body + alen, b, blen);
        if (clen) memcpy(body + alen + blen, c, clen);
        agaobs__commit(r);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Heartbeat, close, stats                                                   */
/* ------------------------------------------------------------------------ */

static inline void agaobs__heartbeat_locked(agaobs_ring *r) {
    atomic_store_explicit(AGAOBS__A64(r, AGAOBS__OFF_HEARTBEAT), (uint64_t)r->mono_now(), memory_order_release);
}

/*
 * Stores the producer heartbeat (heartbeat_mono_ns, CLOCK_MONOTONIC or the
 * mono_now option). The format asks for one at least every second: call it
 * from a timer or housekeeping thread of the host; the agent reports a ring
 * whose heartbeat is older than its threshold (default 5 s) as stale. No-op
 * on a closed ring.
 */
static inline void agaobs_ring_heartbeat(agaobs_ring *r) {
    if (agaobs__lock_open(r) != 0) {
        return;
    }
    agaobs__heartbeat_locked(r);
    pthread_mutex_unlock(&r->mu);
}

/*
 * Marks the ring closed (closed_time_ns = time_ns, then state = 2) without
 * releasing it, and pokes a sleeping agent. Later emits return
 * AGAOBS_ECLOSED. No-op when already closed.
 */
static inline void agaobs_ring_mark_closed(agaobs_ring *r, int64_t time_ns) {
    if (agaobs__lock_open(r) != 0) {
        return;
    }
    r->closed = 1;
    atomic_store_explicit(AGAOBS__A64(r, AGAOBS__OFF_CLOSED_TIME), (uint64_t)time_ns, memory_order_release);
    atomic_store_explicit(AGAOBS__A32(r, AGAOBS__OFF_STATE), AGAOBS__STATE_CLOSED, memory_order_release);
    agaobs__poke(r, 1);
    pthread_mutex_unlock(&r->mu);
}

/*
 * Marks the ring closed (at agaobs_now_ns()) if it is not yet, unmaps a
 * file-backed ring and closes the doorbell descriptor. The ring file stays
 * in the directory for the agent to drain (the agent removes it). A caller
 * buffer is left alone. Safe to call twice and on a ring whose creation
 * failed. The mutex is kept valid, so emits racing with or following close
 * return AGAOBS_ECLOSED instead of touching freed memory. Returns 0 or
 * -errno from munmap.
 */
static inline int agaobs_ring_close(agaobs_ring *r) {
    if (!r->initialised) {
        return 0;
    }
    agaobs_ring_mark_closed(r, agaobs_now_ns());
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    if (r->map_len > 0 && r->mem != NULL) {
        if (munmap(r->mem, r->map_len) != 0) {
            rc = -errno;
        }
    }
    r->map_len = 0;
    r->mem = NULL;
    r->data = NULL;
    if (r->doorbell_fd >= 0) {
        close(r->doorbell_fd);
        r->doorbell_fd = -1;
    }
    r->doorbell_enabled = 0;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Copies the writer's counters. */
static inline void agaobs_ring_get_stats(agaobs_ring *r, agaobs_ring_stats *st) {
    memset(st, 0, sizeof *st);
    if (!r->initialised) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    st->tail = r->tail;
    st->last_seq = r->seq;
    st->written = r->written;
    st->dropped = r->dropped;
    pthread_mutex_unlock(&r->mu);
}

/* The ring file path ("" for caller buffers and failed creations). */
static inline const char *agaobs_ring_path(const agaobs_ring *r) { return r->path; }

/* The ring epoch (0 when the ring was never created). */
static inline uint64_t agaobs_ring_epoch(const agaobs_ring *r) { return r->epoch; }

/* ------------------------------------------------------------------------ */
/* Creation (§2.1)                                                           */
/* ------------------------------------------------------------------------ */

/* Leaves r in the closed state (so emits return AGAOBS_ECLOSED). */
static inline void agaobs__init_closed(agaobs_ring *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->initialised = 1;
    r->closed = 1;
    r->doorbell_fd = -1;
}

/* Validates o and fills the defaults into *out. */
static inline int agaobs__fill_options(const agaobs_ring_options *o, agaobs_ring_options *out, size_t *id_len) {
    if (o == NULL) {
        return -EINVAL;
    }
    *out = *o;
    if (out->ring_class != AGAOBS_CLASS_HOT && out->ring_class != AGAOBS_CLASS_AUDIT) {
        return -EINVAL;
    }
    if (out->capacity == 0) {
        out->capacity = out->ring_class == AGAOBS_CLASS_AUDIT ? AGAOBS_DEFAULT_AUDIT_BYTES : AGAOBS_DEFAULT_HOT_BYTES;
    }
    if (out->capacity < AGAOBS_MIN_CAPACITY || (out->capacity & (out->capacity - 1)) != 0 ||
        out->capacity > (UINT64_C(1) << 40)) {
        return -EINVAL;
    }
    if (out->max_record_len == 0) {
        uint64_t m = out->capacity / 8;
        out->max_record_len = (uint32_t)(m < (UINT64_C(1) << 20) ? m : (UINT64_C(1) << 20));
    }
    if (out->max_record_len % 8 != 0 || out->max_record_len < AGAOBS_MIN_MAX_RECORD_LEN ||
        (uint64_t)out->max_record_len > out->capacity / 8) {
        return -EINVAL;
    }
    if (out->audit_wait_us == 0) {
        out->audit_wait_us = AGAOBS_DEFAULT_AUDIT_WAIT_US;
    }
    if (out->audit_wait_us > INT64_MAX / 1000) {
        out->audit_wait_us = INT64_MAX / 1000;
    }
    while (out->epoch == 0) {
        agaobs__random(&out->epoch, sizeof out->epoch);
    }
    if (out->create_time_ns == 0) {
        out->create_time_ns = agaobs_now_ns();
    }
    if (out->mono_now == NULL) {
        out->mono_now = agaobs_mono_ns;
    }
    if (out->identity_json == NULL) {
        return -EINVAL;
    }
    size_t n = strlen(out->identity_json);
    if (n > AGAOBS_MAX_IDENTITY_LEN || strstr(out->identity_json, "\"producer\"") == NULL) {
        return -EINVAL;
    }
    *id_len = n;
    return 0;
}

/*
 * Writes the header (magic last), state = running, the first heartbeat and
 * the HELLO record into mem (zeroed, 4096 + capacity bytes), and sets up r.
 */
static inline int agaobs__init_mem(agaobs_ring *r, uint8_t *mem, const agaobs_ring_options *o, size_t id_len) {
    r->mem = mem;
    r->data = mem + AGAOBS_HEADER_SIZE;
    r->cap = o->capacity;
    r->mask = o->capacity - 1;
    r->max_record_len = o->max_record_len;
    r->ring_class = o->ring_class;
    r->epoch = o->epoch;
    r->audit_wait_ns = o->audit_wait_us < 0 ? -1 : o->audit_wait_us * 1000;
    r->mono_now = o->mono_now;

    memset(mem, 0, AGAOBS_HEADER_SIZE);
    agaobs__put16(mem + AGAOBS__OFF_VERSION_MAJOR, 1);
    agaobs__put16(mem + AGAOBS__OFF_VERSION_MINOR, 0);
    agaobs__put32(mem + AGAOBS__OFF_HEADER_SIZE, AGAOBS_HEADER_SIZE);
    agaobs__put32(mem + AGAOBS__OFF_CLASS, o->ring_class);
    agaobs__put32(mem + AGAOBS__OFF_FLAGS, 0);
    agaobs__put64(mem + AGAOBS__OFF_CAPACITY, o->capacity);
    agaobs__put32(mem + AGAOBS__OFF_MAX_RECORD_LEN, o->max_record_len);
    agaobs__put32(mem + AGAOBS__OFF_IDENTITY_LEN, (uint32_t)id_len);
    agaobs__put64(mem + AGAOBS__OFF_EPOCH, o->epoch);
    agaobs__put64(mem + AGAOBS__OFF_CREATE_TIME, (uint64_t)o->create_time_ns);
    agaobs__put32(mem + AGAOBS__OFF_PID, o->pid);
    agaobs__put32(mem + AGAOBS__OFF_INSTANCE, o->instance);
    agaobs__put64(mem + AGAOBS__OFF_PIDNS_INODE, o->pidns_inode);
    agaobs__put64(mem + AGAOBS__OFF_START_TIME, o->start_time_ticks);
    agaobs__put32(mem + AGAOBS__OFF_IDENTITY_OFFSET, AGAOBS_IDENTITY_OFFSET);
    agaobs__put32(mem + AGAOBS__OFF_SCHEMA_VERSION, 1);
    memcpy(mem + AGAOBS_IDENTITY_OFFSET, o->identity_json, id_len);
    atomic_store_explicit(AGAOBS__A32(r, AGAOBS__OFF_STATE), AGAOBS__STATE_RUNNING, memory_order_relaxed);
    agaobs__heartbeat_locked(r);

    /* HELLO: the identity bytes at create_time_ns (§4.2). */
    uint64_t len = AGAOBS_RECORD_HEADER_LEN + id_len;
    if (len > r->max_record_len) {
        return AGAOBS_ETOOLARGE;
    }
    uint8_t *body;
    int rc = agaobs__reserve(r, AGAOBS_TYPE_HELLO, 0, o->create_time_ns, (uint32_t)len, &body);
    if (rc != 0) {
        return rc;
    }
    memcpy(body, o->identity_json, id_len);
    agaobs__commit(r);

    /* Release store: the header is complete before a reader sees the magic. */
    atomic_store_explicit(AGAOBS__A64(r, AGAOBS__OFF_MAGIC), AGAOBS_MAGIC, memory_order_release);
    return 0;
}

/*
 * Initialises a ring in caller memory: buf must be 8-byte aligned, zeroed,
 * and exactly 4096 + capacity bytes long (capacity after defaults). Writes
 * the header, the HELLO record and then the magic. No file, no doorbell; the
 * pid fields are stored as given (zero stays zero). Used by the vector test
 * and benchmarks, or over memory the caller maps itself. On failure r is
 * left closed (emits return AGAOBS_ECLOSED). Returns 0, -EINVAL or
 * AGAOBS_ETOOLARGE (identity too long for max_record_len).
 */
static inline int agaobs_ring_init_buffer(agaobs_ring *r, void *buf, size_t len, const agaobs_ring_options *o) {
    agaobs__init_closed(r);
    agaobs_ring_options opt;
    size_t id_len = 0;
    int rc = agaobs__fill_options(o, &opt, &id_len);
    if (rc != 0) {
        return rc;
    }
    if (buf == NULL || ((uintptr_t)buf & 7u) != 0 || (uint64_t)len != AGAOBS_HEADER_SIZE + opt.capacity) {
        return -EINVAL;
    }
    rc = agaobs__init_mem(r, (uint8_t *)buf, &opt, id_len);
    if (rc != 0) {
        r->mem = r->data = NULL;
        return rc;
    }
    r->closed = 0;
    return 0;
}

/* Reads field 22 (starttime) of /proc/self/stat. */
static inline int agaobs__start_time_ticks(uint64_t *out) {
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            break;
        }
        n += (size_t)k;
        if (n == sizeof buf - 1) {
            break;
        }
    }
    close(fd);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL) {
        return -EINVAL;
    }
    p++;
    /* After the command come field 3 (state) ... field 22 (starttime). */
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ') p++;
        if (*p == '\0') {
            return -EINVAL;
        }
        if (field == 22) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p || errno != 0) {
                return -EINVAL;
            }
            *out = (uint64_t)v;
            return 0;
        }
        while (*p != ' ' && *p != '\0') p++;
    }
    return -EINVAL;
}

/* mkdir -p for the parents of dir (mode 0755), then dir itself: 1777 when
   this call created it (format §1). An existing directory is used as is. */
static inline int agaobs__ensure_dir(const char *dir) {
    char tmp[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof tmp) {
        return -ENAMETOOLONG;
    }
    memcpy(tmp, dir, n + 1);
    while (n > 1 && tmp[n - 1] == '/') {
        tmp[--n] = '\0';
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            struct stat st;
            if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode)) {
                return -e;
            }
        }
        *p = '/';
    }
    if (mkdir(tmp, 0700) == 0) {
        /* Sticky and world-writable, independent of the umask. */
        if (chmod(tmp, 01777) != 0) {
            return -errno;
        }
        return 0;
    }
    if (errno != EEXIST) {
        return -errno;
    }
    struct stat st;
    if (stat(tmp, &st) != 0) {
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        return -ENOTDIR;
    }
    return 0;
}

/*
 * Creates a file-backed ring (format §1, §2.1) and its writer.
 *
 * dir: the ring directory; NULL or "" -> $AGAOBS_RING_DIR -> /dev/shm/agaobs.
 * A missing directory is created with mode 1777 (parents 0755). The file is
 * agaobs-<pid>-<pidns>-<instance>-<hot|audit>.ring, created as the hidden
 * temporary `.<name>.tmp-<random>`, set to mode 0600 (0660 when the
 * directory is setgid, i.e. managed by the agent's ring_group) with fchmod,
 * sized, initialised (header, HELLO, magic last), mapped MAP_SHARED and then
 * renamed over the final name, replacing an older ring of the same name
 * atomically. The doorbell is the FIFO <dir>/agaobs.doorbell, opened lazily.
 *
 * Returns 0, -errno, or AGAOBS_ETOOLARGE (identity longer than
 * max_record_len - 24). On failure r is left closed: every emit returns
 * AGAOBS_ECLOSED and agaobs_ring_close is a no-op, so a host may warn once
 * and carry on (fail-open).
 */
static inline int agaobs_ring_create(agaobs_ring *r, const char *dir, const agaobs_ring_options *o) {
    agaobs__init_closed(r);
    agaobs_ring_options opt;
    size_t id_len = 0;
    int rc = agaobs__fill_options(o, &opt, &id_len);
    if (rc != 0) {
        return rc;
    }
    if (dir == NULL || dir[0] == '\0') {
        dir = getenv("AGAOBS_RING_DIR");
        if (dir == NULL || dir[0] == '\0') {
            dir = AGAOBS_DEFAULT_RING_DIR;
        }
    }
    if (opt.pid == 0) {
        opt.pid = (uint32_t)getpid();
        struct stat ns;
        opt.pidns_inode = stat("/proc/self/ns/pid", &ns) == 0 ? (uint64_t)ns.st_ino : 0;
        rc = agaobs__start_time_ticks(&opt.start_time_ticks);
        if (rc != 0) {
            return rc;
        }
    }
    if ((uint64_t)AGAOBS_HEADER_SIZE + opt.capacity > (uint64_t)SIZE_MAX ||
        (uint64_t)AGAOBS_HEADER_SIZE + opt.capacity > (uint64_t)INT64_MAX) {
        return -EFBIG;
    }
    rc = agaobs__ensure_dir(dir);
    if (rc != 0) {
        return rc;
    }

    char name[128];
    int k = snprintf(name, sizeof name, "agaobs-%u-%llu-%u-%s.ring", (unsigned)opt.pid,
                     (unsigned long long)opt.pidns_inode, (unsigned)opt.instance,
                     opt.ring_class == AGAOBS_CLASS_AUDIT ? "audit" : "hot");
    if (k < 0 || (size_t)k >= sizeof name) {
        return -ENAMETOOLONG;
    }
    k = snprintf(r->path, sizeof r->path, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= sizeof r->path) {
        r->path[0] = '\0';
        return -ENAMETOOLONG;
    }
    k = snprintf(r->doorbell_path, sizeof r->doorbell_path, "%s/%s", dir, AGAOBS_DOORBELL_NAME);
    if (k < 0 || (size_t)k >= sizeof r->doorbell_path) {
        r->path[0] = r->doorbell_path[0] = '\0';
        return -ENAMETOOLONG;
    }
    char tmp[PATH_MAX];
    int fd = -1;
    for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
        uint8_t rnd[6];
        agaobs__random(rnd, sizeof rnd);
        k = snprintf(tmp, sizeof tmp, "%s/.%s.tmp-%02x%02x%02x%02x%02x%02x", dir, name, rnd[0], rnd[1], rnd[2],
                     rnd[3], rnd[4], rnd[5]);
        if (k < 0 || (size_t)k >= sizeof tmp) {
            rc = -ENAMETOOLONG;
            break;
        }
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = -errno;
            if (errno != EEXIST) {
                break;
            }
        }
    }
    if (fd < 0) {
        r->path[0] = r->doorbell_path[0] = '\0';
        return rc != 0 ? rc : -EEXIST;
    }
    size_t size = (size_t)(AGAOBS_HEADER_SIZE + opt.capacity);
    void *mem = MAP_FAILED;
    /* Group-writable only in a setgid (group-managed) directory, so the
       agent's group can release space; otherwise owner-only. */
    mode_t mode = 0600;
    struct stat dst;
    if (stat(dir, &dst) == 0 && (dst.st_mode & S_ISGID) != 0) {
        mode = 0660;
    }
    if (fchmod(fd, mode) != 0 || ftruncate(fd, (off_t)size) != 0) {
        rc = -errno;
        goto fail;
    }
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    rc = agaobs__init_mem(r, (uint8_t *)mem, &opt, id_len);
    if (rc != 0) {
        goto fail;
    }
    if (rename(tmp, r->path) != 0) {
        rc = -errno;
        goto fail;
    }
    close(fd);
    r->map_len = size;
    r->doorbell_enabled = 1;
    r->doorbell_fd = -1;
    r->doorbell_next_open = 0;
    r->closed = 0;
    return 0;

fail:
    if (mem != MAP_FAILED) {
        munmap(mem, size);
    }
    close(fd);
    unlink(tmp);
    r->mem = r->data = NULL;
    r->path[0] = r->doorbell_path[0] = '\0';
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Emit functions                                                            */
/* ------------------------------------------------------------------------ */

/*
 * FORWARD record (aga-core `forward` event, §4.1; record length 56).
 * fields: AGAOBS_FWD_* bits; a value whose "has" bit is clear should be 0.
 * time_ns: CLOCK_REALTIME ns (agaobs_now_ns()). No allocation, no syscall.
 */
static inline int agaobs_emit_forward(agaobs_ring *r, int64_t time_ns, double gate_mean, double entropy_mean,
                                      double latency_us, int32_t layer_idx, uint32_t fields) {
    int rc = agaobs__lock_open(r);
    if (rc != 0) {
        return rc;
    }
    uint8_t *b;
    rc = agaobs__reserve(r, AGAOBS_TYPE_FORWARD, 0, time_ns, AGAOBS_RECORD_HEADER_LEN + AGAOBS_FORWARD_BODY_LEN, &b);
    if (rc == 0) {
        memcpy(b, &gate_mean, 8);
        memcpy(b + 8, &entropy_mean, 8);
        memcpy(b + 16, &latency_us, 8);
        memcpy(b + 24, &layer_idx, 4);
        memcpy(b + 28, &fields, 4);
        agaobs__commit(r);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/*
 * RETRIEVAL record (aga-core `retrieval` event, §4.1). fields: AGAOBS_RET_*
 * bits. scores: n_scores doubles (may be NULL when 0). ids: n_ids
 * NUL-terminated UTF-8 strings (may be NULL when 0). Trailing ids that do
 * not fit max_record_len (or an id longer than 65535 bytes and all after it)
 * are left out and the record is flagged truncated. Returns AGAOBS_ETOOLARGE
 * when the scores alone do not fit.
 */
static inline int agaobs_emit_retrieval(agaobs_ring *r, int64_t time_ns, int32_t layer, int32_t results,
                                        int32_t injected, int32_t budget, uint32_t fields, const double *scores,
                                        uint16_t n_scores, const char *const *ids, uint16_t n_ids) {
    int rc = agaobs__lock_open(r);
    if (rc != 0) {
        return rc;
    }
    const uint64_t max_body = r->max_record_len - AGAOBS_RECORD_HEADER_LEN;
    uint64_t n = AGAOBS_RETRIEVAL_FIXED_LEN + 8u * (uint64_t)n_scores;
    if (n > max_body || (n_scores > 0 && scores == NULL)) {
        pthread_mutex_unlock(&r->mu);
        return n > max_body ? AGAOBS_ETOOLARGE : -EINVAL;
    }
    uint16_t flags = 0;
    uint16_t kept = 0;
    if (ids == NULL) {
        n_ids = 0;
    }
    for (; kept < n_ids; kept++) {
        const char *id = ids[kept] != NULL ? ids[kept] : "";
        size_t l = strnlen(id, 0x10000);
        if (l > 0xffff || n + 2 + l > max_body) {
            flags |= AGAOBS_FLAG_TRUNCATED;
            break;
        }
        n += 2 + l;
    }
    uint8_t *b;
    rc = agaobs__reserve(r, AGAOBS_TYPE_RETRIEVAL, flags, time_ns, (uint32_t)(AGAOBS_RECORD_HEADER_LEN + n), &b);
    if (rc == 0) {
        memcpy(b, &layer, 4);
        memcpy(b + 4, &results, 4);
        memcpy(b + 8, &injected, 4);
        memcpy(b + 12, &budget, 4);
        agaobs__put16(b + 16, n_scores);
        agaobs__put16(b + 18, kept);
        memcpy(b + 20, &fields, 4);
        size_t p = AGAOBS_RETRIEVAL_FIXED_LEN;
        if (n_scores > 0) {
            memcpy(b + p, scores, 8u * (size_t)n_scores);
            p += 8u * (size_t)n_scores;
        }
        for (uint16_t i = 0; i < kept; i++) {
            const char *id = ids[i] != NULL ? ids[i] : "";
            size_t l = strlen(id);
            agaobs__put16(b + p, (uint16_t)l);
            memcpy(b + p + 2, id, l);
            p += 2 + l;
        }
        agaobs__commit(r);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Skips JSON whitespace. */
static inline size_t agaobs__json_ws(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* Returns the index just past the JSON string starting at s[i] == '"', or
   (size_t)-1. */
static inline size_t agaobs__json_string(const char *s, size_t i, size_t n) {
    for (i++; i < n; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            return i + 1;
        }
    }
    return (size_t)-1;
}

/* Returns the index just past the JSON value starting at s[i], or
   (size_t)-1. Lenient: it only tracks strings and bracket depth. */
static inline size_t agaobs__json_value(const char *s, size_t i, size_t n) {
    if (i >= n) {
        return (size_t)-1;
    }
    if (s[i] == '"') {
        return agaobs__json_string(s, i, n);
    }
    if (s[i] == '{' || s[i] == '[') {
        size_t depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') {
                i = agaobs__json_string(s, i, n);
                if (i == (size_t)-1) {
                    return i;
                }
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) {
                    return i + 1;
                }
            }
            i++;
        }
        return (size_t)-1;
    }
    size_t start = i;
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
           s[i] != '\r') {
        i++;
    }
    return i > start ? i : (size_t)-1;
}

/*
 * Finds the value of the top-level "details" key of a JSON object:
 * [*vs, *ve). Returns 0, or -1 when s is not an object or has no "details".
 */
static inline int agaobs__json_find_details(const char *s, size_t n, size_t *vs, size_t *ve) {
    size_t i = agaobs__json_ws(s, 0, n);
    if (i >= n || s[i] != '{') {
        return -1;
    }
    i = agaobs__json_ws(s, i + 1, n);
    for (;;) {
        if (i >= n || s[i] != '"') {
            return -1;
        }
        size_t ks = i;
        size_t ke = agaobs__json_string(s, i, n);
        if (ke == (size_t)-1) {
            return -1;
        }
        int is_details = ke - ks == 9 && memcmp(s + ks, "\"details\"", 9) == 0;
        i = agaobs__json_ws(s, ke, n);
        if (i >= n || s[i] != ':') {
            return -1;
        }
        i = agaobs__json_ws(s, i + 1, n);
        size_t v0 = i;
        size_t v1 = agaobs__json_value(s, i, n);
        if (v1 == (size_t)-1) {
            return -1;
        }
        if (is_details) {
            *vs = v0;
            *ve = v1;
            return 0;
        }
        i = agaobs__json_ws(s, v1, n);
        if (i < n && s[i] == ',') {
            i = agaobs__json_ws(s, i + 1, n);
            continue;
        }
        return -1;
    }
}

/*
 * AUDIT record (§4.3): the writer prepends its lost_before (audit records
 * dropped since the previous committed AUDIT). json: the aga-core audit
 * object (operation, details, success, error, timestamp), len bytes. If it
 * does not fit max_record_len, its top-level "details" value is replaced by
 * {"_truncated":true,"_original_bytes":N} (the rest is kept byte for byte)
 * and the record flagged truncated; AGAOBS_ETOOLARGE if it still does not
 * fit, or is not a JSON object with a top-level "details" key. On a
 * full audit ring it waits up to audit_wait_us for the agent (poking the
 * doorbell), then drops and counts (AGAOBS_EDROPPED).
 */
static inline int agaobs_emit_audit(agaobs_ring *r, int64_t time_ns, const char *json, size_t len) {
    int rc = agaobs__lock_open(r);
    if (rc != 0) {
        return rc;
    }
    if (json == NULL) {
        len = 0;
        json = "";
    }
    const uint64_t max_body = r->max_record_len - AGAOBS_RECORD_HEADER_LEN;
    /* Body parts: json[0, vs) marker json[ve, len). */
    size_t vs = len, ve = len;
    char marker[96];
    size_t mlen = 0;
    uint16_t flags = 0;
    if (8u + (uint64_t)len > max_body) {
        if (agaobs__json_find_details(json, len, &vs, &ve) != 0) {
            pthread_mutex_unlock(&r->mu);
            return AGAOBS_ETOOLARGE;
        }
        int k = snprintf(marker, sizeof marker, "{\"_truncated\":true,\"_original_bytes\":%llu}",
                         (unsigned long long)len);
        if (k < 0 || (size_t)k >= sizeof marker) {
            pthread_mutex_unlock(&r->mu);
            return AGAOBS_ETOOLARGE;
        }
        mlen = (size_t)k;
        flags = AGAOBS_FLAG_TRUNCATED;
        if (8u + (uint64_t)vs + mlen + (len - ve) > max_body) {
            pthread_mutex_unlock(&r->mu);
            return AGAOBS_ETOOLARGE;
        }
    }
    uint64_t body_len = 8u + vs + mlen + (len - ve);
    uint8_t *b;
    rc = agaobs__reserve(r, AGAOBS_TYPE_AUDIT, flags, time_ns, (uint32_t)(AGAOBS_RECORD_HEADER_LEN + body_len), &b);
    if (rc != 0) {
        r->audit_lost++;
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    agaobs__put64(b, r->audit_lost);
    if (vs) memcpy(b + 8, json, vs);
    if (mlen) memcpy(b + 8 + vs, marker, mlen);
    if (len - ve) memcpy(b + 8 + vs + mlen, json + ve, len - ve);
    r->audit_lost = 0;
    agaobs__commit(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/*
 * EVENT record (§4): any other EventBus event. name: non-empty UTF-8,
 * NUL-terminated, <= 65535 bytes (-EINVAL when NULL or empty); json: the
 * event's data as JSON, len bytes.
 */
static inline int agaobs_emit_event(agaobs_ring *r, int64_t time_ns, const char *name, const char *json, size_t len) {
    if (name == NULL || name[0] == '\0') {
        return -EINVAL;
    }
    size_t nl = strnlen(name, 0x10000);
    if (nl > 0xffff) {
        return AGAOBS_ETOOLARGE;
    }
    if (json == NULL) {
        len = 0;
    }
    uint8_t nlb[2];
    agaobs__put16(nlb, (uint16_t)nl);
    return agaobs__emit_parts(r, AGAOBS_TYPE_EVENT, 0, time_ns, nlb, 2, name, nl, json, len);
}

/* STATUS record (§4.4): a JSON status snapshot, len bytes. */
static inline int agaobs_emit_status(agaobs_ring *r, int64_t time_ns, const char *json, size_t len) {
    if (json == NULL) {
        len = 0;
    }
    return agaobs__emit_parts(r, AGAOBS_TYPE_STATUS, 0, time_ns, json, len, NULL, 0, NULL, 0);
}

#endif /* AGAOBS_RING_H */
