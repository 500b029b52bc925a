"""Runs crosslang_producer.py the way the Go cross-language test does and
reads its rings back."""

import json
import os
import subprocess
import sys
import unittest

import ringreader
from helpers import RingTestCase

HERE = os.path.dirname(os.path.abspath(__file__))


class CrossLangTest(RingTestCase):
    def test_script(self):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE), AGAOBS_RING_DIR=self.ring_dir,
                   AGAOBS_PRODUCER="xlang-py")
        out = subprocess.run([sys.executable, os.path.join(HERE, "crosslang_producer.py")], env=env,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1)
        info = json.loads(lines[0])
        hot, audit = ringreader.Reader(info["hot"]), ringreader.Reader(info["audit"])
        self.assertEqual(hot.pid, info["pid"])
        self.assertEqual(hot.identity["producer"], "xlang-py")
        self.assertEqual((hot.state, audit.state), (2, 2))
        recs = hot.poll()
        self.assertEqual([r["type"] for r in recs],
                         ["hello"] + ["forward"] * 10 + ["retrieval"] * 2 + ["event", "status"])
        for i, r in enumerate(recs[1:11]):
            self.assertEqual((r["layer_idx"], r["gate_mean"], r["entropy_mean"], r["latency_us"]),
                             (i % 3, i / 10, i / 4, 100.0 + i))
            self.assertEqual(r["fields"], 31 if i % 2 == 0 else 30)
        self.assertEqual(recs[11]["ids"], ["a", "b", "c"])
        self.assertEqual(recs[12]["ids"], [])
        self.assertEqual(recs[13]["json"], {"x": 1, "y": "z"})
        ops = [r["json"]["operation"] for r in audit.poll() if r["type"] == "audit"]
        self.assertEqual(ops, ["register", "unregister", "clear"])


if __name__ == "__main__":
    unittest.main()
