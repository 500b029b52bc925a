"""The C extension (native/_agaobs_fast.c) against the pure-Python path:
the same bytes for the same events (wrap, drops and the general path
included), the lock it shares with the Python writers, bounds checks on the
mapping, fork, garbage collection, fail-open, and AGAOBS_NATIVE=0.

Every test here needs the extension: it skips without it, and fails under
AGAOBS_TEST_REQUIRE_NATIVE=1 (make test-python)."""

import gc
import mmap
import os
import subprocess
import sys
import threading
import unittest
import warnings
import weakref

from aga_observability import encode, ring

import ringreader
import standin
from helpers import RingTestCase, require_native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # clients/python
IDENTITY = b'{"producer":"t","instance":0,"schema_version":1}'


class Odd:
    """An event whose attributes are whatever the test says."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class Tag(str):
    pass


class Data(dict):
    pass


class Decimalish:
    """A timestamp that is no float or int but multiplies like one."""

    def __init__(self, v):
        self.v = v

    def __mul__(self, other):
        return self.v * other

    __rmul__ = __mul__


def odd_events():
    """Events around every edge of the fast path (each must leave the same
    record as the pure path: FORWARD from the fast or the general path, or
    EVENT), with fixed timestamps."""
    fd = standin.forward_data
    base = {"aga_applied": True, "gate_mean": 0.5, "entropy_mean": 1.25, "layer_idx": 7, "latency_us": 9.5}
    return [
        standin.Event("forward", 1.5, fd(1)),
        standin.Event("forward", 1.5, dict(base, aga_applied=False)),
        standin.Event("forward", 1.5, dict(base, layer_idx=1 << 31)),      # clamped by the general path
        standin.Event("forward", 1.5, dict(base, layer_idx=-(1 << 31))),   # fits
        standin.Event("forward", 1.5, dict(base, layer_idx=-(1 << 40))),
        standin.Event("forward", 1.5, dict(base, layer_idx=True)),         # bool: EVENT
        standin.Event("forward", 1.5, dict(base, gate_mean=1)),            # int gate: general path
        standin.Event("forward", 1.5, dict(base, gate_mean=True)),         # bool gate: EVENT
        standin.Event("forward", 1.5, dict(base, aga_applied=1)),          # int applied: general path
        standin.Event("forward", 1.5, dict(base, aga_applied=None)),
        standin.Event("forward", 1.5, dict(base, entropy_mean=float("nan"))),
        standin.Event("forward", 1.5, dict(base, latency_us=float("inf"))),
        standin.Event("forward", 1.5, {"gate_mean": 0.1}),                 # missing keys
        standin.Event("forward", 1.5, {}),
        standin.Event("forward", 1.5, Data(base)),                         # dict subclass
        standin.Event(Tag("forward"), 1.5, dict(base)),                    # str subclass type
        standin.Event("forward", 1, dict(base)),                           # int timestamp
        standin.Event("forward", -2.75, dict(base)),                       # before the epoch
        standin.Event("forward", 1e10, dict(base)),                        # beyond int64 ns: clamped
        standin.Event("forward", -1e10, dict(base)),
        standin.Event("forward", float("nan"), dict(base)),                # now_ns()
        standin.Event("forward", float("inf"), dict(base)),
        standin.Event("forward", True, dict(base)),                        # bool: True * 1e9
        standin.Event("forward", 10 ** 400, dict(base)),                   # int too large for a float
        standin.Event("forward", 1 << 62, dict(base)),                     # beyond int64 ns
        standin.Event("forward", "1.5", dict(base)),                       # no number: now_ns()
        standin.Event("forward", None, dict(base)),
        standin.Event("forward", Decimalish(2), dict(base)),               # * 1e9 and int() work
        standin.Event("forward", 1.5, None),
        standin.Event("forward", 1.5, [1, 2]),
        standin.Event("retrieval", 1.5, {"layer_idx": 1, "ids": ["a"], "scores": [0.5]}),
        standin.Event("custom", 1.5, {"x": 1}),
        Odd(type="forward", data=dict(base), timestamp=2.5),
        Odd(type="forward", data=dict(base)),                               # no timestamp
        Odd(data=dict(base), timestamp=2.5),                                 # no type
        Odd(type=None, data=None, timestamp=None),
        None,
    ]


def pair(capacity=4096, max_record_len=512):
    """Two rings with equal parameters, each with its handler: the pure one
    and the native one. The fallback mirrors Producer._general for forward,
    retrieval and plain events (with a fixed clock)."""
    out = []
    for native in (False, True):
        buf = bytearray(ring.HEADER_SIZE + capacity)
        cls = ring.NativeRingWriter if native else ring.RingWriter
        w = cls(buf, ring_class=ring.CLASS_HOT, capacity=capacity, identity=IDENTITY,
                max_record_len=max_record_len, epoch=7, create_time_ns=11, pid=13, instance=0,
                pidns_inode=17, start_time_ticks=19, audit_wait_ns=0, mono_now=lambda: 23)
        errors = []

        def general(ev, w=w, errors=errors):
            try:
                t = encode.time_ns_of(ev, lambda: 42)
                etype, data = getattr(ev, "type", None), getattr(ev, "data", None)
                if etype == "forward":
                    f = encode.forward_fields(data)
                    if f is not None:
                        w.write_forward(t, *f)
                        return
                elif etype == "retrieval":
                    r = encode.retrieval_fields(data)
                    if r is not None and w.write_retrieval(t, *r) != ring.TOO_LARGE:
                        return
                name, payload, flags = encode.event_body(encode.event_name(etype), data,
                                                         w.max_record_len - ring.REC_HDR)
                w.write_event(t, name, payload, flags)
            except Exception as e:  # noqa: BLE001 - counted like Producer.errors
                errors.append(e)

        handler, bind = ring.make_forward_handler(general, native=native)
        bind(w)
        out.append((buf, w, handler, errors))
    return out


class NativeTestCase(unittest.TestCase):
    def setUp(self):
        require_native(self)
        self.m = ring.native_module()


class SameBytesTest(NativeTestCase):
    """The pure and the native handler leave the same ring, byte for byte."""

    def test_handler_is_native(self):
        (_, _, pure, _), (_, _, fast, _) = pair()
        self.assertIsInstance(fast, self.m.ForwardHandler)
        self.assertNotIsInstance(pure, self.m.ForwardHandler)
        self.assertTrue(fast.bound)

    def check_same(self, a, b):
        (buf_a, w_a, _, err_a), (buf_b, w_b, _, err_b) = a, b
        self.assertEqual(w_a.stats(), w_b.stats())
        self.assertEqual((err_a, err_b), ([], []))
        if buf_a != buf_b:
            diff = next(i for i in range(len(buf_a)) if buf_a[i] != buf_b[i])
            self.fail(f"native ring differs from the pure one at offset {diff:#x}")

    def test_odd_events(self):
        a, b = pair(capacity=1 << 16, max_record_len=4096)
        for ev in odd_events():
            a[2](ev)
            b[2](ev)
        self.check_same(a, b)
        recs = ringreader.Reader(bytearray(b[0])).poll()  # what the agent reads
        kinds = [r["type"] for r in recs]
        self.assertEqual(len(recs), len(odd_events()) + 1, kinds)
        self.assertGreater(kinds.count("forward"), 15, kinds)
        self.assertGreater(kinds.count("event"), 5, kinds)

    def test_wrap_drops_and_other_records(self):
        """A 4 KiB ring: wraps (padding), a full ring (drops counted by type),
        the consumer releasing space, and Python-written records in between."""
        a, b = pair()
        for i in range(1500):
            ev = standin.Event("forward", 1.0 + i / 1e3, standin.forward_data(i))
            for buf, w, h, _ in (a, b):
                h(ev)
                if i % 7 == 0:
                    w.write_event(i, b"custom", b'{"i":%d}' % i)
                if i % 11 == 0:
                    w.write_record(ring.T_STATUS, 0, i, b"{}")
                if i % 97 == 0:
                    h(standin.Event("forward", 2.0, {"gate_mean": 1}))  # the general path
                if i % 150 == 0:  # the consumer releases everything committed
                    q = memoryview(buf).cast("Q")
                    q[ring.Q_HEAD] = q[ring.Q_TAIL]
        self.check_same(a, b)
        st = b[1].stats()
        self.assertGreater(st["dropped"], 100)
        self.assertGreater(st["tail"], 4 * 4096)  # wrapped several times
        q = memoryview(b[0]).cast("Q")
        self.assertGreater(q[ring.Q_DROPPED_BY_TYPE + ring.T_FORWARD], 0)
        self.assertEqual(q[ring.Q_TAIL], st["tail"])
        self.assertEqual(q[ring.Q_LAST_SEQ], st["last_seq"])
        self.assertEqual(q[ring.Q_DROPPED], st["dropped"])

    def test_closed_ring(self):
        a, b = pair()
        for buf, w, h, _ in (a, b):
            h(standin.Event("forward", 1.0, standin.forward_data(1)))
            w.mark_closed(5)
            h(standin.Event("forward", 1.0, standin.forward_data(2)))  # closed: nothing
            self.assertFalse(w.write_forward(1, 0.0, 0.0, 0.0, 0, 0))
        self.check_same(a, b)
        self.assertEqual(b[1].stats()["written"], 2)  # HELLO, one FORWARD


class HandlerTest(NativeTestCase):
    def writer(self, capacity=4096):
        buf = bytearray(ring.HEADER_SIZE + capacity)
        w = ring.NativeRingWriter(buf, ring_class=ring.CLASS_HOT, capacity=capacity, identity=IDENTITY)
        return buf, w

    def test_lock_held_by_a_python_writer(self):
        """While another thread holds the ring's lock (a Python writer in its
        critical section) the handler never writes: it hands the record to
        write_forward, which waits for the lock."""
        buf, w = self.writer()
        calls, fallbacks = [], []
        h = self.m.ForwardHandler(fallbacks.append)
        h.bind(w._st, w._poke, lambda *a: calls.append(a) or True)
        held, release = threading.Event(), threading.Event()

        def holder():
            with w._lock:
                held.set()
                release.wait(10)
        th = threading.Thread(target=holder)
        th.start()
        try:
            self.assertTrue(held.wait(10))
            before = w._st[ring._TAIL]  # (stats() would wait for the lock)
            h(standin.Event("forward", 2.5, {"aga_applied": False, "gate_mean": 0.25, "entropy_mean": 0.5,
                                             "layer_idx": -3, "latency_us": 7.0}))
            self.assertEqual(w._st[ring._TAIL], before)  # nothing written in C
        finally:
            release.set()
            th.join()
        self.assertEqual(calls, [(2500000000, 0.25, 0.5, 7.0, -3, 30)])
        self.assertEqual(fallbacks, [])
        # The real write_forward, uncontended: written.
        h.bind(w._st, w._poke, w.write_forward)
        h(standin.Event("forward", 2.5, standin.forward_data(1)))
        self.assertEqual(w.stats()["written"], 2)

    def test_write_forward_closed_goes_to_fallback(self):
        buf, w = self.writer()
        fallbacks = []
        h = self.m.ForwardHandler(fallbacks.append)
        h.bind(w._st, w._poke, lambda *a: False)  # "closed"
        with w._lock:
            th = threading.Thread(target=h, args=(standin.Event("forward", 1.0, standin.forward_data(1)),))
            th.start()
            th.join()
        self.assertEqual(len(fallbacks), 1)

    def test_fail_open_as_the_pure_handler(self):
        """Errors take the same turns as in the pure handler: an Exception
        while reading the event goes to the fallback (whose own error then
        propagates); the fallback of an event the fast path does not take
        is called once more when it raises; a BaseException that is not an
        Exception propagates; a poke that raises hands the event to the
        fallback too."""
        class Boom:
            @property
            def type(self):
                raise RuntimeError("no type")

        class Interrupt:
            @property
            def type(self):
                raise KeyboardInterrupt

        def scenario(native):
            buf = bytearray(ring.HEADER_SIZE + 4096)
            cls = ring.NativeRingWriter if native else ring.RingWriter
            w = cls(buf, ring_class=ring.CLASS_HOT, capacity=4096, identity=IDENTITY)
            seen, fails, out = [], [0], []

            def fallback(ev):
                seen.append(ev)
                if fails[0]:
                    fails[0] -= 1
                    raise ValueError("fallback fails")
            h, bind = ring.make_forward_handler(fallback, native=native)
            bind(w)
            self.assertIs(isinstance(h, self.m.ForwardHandler), native)
            full = standin.forward_data(1)
            cases = [(Boom(), 0), (Boom(), 1), (Interrupt(), 0), (None, 1), (None, 2),
                     (standin.Event("custom", 1.0, {}), 1),
                     (standin.Event("forward", 1.0, {"gate_mean": 1}), 1),       # missing keys
                     (standin.Event("forward", 1.0, dict(full, gate_mean=1)), 1),  # int gate
                     (standin.Event("forward", 1.0, None), 1),
                     (standin.Event("forward", 1.0, Data(full, gate_mean=1)), 1),
                     (standin.Event("forward", 1.0, dict(full, layer_idx=1 << 40)), 1)]
            for ts in (float("nan"), float("inf"), 1e10, 10 ** 400, 1 << 62, "x", None, True, 7,
                       Decimalish(3)):
                cases.append((standin.Event("forward", ts, full), 1))
            for ev, nfail in cases:
                fails[0] = nfail
                del seen[:]
                try:
                    h(ev)
                    out.append(("ok", len(seen)))
                except BaseException as e:  # noqa: BLE001 - what the caller would see
                    out.append((type(e).__name__, len(seen)))
            # The doorbell: the agent sleeps and the poke raises.
            memoryview(buf).cast("I")[ring.I_SLEEPING] = 3

            def bad_poke(force=False):
                raise OSError("doorbell")
            w._poke = bad_poke
            bind(w)
            del seen[:]
            fails[0] = 0
            h(standin.Event("forward", 1.0, standin.forward_data(1)))
            out.append(("poke", len(seen), w.stats()["written"]))
            return out

        pure, native = scenario(False), scenario(True)
        self.assertEqual(native, pure)
        self.assertEqual(pure[:3], [("ok", 1), ("ValueError", 1), ("KeyboardInterrupt", 0)])
        self.assertEqual(pure[-4:-1], [("ok", 0), ("ok", 0), ("ok", 0)])  # True, 7, Decimalish: written
        self.assertEqual(pure[-1], ("poke", 1, 5))  # HELLO, the three above, this one

    def test_call_signature(self):
        h = self.m.ForwardHandler(lambda ev: None)
        with self.assertRaises(TypeError):
            h()
        with self.assertRaises(TypeError):
            h(1, 2)
        with self.assertRaises(TypeError):
            h(ev=1)

    def test_poke_when_the_agent_sleeps(self):
        buf, w = self.writer()
        pokes = []
        h = self.m.ForwardHandler(lambda ev: None)
        h.bind(w._st, lambda: pokes.append(1), w.write_forward)
        h(standin.Event("forward", 1.0, standin.forward_data(1)))
        self.assertEqual(pokes, [])
        u32 = memoryview(buf).cast("I")
        u32[ring.I_SLEEPING] = 1
        for _ in range(3):  # one call per sleep generation (RingWriter._poke ignores repeats)
            h(standin.Event("forward", 1.0, standin.forward_data(1)))
        self.assertEqual(pokes, [1])
        u32[ring.I_SLEEPING] = 2
        h(standin.Event("forward", 1.0, standin.forward_data(1)))
        self.assertEqual(pokes, [1, 1])

    def test_unbound_and_rebound(self):
        seen = []
        h = self.m.ForwardHandler(seen.append)
        ev = standin.Event("forward", 1.0, standin.forward_data(1))
        h(ev)
        self.assertEqual(seen, [ev])
        self.assertFalse(h.bound)
        with self.assertRaises(TypeError):
            h.bind([0, 0, 0, 0, False, 0])  # a pure state is not a Ring
        with self.assertRaises(TypeError):
            self.m.ForwardHandler(42)

    def test_rebind_from_inside_a_call(self):
        """A property of the event that unbinds the handler (as a fork
        revival rebinds it) while the call uses the old binding."""
        buf, w = self.writer()
        h = self.m.ForwardHandler(lambda ev: None)
        h.bind(w._st, w._poke, w.write_forward)

        class Ev:
            type = "forward"
            data = standin.forward_data(1)

            @property
            def timestamp(self):
                h.bind(None)
                gc.collect()
                return 1.0
        h(Ev())
        self.assertFalse(h.bound)
        self.assertEqual(w.stats()["written"], 2)

    def test_collected(self):
        """The handler and its producer form a cycle (the fallback is a bound
        method of the producer, which holds the handler): gc frees it."""
        class Owner:
            def fallback(self, ev):
                pass
        o = Owner()
        buf, w = self.writer()
        o.h, bind = ring.make_forward_handler(o.fallback, native=True)
        bind(w)
        ref = weakref.ref(o.h)
        del o, bind
        gc.collect()
        self.assertIsNone(ref())


class RingBoundsTest(NativeTestCase):
    def test_buffer_checks(self):
        lock = self.m.Lock()
        with self.assertRaises(ValueError):
            self.m.Ring(bytearray(ring.HEADER_SIZE + 4096 - 8), 4096, lock)  # wrong size
        with self.assertRaises(ValueError):
            self.m.Ring(bytearray(ring.HEADER_SIZE + 6144), 6144, lock)  # not a power of two
        with self.assertRaises(ValueError):
            self.m.Ring(bytearray(ring.HEADER_SIZE + 2048), 2048, lock)
        with self.assertRaises((TypeError, BufferError)):
            self.m.Ring(bytes(ring.HEADER_SIZE + 4096), 4096, lock)  # read-only
        with self.assertRaises(ValueError):  # not 8-byte aligned
            self.m.Ring(memoryview(bytearray(ring.HEADER_SIZE + 4096 + 1))[1:], 4096, lock)
        with self.assertRaises(TypeError):
            self.m.Ring(bytearray(ring.HEADER_SIZE + 4096), 4096, threading.Lock())

    def test_holds_the_mapping(self):
        """The Ring holds its Py_buffer: the mapping cannot be closed under it."""
        mm = mmap.mmap(-1, ring.HEADER_SIZE + 4096)
        r = self.m.Ring(mm, 4096, self.m.Lock())
        with self.assertRaises(BufferError):
            mm.close()
        self.assertEqual(r.forward(1, 0.5, 0.5, 0.5, 1, 31), self.m.FW_WRITTEN)
        del r
        gc.collect()
        mm.close()

    def test_head_from_a_broken_consumer(self):
        """Whatever the consumer writes into head, records stay inside the
        data area: head beyond tail reads as a full ring (uint64 arithmetic,
        as the Go and C writers)."""
        buf = bytearray(ring.HEADER_SIZE + 4096)
        r = self.m.Ring(buf, 4096, self.m.Lock())
        q = memoryview(buf).cast("Q")
        for head in (0, 1 << 63, (1 << 64) - 8, 12345):
            q[ring.Q_HEAD] = head
            r[ring._HEAD] = head
            for _ in range(200):
                self.assertIn(r.forward(1, 0.0, 0.0, 0.0, 0, 0), (self.m.FW_WRITTEN, self.m.FW_DROPPED))
        self.assertEqual(len(buf), ring.HEADER_SIZE + 4096)

    def test_state_sequence(self):
        r = self.m.Ring(bytearray(ring.HEADER_SIZE + 4096), 4096, self.m.Lock())
        self.assertEqual(list(r), [0, 0, 0, 0, False, 0])
        r[ring._SEQ] += 5
        r[ring._CLOSED] = True
        self.assertEqual((r[ring._SEQ], r[ring._CLOSED], r[-1]), (5, True, 0))
        self.assertEqual(r.forward(1, 0.0, 0.0, 0.0, 0, 0), self.m.FW_CLOSED)
        with self.assertRaises(IndexError):
            r[6]
        with self.assertRaises(OverflowError):
            r[0] = -1
        with self.assertRaises(ValueError):  # records start 8-byte aligned
            r[ring._TAIL] = 4099
        with self.assertRaises(ValueError):
            r.commit(1, 12)
        with self.assertRaises(TypeError):
            del r[0]

    def test_forward_argument_checks(self):
        r = self.m.Ring(bytearray(ring.HEADER_SIZE + 4096), 4096, self.m.Lock())
        for args in ((1 << 63, 0.0, 0.0, 0.0, 0, 0), (0, 0.0, 0.0, 0.0, 1 << 31, 0),
                     (0, 0.0, 0.0, 0.0, 0, -1), (0, 0.0, 0.0, 0.0, 0, 1 << 32)):
            with self.assertRaises(OverflowError):
                r.forward(*args)
        with self.assertRaises(TypeError):
            r.forward(0, "x", 0.0, 0.0, 0, 0)
        self.assertEqual(list(r), [0, 0, 0, 0, False, 0])  # nothing written

    def test_audit_ring_full_is_pythons_turn(self):
        buf = bytearray(ring.HEADER_SIZE + 4096)
        r = self.m.Ring(buf, 4096, self.m.Lock(), True)
        while r.forward(1, 0.0, 0.0, 0.0, 0, 0) == self.m.FW_WRITTEN:
            pass
        self.assertEqual(r.forward(1, 0.0, 0.0, 0.0, 0, 0), self.m.FW_SLOW)
        self.assertEqual(r[ring._DROPPED], 0)


class LockTest(NativeTestCase):
    def test_like_threading_lock(self):
        lk = self.m.Lock()
        self.assertFalse(lk.locked())
        self.assertTrue(lk.acquire())
        self.assertTrue(lk.locked())
        self.assertFalse(lk.acquire(False))
        self.assertFalse(lk.acquire(blocking=False))
        self.assertFalse(lk.acquire(timeout=0.01))
        lk.release()
        with self.assertRaises(RuntimeError):
            lk.release()
        with lk:
            self.assertTrue(lk.locked())
        self.assertFalse(lk.locked())
        with self.assertRaises(ValueError):
            lk.acquire(False, 1)
        with self.assertRaises(ValueError):
            lk.acquire(timeout=-2)
        with self.assertRaises(TypeError):
            lk.acquire(bogus=1)

    def test_waits_for_another_thread(self):
        lk = self.m.Lock()
        got, order = threading.Event(), []
        lk.acquire()

        def waiter():
            with lk:
                order.append("waiter")
            got.set()
        th = threading.Thread(target=waiter)
        th.start()
        order.append("main")
        lk.release()
        self.assertTrue(got.wait(10))
        th.join()
        self.assertEqual(order, ["main", "waiter"])


@unittest.skipUnless(hasattr(os, "fork"), "needs fork")
class ForkGenerationTest(NativeTestCase):
    def test_child_never_writes_a_parent_ring(self):
        """Even a ring the at-fork hook did not close (a bare Ring here) is
        not written by the child: forward() reports it closed."""
        mm = mmap.mmap(-1, ring.HEADER_SIZE + 4096)  # shared with the child
        r = self.m.Ring(mm, 4096, self.m.Lock())
        self.assertEqual(r.forward(1, 0.5, 0.5, 0.5, 1, 31), self.m.FW_WRITTEN)
        gen = self.m.fork_generation()
        rfd, wfd = os.pipe()
        with warnings.catch_warnings():
            # 3.12+ warns about forking a multi-threaded process (the status thread).
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            try:
                os.close(rfd)
                rc = r.forward(2, 0.5, 0.5, 0.5, 1, 31)
                try:
                    r.commit(5, 56)
                    commit = "published"
                except RuntimeError:
                    commit = "refused"
                os.write(wfd, f"{rc} {commit} {self.m.fork_generation() - gen}".encode())
            finally:
                os._exit(0)
        os.close(wfd)
        out = os.read(rfd, 100).decode()
        os.close(rfd)
        os.waitpid(pid, 0)
        self.assertEqual(out, f"{self.m.FW_CLOSED} refused 1")
        q = memoryview(mm).cast("Q")
        self.assertEqual((q[ring.Q_TAIL], q[ring.Q_LAST_SEQ]), (56, 1))  # only the parent's record
        self.assertEqual(r.forward(3, 0.5, 0.5, 0.5, 1, 31), self.m.FW_WRITTEN)  # the parent goes on
        del q, r


class SwitchTest(RingTestCase):
    def run_py(self, code, **environ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGAOBS_")}
        env.update(environ, PYTHONPATH=ROOT)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.split()

    def test_agaobs_native_0(self):
        """AGAOBS_NATIVE=0: the extension is not even imported, producers
        run the pure-Python path; use_native(True) still loads it."""
        require_native(self)
        code = ("import sys; from aga_observability import ring; "
                "print(ring.use_native(), 'aga_observability._agaobs_fast' in sys.modules); "
                "print(ring.use_native(True))")
        for value in ("0", "false", "off", "no"):
            self.assertEqual(self.run_py(code, AGAOBS_NATIVE=value), ["False", "False", "True"])
        self.assertEqual(self.run_py(code), ["True", "True", "True"])
        self.assertEqual(self.run_py(code, AGAOBS_NATIVE="1"), ["True", "True", "True"])

    def test_stack_reports_the_path(self):
        require_native(self)
        prev = ring.use_native()
        self.addCleanup(ring.use_native, prev)
        for native in (False, True):
            ring.use_native(native)
            bus, stack = self.start()
            self.assertIs(stack.get_stats()["native"], native)
            self.assertIs(isinstance(stack._producer.hot, ring.NativeRingWriter), native)
            self.assertIs(isinstance(stack._producer.on_event, ring.native_module().ForwardHandler), native)
            bus.emit("forward", standin.forward_data(1))
            hot = self.records(stack.ring_paths["hot"])
            self.assertEqual([r["type"] for r in hot], ["hello", "forward"])
            stack.shutdown()

    def test_native_writer_falls_back_to_pure(self):
        """A NativeRingWriter that cannot be made (here: its state) leaves the
        producer on the pure writer, with the handler taking the general
        path; nothing is lost."""
        require_native(self)
        saved = ring.NativeRingWriter._new_state

        def broken(self, mv):
            raise MemoryError("no state")
        ring.NativeRingWriter._new_state = broken
        prev = ring.use_native()
        try:
            ring.use_native(True)
            bus, stack = self.start()
        finally:
            ring.NativeRingWriter._new_state = saved
            ring.use_native(prev)
        self.assertFalse(stack.get_stats()["native"])
        bus.emit("forward", standin.forward_data(1))
        hot = self.records(stack.ring_paths["hot"])
        self.assertEqual([r["type"] for r in hot], ["hello", "forward"])
        self.assertEqual(stack.get_stats()["errors"], 0)


if __name__ == "__main__":
    unittest.main()
