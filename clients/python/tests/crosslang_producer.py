#!/usr/bin/env python3
"""Cross-language producer: a Go test runs

    PYTHONPATH=clients/python AGAOBS_RING_DIR=<dir> AGAOBS_PRODUCER=xlang-py \\
        python3 clients/python/tests/crosslang_producer.py

and reads the rings it leaves. It emits exactly the events below through the
stand-in EventBus, shuts down (a last STATUS record, rings marked closed)
and prints one JSON line {"pid", "hot", "audit"}."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # standin

import standin  # noqa: E402

from aga_observability import setup_observability, shutdown_observability  # noqa: E402


def main() -> int:
    bus = standin.EventBus()
    stack = setup_observability(bus)
    if stack is None:
        print("setup_observability failed", file=sys.stderr)
        return 1
    for i in range(10):
        bus.emit("forward", {"layer_idx": i % 3, "aga_applied": i % 2 == 0, "gate_mean": i / 10,
                             "entropy_mean": i / 4, "latency_us": 100.0 + i})
    bus.emit("retrieval", {"layer_idx": 0, "results_count": 5, "injected_count": 3,
                           "budget_remaining": 7, "ids": ["a", "b", "c"], "scores": [0.9, 0.8, 0.7]})
    bus.emit("retrieval", {"layer_idx": 0, "results_count": 1, "injected_count": 0,
                           "budget_remaining": 0, "ids": [], "scores": []})
    for op, details in (("register", {"id": "k1", "reliability": 0.9, "pinned": False,
                                      "metadata": {"source": "xlang"}, "store_count": 1}),
                        ("unregister", {"id": "k1", "store_count": 0}),
                        ("clear", {"namespace": None, "store_count": 0})):
        bus.emit("audit", {"operation": op, "details": details, "success": True, "error": None})
    bus.emit("custom", {"x": 1, "y": "z"})
    paths = stack.ring_paths
    shutdown_observability()
    print(json.dumps({"pid": os.getpid(), "hot": paths["hot"], "audit": paths["audit"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
