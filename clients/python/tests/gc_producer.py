#!/usr/bin/env python3
"""A producer for the agent's eBPF python_gc test: the stand-in AGAPlugin
(auto-loading aga_observability), then, after a "go" line on stdin,
gc.collect() N times. Prints "ready" before waiting and "done" after;
exits on EOF of stdin. Run it with an interpreter that has USDT notes
(Debian's /usr/bin/python3.11)."""

import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import standin  # noqa: E402


def main() -> int:
    n = int(sys.argv[1])
    plugin = standin.AGAPlugin(standin.AGAConfig(max_slots=100))
    plugin.attach("llama", layers=[0])
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    for _ in range(n):
        gc.collect()
    print("done", flush=True)
    sys.stdin.readline()
    from aga_observability import shutdown_observability
    shutdown_observability()
    return 0


if __name__ == "__main__":
    sys.exit(main())
