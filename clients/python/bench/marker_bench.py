#!/usr/bin/env python3
"""Python-side cost of the forward marker per forward, with no uprobe attached.

Builds the marker library from clients/c/marker/agaobs_marker.c with $CC
(else cc) into a temporary directory, unless --lib names one, and prints one
JSON line with ns per forward, best of --repeat runs of --calls each:

  ctypes_pair   agaobs_forward_begin(l) + agaobs_forward_end(l): the cached
                ctypes function objects (PyDLL, restype None), called directly
  hooks_pair    the marker's pre-hook + post-hook bodies, called directly
  module_added  a stand-in module call (tests/standin.py: pre-hooks, forward,
                hooks, as torch's Module.__call__ runs them) with aga-core's
                hook and the marker hooks, minus the same call without the
                marker hooks: the marker's whole added cost per forward

    python3 clients/python/bench/marker_bench.py [--calls N] [--repeat R] [--lib PATH]
"""

import argparse
import gc
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))            # aga_observability
sys.path.insert(0, os.path.join(HERE, "..", "tests"))   # standin
sys.path.insert(0, os.path.join(HERE, "..", "_build"))  # agaobs_build (marker sources)

import agaobs_build  # noqa: E402
import standin  # noqa: E402

from aga_observability import marker  # noqa: E402


def best(fn, n: int, repeat: int) -> float:
    out = float("inf")
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            fn(n)
            out = min(out, (time.perf_counter_ns() - t0) / n)
    finally:
        gc.enable()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5, help="best of N runs")
    ap.add_argument("--lib", default=None, help="a built libagaobs_marker.so (default: build one)")
    args = ap.parse_args()

    tmp = None
    path = args.lib
    if path is None:
        tmp = tempfile.mkdtemp(prefix="agaobs-markerbench-")
        src, inc = agaobs_build.marker_sources()
        path = os.path.join(tmp, "libagaobs_marker.so")
        cc = shlex.split(os.environ.get("CC") or "cc")
        subprocess.run(cc + ["-shared", "-fPIC", "-O2", "-I", inc, src, "-o", path], check=True)
    try:
        lib = marker.load(path)
        if lib is None:
            sys.exit(f"cannot load {path}")
        begin, end = lib.begin, lib.end
        errors = [0]
        pre, post = marker.make_hooks(lib, 3, errors)
        m_args, out = (1,), 1

        def ctypes_pair(n):
            for _ in range(n):
                begin(3)
                end(3)

        def hooks_pair(n):
            for _ in range(n):
                pre(None, m_args)
                post(None, m_args, out)

        bus = standin.EventBus(enabled=False)  # aga-core's hook emits into a disabled bus
        plugin = standin.AGAPlugin.__new__(standin.AGAPlugin)
        plugin.event_bus = bus
        plain, marked = standin.Module(), standin.Module()
        for m in (plain, marked):
            m.register_forward_hook(plugin._create_layer_forward(3))
        marked.register_forward_pre_hook(pre)
        marked.register_forward_hook(post)

        def calls(module):
            def run(n):
                for i in range(n):
                    module(i)
            return run

        n, r = args.calls, args.repeat
        res = {"ctypes_pair": best(ctypes_pair, n, r), "hooks_pair": best(hooks_pair, n, r)}
        base = best(calls(plain), n, r)
        with_marker = best(calls(marked), n, r)
        res.update(module_without_marker=base, module_with_marker=with_marker,
                   module_added=with_marker - base)
        res = {k: round(v, 1) for k, v in res.items()}
        res.update(python=platform.python_version(), implementation=sys.executable,
                   calls=n, repeat=r, errors=errors[0], lib=path)
        print(json.dumps(res))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
