/*
 * _agaobs_fast: the optional C fast path of the aga_observability client.
 *
 * One C call per aga-core `forward` event: the EventBus calls a
 * ForwardHandler object directly (no Python frame), which reads the event's
 * fields, encodes the 56-byte FORWARD record, reserves its place in the hot
 * ring, copies it into the mapping and publishes the tail with a release
 * store, as the Go writer (internal/shm/writer.go) and the C writer
 * (clients/c/include/agaobs_ring.h) do. Everything else, and anything
 * unexpected, goes to the Python fallback, exactly where the pure-Python
 * handler (ring.make_forward_handler) sends it.
 *
 * Objects:
 *
 *   Lock()      a threading.Lock look-alike (acquire(blocking=True,
 *               timeout=-1), release(), locked(), with-statement) over a
 *               POSIX semaphore that the handler can try-acquire from C.
 *   Ring(buf, capacity, lock, slow_when_full=False)
 *               the writer state of one ring (tail, seq, written, head
 *               cache, closed, dropped) over the mapping, taken through the
 *               buffer protocol and held (Py_buffer) for the object's life.
 *               It is also a 6-item sequence, so RingWriter's Python code
 *               keeps using it as its `_st` list. forward(...) writes one
 *               FORWARD record with the lock held by the caller;
 *               commit(seq, pending) is RingWriter._commit with a release
 *               store of the tail.
 *   ForwardHandler(fallback)
 *               the EventBus "*" handler; bind(ring, poke, write_forward)
 *               points it at a ring (bind(None): everything to the fallback).
 *
 * Guarantees kept from the pure path:
 *
 *   - fail-open: an event the fast path does not take, or an Exception while
 *     reading it, goes to fallback(ev) (which never raises); a full hot ring
 *     drops the record and counts it (last_seq, dropped_total,
 *     dropped_by_type); a closed ring, a lock held by a Python writer or a
 *     full ring that must wait go through the Python write_forward.
 *   - bounds: the buffer is exactly 4096 + capacity bytes (capacity a power
 *     of two >= 4096) and 8-byte aligned, checked once; every offset is
 *     tail & (capacity - 1), a multiple of 8, and a record never crosses the
 *     end of the data area (it wraps with a padding record first), whatever
 *     the consumer writes into `head`.
 *   - fork: the at-fork hook in producer.py closes and unbinds inherited
 *     rings; in addition a pthread_atfork child handler bumps a generation
 *     and a Ring never writes in a process other than the one that created
 *     it.
 *   - publication: record bytes, then last_seq and events_written (relaxed),
 *     then the tail with one 8-byte release store; head and the consumer's
 *     sleeping flag are acquire loads (format section 5.1, 5.3).
 *
 * Standard C (GNU extensions: __atomic builtins) and the CPython C API only.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <endian.h>
#include <errno.h>
#include <semaphore.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define ABI_VERSION 1

#define HEADER_SIZE 4096u
#define MIN_CAPACITY 4096u
#define REC_HDR 24u
#define FORWARD_LEN 56u
#define T_PADDING 0u
#define T_FORWARD 3u

#define OFF_TAIL 0x100u
#define OFF_LAST_SEQ 0x108u
#define OFF_WRITTEN 0x110u
#define OFF_DROPPED 0x118u
#define OFF_HEAD 0x200u
#define OFF_SLEEPING 0x208u
#define OFF_DROPPED_BY_TYPE 0x400u

/* Results of a FORWARD write. */
#define FW_CLOSED 0  /* closed (or a ring of another process): nothing written */
#define FW_WRITTEN 1 /* committed */
#define FW_DROPPED 2 /* full hot ring: dropped and counted */
#define FW_SLOW 3    /* full ring that is not ours to drop on (audit class): Python's turn */

#if PY_VERSION_HEX < 0x03090000
#error "aga_observability needs Python >= 3.9"
#endif

/* ------------------------------------------------------------------------ */
/* Little-endian stores and loads (the format is little-endian)              */
/* ------------------------------------------------------------------------ */

static inline void put16(uint8_t *p, uint16_t v) {
    v = htole16(v);
    memcpy(p, &v, 2);
}
static inline void put32(uint8_t *p, uint32_t v) {
    v = htole32(v);
    memcpy(p, &v, 4);
}
static inline void put64(uint8_t *p, uint64_t v) {
    v = htole64(v);
    memcpy(p, &v, 8);
}
static inline void putf64(uint8_t *p, double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    put64(p, v);
}

/* Header words the agent reads concurrently: aligned 8-byte atomics. */
static inline uint64_t *hdr64(uint8_t *mem, size_t off) { return (uint64_t *)(void *)(mem + off); }
static inline uint32_t *hdr32(uint8_t *mem, size_t off) { return (uint32_t *)(void *)(mem + off); }

static inline void store_relaxed(uint8_t *mem, size_t off, uint64_t v) {
    __atomic_store_n(hdr64(mem, off), htole64(v), __ATOMIC_RELAXED);
}
static inline void store_release(uint8_t *mem, size_t off, uint64_t v) {
    __atomic_store_n(hdr64(mem, off), htole64(v), __ATOMIC_RELEASE);
}
static inline uint64_t load_acquire(uint8_t *mem, size_t off) {
    return le64toh(__atomic_load_n(hdr64(mem, off), __ATOMIC_ACQUIRE));
}
static inline uint64_t load_relaxed(uint8_t *mem, size_t off) {
    return le64toh(__atomic_load_n(hdr64(mem, off), __ATOMIC_RELAXED));
}

/* ------------------------------------------------------------------------ */
/* Fork generation                                                           */
/* ------------------------------------------------------------------------ */

/* Bumped in the child of every fork(): a Ring made before the fork belongs
 * to the parent and is never written by the child. */
static volatile unsigned long fork_generation = 0;

static void at_fork_child(void) { fork_generation++; }

/* ------------------------------------------------------------------------ */
/* Lock                                                                      */
/* ------------------------------------------------------------------------ */

/* A POSIX semaphore of value 1, as CPython's own locks on Linux, used
 * directly: the handler's try-acquire is one sem_trywait (CPython 3.11's
 * PyThread_acquire_lock reads the clock even to try, ~20 ns per event). */
typedef struct {
    PyObject_HEAD
    sem_t sem;
    int ready; /* sem is initialised */
    PyObject *weakrefs;
} LockObject;

static PyTypeObject LockType;

static inline int lock_try(LockObject *lk) { return sem_trywait(&lk->sem) == 0; }

static inline void lock_release(LockObject *lk) { sem_post(&lk->sem); }

static PyObject *Lock_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Lock() takes no arguments");
        return NULL;
    }
    LockObject *self = (LockObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (sem_init(&self->sem, 0, 1) != 0) {
        Py_DECREF(self);
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    self->ready = 1;
    return (PyObject *)self;
}

static void Lock_dealloc(LockObject *self) {
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    if (self->ready) {
        /* Nobody waits on it (a waiter holds a reference); held or not (a
         * lock held by a thread that does not exist after fork), it goes. */
        sem_destroy(&self->sem);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static double mono_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Acquires with the GIL released while waiting, running signal handlers
 * when a wait is interrupted (as threading.Lock does). timeout < 0: no
 * limit. Returns 1 acquired, 0 timed out, -1 with an exception set. */
static int lock_acquire(LockObject *lk, double timeout) {
    if (lock_try(lk)) {
        return 1;
    }
    if (timeout == 0) {
        return 0;
    }
    double deadline = timeout > 0 ? mono_seconds() + timeout : 0;
    for (;;) {
        int rc, err;
        if (timeout > 0) {
            double left = deadline - mono_seconds();
            if (left <= 0) {
                return lock_try(lk);
            }
            struct timespec abs;
            clock_gettime(CLOCK_REALTIME, &abs); /* sem_timedwait's clock */
            double whole = floor(left);
            abs.tv_sec += (time_t)whole;
            abs.tv_nsec += (long)((left - whole) * 1e9);
            if (abs.tv_nsec >= 1000000000L) {
                abs.tv_sec++;
                abs.tv_nsec -= 1000000000L;
            }
            Py_BEGIN_ALLOW_THREADS
            rc = sem_timedwait(&lk->sem, &abs);
            err = errno;
            Py_END_ALLOW_THREADS
        } else {
            Py_BEGIN_ALLOW_THREADS
            rc = sem_wait(&lk->sem);
            err = errno;
            Py_END_ALLOW_THREADS
        }
        if (rc == 0) {
            return 1;
        }
        if (err == EINTR) {
            /* Run signal handlers (a KeyboardInterrupt propagates). */
            if (Py_MakePendingCalls() < 0) {
                return -1;
            }
            continue;
        }
        if (err == ETIMEDOUT) {
            continue; /* the loop checks the monotonic deadline */
        }
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
}

static PyObject *Lock_acquire(LockObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *blocking_o = NULL, *timeout_o = NULL;
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "acquire() takes at most 2 arguments");
        return NULL;
    }
    if (nargs > 0) {
        blocking_o = args[0];
    }
    if (nargs > 1) {
        timeout_o = args[1];
    }
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *k = PyTuple_GET_ITEM(kwnames, i);
            PyObject *v = args[nargs + i];
            if (PyUnicode_CompareWithASCIIString(k, "blocking") == 0 && blocking_o == NULL) {
                blocking_o = v;
            } else if (PyUnicode_CompareWithASCIIString(k, "timeout") == 0 && timeout_o == NULL) {
                timeout_o = v;
            } else {
                PyErr_Format(PyExc_TypeError, "acquire() got an unexpected or repeated keyword argument %R", k);
                return NULL;
            }
        }
    }
    int blocking = 1;
    if (blocking_o != NULL) {
        blocking = PyObject_IsTrue(blocking_o);
        if (blocking < 0) {
            return NULL;
        }
    }
    double timeout = -1;
    if (timeout_o != NULL) {
        timeout = PyFloat_AsDouble(timeout_o);
        if (timeout == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (!blocking && timeout != -1) {
        PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
        return NULL;
    }
    if (timeout < 0 && timeout != -1) {
        PyErr_SetString(PyExc_ValueError, "timeout value must be a non-negative number");
        return NULL;
    }
    if (!(timeout <= 1e9 || timeout == -1) || isnan(timeout)) {
        PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
        return NULL;
    }
    int r = lock_acquire(self, blocking ? timeout : 0);
    if (r < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

static int lock_is_locked(LockObject *self) {
    int v = 0;
    if (sem_getvalue(&self->sem, &v) != 0) {
        return 1;
    }
    return v <= 0;
}

static PyObject *Lock_release(LockObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!lock_is_locked(self)) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    lock_release(self);
    Py_RETURN_NONE;
}

static PyObject *Lock_locked(LockObject *self, PyObject *Py_UNUSED(ignored)) {
    return PyBool_FromLong(lock_is_locked(self));
}

static PyObject *Lock_enter(LockObject *self, PyObject *Py_UNUSED(ignored)) {
    int r = lock_acquire(self, -1);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *Lock_exit(LockObject *self, PyObject *Py_UNUSED(args)) {
    return Lock_release(self, NULL);
}

static PyMethodDef Lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Lock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool, as threading.Lock.acquire"},
    {"release", (PyCFunction)Lock_release, METH_NOARGS, "release()"},
    {"locked", (PyCFunction)Lock_locked, METH_NOARGS, "locked() -> bool"},
    {"__enter__", (PyCFunction)Lock_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Lock_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aga_observability._agaobs_fast.Lock",
    .tp_basicsize = sizeof(LockObject),
    .tp_dealloc = (destructor)Lock_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A threading.Lock that the C fast path can try-acquire.",
    .tp_weaklistoffset = offsetof(LockObject, weakrefs),
    .tp_methods = Lock_methods,
    .tp_new = Lock_new,
};

/* ------------------------------------------------------------------------ */
/* Ring                                                                      */
/* ------------------------------------------------------------------------ */

/* Indexes of the sequence view, as RingWriter._st: tail, seq, written,
 * head cache, closed, dropped. */
enum { ST_TAIL, ST_SEQ, ST_WRITTEN, ST_HEAD, ST_CLOSED, ST_DROPPED, ST_LEN };

typedef struct {
    PyObject_HEAD
    Py_buffer view; /* the mapping; held until dealloc */
    int has_view;
    uint8_t *mem;   /* header page */
    uint8_t *data;  /* data area: mem + 4096 */
    uint64_t cap, mask;
    uint64_t st[ST_LEN];
    int slow_when_full;
    uint32_t poked_gen; /* the consumer's sleep generation the handler last handed to poke() */
    unsigned long fork_gen;
    LockObject *lock;
} RingObject;

static PyTypeObject RingType;

static PyObject *Ring_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"buf", "capacity", "lock", "slow_when_full", NULL};
    PyObject *buf, *lock;
    unsigned long long capacity;
    int slow = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKO!|p:Ring", kwlist, &buf, &capacity, &LockType, &lock,
                                     &slow)) {
        return NULL;
    }
    if (capacity < MIN_CAPACITY || (capacity & (capacity - 1)) != 0 || capacity > ((uint64_t)1 << 40)) {
        PyErr_Format(PyExc_ValueError, "capacity %llu is not a power of two >= 4096", capacity);
        return NULL;
    }
    RingObject *self = (RingObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (PyObject_GetBuffer(buf, &self->view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->has_view = 1;
    if ((uint64_t)self->view.len != HEADER_SIZE + capacity) {
        PyErr_Format(PyExc_ValueError, "buffer is %zd bytes, want %llu", self->view.len,
                     (unsigned long long)(HEADER_SIZE + capacity));
        Py_DECREF(self);
        return NULL;
    }
    if (((uintptr_t)self->view.buf & 7u) != 0) {
        PyErr_SetString(PyExc_ValueError, "buffer is not 8-byte aligned");
        Py_DECREF(self);
        return NULL;
    }
    self->mem = (uint8_t *)self->view.buf;
    self->data = self->mem + HEADER_SIZE;
    self->cap = capacity;
    self->mask = capacity - 1;
    self->slow_when_full = slow;
    self->fork_gen = fork_generation;
    Py_INCREF(lock);
    self->lock = (LockObject *)lock;
    return (PyObject *)self;
}

static void Ring_dealloc(RingObject *self) {
    Py_CLEAR(self->lock);
    if (self->has_view) {
        self->has_view = 0;
        PyBuffer_Release(&self->view);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Reserves, encodes and publishes one FORWARD record (format 5.1). Called
 * with the ring's lock held. Never touches memory outside [mem, mem + 4096
 * + cap): off = tail & mask is a multiple of 8 below cap, a record that
 * would cross the end wraps (the padding header is 8 bytes at off <= cap -
 * 8), so the record lies in [off, off + 56) with off + 56 <= cap. */
static int ring_forward_locked(RingObject *r, int64_t time_ns, double gate, double entropy, double latency,
                               int32_t layer, uint32_t fields) {
    uint64_t *st = r->st;
    if (st[ST_CLOSED] || r->fork_gen != fork_generation) {
        return FW_CLOSED;
    }
    const uint64_t cap = r->cap;
    const uint64_t tail = st[ST_TAIL];
    uint64_t off = tail & r->mask;
    const uint64_t pad = off + FORWARD_LEN > cap ? cap - off : 0;
    const uint64_t total = pad + FORWARD_LEN;
    if (tail + total - st[ST_HEAD] > cap) {
        /* Acquire: pairs with the consumer's release of head. */
        st[ST_HEAD] = load_acquire(r->mem, OFF_HEAD);
        if (tail + total - st[ST_HEAD] > cap) {
            if (r->slow_when_full) {
                return FW_SLOW;
            }
            /* Full hot ring: drop the newest and count it (5.1 step 3). */
            st[ST_SEQ]++;
            st[ST_DROPPED]++;
            store_relaxed(r->mem, OFF_LAST_SEQ, st[ST_SEQ]);
            store_relaxed(r->mem, OFF_DROPPED, st[ST_DROPPED]);
            size_t bt = OFF_DROPPED_BY_TYPE + 8u * T_FORWARD;
            store_relaxed(r->mem, bt, load_relaxed(r->mem, bt) + 1);
            return FW_DROPPED;
        }
    }
    uint8_t *d = r->data;
    if (pad) {
        /* Only the first 8 bytes of the padding record are written. */
        put32(d + off, (uint32_t)pad);
        put16(d + off + 4, T_PADDING);
        put16(d + off + 6, 0);
        off = 0;
    }
    const uint64_t seq = st[ST_SEQ] + 1;
    uint8_t *p = d + off;
    put32(p, FORWARD_LEN);
    put16(p + 4, T_FORWARD);
    put16(p + 6, 0);
    put64(p + 8, seq);
    put64(p + 16, (uint64_t)time_ns);
    putf64(p + 24, gate);
    putf64(p + 32, entropy);
    putf64(p + 40, latency);
    put32(p + 48, (uint32_t)layer);
    put32(p + 52, fields);
    st[ST_SEQ] = seq;
    st[ST_WRITTEN]++;
    st[ST_TAIL] = tail + total;
    store_relaxed(r->mem, OFF_LAST_SEQ, seq);
    store_relaxed(r->mem, OFF_WRITTEN, st[ST_WRITTEN]);
    /* The commit point: one 8-byte release store. */
    store_release(r->mem, OFF_TAIL, st[ST_TAIL]);
    return FW_WRITTEN;
}

/* Ring.forward(time_ns, gate, entropy, latency, layer, fields) -> int: the
 * caller holds the lock (RingWriter.write_forward). Returns FW_*. Raises
 * OverflowError/TypeError, before anything is written, when a value does not
 * fit its field. */
static PyObject *Ring_forward(RingObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "forward() takes 6 arguments");
        return NULL;
    }
    int overflow = 0;
    long long t = PyLong_AsLongLongAndOverflow(args[0], &overflow);
    if (t == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "time_ns does not fit int64");
        return NULL;
    }
    double v[3];
    for (int i = 0; i < 3; i++) {
        v[i] = PyFloat_AsDouble(args[1 + i]);
        if (v[i] == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    long layer = PyLong_AsLongAndOverflow(args[4], &overflow);
    if (layer == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow || layer < INT32_MIN || layer > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "layer does not fit int32");
        return NULL;
    }
    long long fields = PyLong_AsLongLongAndOverflow(args[5], &overflow);
    if (fields == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow || fields < 0 || fields > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "fields does not fit uint32");
        return NULL;
    }
    int rc = ring_forward_locked(self, (int64_t)t, v[0], v[1], v[2], (int32_t)layer, (uint32_t)fields);
    return PyLong_FromLong(rc);
}

/* Ring.commit(seq, pending): RingWriter._commit for the records written by
 * Python (caller holds the lock): last_seq, events_written, then the tail
 * with one release store. */
static PyObject *Ring_commit(RingObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "commit() takes 2 arguments");
        return NULL;
    }
    unsigned long long seq = PyLong_AsUnsignedLongLong(args[0]);
    if (seq == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long long pending = PyLong_AsUnsignedLongLong(args[1]);
    if (pending == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if ((pending & 7u) != 0 || pending > self->cap) {
        PyErr_SetString(PyExc_ValueError, "pending must be a multiple of 8, at most the capacity");
        return NULL;
    }
    if (self->fork_gen != fork_generation) {
        /* Never reached: RingWriter checks closed first, and the at-fork
         * hook closed the ring. Do not publish into the parent's ring. */
        PyErr_SetString(PyExc_RuntimeError, "ring belongs to the parent process");
        return NULL;
    }
    uint64_t *st = self->st;
    st[ST_SEQ] = seq;
    st[ST_WRITTEN]++;
    st[ST_TAIL] += pending;
    store_relaxed(self->mem, OFF_LAST_SEQ, seq);
    store_relaxed(self->mem, OFF_WRITTEN, st[ST_WRITTEN]);
    store_release(self->mem, OFF_TAIL, st[ST_TAIL]);
    Py_RETURN_NONE;
}

static PyMethodDef Ring_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))Ring_forward, METH_FASTCALL,
     "forward(time_ns, gate, entropy, latency, layer, fields) -> 0 closed, 1 written, 2 dropped, "
     "3 full (Python's turn); the caller holds the lock"},
    {"commit", (PyCFunction)(void (*)(void))Ring_commit, METH_FASTCALL,
     "commit(seq, pending): publish a record written by Python; the caller holds the lock"},
    {NULL, NULL, 0, NULL},
};

static Py_ssize_t Ring_len(RingObject *self) { return ST_LEN; }

static PyObject *Ring_item(RingObject *self, Py_ssize_t i) {
    if (i < 0 || i >= ST_LEN) {
        PyErr_SetString(PyExc_IndexError, "ring state index out of range");
        return NULL;
    }
    if (i == ST_CLOSED) {
        return PyBool_FromLong(self->st[i] != 0);
    }
    return PyLong_FromUnsignedLongLong(self->st[i]);
}

static int Ring_ass_item(RingObject *self, Py_ssize_t i, PyObject *v) {
    if (i < 0 || i >= ST_LEN) {
        PyErr_SetString(PyExc_IndexError, "ring state index out of range");
        return -1;
    }
    if (v == NULL) {
        PyErr_SetString(PyExc_TypeError, "ring state items cannot be deleted");
        return -1;
    }
    if (i == ST_CLOSED) {
        int b = PyObject_IsTrue(v);
        if (b < 0) {
            return -1;
        }
        self->st[i] = (uint64_t)b;
        return 0;
    }
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    if (i == ST_TAIL && (x & 7u) != 0) {
        /* Records start 8-byte aligned; the bounds argument relies on it. */
        PyErr_SetString(PyExc_ValueError, "tail must be a multiple of 8");
        return -1;
    }
    self->st[i] = x;
    return 0;
}

static PySequenceMethods Ring_as_sequence = {
    .sq_length = (lenfunc)Ring_len,
    .sq_item = (ssizeargfunc)Ring_item,
    .sq_ass_item = (ssizeobjargproc)Ring_ass_item,
};

static PyObject *Ring_get_lock(RingObject *self, void *closure) {
    Py_INCREF(self->lock);
    return (PyObject *)self->lock;
}

static int Ring_set_lock(RingObject *self, PyObject *v, void *closure) {
    if (v == NULL || !PyObject_TypeCheck(v, &LockType)) {
        PyErr_SetString(PyExc_TypeError, "lock must be an _agaobs_fast.Lock");
        return -1;
    }
    Py_INCREF(v);
    Py_SETREF(self->lock, (LockObject *)v);
    return 0;
}

static PyObject *Ring_get_capacity(RingObject *self, void *closure) { return PyLong_FromUnsignedLongLong(self->cap); }

static PyGetSetDef Ring_getset[] = {
    {"lock", (getter)Ring_get_lock, (setter)Ring_set_lock, "the Lock serialising the writers of this ring", NULL},
    {"capacity", (getter)Ring_get_capacity, NULL, "data area size", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aga_observability._agaobs_fast.Ring",
    .tp_basicsize = sizeof(RingObject),
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Writer state of one ring over its mapping (a 6-item sequence: tail, seq, written, "
              "head cache, closed, dropped).",
    .tp_as_sequence = &Ring_as_sequence,
    .tp_methods = Ring_methods,
    .tp_getset = Ring_getset,
    .tp_new = Ring_new,
};

/* ------------------------------------------------------------------------ */
/* ForwardHandler                                                            */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback;      /* fallback(ev): every event the fast path does not take */
    RingObject *ring;        /* NULL: unbound */
    PyObject *poke;          /* RingWriter._poke */
    PyObject *write_forward; /* RingWriter.write_forward */
    PyObject *weakrefs;
} HandlerObject;

static PyTypeObject HandlerType;

/* Interned names and keys. */
static PyObject *s_type, *s_data, *s_timestamp, *s_forward;
static PyObject *k_gate, *k_entropy, *k_latency, *k_layer, *k_applied;
static PyObject *f_1e9;

/* fallback(ev) as the pure handler calls it inside its try: an Exception
 * from the first call runs it once more (the pure handler's except clause);
 * what that raises propagates. */
static PyObject *call_fallback(PyObject *fallback, PyObject *ev) {
    PyObject *r = PyObject_CallOneArg(fallback, ev);
    if (r == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        r = PyObject_CallOneArg(fallback, ev);
    }
    return r;
}

/* After an error of our own: an Exception goes to the fallback (the pure
 * handler's `except Exception: fallback(ev)`); anything else (a
 * KeyboardInterrupt) propagates as it would there. */
static PyObject *on_error(PyObject *fallback, PyObject *ev) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
    PyErr_Clear();
    return PyObject_CallOneArg(fallback, ev);
}

/* The hot step. Returns a new reference (None) or NULL with an exception. */
static PyObject *handle(PyObject *fallback, RingObject *ring, PyObject *poke, PyObject *write_forward,
                        PyObject *ev) {
    if (ring == NULL) {
        return call_fallback(fallback, ev);
    }
    PyObject *etype = PyObject_GetAttr(ev, s_type);
    if (etype == NULL) {
        return on_error(fallback, ev);
    }
    int is_forward = etype == s_forward ||
                     (PyUnicode_CheckExact(etype) && PyUnicode_Compare(etype, s_forward) == 0);
    Py_DECREF(etype);
    if (!is_forward) {
        /* Not exactly the str "forward" (a str subclass compares in the
         * general path, which handles forward events too). */
        return call_fallback(fallback, ev);
    }
    PyObject *data = PyObject_GetAttr(ev, s_data);
    if (data == NULL) {
        return on_error(fallback, ev);
    }
    PyObject *ts = NULL, *g = NULL, *e = NULL, *lat = NULL, *layer = NULL, *applied = NULL;
    PyObject *result = NULL;
    /* The pure handler's turns: `general` is its last `fallback(ev)` inside
     * the try (called once more if it raises), `once` its `except
     * Exception: fallback(ev)` (an event whose reading raised). */
    if (!PyDict_CheckExact(data)) {
        if (PyDict_Check(data)) {
            goto general; /* a dict subclass: the general path reads it */
        }
        goto once; /* d["gate_mean"] raises on None, lists, ... */
    }
    /* The five fields. One pass over a small dict finds aga-core's keys by
     * pointer (its dict literal's keys and ours are the same interned
     * strings), cheaper than five lookups; a key not found that way is
     * looked up by value, as d[key] does. Strong references before any
     * lookup: a key's __eq__ may run code that changes the dict. */
    {
        PyObject *keys[5] = {k_gate, k_entropy, k_latency, k_layer, k_applied};
        PyObject *vals[5] = {NULL, NULL, NULL, NULL, NULL};
        if (PyDict_GET_SIZE(data) <= 8) {
            Py_ssize_t pos = 0;
            PyObject *k, *v;
            int found = 0;
            while (found < 5 && PyDict_Next(data, &pos, &k, &v)) {
                for (int i = 0; i < 5; i++) {
                    if (k == keys[i]) {
                        if (vals[i] == NULL) {
                            found++;
                        }
                        vals[i] = v;
                        break;
                    }
                }
            }
        }
        for (int i = 0; i < 5; i++) {
            Py_XINCREF(vals[i]);
        }
        g = vals[0];
        e = vals[1];
        lat = vals[2];
        layer = vals[3];
        applied = vals[4];
        for (int i = 0; i < 5; i++) {
            if (vals[i] != NULL) {
                continue;
            }
            PyObject *v = PyDict_GetItemWithError(data, keys[i]);
            if (v == NULL) {
                if (PyErr_Occurred()) {
                    goto error;
                }
                goto once; /* missing: the pure KeyError */
            }
            Py_INCREF(v);
            switch (i) {
            case 0: g = v; break;
            case 1: e = v; break;
            case 2: lat = v; break;
            case 3: layer = v; break;
            default: applied = v; break;
            }
        }
    }
    /* bools are not numbers here; other types take the general path. */
    if (!PyFloat_CheckExact(g) || !PyFloat_CheckExact(e) || !PyFloat_CheckExact(lat) ||
        !PyLong_CheckExact(layer) || (applied != Py_True && applied != Py_False)) {
        goto general;
    }
    /* time_ns = int(ev.timestamp * 1e9), as the pure handler computes it. */
    ts = PyObject_GetAttr(ev, s_timestamp);
    if (ts == NULL) {
        goto error;
    }
    int64_t time_ns;
    if (PyFloat_CheckExact(ts) || PyLong_Check(ts)) {
        /* A float, or an int (bool too) converted as int * float does. */
        double tsd = PyFloat_CheckExact(ts) ? PyFloat_AS_DOUBLE(ts) : PyLong_AsDouble(ts);
        if (tsd == -1.0 && PyErr_Occurred()) {
            goto error; /* OverflowError, as int * 1e9 raises */
        }
        tsd *= 1e9;
        /* NaN, infinities (int() raises) and values outside int64 (pack_into
         * raises): the except clause; the general path clamps or uses now. */
        if (!(tsd >= -9223372036854775808.0 && tsd < 9223372036854775808.0)) {
            goto once;
        }
        time_ns = (int64_t)tsd; /* truncation toward zero, as int() */
    } else {
        /* Any other object: the same Python operations, in C. */
        PyObject *prod = PyNumber_Multiply(ts, f_1e9);
        if (prod == NULL) {
            goto error;
        }
        PyObject *li = PyNumber_Long(prod);
        Py_DECREF(prod);
        if (li == NULL) {
            goto error;
        }
        int ov = 0;
        long long v = PyLong_AsLongLongAndOverflow(li, &ov);
        Py_DECREF(li);
        if (v == -1 && PyErr_Occurred()) {
            goto error;
        }
        if (ov) {
            goto once; /* pack_into raises */
        }
        time_ns = (int64_t)v;
    }
    int overflow = 0;
    long lv = PyLong_AsLongAndOverflow(layer, &overflow);
    if (overflow || lv < INT32_MIN || lv > INT32_MAX) {
        goto once; /* pack_into raises; the general path clamps it to int32 */
    }
    uint32_t fields = applied == Py_True ? 31u : 30u;

    int rc;
    if (lock_try(ring->lock)) {
        rc = ring_forward_locked(ring, time_ns, PyFloat_AS_DOUBLE(g), PyFloat_AS_DOUBLE(e), PyFloat_AS_DOUBLE(lat),
                                 (int32_t)lv, fields);
        lock_release(ring->lock);
    } else {
        rc = FW_SLOW; /* a Python writer holds the lock: write_forward waits for it */
    }
    if (rc == FW_WRITTEN) {
        /* After the lock release; a missed wake-up costs one agent sleep. */
        uint32_t sleeping = le32toh(__atomic_load_n(hdr32(ring->mem, OFF_SLEEPING), __ATOMIC_ACQUIRE));
        /* RingWriter._poke does nothing for a generation it has poked
         * already: only a new one costs the Python call. */
        if (sleeping != 0 && sleeping != ring->poked_gen && poke != NULL) {
            ring->poked_gen = sleeping;
            PyObject *pr = PyObject_CallNoArgs(poke);
            if (pr == NULL) {
                goto error;
            }
            Py_DECREF(pr);
        }
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    if (rc == FW_DROPPED) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    if (rc == FW_SLOW && write_forward != NULL) {
        PyObject *tobj = PyLong_FromLongLong(time_ns);
        PyObject *fobj = tobj ? PyLong_FromUnsignedLong(fields) : NULL;
        if (fobj == NULL) {
            Py_XDECREF(tobj);
            goto error;
        }
        PyObject *argv[6] = {tobj, g, e, lat, layer, fobj};
        PyObject *wr = PyObject_Vectorcall(write_forward, argv, 6, NULL);
        Py_DECREF(tobj);
        Py_DECREF(fobj);
        if (wr == NULL) {
            goto error;
        }
        int ok = PyObject_IsTrue(wr);
        Py_DECREF(wr);
        if (ok < 0) {
            goto error;
        }
        if (ok) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
    }
    /* FW_CLOSED, or write_forward said closed: the general path. */
general:
    result = call_fallback(fallback, ev);
    goto done;
error:
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        goto done; /* a KeyboardInterrupt, ...: propagates (result NULL) */
    }
    PyErr_Clear();
once:
    result = PyObject_CallOneArg(fallback, ev);
done:
    Py_XDECREF(ts);
    Py_XDECREF(g);
    Py_XDECREF(e);
    Py_XDECREF(lat);
    Py_XDECREF(layer);
    Py_XDECREF(applied);
    Py_DECREF(data);
    return result;
}

static PyObject *Handler_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "handler(event) takes exactly one positional argument");
        return NULL;
    }
    HandlerObject *h = (HandlerObject *)self;
    /* One consistent binding for the whole call, held by strong references:
     * Python code run from here (a property of the event, the fallback) may
     * rebind or unbind the handler. */
    PyObject *fallback = h->fallback, *ring = (PyObject *)h->ring, *poke = h->poke, *wf = h->write_forward;
    if (fallback == NULL) { /* cleared by the garbage collector */
        Py_RETURN_NONE;
    }
    Py_INCREF(fallback);
    Py_XINCREF(ring);
    Py_XINCREF(poke);
    Py_XINCREF(wf);
    PyObject *r = handle(fallback, (RingObject *)ring, poke, wf, args[0]);
    Py_DECREF(fallback);
    Py_XDECREF(ring);
    Py_XDECREF(poke);
    Py_XDECREF(wf);
    return r;
}

static PyObject *Handler_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fallback", NULL};
    PyObject *fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:ForwardHandler", kwlist, &fallback)) {
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return NULL;
    }
    HandlerObject *self = (HandlerObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = Handler_vectorcall;
    Py_INCREF(fallback);
    self->fallback = fallback;
    return (PyObject *)self;
}

static int Handler_traverse(HandlerObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->fallback);
    Py_VISIT(self->ring);
    Py_VISIT(self->poke);
    Py_VISIT(self->write_forward);
    return 0;
}

static int Handler_clear(HandlerObject *self) {
    Py_CLEAR(self->ring);
    Py_CLEAR(self->poke);
    Py_CLEAR(self->write_forward);
    Py_CLEAR(self->fallback);
    return 0;
}

static void Handler_dealloc(HandlerObject *self) {
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Handler_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* bind(ring, poke, write_forward), or bind(None): swapped at once, so a
 * call in flight uses one ring consistently (it holds its own reference). */
static PyObject *Handler_bind(HandlerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "bind(ring, poke=None, write_forward=None)");
        return NULL;
    }
    PyObject *ring = args[0];
    PyObject *poke = nargs > 1 && args[1] != Py_None ? args[1] : NULL;
    PyObject *wf = nargs > 2 && args[2] != Py_None ? args[2] : NULL;
    if (ring == Py_None) {
        ring = NULL;
        poke = wf = NULL;
    } else if (!PyObject_TypeCheck(ring, &RingType)) {
        PyErr_SetString(PyExc_TypeError, "bind() needs an _agaobs_fast.Ring or None");
        return NULL;
    }
    Py_XINCREF(ring);
    Py_XINCREF(poke);
    Py_XINCREF(wf);
    PyObject *old_ring = (PyObject *)self->ring, *old_poke = self->poke, *old_wf = self->write_forward;
    self->ring = (RingObject *)ring;
    self->poke = poke;
    self->write_forward = wf;
    Py_XDECREF(old_ring);
    Py_XDECREF(old_poke);
    Py_XDECREF(old_wf);
    Py_RETURN_NONE;
}

static PyObject *Handler_get_bound(HandlerObject *self, void *closure) { return PyBool_FromLong(self->ring != NULL); }

static PyMethodDef Handler_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))Handler_bind, METH_FASTCALL,
     "bind(ring, poke, write_forward) points the handler at a ring; bind(None) unbinds it"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Handler_getset[] = {
    {"bound", (getter)Handler_get_bound, NULL, "whether a ring is bound", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject HandlerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aga_observability._agaobs_fast.ForwardHandler",
    .tp_basicsize = sizeof(HandlerObject),
    .tp_dealloc = (destructor)Handler_dealloc,
    .tp_vectorcall_offset = offsetof(HandlerObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "ForwardHandler(fallback): the EventBus \"*\" handler with the FORWARD fast path in C.",
    .tp_traverse = (traverseproc)Handler_traverse,
    .tp_clear = (inquiry)Handler_clear,
    .tp_weaklistoffset = offsetof(HandlerObject, weakrefs),
    .tp_methods = Handler_methods,
    .tp_getset = Handler_getset,
    .tp_new = Handler_new,
};

/* ------------------------------------------------------------------------ */
/* Module                                                                    */
/* ------------------------------------------------------------------------ */

static PyObject *fast_fork_generation(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromUnsignedLong(fork_generation);
}

static PyMethodDef module_methods[] = {
    {"fork_generation", fast_fork_generation, METH_NOARGS, "number of fork() children this process is (tests)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aga_observability._agaobs_fast",
    .m_doc = "Optional C fast path of aga_observability (FORWARD encode and publish).",
    .m_size = -1,
    .m_methods = module_methods,
};

static int intern(PyObject **slot, const char *s) {
    *slot = PyUnicode_InternFromString(s);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__agaobs_fast(void) {
    static int forked_hook = 0;
    if (intern(&s_type, "type") < 0 || intern(&s_data, "data") < 0 || intern(&s_timestamp, "timestamp") < 0 ||
        intern(&s_forward, "forward") < 0 || intern(&k_gate, "gate_mean") < 0 ||
        intern(&k_entropy, "entropy_mean") < 0 || intern(&k_latency, "latency_us") < 0 ||
        intern(&k_layer, "layer_idx") < 0 || intern(&k_applied, "aga_applied") < 0) {
        return NULL;
    }
    if (f_1e9 == NULL && (f_1e9 = PyFloat_FromDouble(1e9)) == NULL) {
        return NULL;
    }
    if (PyType_Ready(&LockType) < 0 || PyType_Ready(&RingType) < 0 || PyType_Ready(&HandlerType) < 0) {
        return NULL;
    }
    if (!forked_hook) {
        if (pthread_atfork(NULL, NULL, at_fork_child) != 0) {
            PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
            return NULL;
        }
        forked_hook = 1;
    }
    PyObject *m = PyModule_Create(&fast_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "ABI", ABI_VERSION) < 0 || PyModule_AddIntConstant(m, "FW_CLOSED", FW_CLOSED) < 0 ||
        PyModule_AddIntConstant(m, "FW_WRITTEN", FW_WRITTEN) < 0 ||
        PyModule_AddIntConstant(m, "FW_DROPPED", FW_DROPPED) < 0 || PyModule_AddIntConstant(m, "FW_SLOW", FW_SLOW) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&LockType);
    Py_INCREF(&RingType);
    Py_INCREF(&HandlerType);
    if (PyModule_AddObject(m, "Lock", (PyObject *)&LockType) < 0 ||
        PyModule_AddObject(m, "Ring", (PyObject *)&RingType) < 0 ||
        PyModule_AddObject(m, "ForwardHandler", (PyObject *)&HandlerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
