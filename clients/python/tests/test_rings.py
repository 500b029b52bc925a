"""Ring lifecycle and protocol behaviour: creation, full rings, bounded
audit wait, doorbell, close, fail-open, several buses, threads."""

import ast
import inspect
import logging
import os
import stat
import sys
import threading
import time
import unittest

import aga_observability
from aga_observability import ObservabilityStack, ring, setup_observability

import ringreader
import standin
from helpers import RingTestCase


class LifecycleTest(RingTestCase):
    def test_files_dir_and_header(self):
        bus, stack = self.start()
        st = os.stat(self.ring_dir)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o1777)  # created, chmod'ed past the umask
        names = sorted(os.listdir(self.ring_dir))
        self.assertEqual(len(names), 2)
        for name in names:
            self.assertRegex(name, r"^agaobs-%d-\d+-\d+-(hot|audit)\.ring$" % os.getpid())
            fst = os.lstat(os.path.join(self.ring_dir, name))
            self.assertTrue(stat.S_ISREG(fst.st_mode))
            self.assertEqual(stat.S_IMODE(fst.st_mode), 0o600)
        hot, audit = self.readers(stack)
        self.assertEqual((hot.ring_class, audit.ring_class), (ring.CLASS_HOT, ring.CLASS_AUDIT))
        self.assertEqual(hot.pid, os.getpid())
        self.assertEqual(hot.pidns_inode, os.stat("/proc/self/ns/pid").st_ino)
        with open("/proc/self/stat", "rb") as f:
            raw = f.read()
        self.assertEqual(hot.start_time_ticks, int(raw[raw.rindex(b")") + 1:].split()[19]))
        self.assertNotEqual(hot.epoch, audit.epoch)
        self.assertEqual(hot.state, ring.STATE_RUNNING)
        self.assertGreater(hot.heartbeat, 0)
        self.assertEqual(hot.identity["producer"], stack.producer_name)
        self.assertEqual(hot.identity["client"], "python/2.0.0")
        self.assertEqual(hot.capacity, 64 * 1024)
        first = hot.poll()[0]
        self.assertEqual((first["type"], first["seq"]), ("hello", 1))
        self.assertEqual(first["json"], hot.identity)

    def test_setgid_dir_gives_0660(self):
        os.makedirs(self.ring_dir)
        os.chmod(self.ring_dir, 0o2770)
        bus, stack = self.start()
        self.assertEqual(stat.S_IMODE(os.stat(self.ring_dir).st_mode), 0o2770)  # left alone
        for p in stack.ring_paths.values():
            self.assertEqual(stat.S_IMODE(os.lstat(p).st_mode), 0o660)

    def test_shutdown_marks_closed(self):
        bus, stack = self.start()
        bus.emit("forward", standin.forward_data(0))
        before = time.time_ns()
        stack.shutdown()
        for p in stack.ring_paths.values():
            r = ringreader.Reader(p)
            self.assertEqual(r.state, ring.STATE_CLOSED)
            self.assertGreaterEqual(r.closed_time_ns, before)
        # Unsubscribed: later events go nowhere, and nothing raises.
        bus.emit("forward", standin.forward_data(1))
        self.assertEqual(bus.get_stats()["subscribers"].get("*", 0), 0)
        self.assertIsNone(aga_observability.get_global_stack())

    def test_shutdown_observability_closes_every_stack(self):
        s1 = setup_observability(standin.EventBus(), self.config())
        s2 = setup_observability(standin.EventBus(), self.config())
        aga_observability.shutdown_observability()
        for s in (s1, s2):
            self.assertFalse(s.running)
            self.assertEqual(ringreader.Reader(s.ring_paths["hot"]).state, ring.STATE_CLOSED)

    def test_atexit_hook_closes_rings(self):
        import subprocess
        code = ("import aga_observability as a, standin\n"
                "b = standin.EventBus()\n"
                "s = a.setup_observability(b)\n"
                "b.emit('forward', standin.forward_data(0))\n"
                "print(s.ring_paths['hot'])\n")
        env = dict(os.environ, AGAOBS_RING_DIR=self.ring_dir, AGAOBS_RING_HOT_BYTES="65536",
                   AGAOBS_RING_AUDIT_BYTES="65536",
                   PYTHONPATH=os.pathsep.join(sys.path))
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60, check=True).stdout.strip()
        r = ringreader.Reader(out)
        self.assertEqual(r.state, ring.STATE_CLOSED)
        self.assertEqual([x["type"] for x in r.poll()], ["hello", "forward"])

    def test_heartbeat_and_status_thread(self):
        bus, stack = self.start(status_interval_seconds=0.05)
        hot, _ = self.readers(stack)
        hb0 = hot.heartbeat
        self.wait_for(lambda: hot.heartbeat > hb0, what="a heartbeat")
        self.assertLessEqual(abs(hot.heartbeat - time.monotonic_ns()), 5e9)
        self.wait_for(lambda: any(r["type"] == "status" for r in hot.poll(release=False)),
                      what="a STATUS record")
        threads = [t for t in threading.enumerate() if t.name == "agaobs-status"]
        self.assertEqual(len(threads), 1)


class FailOpenTest(RingTestCase):
    def test_unusable_ring_dir_warns_once(self):
        blocker = os.path.join(self.tmp, "file")
        open(blocker, "w").close()
        bad = os.path.join(blocker, "rings")  # parent is a file: unusable even for root
        logger = logging.getLogger("aga_observability")
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logger.addHandler(handler)
        try:
            for _ in range(3):
                bus = standin.EventBus()
                self.assertIsNone(setup_observability(bus, self.config(ring_dir=bad)))
                bus.emit("forward", standin.forward_data(0))  # no subscriber, no error
            os.environ["AGAOBS_RING_DIR"] = bad
            plugin = standin.AGAPlugin(standin.AGAConfig())  # aga-core path: no exception
            plugin.register("k")
        finally:
            logger.removeHandler(handler)
        warnings = [r for r in records if r.levelno >= logging.WARNING]
        self.assertEqual(len(warnings), 1, [r.getMessage() for r in warnings])
        self.assertIn(bad, warnings[0].getMessage())
        self.assertIsNone(aga_observability.get_global_stack())

    def test_disabled_by_config(self):
        self.assertIsNone(setup_observability(standin.EventBus(), standin.AGAConfig(
            observability_enabled=False)))
        self.assertIsNone(setup_observability(None))

    def test_broken_bus_and_handler_errors(self):
        class NoSubscribe:
            pass
        with self.assertLogs("aga_observability", "WARNING") as cm:
            self.assertIsNone(setup_observability(NoSubscribe(), self.config()))
        self.assertIn("subscribe", cm.output[0])
        bus, stack = self.start()
        p = stack._producer
        p.hot.write_event = None  # any failure inside the general path
        bus.emit("custom", {"x": 1})  # must not raise
        self.assertGreaterEqual(stack.get_stats()["errors"], 1)


class FullRingTest(RingTestCase):
    native = False

    def test_hot_drops_equal_gaps(self):
        bus, stack = self.start(ring_hot_bytes=4096)
        hot = ringreader.Reader(stack.ring_paths["hot"])
        seen = []
        for i in range(600):
            bus.emit("forward", standin.forward_data(i))
            if i % 5 == 0:
                bus.emit("custom", {"i": i})
            if i % 150 == 149:
                seen += hot.poll()  # the consumer releases space now and then
        stack.shutdown()
        seen += hot.poll()
        dropped = hot.dropped
        self.assertGreater(dropped, 100)
        self.assertEqual(ringreader.gaps(seen, hot.last_seq), dropped)
        self.assertEqual(hot.written + dropped, hot.last_seq)
        self.assertEqual(len(seen), hot.written)
        self.assertEqual(hot.dropped_by_type(ring.T_FORWARD) + hot.dropped_by_type(ring.T_EVENT)
                         + hot.dropped_by_type(ring.T_STATUS), dropped)
        self.assertGreater(hot.dropped_by_type(ring.T_FORWARD), 0)
        # records seen are intact and in order
        self.assertEqual([r["seq"] for r in seen], sorted(r["seq"] for r in seen))

    def test_audit_bounded_wait_and_lost_before(self):
        bus, stack = self.start(ring_audit_bytes=4096, ring_audit_wait_us=20000)
        audit = ringreader.Reader(stack.ring_paths["audit"])
        details = {"id": "k", "pad": "x" * 300, "store_count": 1}
        n = 0
        while audit.dropped == 0:
            bus.emit("audit", {"operation": "register", "details": details})
            n += 1
        # A full audit ring waited ~20 ms before dropping.
        t0 = time.perf_counter()
        bus.emit("audit", {"operation": "register", "details": details})
        waited = time.perf_counter() - t0
        self.assertGreaterEqual(waited, 0.019)
        self.assertLess(waited, 2.0)
        self.assertEqual(audit.dropped, 2)
        # Space released during the wait: the record is not dropped.
        recs = audit.poll(release=False)

        def release_later():
            time.sleep(0.002)
            audit.q[0x200 >> 3] = audit.tail
        th = threading.Thread(target=release_later)
        th.start()
        bus.emit("audit", {"operation": "unregister", "details": {"id": "k", "store_count": 0}})
        th.join()
        self.assertEqual(audit.dropped, 2)
        last = audit.poll()[-1]
        self.assertEqual(last["json"]["operation"], "unregister")
        self.assertEqual(last["lost_before"], 2)  # carried by the next committed AUDIT
        self.assertEqual(ringreader.gaps(recs + [last], audit.last_seq), 2)

    def test_doorbell(self):
        bus, stack = self.start(ring_audit_bytes=4096, ring_audit_wait_us=1000)
        fifo = os.path.join(self.ring_dir, ring.DOORBELL_NAME)
        os.mkfifo(fifo, 0o600)
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, rfd)

        def pokes():
            try:
                return len(os.read(rfd, 100))
            except BlockingIOError:
                return 0
        hot, audit = self.readers(stack)
        bus.emit("forward", standin.forward_data(0))
        self.assertEqual(pokes(), 0)  # agent awake: no poke
        hot.set_sleeping(7)
        bus.emit("forward", standin.forward_data(1))
        bus.emit("forward", standin.forward_data(2))
        bus.emit("custom", {})
        self.assertEqual(pokes(), 1)  # once per sleep generation
        hot.set_sleeping(8)
        bus.emit("retrieval", {"layer_idx": 0})
        self.assertEqual(pokes(), 1)
        hot.set_sleeping(0)
        # A full audit ring pokes once while it waits, even for a known generation.
        audit.set_sleeping(8)
        bus.emit("audit", {"operation": "x"})
        self.assertEqual(pokes(), 1)
        while audit.dropped == 0:
            bus.emit("audit", {"operation": "x", "details": {"p": "y" * 200}})
        self.assertGreaterEqual(pokes(), 1)

    def test_doorbell_without_agent(self):
        bus, stack = self.start()
        hot, _ = self.readers(stack)
        hot.set_sleeping(3)
        bus.emit("forward", standin.forward_data(0))  # no FIFO: ENOENT, retried later
        open(os.path.join(self.ring_dir, ring.DOORBELL_NAME), "w").close()  # not a FIFO
        hot.set_sleeping(4)
        bus.emit("forward", standin.forward_data(1))
        self.assertEqual(len(hot.poll()), 3)


class NativeFullRingTest(FullRingTest):
    native = True


class ConcurrencyTest(RingTestCase):
    native = False

    def test_four_threads(self):
        bus, stack = self.start(ring_hot_bytes=1 << 21)
        per = 3000
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # interleave emitting threads as much as possible

        def work(k):
            for i in range(per):
                bus.emit("forward", {"aga_applied": True, "gate_mean": float(k), "entropy_mean": float(i),
                                     "layer_idx": k, "latency_us": float(k * per + i)})
                if i % 500 == 0:
                    bus.emit("custom", {"k": k, "i": i})
        try:
            threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            sys.setswitchinterval(old)
        recs = self.records(stack.ring_paths["hot"])
        self.assertEqual([r["seq"] for r in recs], list(range(1, len(recs) + 1)))
        fwd = [r for r in recs if r["type"] == "forward"]
        self.assertEqual(len(fwd), 4 * per)
        for r in fwd:  # no torn record: every field belongs to the same event
            k, i = int(r["gate_mean"]), int(r["entropy_mean"])
            self.assertEqual((r["layer_idx"], r["latency_us"], r["fields"]), (k, float(k * per + i), 31))
        for k in range(4):
            self.assertEqual([int(r["entropy_mean"]) for r in fwd if r["layer_idx"] == k], list(range(per)))
        self.assertEqual(stack.get_stats()["hot"]["dropped"], 0)


class NativeConcurrencyTest(ConcurrencyTest):
    native = True


class MultiBusTest(RingTestCase):
    def test_separate_rings_per_bus(self):
        b1, b2 = standin.EventBus(), standin.EventBus()
        s1 = setup_observability(b1, self.config())
        s2 = setup_observability(b2, self.config())
        self.assertIsNot(s1, s2)
        self.assertIs(setup_observability(b1, self.config()), s1)  # once per bus
        self.assertIs(aga_observability.get_global_stack(), s1)
        self.assertEqual(len(os.listdir(self.ring_dir)), 4)
        i1, i2 = s1.get_stats()["instance"], s2.get_stats()["instance"]
        self.assertNotEqual(i1, i2)
        self.assertTrue(s2.producer_name.endswith(".%d" % i2))
        b1.emit("custom", {"bus": 1})
        b2.emit("custom", {"bus": 2})
        b2.emit("custom", {"bus": 2})
        for s, n, inst in ((s1, 1, i1), (s2, 2, i2)):
            hot = ringreader.Reader(s.ring_paths["hot"])
            self.assertEqual(hot.instance, inst)
            self.assertIn("-%d-hot.ring" % inst, s.ring_paths["hot"])
            ev = [r["json"]["bus"] for r in hot.poll() if r["type"] == "event"]
            self.assertEqual(ev, [n] * n)

    def test_two_stacks_one_bus_share_the_producer(self):
        bus = standin.EventBus()
        auto = setup_observability(bus, self.config())
        manual = ObservabilityStack(bus, self.config())
        self.assertTrue(manual.start())
        self.assertEqual(manual.ring_paths, auto.ring_paths)
        self.assertEqual(bus.get_stats()["subscribers"]["*"], 1)
        manual.shutdown()
        self.assertEqual(ringreader.Reader(auto.ring_paths["hot"]).state, ring.STATE_RUNNING)
        auto.shutdown()
        self.assertEqual(ringreader.Reader(auto.ring_paths["hot"]).state, ring.STATE_CLOSED)


class PublicationTest(unittest.TestCase):
    """The tail and the other words the agent reads concurrently are never
    written with struct.pack_into (it zeroes its target first)."""

    def test_pack_into_only_targets_record_bytes(self):
        src = inspect.getsource(ring)
        tree = ast.parse(src)
        targets = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("pack_into", "pack") and node.args:
                    module_level = isinstance(f, ast.Attribute) and getattr(f.value, "id", "") == "struct"
                    targets.append(ast.unparse(node.args[1 if module_level else 0]))
        self.assertTrue(targets)
        # Only the data area, and the header once, before the magic exists.
        self.assertEqual(set(targets) - {"data", "self._data", "mv"}, set())
        self.assertEqual(targets.count("mv"), 1)
        # The header words are stored through the Q/I memoryview casts.
        for word in ("Q_TAIL", "Q_LAST_SEQ", "Q_WRITTEN", "Q_DROPPED", "Q_HEARTBEAT",
                     "Q_CLOSED_TIME", "Q_MAGIC"):
            self.assertRegex(src, r"q\[%s\] = " % word)

    def test_recorded_writes(self):
        """Runs every record kind (wrap, drops included) with the packers
        replaced by recorders: each pack_into lands in the data area."""
        calls = []

        class Recorder:
            def __init__(self, s):
                self.s = s
                self.size = s.size

            def pack_into(self, buf, off, *args):
                calls.append((buf, off, self.size))
                return self.s.pack_into(buf, off, *args)

        names = ["_RECORD", "_PADDING", "_FORWARD", "_RETRIEVAL", "_AUDIT", "_EVENT", "_U16"]
        saved = {n: getattr(ring, n) for n in names}
        try:
            for n in names:
                setattr(ring, n, Recorder(saved[n]))
            buf = bytearray(ring.HEADER_SIZE + 4096)
            w = ring.RingWriter(buf, ring_class=ring.CLASS_HOT, capacity=4096,
                                identity=b'{"producer":"t"}')
            handler, bind = ring.make_forward_handler(lambda ev: None)
            bind(w)
            q = memoryview(buf).cast("Q")
            for i in range(200):
                handler(standin.Event("forward", 1.0, standin.forward_data(i)))
                w.write_retrieval(1, 0, 1, 1, 1, 15, [0.5], [b"id"])
                w.write_event(1, b"e", b"{}")
                w.write_record(ring.T_STATUS, 0, 1, b"{}")
                if i % 40 == 0:
                    q[ring.Q_HEAD] = w.stats()["tail"]
        finally:
            for n, v in saved.items():
                setattr(ring, n, v)
        self.assertGreater(w.stats()["dropped"], 0)
        data = w._data
        for target, off, size in calls:
            self.assertIs(target, data)
            self.assertLessEqual(off + min(size, 8), 4096)


if __name__ == "__main__":
    unittest.main()
