"""Shared fixtures: a temporary ring directory, a clean AGAOBS_* environment
and a stack teardown that leaves no running producer behind; the choice of
the C fast path or the pure-Python path per test class."""

import os
import shutil
import tempfile
import time
import unittest

import aga_observability
from aga_observability import ObservabilityConfig, ObservabilityStack, ring

import ringreader
import standin

SMALL = 64 * 1024

# make test-python sets it: a missing C extension then fails the native
# tests instead of skipping them. Read once (RingTestCase clears AGAOBS_*).
REQUIRE_NATIVE = os.environ.get("AGAOBS_TEST_REQUIRE_NATIVE", "").strip().lower() not in ("", "0", "false", "no", "off")


def require_native(test: unittest.TestCase) -> None:
    """Skips the test when the C extension is not built, or fails it when
    AGAOBS_TEST_REQUIRE_NATIVE=1. The extension is imported here even under
    AGAOBS_NATIVE=0, which only changes the default path."""
    if ring.native_module() is not None:
        return
    why = ring.native_error() or "not loaded"
    if REQUIRE_NATIVE:
        test.fail(f"AGAOBS_TEST_REQUIRE_NATIVE=1 and the C extension is unavailable ({why}); "
                  "build it with make python-native")
    test.skipTest(f"C extension not built ({why}); make python-native builds it")


class RingTestCase(unittest.TestCase):
    # True: the producers of the test use the C fast path (required, see
    # require_native); False: the pure-Python path; None: the process default
    # (the extension when it loads, unless AGAOBS_NATIVE=0).
    native = None

    def setUp(self):
        if self.native is not None:
            if self.native:
                require_native(self)
            prev = ring.use_native()
            ring.use_native(self.native)
            self.addCleanup(ring.use_native, prev)
        self._saved_env = {k: v for k, v in os.environ.items() if k.startswith("AGAOBS_")}
        for k in self._saved_env:
            del os.environ[k]
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.tmp = tempfile.mkdtemp(prefix="agaobs-test-", dir=base)
        self.ring_dir = os.path.join(self.tmp, "rings")

    def tearDown(self):
        aga_observability.shutdown_observability()
        for k in [k for k in os.environ if k.startswith("AGAOBS_")]:
            del os.environ[k]
        os.environ.update(self._saved_env)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def config(self, **kw):
        kw.setdefault("ring_dir", self.ring_dir)
        kw.setdefault("ring_hot_bytes", SMALL)
        kw.setdefault("ring_audit_bytes", SMALL)
        kw.setdefault("status_interval_seconds", 3600)
        return ObservabilityConfig(**kw)

    def start(self, bus=None, **kw):
        bus = bus or standin.EventBus()
        stack = ObservabilityStack(bus, self.config(**kw))
        self.assertTrue(stack.start())
        self.addCleanup(stack.shutdown)
        if self.native is not None:
            self.assertIs(stack.get_stats()["native"], self.native)
        return bus, stack

    def readers(self, stack):
        paths = stack.ring_paths
        return ringreader.Reader(paths["hot"]), ringreader.Reader(paths["audit"])

    def records(self, path, kind=None):
        recs = ringreader.Reader(path).poll()
        return [r for r in recs if kind is None or r["type"] == kind]

    def wait_for(self, cond, timeout=5.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.01)
        self.fail(f"timed out waiting for {what}")
