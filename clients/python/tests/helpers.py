"""Shared fixtures: a temporary ring directory, a clean AGAOBS_* environment
and a stack teardown that leaves no running producer behind."""

import os
import shutil
import tempfile
import time
import unittest

import aga_observability
from aga_observability import ObservabilityConfig, ObservabilityStack

import ringreader
import standin

SMALL = 64 * 1024


class RingTestCase(unittest.TestCase):
    def setUp(self):
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
