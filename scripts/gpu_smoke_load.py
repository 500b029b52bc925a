#!/usr/bin/env python3
"""GPU load for scripts/gpu-smoke.sh: a PyTorch matmul loop on cuda:0 that
streams through the agaobs Python client like aga-core would (the
stand-in AGAPlugin from clients/python/tests: its __init__ imports
aga_observability), timing each "forward" with CUDA events. Standard
library + torch only; no network."""

import argparse
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "clients", "python"))
sys.path.insert(0, os.path.join(here, "..", "clients", "python", "tests"))

import standin  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    import torch  # the smoke machine has it; this machine does not

    if not torch.cuda.is_available():
        print("no CUDA device visible to torch", file=sys.stderr)
        return 1
    plugin = standin.AGAPlugin(standin.AGAConfig(max_slots=256))
    plugin.attach("gpu-smoke-model", layers=[0, 1, 2])
    for i in range(32):
        plugin.register(f"k{i}", reliability=0.9)
    dev = torch.device("cuda:0")
    a = torch.randn(args.size, args.size, device=dev, dtype=torch.float16)
    b = torch.randn(args.size, args.size, device=dev, dtype=torch.float16)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    deadline = time.time() + args.seconds
    n = 0
    while time.time() < deadline:
        start.record()
        c = a @ b
        end.record()
        end.synchronize()
        lat_us = start.elapsed_time(end) * 1000.0
        plugin.event_bus.emit("forward", {"layer_idx": n % 3, "aga_applied": n % 2 == 0,
                                          "gate_mean": float(c[0, 0].abs().clamp(max=1)),
                                          "entropy_mean": 1.0, "latency_us": lat_us})
        n += 1
    print(f"{n} forwards on {torch.cuda.get_device_name(0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
