#!/usr/bin/env python3
"""Forward-marker producer for the Go e2e test of the forward_marker probe:

    PYTHONPATH=clients/python AGAOBS_RING_DIR=<dir> AGAOBS_PRODUCER=<name> \\
    AGAOBS_FORWARD_MARKER=1 [AGAOBS_MARKER_LIB=<libagaobs_marker.so>] \\
        python3 clients/python/tests/marker_producer.py N

The stand-in AGAPlugin (its __init__ sets up and binds the client, as
aga-core does) attaches aga-core-style forward hooks to 2 fake modules
(layers 0 and 1); the client's housekeeping adds the marker hooks. Then it
prints "ready" and waits for a line "go" on stdin (at end of input: 0.5 s,
for the agent to attach its uprobes), runs N forwards of each module (2N
agaobs_forward_begin and 2N agaobs_forward_end calls in all, through the
real ctypes functions, counted by wrappers around them), prints
"done <begin_calls> <end_calls>", shuts the client down (a last STATUS;
rings closed) and exits 0.

Exit status 2, with a message on stderr, when the marker library cannot
be loaded or the modules are not marked within 5 s."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # standin

import standin  # noqa: E402

import aga_observability  # noqa: E402
from aga_observability import marker  # noqa: E402


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    if os.environ.get("AGAOBS_FORWARD_MARKER") is None:
        os.environ["AGAOBS_FORWARD_MARKER"] = "1"
    # Count the calls: wrap the cached ctypes functions before any hook is
    # made (the hooks bind them when they are created).
    lib = marker.load(os.environ.get("AGAOBS_MARKER_LIB") or None)
    if lib is None:
        print("marker_producer: no marker library (set AGAOBS_MARKER_LIB)", file=sys.stderr)
        return 2
    counts = [0, 0]
    real_begin, real_end = lib.begin, lib.end

    def begin(layer):
        counts[0] += 1
        real_begin(layer)

    def end(layer):
        counts[1] += 1
        real_end(layer)
    lib.begin, lib.end = begin, end

    plugin = standin.AGAPlugin(standin.AGAConfig())
    stack = aga_observability.get_global_stack()
    if stack is None or stack.plugin is not plugin:
        print("marker_producer: the client did not set up and bind", file=sys.stderr)
        return 2
    modules = [standin.Module(name="self_attn0"), standin.Module(name="self_attn1")]
    plugin.attach("llama", layers=[0, 1], modules=modules)
    deadline = time.monotonic() + 5.0
    while (stack.get_stats().get("forward_marker") or {}).get("modules") != 2:
        if time.monotonic() > deadline:
            print(f"marker_producer: modules not marked: {stack.get_stats().get('forward_marker')}",
                  file=sys.stderr)
            return 2
        time.sleep(0.02)
    print("ready", flush=True)
    line = sys.stdin.readline()
    if line.strip() != "go":
        time.sleep(0.5)
    for i in range(n):
        for m in modules:
            m(i)
    print(f"done {counts[0]} {counts[1]}", flush=True)
    aga_observability.shutdown_observability()
    return 0


if __name__ == "__main__":
    sys.exit(main())
