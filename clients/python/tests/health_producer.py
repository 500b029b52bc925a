#!/usr/bin/env python3
"""A producer for the agent's health tests: the stand-in AGAPlugin (its
__init__ auto-loads aga_observability, as aga-core does) in a state chosen
by the first argument, kept alive until SIGTERM (clean shutdown) or
SIGKILL. Prints "ready" once its first status snapshot is written.

  healthy   attached, 10 of 100 slots used
  kv96      96 of 100 slots used (kv_store degraded)
  nan       a gate parameter is NaN (gate_system unhealthy)
  burst     bursts that nearly fill a 4 KiB hot ring (set
            AGAOBS_RING_HOT_BYTES=4096), which the agent drains

Environment: AGAOBS_RING_DIR, AGAOBS_PRODUCER as for any producer."""

import contextlib
import math
import os
import signal
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import standin  # noqa: E402


class FakeTensor:
    def __init__(self, values):
        self.values = list(values)
        self.device = types.SimpleNamespace(type="cpu")

    def detach(self):
        return self

    def reshape(self, *_):
        return self

    def all(self):
        return all(self.values)

    def __bool__(self):
        return all(self.values)


def fake_torch():
    t = types.ModuleType("torch")
    t.no_grad = contextlib.nullcontext
    t.cat = lambda ts: FakeTensor([v for x in ts for v in x.values])
    t.isfinite = lambda x: FakeTensor([math.isfinite(v) for v in x.values])
    return t


def main() -> int:
    scenario = sys.argv[1]
    os.environ.setdefault("AGAOBS_STATUS_INTERVAL_SECONDS", "0.2")
    sys.modules["torch"] = fake_torch()  # CPU gate parameters are checked
    plugin = standin.AGAPlugin(standin.AGAConfig(max_slots=100))
    plugin.attach("llama", layers=[0, 1])
    value = float("nan") if scenario == "nan" else 0.5
    plugin.gate_system = standin.GateSystem([FakeTensor([1.0, value])])
    for i in range(96 if scenario == "kv96" else 10):
        plugin.register(f"k{i}")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    time.sleep(0.5)  # a status snapshot with all of the above
    print("ready", flush=True)
    n = 0
    while not stop:
        if scenario == "burst":
            for _ in range(50):
                plugin.event_bus.emit("forward", {"layer_idx": 0, "aga_applied": True, "gate_mean": 0.5,
                                                  "entropy_mean": 1.0, "latency_us": 100.0})
                n += 1
        time.sleep(0.05)
    from aga_observability import shutdown_observability
    shutdown_observability()
    return 0


if __name__ == "__main__":
    sys.exit(main())
