"""Producer side of the agaobs shared-memory ring format v1.

The normative description is docs/ring-format.md; the Go writer in
internal/shm is the reference implementation and produced the byte-exact
test vectors in testdata/ring/vectors.txt, which tests/test_vectors.py replays
through :class:`RingWriter`.

Publication rules that matter in Python (docs/ring-format.md §5.1):

* Record bytes are written with ``Struct.pack_into`` into the *data area*,
  beyond the published tail, where the agent does not look yet.
* Every word the agent reads concurrently (tail, last_seq, events_written,
  dropped counters, heartbeat, state, closed time, magic) is stored through
  ``memoryview(...).cast('Q'/'I')[i] = v``: CPython turns that into one
  aligned memcpy, i.e. a single store. ``struct.pack_into`` zeroes its target
  before writing, so it would let the agent see the tail go backwards.
* x86-64 keeps stores in program order, so "record bytes, then counters, then
  tail" is the release sequence the format asks for.

The optional C extension ``_agaobs_fast`` (``native/_agaobs_fast.c``) takes
over the hot step when it is built and loads (see :func:`use_native`):
:class:`NativeRingWriter` keeps the writer state in C and publishes the tail
with a release store, and its ``ForwardHandler`` encodes and publishes an
aga-core FORWARD event in one C call. Without it (or with
``AGAOBS_NATIVE=0``) everything here runs as pure Python.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import secrets
import stat
import struct
import threading
import time

MAGIC = 0x00474E4952414741  # b"AGARING\0" little-endian
VERSION_MAJOR = 1
VERSION_MINOR = 0
SCHEMA_VERSION = 1
HEADER_SIZE = 4096
IDENTITY_OFFSET = 0x800
MAX_IDENTITY_LEN = 2048
MIN_CAPACITY = 4096
MIN_MAX_RECORD_LEN = 64
MAX_DEFAULT_RECORD_LEN = 1 << 20
REC_HDR = 24

CLASS_HOT = 1
CLASS_AUDIT = 2
CLASS_NAMES = {CLASS_HOT: "hot", CLASS_AUDIT: "audit"}

STATE_INIT = 0
STATE_RUNNING = 1
STATE_CLOSED = 2

T_PADDING = 0
T_HELLO = 1
T_STATUS = 2
T_FORWARD = 3
T_RETRIEVAL = 4
T_AUDIT = 5
T_EVENT = 6

FLAG_TRUNCATED = 1

# FORWARD "fields" bits (format §4.1).
FWD_APPLIED = 1
FWD_HAS_GATE = 2
FWD_HAS_ENTROPY = 4
FWD_HAS_LATENCY = 8
FWD_HAS_LAYER = 16
# RETRIEVAL "fields" bits.
RET_HAS_LAYER = 1
RET_HAS_RESULTS = 2
RET_HAS_INJECTED = 4
RET_HAS_BUDGET = 8

FORWARD_LEN = REC_HDR + 32
RETRIEVAL_FIXED = 24

# Indexes into memoryview.cast('Q') (offset // 8) and cast('I') (offset // 4).
Q_MAGIC = 0x000 >> 3
Q_TAIL = 0x100 >> 3
Q_LAST_SEQ = 0x108 >> 3
Q_WRITTEN = 0x110 >> 3
Q_DROPPED = 0x118 >> 3
Q_HEARTBEAT = 0x180 >> 3
Q_CLOSED_TIME = 0x190 >> 3
Q_HEAD = 0x200 >> 3
Q_DROPPED_BY_TYPE = 0x400 >> 3
I_STATE = 0x188 >> 2
I_SLEEPING = 0x208 >> 2

# Results of the write methods. write_forward returns a bool instead (hot path).
OK = 0
DROPPED = 1
CLOSED = 2
TOO_LARGE = 3

# Immutable header fields from 0x008 to 0x057, packed once before the magic
# exists (no reader looks at a ring whose magic is 0).
_HEADER = struct.Struct("<HHIIIQIIQqIIQQII")
# Record header (len, type, flags, seq, time_ns) and the record kinds packed
# in one call each, header and body together.
_RECORD = struct.Struct("<IHHQq")
_PADDING = struct.Struct("<IHH")
_FORWARD = struct.Struct("<IHHQqdddiI")
_RETRIEVAL = struct.Struct("<IHHQqiiiiHHI")
_AUDIT = struct.Struct("<IHHQqQ")
_EVENT = struct.Struct("<IHHQqH")
_U16 = struct.Struct("<H")
assert _FORWARD.size == FORWARD_LEN

I32_MIN = -(1 << 31)
I32_MAX = (1 << 31) - 1
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1


def default_max_record_len(capacity: int) -> int:
    return min(capacity // 8, MAX_DEFAULT_RECORD_LEN)


# Indexes into RingWriter._st, the mutable writer state. It is a list so
# that the forward handler closure reaches it as cheaply as locals.
_TAIL, _SEQ, _WRITTEN, _HEAD, _CLOSED, _DROPPED = range(6)


class RingWriter:
    """The single writer of one ring (format §5.1), over any writable buffer.

    ``buf`` holds ``HEADER_SIZE + capacity`` zero bytes: an mmap of a ring
    file (see :func:`create_ring`) or a bytearray in the vector tests.
    Emitting threads are serialised by one lock per ring. The counters live
    in ``self._st`` and are mirrored into the header with single 8-byte
    stores.
    """

    def __init__(self, buf, *, ring_class: int, capacity: int, identity: bytes,
                 max_record_len: int = 0, epoch: int = 0, create_time_ns: int = 0,
                 pid: int = 0, instance: int = 0, pidns_inode: int = 0,
                 start_time_ticks: int = 0, audit_wait_ns: int = 200_000,
                 mono_now=time.monotonic_ns, doorbell=None, path: str = ""):
        if ring_class not in CLASS_NAMES:
            raise ValueError(f"unknown ring class {ring_class}")
        if capacity < MIN_CAPACITY or capacity & (capacity - 1):
            raise ValueError(f"capacity {capacity} is not a power of two >= {MIN_CAPACITY}")
        if not max_record_len:
            max_record_len = default_max_record_len(capacity)
        if max_record_len % 8 or not MIN_MAX_RECORD_LEN <= max_record_len <= capacity // 8:
            raise ValueError(f"max_record_len {max_record_len} outside [64, capacity/8]")
        if len(identity) > MAX_IDENTITY_LEN or REC_HDR + len(identity) > max_record_len:
            raise ValueError(f"identity is {len(identity)} bytes, too long")
        mv = memoryview(buf)
        if mv.nbytes != HEADER_SIZE + capacity:
            raise ValueError(f"buffer is {mv.nbytes} bytes, want {HEADER_SIZE + capacity}")
        while not epoch:
            epoch = secrets.randbits(64)
        self.ring_class = ring_class
        self.capacity = capacity
        self.max_record_len = max_record_len
        self.epoch = epoch
        self.instance = instance
        self.path = path
        self._set_lock(self._new_lock())
        self._mask = capacity - 1
        self._mono = mono_now
        self._doorbell = doorbell
        self._audit_wait_ns = audit_wait_ns if ring_class == CLASS_AUDIT else 0
        self._mv = mv
        self._q = mv.cast("Q")
        self._u32 = mv.cast("I")
        self._data = mv[HEADER_SIZE:]
        self._st = self._new_state(mv)  # tail, seq, written, head cache, closed, dropped
        self._audit_lost = 0
        self._last_poke = 0
        self._pending = 0

        # Format §2.1: every field but the magic, state = 1, heartbeat, HELLO,
        # then the magic with one 8-byte store.
        _HEADER.pack_into(mv, 8, VERSION_MAJOR, VERSION_MINOR, HEADER_SIZE, ring_class, 0,
                          capacity, max_record_len, len(identity), epoch, create_time_ns,
                          pid, instance, pidns_inode, start_time_ticks, IDENTITY_OFFSET,
                          SCHEMA_VERSION)
        mv[IDENTITY_OFFSET:IDENTITY_OFFSET + len(identity)] = identity
        self._u32[I_STATE] = STATE_RUNNING
        self.heartbeat()
        if self.write_record(T_HELLO, 0, create_time_ns, identity) != OK:
            raise ValueError("HELLO record does not fit")
        self._q[Q_MAGIC] = MAGIC

    def _new_lock(self):
        return threading.Lock()

    def _new_state(self, mv):
        """The mutable writer state: tail, seq, written, head cache, closed,
        dropped (indexes _TAIL ... _DROPPED)."""
        return [0, 0, 0, 0, False, 0]

    def _set_lock(self, lock) -> None:
        self._lock = lock
        self._acquire = lock.acquire
        self._release = lock.release

    # -- reservation and publication (called with the lock held) ---------------

    def _reserve(self, length: int, rtype: int) -> int:
        """Returns the data offset for a record of ``length`` bytes, with any
        padding record written, or -1 when the record was dropped."""
        st, cap = self._st, self.capacity
        need = (length + 7) & ~7
        tail = st[_TAIL]
        off = tail & self._mask
        pad = cap - off if off + need > cap else 0
        total = pad + need
        if tail + total - st[_HEAD] > cap:
            st[_HEAD] = self._q[Q_HEAD]  # reload the consumer's head
            if tail + total - st[_HEAD] > cap and not self._wait_for_space(total):
                self._drop(rtype)
                return -1
        if pad:
            _PADDING.pack_into(self._data, off, pad, T_PADDING, 0)
            off = 0
        self._pending = total
        return off

    def _wait_for_space(self, total: int) -> bool:
        """Audit ring bounded wait (format §5.1 step 3): poke the doorbell once
        and re-read head until ring_audit_wait_us has passed. Hot rings never
        wait. Busy polling is deliberate: the wait is short and rare."""
        wait = self._audit_wait_ns
        if wait <= 0:
            return False
        self._poke(True)
        q, cap, st = self._q, self.capacity, self._st
        need = st[_TAIL] + total - cap
        clock = time.perf_counter_ns
        deadline = clock() + wait
        while clock() < deadline:
            head = q[Q_HEAD]
            if head >= need:
                st[_HEAD] = head
                return True
        return False

    def _drop(self, rtype: int) -> None:
        """A full ring: count the record as dropped (format §5.1 step 3)."""
        st, q = self._st, self._q
        st[_SEQ] += 1
        st[_DROPPED] += 1
        q[Q_LAST_SEQ] = st[_SEQ]
        q[Q_DROPPED] = st[_DROPPED]
        q[Q_DROPPED_BY_TYPE + rtype] += 1  # read, add, one 8-byte store
        if self.ring_class == CLASS_AUDIT:
            self._audit_lost += 1

    def _commit(self, seq: int) -> None:
        st, q = self._st, self._q
        st[_SEQ] = seq
        st[_WRITTEN] += 1
        st[_TAIL] += self._pending
        q[Q_LAST_SEQ] = seq
        q[Q_WRITTEN] = st[_WRITTEN]
        q[Q_TAIL] = st[_TAIL]  # the commit point: one 8-byte store

    # -- doorbell (format §5.3); called after the lock is released ----------

    def _poke(self, force: bool = False) -> None:
        gen = self._u32[I_SLEEPING]
        if not gen or (gen == self._last_poke and not force) or self._doorbell is None:
            return
        self._last_poke = gen
        self._doorbell.poke()

    # -- record writers ------------------------------------------------------

    def write_forward(self, time_ns, gate, entropy, latency, layer, fields) -> bool:
        """One FORWARD record. Returns False only when the ring is closed (or
        belongs to the parent of a forked process). Raises struct.error,
        before anything is published, when a value does not fit its field."""
        self._acquire()
        try:
            st = self._st
            if st[_CLOSED]:
                return False
            off = self._reserve(FORWARD_LEN, T_FORWARD)
            if off < 0:
                return True  # dropped and counted
            seq = st[_SEQ] + 1
            _FORWARD.pack_into(self._data, off, FORWARD_LEN, T_FORWARD, 0, seq, time_ns,
                               gate, entropy, latency, layer, fields)
            self._commit(seq)
        finally:
            self._release()
        self._poke()
        return True

    def write_record(self, rtype: int, flags: int, time_ns: int, body: bytes) -> int:
        """Any record with a raw body (HELLO, STATUS)."""
        length = REC_HDR + len(body)
        if length > self.max_record_len:
            return TOO_LARGE
        with self._lock:
            if self._st[_CLOSED]:
                return CLOSED
            off = self._reserve(length, rtype)
            if off < 0:
                return DROPPED
            seq = self._st[_SEQ] + 1
            data = self._data
            _RECORD.pack_into(data, off, length, rtype, flags, seq, time_ns)
            data[off + REC_HDR:off + length] = body
            self._commit(seq)
        self._poke()
        return OK

    def write_event(self, time_ns: int, name: bytes, payload: bytes, flags: int = 0) -> int:
        """EVENT: u16 name length, name, JSON data."""
        nlen = len(name)
        if not 0 < nlen <= 0xFFFF:
            return TOO_LARGE
        length = REC_HDR + 2 + nlen + len(payload)
        if length > self.max_record_len:
            return TOO_LARGE
        with self._lock:
            if self._st[_CLOSED]:
                return CLOSED
            off = self._reserve(length, T_EVENT)
            if off < 0:
                return DROPPED
            seq = self._st[_SEQ] + 1
            data = self._data
            _EVENT.pack_into(data, off, length, T_EVENT, flags, seq, time_ns, nlen)
            p = off + REC_HDR + 2
            data[p:p + nlen] = name
            data[p + nlen:off + length] = payload
            self._commit(seq)
        self._poke()
        return OK

    def write_audit(self, time_ns: int, obj: bytes, flags: int = 0) -> int:
        """AUDIT: u64 lost_before (maintained here), then the JSON object."""
        length = REC_HDR + 8 + len(obj)
        if length > self.max_record_len:
            return TOO_LARGE
        with self._lock:
            if self._st[_CLOSED]:
                return CLOSED
            off = self._reserve(length, T_AUDIT)
            if off < 0:
                return DROPPED
            seq = self._st[_SEQ] + 1
            data = self._data
            _AUDIT.pack_into(data, off, length, T_AUDIT, flags, seq, time_ns, self._audit_lost)
            data[off + REC_HDR + 8:off + length] = obj
            self._audit_lost = 0
            self._commit(seq)
        self._poke()
        return OK

    def write_retrieval(self, time_ns: int, layer: int, results: int, injected: int,
                        budget: int, fields: int, scores, ids) -> int:
        """RETRIEVAL; ``ids`` are UTF-8 bytes. Trailing ids that do not fit
        max_record_len are left out and the record is flagged truncated."""
        flags = 0
        nscores = len(scores)
        room = self.max_record_len - REC_HDR - RETRIEVAL_FIXED - 8 * nscores
        if room < 0 or nscores > 0xFFFF:
            return TOO_LARGE
        idlen = 0
        for i, b in enumerate(ids):
            if len(b) > 0xFFFF:
                return TOO_LARGE
            if idlen + 2 + len(b) > room or i == 0xFFFF:
                ids = ids[:i]
                flags = FLAG_TRUNCATED
                break
            idlen += 2 + len(b)
        length = REC_HDR + RETRIEVAL_FIXED + 8 * nscores + idlen
        with self._lock:
            if self._st[_CLOSED]:
                return CLOSED
            off = self._reserve(length, T_RETRIEVAL)
            if off < 0:
                return DROPPED
            seq = self._st[_SEQ] + 1
            data = self._data
            _RETRIEVAL.pack_into(data, off, length, T_RETRIEVAL, flags, seq, time_ns,
                                 layer, results, injected, budget, nscores, len(ids), fields)
            p = off + REC_HDR + RETRIEVAL_FIXED
            if nscores:
                struct.pack_into("<%dd" % nscores, data, p, *scores)
                p += 8 * nscores
            for b in ids:
                _U16.pack_into(data, p, len(b))
                data[p + 2:p + 2 + len(b)] = b
                p += 2 + len(b)
            self._commit(seq)
        self._poke()
        return OK

    # -- housekeeping ----------------------------------------------------------

    def heartbeat(self) -> None:
        if not self._st[_CLOSED]:
            self._q[Q_HEARTBEAT] = self._mono()

    def mark_closed(self, time_ns: int) -> None:
        """closed_time_ns, then state = 2 (format §5.1), then wake the agent so
        it drains the ring now."""
        with self._lock:
            if self._st[_CLOSED]:
                return
            self._st[_CLOSED] = True
            self._q[Q_CLOSED_TIME] = time_ns & 0xFFFFFFFFFFFFFFFF
            self._u32[I_STATE] = STATE_CLOSED
        self._poke(True)

    def disown(self) -> None:
        """In a forked child: stop using this ring without touching it (the
        mapping is shared with the parent, which still writes it). Runs in
        the at-fork hook, where only the forking thread exists; the lock may
        have been held by a thread that does not exist here, so it is
        replaced (and the forward handler is unbound from this writer)."""
        self._set_lock(self._new_lock())
        self._st[_CLOSED] = True
        self._doorbell = None

    @property
    def closed(self) -> bool:
        return bool(self._st[_CLOSED])

    def stats(self) -> dict:
        with self._lock:
            st = self._st
            return {"path": self.path, "class": CLASS_NAMES[self.ring_class],
                    "capacity": self.capacity, "tail": st[_TAIL], "last_seq": st[_SEQ],
                    "written": st[_WRITTEN], "dropped": st[_DROPPED],
                    "head": self._q[Q_HEAD], "closed": bool(st[_CLOSED])}


def make_forward_handler(fallback, native: bool = False):
    """The EventBus "*" handler of a producer, and the function that points
    it at the producer's current hot ring: ``bind(writer)`` (None while there
    is no usable ring: everything then goes to the fallback).

    With ``native`` (and the extension loaded) the handler is the C
    ``ForwardHandler``, which does what the closure below does in one C call
    for a :class:`NativeRingWriter`; bound to any other writer it sends every
    event to the fallback (the general path).

    aga-core forward events (float gate_mean, entropy_mean, latency_us, int
    layer_idx, bool aga_applied) go straight into a FORWARD record: one
    pack_into of header and body, three 8-byte stores, tail last. Everything
    else, and anything unexpected, goes to ``fallback(ev)``, which must not
    raise. This runs on the inference thread for every hooked layer call, so
    it works on locals (cheaper than attribute lookups), uses the lock's bound
    acquire/release (cheaper than ``with``) and handles a full ring inline;
    only a wrap (padding record) and a closed ring go through write_forward.

    The handler stays subscribed for the producer's life; bind swaps one
    tuple, so a call in flight uses one writer consistently (a forked child
    rebinds to its own rings without touching the bus or the parent's lock).
    """
    m = native_module() if native else None
    if m is not None:
        fast = m.ForwardHandler(fallback)

        def bind_native(w):
            if isinstance(w, NativeRingWriter):
                fast.bind(w._st, w._poke, w.write_forward)
            else:
                fast.bind(None)

        return fast, bind_native

    ctx = [None]

    def bind(w):
        ctx[0] = None if w is None else (
            w._st, w._acquire, w._release, _FORWARD.pack_into, w._data, w._q, w._u32,
            w.capacity, w._mask, w.write_forward, w._poke)

    def handler(ev, _type=type, _float=float, _int=int):
        try:
            c = ctx[0]
            if c is not None and ev.type == "forward":
                d = ev.data
                g = d["gate_mean"]
                e = d["entropy_mean"]
                lat = d["latency_us"]
                layer = d["layer_idx"]
                applied = d["aga_applied"]
                # bools are not numbers here; other types take the general path.
                if (_type(g) is _float and _type(e) is _float and _type(lat) is _float
                        and _type(layer) is _int and (applied is True or applied is False)):
                    st, acquire, release, pack, data, q, u32, cap, mask, write_forward, poke = c
                    # st is RingWriter._st: [tail, seq, written, head cache, closed, dropped]
                    fields = 31 if applied else 30
                    t = _int(ev.timestamp * 1e9)
                    acquire()
                    try:
                        tail = st[0]
                        off = tail & mask
                        if off + FORWARD_LEN <= cap and tail + FORWARD_LEN - st[3] <= cap and not st[4]:
                            # The common case: room before the end and below head.
                            seq = st[1] + 1
                            # Raises struct.error (layer outside i32) before
                            # anything is published.
                            pack(data, off, FORWARD_LEN, T_FORWARD, 0, seq, t, g, e, lat,
                                 layer, fields)
                            st[1] = seq
                            st[2] = written = st[2] + 1
                            st[0] = tail = tail + FORWARD_LEN
                            q[Q_LAST_SEQ] = seq
                            q[Q_WRITTEN] = written
                            q[Q_TAIL] = tail  # the commit point: one 8-byte store
                        elif not st[4]:
                            # Where the record would end, after padding if it wraps.
                            end = tail + FORWARD_LEN + (cap - off if off + FORWARD_LEN > cap else 0)
                            if end - st[3] > cap:
                                st[3] = q[Q_HEAD]  # reload the consumer's head
                            if end - st[3] > cap:
                                # Full: drop the newest and count it (§5.1 step 3).
                                st[1] = seq = st[1] + 1
                                st[5] = dropped = st[5] + 1
                                q[Q_LAST_SEQ] = seq
                                q[Q_DROPPED] = dropped
                                q[Q_DROPPED_BY_TYPE + T_FORWARD] += 1
                                off = -2
                            else:
                                off = -1  # wrapping or room after the reload: write_forward
                        else:
                            off = -1  # closed: write_forward says so
                    finally:
                        release()
                    if off == -2:
                        return
                    if off >= 0:
                        # Checked after the lock release, which is the
                        # store->load fence the flag check needs (a missed
                        # wake-up costs one agent sleep timeout).
                        if u32[I_SLEEPING]:
                            poke()
                        return
                    if write_forward(t, g, e, lat, layer, fields):
                        return
            fallback(ev)
        except Exception:
            fallback(ev)

    return handler, bind


# -- the optional C fast path --------------------------------------------------

logger = logging.getLogger("aga_observability")

NATIVE_ENV = "AGAOBS_NATIVE"   # 0/false/no/off: the extension is not imported
NATIVE_ABI = 1                 # what _agaobs_fast.ABI must say
_native = {"tried": False, "module": None, "error": None}


def native_module():
    """The C extension ``aga_observability._agaobs_fast``, or None when it
    is absent, does not load or has another ABI (:func:`native_error` says
    why). Imported at most once; never raises."""
    st = _native
    if not st["tried"]:
        st["tried"] = True
        try:
            from . import _agaobs_fast as m  # type: ignore
            abi = getattr(m, "ABI", None)
            if abi != NATIVE_ABI:
                raise ImportError(f"{m.__file__}: ABI {abi!r}, want {NATIVE_ABI}")
            st["module"] = m
        except Exception as e:  # absent (pure wheel), built for another interpreter, broken
            st["error"] = f"{type(e).__name__}: {e}"
            if not isinstance(e, ModuleNotFoundError):
                logger.debug("aga_observability: C extension not used (%s)", st["error"])
    return st["module"]


def native_error():
    """Why :func:`native_module` is None (None when it loaded or was not tried)."""
    return _native["error"]


def _native_env_on() -> bool:
    return os.environ.get(NATIVE_ENV, "").strip().lower() not in ("0", "false", "no", "off")


# Whether producers use the C fast path: on when the extension loads, unless
# AGAOBS_NATIVE=0 (then it is not even imported).
_native_on = [_native_env_on() and native_module() is not None]


def use_native(on=None) -> bool:
    """Whether producers created from now on use the C fast path. ``on``
    True/False sets it (tests, the benchmark); True imports the extension
    even under AGAOBS_NATIVE=0 and leaves it off when the extension is not
    available. Returns the setting now in force."""
    if on is not None:
        _native_on[0] = bool(on) and native_module() is not None
    return _native_on[0]


class NativeRingWriter(RingWriter):
    """A RingWriter whose state lives in the C extension: ``_st`` is an
    ``_agaobs_fast.Ring`` (the same six counters, read and written by the
    methods above through the sequence protocol, plus the mapping held as a
    Py_buffer) and the lock an ``_agaobs_fast.Lock``, which the C
    ForwardHandler try-acquires. FORWARD records (write_forward, and the
    handler's fast path) are reserved, encoded and published in C; every
    other record kind is written by the Python methods and published by
    ``Ring.commit``: the tail with one release store on every architecture."""

    def _new_lock(self):
        return native_module().Lock()

    def _new_state(self, mv):
        # An audit ring's full case (bounded wait, lost_before) stays in Python.
        return native_module().Ring(mv, self.capacity, self._lock, self.ring_class == CLASS_AUDIT)

    def _set_lock(self, lock) -> None:
        super()._set_lock(lock)
        st = getattr(self, "_st", None)
        if st is not None:
            st.lock = lock  # the lock the C handler takes

    def _commit(self, seq: int) -> None:
        self._st.commit(seq, self._pending)

    def write_forward(self, time_ns, gate, entropy, latency, layer, fields) -> bool:
        """RingWriter.write_forward in C. Raises (OverflowError, TypeError)
        before anything is published when a value does not fit its field."""
        if self.ring_class == CLASS_AUDIT:
            return super().write_forward(time_ns, gate, entropy, latency, layer, fields)
        self._acquire()
        try:
            rc = self._st.forward(time_ns, gate, entropy, latency, layer, fields)
        finally:
            self._release()
        if rc == 1:  # written (0 closed, 2 dropped and counted)
            self._poke()
        return rc != 0


# -- ring files ----------------------------------------------------------------

DOORBELL_NAME = "agaobs.doorbell"


def ensure_ring_dir(path: str) -> None:
    """Creates the ring directory if it is missing (format §1: mode 1777, set
    with chmod so the umask does not matter). An existing directory is left
    as it is (the agent may manage it as 2770). Raises OSError when the
    directory cannot be used."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, 0o755, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # another process won the race; it sets the mode
        else:
            os.chmod(path, 0o1777)
        st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "ring dir is not a directory", path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "ring dir is not writable", path)


def process_info():
    """(pid, pidns inode, start time ticks) as the ring header records them."""
    pid = os.getpid()
    try:
        pidns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pidns = 0
    try:
        with open("/proc/self/stat", "rb") as f:
            raw = f.read()
        # Field 22; the command (field 2) may contain spaces and parentheses.
        start = int(raw[raw.rindex(b")") + 1:].split()[19])
    except (OSError, ValueError, IndexError):
        start = 0
    return pid, pidns, start


def ring_file_name(pid: int, pidns: int, instance: int, ring_class: int) -> str:
    return f"agaobs-{pid}-{pidns}-{instance}-{CLASS_NAMES[ring_class]}.ring"


def create_ring(directory: str, *, ring_class: int, capacity: int, identity: bytes,
                instance: int, proc=None, audit_wait_ns: int = 200_000,
                doorbell=None, max_record_len: int = 0, native: bool = False) -> RingWriter:
    """Creates a ring file as format §1/§2.1 says: hidden temporary file,
    ftruncate (zero fill), header and HELLO, magic last, fchmod, rename.
    With ``native`` (and the extension loaded) the writer is a
    :class:`NativeRingWriter`; one that cannot be made falls back to the
    pure RingWriter (fail-open)."""
    pid, pidns, start = proc or process_info()
    name = ring_file_name(pid, pidns, instance, ring_class)
    final = os.path.join(directory, name)
    tmp = os.path.join(directory, f".{name}.tmp-{secrets.token_hex(6)}")
    size = HEADER_SIZE + capacity
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)
        # Allocate every page now: a full /dev/shm then fails here (the client
        # disables itself) instead of raising SIGBUS on a later store into a
        # hole. MAP_POPULATE also spares the emitting thread the page faults.
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
        mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                       prot=mmap.PROT_READ | mmap.PROT_WRITE)
        kw = dict(ring_class=ring_class, capacity=capacity, identity=identity,
                  max_record_len=max_record_len, create_time_ns=time.time_ns(),
                  pid=pid, instance=instance, pidns_inode=pidns,
                  start_time_ticks=start, audit_wait_ns=audit_wait_ns,
                  doorbell=doorbell, path=final)
        writer = None
        if native and native_module() is not None:
            try:
                # Its own parts (lock, state) fail before anything is written.
                writer = NativeRingWriter(mm, **kw)
            except Exception as e:
                logger.debug("aga_observability: native ring writer unavailable (%s); "
                             "using the pure-Python one", e)
        if writer is None:
            writer = RingWriter(mm, **kw)
        # Group-writable only in a setgid (agent-managed) directory, so the
        # agent's group can release space; otherwise owner-only. fchmod does
        # not depend on the umask.
        mode = 0o660 if os.stat(directory).st_mode & stat.S_ISGID else 0o600
        os.fchmod(fd, mode)
        os.rename(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)
    return writer


class Doorbell:
    """Pokes the agent's FIFO ``<ring_dir>/agaobs.doorbell`` (format §5.3).

    Opened lazily with O_WRONLY|O_NONBLOCK; when there is no reader (ENXIO),
    no FIFO (ENOENT) or the path is not a FIFO it retries at most once a
    second. A full pipe (EAGAIN) already holds a wake-up. EPIPE (the agent
    went away; CPython ignores SIGPIPE) closes the descriptor for a reopen.
    Poking is rare (once per agent sleep), so a lock is cheap here."""

    def __init__(self, path: str):
        self.path = path
        self._fd = -1
        self._next_open = 0
        self._lock = threading.Lock()
        self.pokes = 0

    def poke(self) -> None:
        with self._lock:
            fd = self._fd
            if fd < 0:
                now = time.monotonic_ns()
                if now < self._next_open:
                    return
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
                except OSError:
                    self._next_open = now + 1_000_000_000
                    return
                try:
                    is_fifo = stat.S_ISFIFO(os.fstat(fd).st_mode)
                except OSError:
                    is_fifo = False
                if not is_fifo:
                    os.close(fd)
                    self._next_open = now + 1_000_000_000
                    return
                self._fd = fd
            try:
                os.write(fd, b"\x01")
                self.pokes += 1
            except BlockingIOError:
                pass
            except OSError:  # BrokenPipeError and anything else: reopen later
                try:
                    os.close(fd)
                except OSError:
                    pass
                self._fd = -1

    def after_fork_child(self) -> None:
        self._lock = threading.Lock()
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = -1
        self._next_open = 0
