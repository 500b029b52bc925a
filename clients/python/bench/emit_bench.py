#!/usr/bin/env python3
"""Cost of the client on the emitting thread, per aga-core forward event.

Measures ns/event of ``bus.emit("forward", {...})`` on the stand-in EventBus
(tests/standin.py) bare, and with ``setup_observability(bus)``; prints one
JSON line. It starts no agent: run one draining the ring directory to measure
with a consumer. Without one the hot ring fills after ~75k events (4 MiB /
56 B) and further events are dropped, which is also cheap; ``drops`` says
how many were. The default event count fits the ring.

The client is measured on its C fast path (the extension
aga_observability/_agaobs_fast, ``make python-native``) and on the
pure-Python path, in the same process and interleaved: each run sets up one
bus of each kind (bare, C fast path, pure) and emits its N events per bus in
chunks (``--chunk``, 1000 by default), the three buses taking turns in a
rotating order, so that drift and other load hit all three alike; the best
of ``--repeat`` runs of each is reported. ``client_ns``/``added_ns`` are the
C fast path's (``native: true``), ``pure_client_ns``/``pure_added_ns`` the
pure path's. Without the extension, or with ``AGAOBS_NATIVE=0`` (or
``--pure``), only the pure path runs: ``native`` is false and both pairs hold
its figures.

    python3 clients/python/bench/emit_bench.py [--events N] [--ring-dir DIR] [--repeat N]
                                               [--chunk N] [--pure]
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
from aga_observability import ring  # noqa: E402


def run(buses: dict, n: int, chunk: int) -> dict:
    """ns/event of n events emitted on each bus (name -> bus), in chunks,
    the buses taking turns in a rotating order."""
    names = list(buses)
    emits = {k: buses[k].emit for k in names}
    total = dict.fromkeys(names, 0)
    clock = time.perf_counter_ns
    done, turn = 0, 0
    gc.disable()
    try:
        while done < n:
            k = min(chunk, n - done)
            r = turn % len(names)
            for name in names[r:] + names[:r]:
                emit = emits[name]
                t0 = clock()
                for i in range(k):
                    # aga-core builds a fresh dict per event; so does the benchmark.
                    emit("forward", {"aga_applied": True, "gate_mean": 0.42, "entropy_mean": 1.25,
                                     "layer_idx": 3, "latency_us": 87.5})
                total[name] += clock() - t0
            done += k
            turn += 1
    finally:
        gc.enable()
    return {name: total[name] / n for name in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--ring-dir", default=None, help="default: a temporary directory in /dev/shm")
    ap.add_argument("--repeat", type=int, default=5, help="best of N runs")
    ap.add_argument("--chunk", type=int, default=1000,
                    help="events per turn of a bus within a run (the interleaving)")
    ap.add_argument("--pure", action="store_true",
                    help="the pure-Python path only (as AGAOBS_NATIVE=0; the extension is not used)")
    args = ap.parse_args()
    # The C fast path when the extension loaded and AGAOBS_NATIVE is not 0.
    native = not args.pure and ring.use_native()

    tmp = None
    ring_dir = args.ring_dir
    if ring_dir is None:
        tmp = tempfile.mkdtemp(prefix="agaobs-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        ring_dir = os.path.join(tmp, "rings")
    cfg = aga_observability.ObservabilityConfig(ring_dir=ring_dir, status_interval_seconds=3600)
    modes = ["native", "pure"] if native else ["pure"]
    try:
        best = {}
        drops = dict.fromkeys(modes, 0)
        for _ in range(max(args.repeat, 1)):
            buses, stacks = {"bare": standin.EventBus()}, {}
            for mode in modes:
                ring.use_native(mode == "native")
                bus = buses[mode] = standin.EventBus()
                stack = stacks[mode] = aga_observability.setup_observability(bus, cfg)
                if stack is None:
                    sys.exit("cannot create rings in " + ring_dir)
                if stack.get_stats()["native"] is not (mode == "native"):
                    sys.exit(f"the stack did not take the {mode} path")
            ns = run(buses, args.events, max(args.chunk, 1))
            for mode, stack in stacks.items():
                drops[mode] += stack.get_stats()["hot"]["dropped"]
                stack.shutdown()
                for p in stack.ring_paths.values():
                    if tmp is not None:
                        os.unlink(p)
            for name, v in ns.items():
                best[name] = min(v, best.get(name, v))
        b, c, p = best["bare"], best[modes[0]], best["pure"]
        print(json.dumps({"bare_ns": round(b, 1), "client_ns": round(c, 1),
                          "added_ns": round(c - b, 1), "events": args.events,
                          "drops": drops[modes[0]], "repeat": args.repeat,
                          "python": platform.python_version(), "native": native,
                          "pure_client_ns": round(p, 1), "pure_added_ns": round(p - b, 1),
                          "pure_drops": drops["pure"], "chunk": args.chunk}))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
