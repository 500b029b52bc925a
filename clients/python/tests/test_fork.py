"""Fork safety: a child never writes its parent's rings; it creates its
own on its first emit."""

import os
import threading
import unittest
import warnings

from aga_observability import ring

import ringreader
import standin
from helpers import RingTestCase


@unittest.skipUnless(hasattr(os, "fork"), "needs fork")
class ForkTest(RingTestCase):
    native = False

    def test_child_writes_its_own_rings(self):
        bus, stack = self.start()
        for i in range(3):
            bus.emit("forward", standin.forward_data(i))
        parent_paths = stack.ring_paths
        hot = ringreader.Reader(parent_paths["hot"])
        before = (hot.tail, hot.last_seq)

        # Hold the hot ring's lock in another thread while forking: the
        # child must not deadlock on a lock owned by a thread it lacks.
        lock = stack._producer.hot._lock
        held, release = threading.Event(), threading.Event()

        def holder():
            with lock:
                held.set()
                release.wait(5)
        th = threading.Thread(target=holder)
        th.start()
        held.wait(5)
        r, w = os.pipe()
        with warnings.catch_warnings():
            # 3.12+ warns about forking a multi-threaded process: that is the point here.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                os.close(r)
                for i in range(5):
                    bus.emit("forward", standin.forward_data(i))
                bus.emit("audit", {"operation": "register", "details": {"id": "c", "store_count": 1}})
                paths = stack.ring_paths
                stack.shutdown()
                os.write(w, ("%s\n%s\n" % (paths["hot"], paths["audit"])).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        release.set()
        th.join()
        _, status = os.waitpid(pid, 0)
        out = os.read(r, 4096).decode().split()
        os.close(r)
        self.assertEqual(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode")
                         else status >> 8, 0)
        child_hot, child_audit = out
        self.assertNotEqual(child_hot, parent_paths["hot"])
        self.assertIn("agaobs-%d-" % pid, child_hot)
        # The parent's ring did not move while the child emitted.
        hot2 = ringreader.Reader(parent_paths["hot"])
        self.assertEqual((hot2.tail, hot2.last_seq), before)
        self.assertEqual(hot2.state, ring.STATE_RUNNING)
        # The child's rings hold its own events, with its own pid, closed by its shutdown.
        ch = ringreader.Reader(child_hot)
        self.assertEqual(ch.pid, pid)
        self.assertEqual(ch.state, ring.STATE_CLOSED)
        kinds = [x["type"] for x in ch.poll()]
        self.assertEqual(kinds, ["hello"] + ["forward"] * 5 + ["status"])
        ca = ringreader.Reader(child_audit)
        self.assertEqual([x["type"] for x in ca.poll()], ["hello", "audit"])
        # The parent keeps writing its own rings.
        bus.emit("forward", standin.forward_data(9))
        self.assertEqual(ringreader.Reader(parent_paths["hot"]).last_seq, before[1] + 1)



class NativeForkTest(ForkTest):
    native = True


if __name__ == "__main__":
    unittest.main()
