"""Every event kind, emitted through a stand-in EventBus and read back from
the rings with the test reader: on the pure-Python path (EncodingTest) and
on the C extension's fast path (NativeEncodingTest, the same tests)."""

import math
import time
import unittest

from aga_observability import ring

import standin
from helpers import RingTestCase


class EncodingTest(RingTestCase):
    native = False

    def emit_and_read(self, *events, **cfg):
        bus, stack = self.start(**cfg)
        for etype, data in events:
            bus.emit(etype, data)
        hot, audit = self.readers(stack)
        return bus, stack, hot.poll(), audit.poll()

    def test_forward_fast_path(self):
        before = time.time()
        bus, stack, hot, _ = self.emit_and_read(
            ("forward", {"aga_applied": True, "gate_mean": 0.5, "entropy_mean": 1.25,
                         "layer_idx": 7, "latency_us": 99.5}),
            ("forward", {"aga_applied": False, "gate_mean": 0.0, "entropy_mean": 0.0,
                         "layer_idx": 0, "latency_us": 1.0}))
        self.assertEqual([r["type"] for r in hot], ["hello", "forward", "forward"])
        f = hot[1]
        self.assertEqual((f["gate_mean"], f["entropy_mean"], f["latency_us"], f["layer_idx"]),
                         (0.5, 1.25, 99.5, 7))
        self.assertEqual(f["fields"], 0b11111)
        self.assertEqual(hot[2]["fields"], 0b11110)
        self.assertEqual(f["len"], 56)
        # Record time is the event's own timestamp.
        ev_ts = bus.query("forward", limit=2)[0]["timestamp"]
        self.assertEqual(f["time_ns"], int(ev_ts * 1e9))
        self.assertGreaterEqual(f["time_ns"], int(before * 1e9) - 1000)
        self.assertEqual([r["seq"] for r in hot], [1, 2, 3])

    def test_forward_general_shapes(self):
        _, _, hot, _ = self.emit_and_read(
            ("forward", {"gate_mean": 1, "layer_idx": 2}),                    # int gate, partial
            ("forward", {"gate_mean": 0.5, "layer_idx": 1 << 40,               # clamped layer
                         "aga_applied": True, "entropy_mean": 0.1, "latency_us": 2.0}),
            ("forward", {}),                                                   # nothing carried
            ("forward", {"gate_mean": True, "layer_idx": 1}),                  # bool is no number
            ("forward", {"gate_mean": "high", "layer_idx": 1}),                # wrong type
            ("forward", {"gate_mean": 0.1, "layer_idx": False}),               # bool layer
            ("forward", {"gate_mean": float("nan"), "entropy_mean": 0.5, "latency_us": 1.0,
                         "layer_idx": 0, "aga_applied": True}))
        kinds = [r["type"] for r in hot[1:]]
        self.assertEqual(kinds, ["forward", "forward", "forward", "event", "event", "event", "forward"])
        a, b, c = hot[1:4]
        self.assertEqual((a["gate_mean"], a["layer_idx"], a["fields"]),
                         (1.0, 2, ring.FWD_HAS_GATE | ring.FWD_HAS_LAYER))
        self.assertEqual((b["layer_idx"], b["fields"]), (ring.I32_MAX, 0b11111))
        self.assertEqual((c["gate_mean"], c["layer_idx"], c["fields"]), (0.0, 0, 0))
        self.assertEqual(hot[4]["name"], "forward")
        self.assertEqual(hot[4]["json"], {"gate_mean": True, "layer_idx": 1})
        self.assertEqual(hot[5]["json"]["gate_mean"], "high")
        self.assertTrue(math.isnan(hot[7]["gate_mean"]))  # binary f64 carries NaN

    def test_retrieval(self):
        _, _, hot, _ = self.emit_and_read(
            ("retrieval", {"layer_idx": 0, "results_count": 5, "injected_count": 3,
                           "budget_remaining": 7, "ids": ["a", "b", "知识"], "scores": [0.9, 0.8, 0.7]}),
            ("retrieval", {"layer_idx": 1, "results_count": 1 << 40, "ids": []}),
            ("retrieval", {"layer_idx": 1, "ids": [1, 2]}),        # not strings: EVENT
            ("retrieval", {"layer_idx": 1, "scores": ["x"]}))      # not numbers: EVENT
        r = hot[1]
        self.assertEqual(r["type"], "retrieval")
        self.assertEqual((r["layer_idx"], r["results_count"], r["injected_count"],
                          r["budget_remaining"], r["fields"]), (0, 5, 3, 7, 15))
        self.assertEqual(r["ids"], ["a", "b", "知识"])
        self.assertEqual(r["scores"], [0.9, 0.8, 0.7])
        self.assertEqual(hot[2]["results_count"], ring.I32_MAX)
        self.assertEqual(hot[2]["fields"], ring.RET_HAS_LAYER | ring.RET_HAS_RESULTS)
        self.assertEqual([h["type"] for h in hot[3:]], ["event", "event"])
        self.assertEqual(hot[3]["json"]["ids"], [1, 2])

    def test_retrieval_ids_truncated(self):
        ids = ["id-%04d-%s" % (i, "x" * 40) for i in range(200)]
        _, _, hot, _ = self.emit_and_read(
            ("retrieval", {"layer_idx": 0, "results_count": 200, "injected_count": 200,
                           "budget_remaining": 0, "ids": ids, "scores": [0.5] * 5}))
        r = hot[1]
        self.assertEqual(r["type"], "retrieval")
        self.assertEqual(r["flags"], ring.FLAG_TRUNCATED)
        self.assertLess(len(r["ids"]), 200)
        self.assertEqual(r["ids"], ids[:len(r["ids"])])
        self.assertLessEqual(r["len"], SMALL_MAX)

    def test_audit(self):
        now = time.time()
        _, _, hot, audit = self.emit_and_read(
            ("audit", {"operation": "register", "details": {"id": "k1", "store_count": 1,
                                                            "bad": float("inf"), "obj": object()},
                       "success": True, "error": None, "timestamp": now}),
            ("audit", {}),
            ("audit", {"operation": "clear", "details": None, "success": False,
                       "error": ValueError("boom")}))
        self.assertEqual([r["type"] for r in hot], ["hello"])  # audit never on the hot ring
        a = audit[1]
        self.assertEqual(a["lost_before"], 0)
        self.assertEqual(list(a["json"]), ["operation", "details", "success", "error", "timestamp"])
        self.assertEqual(a["json"]["operation"], "register")
        self.assertEqual(a["json"]["details"]["bad"], "inf")
        self.assertTrue(a["json"]["details"]["obj"].startswith("<object object"))
        self.assertEqual(a["json"]["timestamp"], now)
        d = audit[2]["json"]
        self.assertEqual((d["operation"], d["details"], d["success"], d["error"]),
                         ("unknown", {}, True, None))
        self.assertAlmostEqual(d["timestamp"], audit[2]["time_ns"] / 1e9, delta=1e-3)
        e = audit[3]["json"]
        self.assertEqual((e["success"], e["error"], e["details"]), (False, "boom", {}))

    def test_audit_truncated(self):
        big = {"id": "k", "metadata": {"blob": "y" * 20000}, "store_count": 3}
        _, _, _, audit = self.emit_and_read(
            ("audit", {"operation": "register", "details": big, "success": True, "error": None,
                       "timestamp": 1.5}))
        a = audit[1]
        self.assertEqual(a["flags"], ring.FLAG_TRUNCATED)
        self.assertEqual(a["json"]["details"]["_truncated"], True)
        self.assertGreater(a["json"]["details"]["_original_bytes"], 20000)
        self.assertEqual(a["json"]["operation"], "register")

    def test_event_and_odd_values(self):
        cyc = {"a": 1}
        cyc["self"] = cyc
        _, _, hot, _ = self.emit_and_read(
            ("custom", {"x": 1, "y": "z"}),
            ("custom", {"nan": float("nan"), (1, 2): "tuple key", "set": {3}, "cyc": cyc}),
            ("huge", {"blob": "z" * 100000}))
        self.assertEqual((hot[1]["name"], hot[1]["json"]), ("custom", {"x": 1, "y": "z"}))
        odd = hot[2]["json"]
        self.assertEqual(odd["nan"], "nan")
        self.assertEqual(odd["(1, 2)"], "tuple key")
        self.assertEqual(odd["set"], [3])
        self.assertEqual(odd["cyc"]["self"], "<cycle>")
        h = hot[3]
        self.assertEqual((h["name"], h["flags"]), ("huge", ring.FLAG_TRUNCATED))
        self.assertEqual(h["json"]["_truncated"], True)

    def test_status_record(self):
        bus, stack = self.start()
        bus.emit("forward", standin.forward_data(1))
        stack.shutdown()  # writes a last STATUS
        hot = self.records(stack.ring_paths["hot"])
        status = [r for r in hot if r["type"] == "status"]
        self.assertEqual(len(status), 1)
        self.assertEqual(status[0]["json"]["bound"], False)
        self.assertEqual(status[0]["json"]["event_bus"]["total_emitted"], 1)

    def test_handler_never_raises(self):
        bus, stack = self.start()

        class Weird:
            type = "forward"

            @property
            def data(self):
                raise RuntimeError("no data")

            @property
            def timestamp(self):
                raise RuntimeError("no time")

        # Called directly, as a bus without exception handling would.
        stack._producer.on_event(Weird())
        stack._producer.on_event(None)
        stack._producer.on_event(standin.Event("forward", float("nan"), {"gate_mean": 0.1}))
        bus.emit("forward", standin.forward_data(2))
        hot = self.records(stack.ring_paths["hot"])
        self.assertEqual(hot[-1]["type"], "forward")
        self.assertEqual(bus.get_stats()["total_consumed"], bus.get_stats()["total_emitted"])


class NativeEncodingTest(EncodingTest):
    native = True


SMALL_MAX = 64 * 1024 // 8

if __name__ == "__main__":
    unittest.main()
