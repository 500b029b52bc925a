#!/usr/bin/env python3
"""Cost of the client on the emitting thread, per aga-core forward event.

Measures ns/event of ``bus.emit("forward", {...})`` on the stand-in EventBus
(tests/standin.py) bare, and with ``setup_observability(bus)``; prints one
JSON line. It starts no agent: run one draining the ring directory to measure
with a consumer. Without one the hot ring fills after ~75k events (4 MiB /
56 B) and further events are dropped, which is also cheap; ``drops`` says
how many were. The default event count fits the ring.

    python3 clients/python/bench/emit_bench.py [--events N] [--ring-dir DIR]
"""

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))            # aga_observability
sys.path.insert(0, os.path.join(HERE, "..", "tests"))   # standin

import standin  # noqa: E402

import aga_observability  # noqa: E402


def run(bus, n: int) -> float:
    emit = bus.emit
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for i in range(n):
            # aga-core builds a fresh dict per event; so does the benchmark.
            emit("forward", {"aga_applied": True, "gate_mean": 0.42, "entropy_mean": 1.25,
                             "layer_idx": 3, "latency_us": 87.5})
        return (time.perf_counter_ns() - t0) / n
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--ring-dir", default=None, help="default: a temporary directory in /dev/shm")
    ap.add_argument("--repeat", type=int, default=5, help="best of N runs")
    args = ap.parse_args()

    tmp = None
    ring_dir = args.ring_dir
    if ring_dir is None:
        tmp = tempfile.mkdtemp(prefix="agaobs-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        ring_dir = os.path.join(tmp, "rings")
    cfg = aga_observability.ObservabilityConfig(ring_dir=ring_dir, status_interval_seconds=3600)
    try:
        bare, client, drops = [], [], 0
        for _ in range(args.repeat):
            bare.append(run(standin.EventBus(), args.events))
            bus = standin.EventBus()
            stack = aga_observability.setup_observability(bus, cfg)
            if stack is None:
                sys.exit("cannot create rings in " + ring_dir)
            client.append(run(bus, args.events))
            st = stack.get_stats()
            drops += st["hot"]["dropped"]
            stack.shutdown()
            for p in stack.ring_paths.values():
                if tmp is not None:
                    os.unlink(p)
        b, c = min(bare), min(client)
        print(json.dumps({"bare_ns": round(b, 1), "client_ns": round(c, 1),
                          "added_ns": round(c - b, 1), "events": args.events,
                          "drops": drops, "repeat": args.repeat,
                          "python": platform.python_version()}))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
