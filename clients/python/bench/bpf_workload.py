#!/usr/bin/env python3
"""Workload for the eBPF overhead benchmark (tests/e2e): a producer built
on the stand-in AGAPlugin (so the client auto-loads) that, after a "go"
line on stdin, emits forward events for SECONDS seconds, allocating like a
Python serving loop does (so the collector runs), and prints the events per
second. The agent's default probes watch it: off-CPU and run queue from the
scheduler, GC pauses where the interpreter has USDT notes."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import standin  # noqa: E402


def main() -> int:
    seconds = float(sys.argv[1])
    plugin = standin.AGAPlugin(standin.AGAConfig(max_slots=100))
    plugin.attach("llama", layers=[0, 1, 2])
    emit = plugin.event_bus.emit
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    n = 0
    keep = []
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for layer in range(3):
            emit("forward", {"layer_idx": layer, "aga_applied": True, "gate_mean": 0.42,
                             "entropy_mean": 1.25, "latency_us": 180.0})
        keep.append([{"k": n}] * 4)  # request state: young objects, GC churn
        if len(keep) > 2000:
            keep.clear()
        n += 3
    print(f"{n / (time.perf_counter() - t0):.0f}", flush=True)
    from aga_observability import shutdown_observability
    shutdown_observability()
    return 0


if __name__ == "__main__":
    sys.exit(main())
