"""The forward marker (aga_observability/marker.py): libraries built here
with the machine's C compiler from the C client's source (and a counting
variant), hooks on the stand-in's hooked modules, housekeeping pick-up,
the missing-library warning, removal, fail-open hook bodies, module
discovery, and the e2e producer script (tests/marker_producer.py).

Needs a C compiler (``$CC`` or ``cc``); without one these tests skip with a
message. The Go e2e test of the forward_marker probe needs one too."""

import ctypes
import gc
import importlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

import aga_observability
from aga_observability import ObservabilityStack, marker
from aga_observability.stack import running_stacks
from aga_observability.status import HOUSEKEEPER

import ringreader
import standin
from helpers import RingTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # clients/python
HERE = os.path.dirname(os.path.abspath(__file__))

# A marker library that counts its calls per layer (same symbols and ABI).
COUNTING_SRC = r"""
static int counts[2][64];
static int last_layer[2] = {-1, -1};
__attribute__((visibility("default"), noinline)) void agaobs_forward_begin(int layer) {
    if (layer >= 0 && layer < 64) __atomic_add_fetch(&counts[0][layer], 1, __ATOMIC_RELAXED);
    last_layer[0] = layer;
}
__attribute__((visibility("default"), noinline)) void agaobs_forward_end(int layer) {
    if (layer >= 0 && layer < 64) __atomic_add_fetch(&counts[1][layer], 1, __ATOMIC_RELAXED);
    last_layer[1] = layer;
}
__attribute__((visibility("default"))) int agaobs_marker_abi_version(void) { return 1; }
__attribute__((visibility("default"))) int agaobs_test_count(int which, int layer) {
    return __atomic_load_n(&counts[which][layer], __ATOMIC_RELAXED);
}
__attribute__((visibility("default"))) int agaobs_test_last(int which) { return last_layer[which]; }
__attribute__((visibility("default"))) void agaobs_test_reset(void) {
    for (int w = 0; w < 2; w++) { for (int i = 0; i < 64; i++) counts[w][i] = 0; last_layer[w] = -1; }
}
"""
WRONG_ABI_SRC = r"""
__attribute__((visibility("default"))) void agaobs_forward_begin(int layer) { (void)layer; }
__attribute__((visibility("default"))) void agaobs_forward_end(int layer) { (void)layer; }
__attribute__((visibility("default"))) int agaobs_marker_abi_version(void) { return 2; }
"""


def backend():
    sys.path.insert(0, os.path.join(ROOT, "_build"))
    try:
        return importlib.import_module("agaobs_build")
    finally:
        sys.path.pop(0)


def compiler():
    cc = shlex.split(os.environ.get("CC") or "cc")
    return cc if shutil.which(cc[0]) else None


_built = {}


def built_libs():
    """{"real": the marker built from clients/c/marker/agaobs_marker.c,
    "counting": the counting variant, "wrong_abi": ABI 2}, built once in a
    temporary directory; None when no C compiler works."""
    if "libs" in _built:
        return _built["libs"]
    cc = compiler()
    libs = None
    if cc is not None:
        tmp = tempfile.mkdtemp(prefix="agaobs-marker-")
        import atexit
        atexit.register(shutil.rmtree, tmp, True)
        src, inc = backend().marker_sources(ROOT)
        libs = {}
        try:
            for name, source in (("real", src), ("counting", None), ("wrong_abi", None)):
                if source is None:
                    source = os.path.join(tmp, f"{name}.c")
                    with open(source, "w") as f:
                        f.write(COUNTING_SRC if name == "counting" else WRONG_ABI_SRC)
                out = os.path.join(tmp, f"libagaobs_marker_{name}.so")
                subprocess.run(cc + ["-shared", "-fPIC", "-O2", "-I", inc, source, "-o", out],
                               check=True, capture_output=True, timeout=120)
                libs[name] = out
        except (OSError, subprocess.SubprocessError) as e:
            print(f"\nmarker tests: cannot build the marker library ({e})", file=sys.stderr)
            libs = None
    _built["libs"] = libs
    return libs


def need_libs(test):
    libs = built_libs()
    if libs is None:
        msg = ("no working C compiler ($CC or cc): the forward-marker tests are skipped "
               "(CI and the Go forward_marker e2e test need one)")
        print(f"\nskipping: {msg}", file=sys.stderr)
        test.skipTest(msg)
    return libs


class MarkerTestCase(RingTestCase):
    def setUp(self):
        super().setUp()
        self.libs = need_libs(self)
        marker._reset_for_tests()
        self.addCleanup(marker._reset_for_tests)
        self._saved_paths = (marker.PACKAGED, marker.SONAME)
        # Nothing but what a test names: no packaged library, no loader path.
        marker.PACKAGED = os.path.join(self.tmp, "no-packaged", "_agaobs_marker.so")
        marker.SONAME = "libagaobs_marker_not_on_the_loader_path.so"
        self.counting = ctypes.CDLL(self.libs["counting"])
        self.counting.agaobs_test_reset()

    def tearDown(self):
        marker.PACKAGED, marker.SONAME = self._saved_paths
        super().tearDown()

    def env(self, lib="counting", enabled="1"):
        os.environ.update(AGAOBS_RING_DIR=self.ring_dir, AGAOBS_RING_HOT_BYTES="65536",
                          AGAOBS_RING_AUDIT_BYTES="65536", AGAOBS_STATUS_INTERVAL_SECONDS="3600")
        if enabled is not None:
            os.environ["AGAOBS_FORWARD_MARKER"] = enabled
        if lib is not None:
            os.environ["AGAOBS_MARKER_LIB"] = self.libs[lib]

    def count(self, which, layer):
        return self.counting.agaobs_test_count(which, layer)

    def plugin_with_modules(self, layers=(3, 7, 11)):
        """The stand-in plugin (auto-bound in its __init__) attached to one
        fake module per layer AFTER binding, as aga-core does."""
        plugin = standin.AGAPlugin(standin.AGAConfig())
        stacks = [s for s in running_stacks() if s.event_bus is plugin.event_bus]
        self.assertEqual(len(stacks), 1)
        stack = stacks[0]
        self.assertIs(stack.plugin, plugin)
        modules = [standin.Module(name=f"self_attn{i}") for i in layers]
        plugin.attach("llama", layers=list(layers), modules=modules)
        return plugin, stack, modules

    def wait_marked(self, stack, n):
        def marked():
            HOUSEKEEPER._wake.set()  # the next tick now
            st = stack.get_stats().get("forward_marker")
            return st if st and st["modules"] == n else None
        return self.wait_for(marked, what=f"{n} marked modules")


class MarkerHooksTest(MarkerTestCase):
    def test_counts_per_layer_through_housekeeping(self):
        self.env("counting")
        plugin, stack, modules = self.plugin_with_modules()
        st = self.wait_marked(stack, 3)  # attached after binding: housekeeping picks it up
        self.assertEqual(st, {"enabled": True, "loaded": True, "library": self.libs["counting"],
                              "modules": 3, "layers": [3, 7, 11], "errors": 0})
        n = 25
        seen = []

        for m, layer in zip(modules, (3, 7, 11)):
            # Inside the forward: this call's begin happened, its end not yet.
            m._fn = lambda x, layer=layer: seen.append((self.count(0, layer), self.count(1, layer))) or x
        for i in range(n):
            for m in modules:
                self.assertEqual(m(i), i)  # outputs untouched
        for layer in (3, 7, 11):
            self.assertEqual((self.count(0, layer), self.count(1, layer)), (n, n), layer)
        self.assertEqual(sum(self.count(w, x) for w in (0, 1) for x in range(64)), 2 * 3 * n)
        self.assertEqual(seen[:3], [(1, 0), (1, 0), (1, 0)])
        self.assertTrue(all(b == e + 1 for b, e in seen))
        for m in modules:
            # One pre-hook (ours); the end hook runs after aga-core's hook.
            self.assertEqual(len(m._forward_pre_hooks), 1)
            hooks = list(m._forward_hooks.values())
            self.assertEqual([h.__name__ for h in hooks], ["aga_forward", "agaobs_forward_end_hook"])
        # The in-band events carry the same layers.
        hot = stack.ring_paths["hot"]
        fwd = [r for r in ringreader.Reader(hot).poll() if r["type"] == "forward"]
        self.assertEqual(len(fwd), 3 * n)
        self.assertEqual({r["layer_idx"] for r in fwd}, {3, 7, 11})
        # Housekeeping ticks do not mark twice.
        for _ in range(3):
            stack._producer.marker.refresh()
        self.assertEqual([len(m._forward_pre_hooks) for m in modules], [1, 1, 1])
        # A last STATUS reports the marker.
        aga_observability.shutdown_observability()
        st = [r["json"] for r in ringreader.Reader(hot).poll(release=False) if r["type"] == "status"]
        self.assertEqual(st[-1]["forward_marker"], {"enabled": True, "loaded": True,
                                                    "library": self.libs["counting"], "modules": 3})

    def test_real_library_through_ctypes(self):
        # The marker built from clients/c/marker/agaobs_marker.c, its ctypes
        # functions wrapped to count (the wrappers call the real ones).
        self.env("real")
        lib = marker.load(self.libs["real"])
        self.assertIsNotNone(lib)
        self.assertIsInstance(lib.cdll, ctypes.PyDLL)  # keeps the GIL
        self.assertIsNone(lib.begin.restype)
        self.assertIsNone(lib.begin(5))
        calls = []
        real_begin, real_end = lib.begin, lib.end
        lib.begin = lambda layer: (calls.append(("b", layer)), real_begin(layer))[1]
        lib.end = lambda layer: (calls.append(("e", layer)), real_end(layer))[1]
        plugin, stack, modules = self.plugin_with_modules(layers=(0, 1))
        self.wait_marked(stack, 2)
        for _ in range(4):
            modules[0]("x")
            modules[1]("y")
        self.assertEqual(calls, [("b", 0), ("e", 0), ("b", 1), ("e", 1)] * 4)
        self.assertEqual(stack.get_stats()["forward_marker"]["errors"], 0)

    def test_bound_after_attach_marks_at_once(self):
        self.env("counting")
        bus = standin.EventBus()
        plugin = standin.AGAPlugin(standin.AGAConfig(observability_enabled=False))
        plugin.event_bus = bus
        modules = [standin.Module(), standin.Module()]
        plugin.attach("llama", layers=[-1, -2], modules=modules)  # layers 31 and 30
        stack = ObservabilityStack(bus, aga_observability.ObservabilityConfig())
        self.assertTrue(stack.start())
        stack.bind_plugin(plugin)
        st = stack.get_stats()["forward_marker"]
        self.assertEqual((st["modules"], st["layers"]), (2, [31, 30]))  # no housekeeping needed
        modules[0](1)
        self.assertEqual((self.count(0, 31), self.count(1, 31), self.count(0, 30)), (1, 1, 0))
        stack.shutdown()

    def test_disabled_adds_no_hooks(self):
        for enabled in (None, "0"):
            with self.subTest(enabled=enabled):
                self.env("counting", enabled=enabled)
                plugin, stack, modules = self.plugin_with_modules()
                stack._producer.marker.refresh()
                stack.bind_plugin(plugin)
                for m in modules:
                    m(0)
                    self.assertEqual(len(m._forward_pre_hooks), 0)
                    self.assertEqual(len(m._forward_hooks), 1)  # aga-core's only
                self.assertNotIn("forward_marker", stack.get_stats())
                self.assertEqual(marker._loaded, {})  # the library is not even loaded
                self.assertEqual(self.count(0, 3), 0)
                aga_observability.shutdown_observability()

    def test_missing_library_warns_once(self):
        self.env(lib=None)  # enabled; no AGAOBS_MARKER_LIB, nothing packaged, nothing on the path
        with self.assertLogs("aga_observability", level="WARNING") as logs:
            plugins = []
            for _ in range(5):
                plugin, stack, modules = self.plugin_with_modules()
                for _ in range(3):
                    stack.bind_plugin(plugin)
                    stack._producer.marker.refresh()
                for m in modules:
                    self.assertEqual(m(1), 1)
                    self.assertEqual(len(m._forward_pre_hooks), 0)
                st = stack.get_stats()["forward_marker"]
                self.assertEqual((st["loaded"], st["modules"]), (False, 0))
                plugins.append(plugin)
            logging.getLogger("aga_observability").warning("sentinel")  # assertLogs needs >= 1
        warnings = [r for r in logs.records if "marker" in r.getMessage()]
        self.assertEqual(len(warnings), 1, [r.getMessage() for r in logs.records])
        self.assertIn("AGAOBS_MARKER_LIB", warnings[0].getMessage())

    def test_bad_explicit_path_falls_back(self):
        self.env(lib=None)
        os.environ["AGAOBS_MARKER_LIB"] = os.path.join(self.tmp, "missing.so")
        marker.PACKAGED = self.libs["counting"]  # as if packaged
        with self.assertLogs("aga_observability", level="WARNING") as logs:
            plugin, stack, modules = self.plugin_with_modules()
            self.wait_marked(stack, 3)
        self.assertEqual(len(logs.records), 1)
        self.assertIn("missing.so", logs.records[0].getMessage())
        self.assertEqual(stack.get_stats()["forward_marker"]["library"], self.libs["counting"])

    def test_wrong_abi_is_refused(self):
        marker.PACKAGED = self.libs["wrong_abi"]
        with self.assertLogs("aga_observability", level="WARNING") as logs:
            self.assertIsNone(marker.load(None))
        self.assertIn("abi", logs.records[0].getMessage().lower())

    def test_removed_on_shutdown_detach_and_reattach(self):
        self.env("counting")
        plugin, stack, modules = self.plugin_with_modules()
        self.wait_marked(stack, 3)
        # detach: aga-core's hooks go, ours follow at the next housekeeping tick.
        plugin.detach()
        self.wait_marked(stack, 0)
        for m in modules:
            self.assertEqual((len(m._forward_pre_hooks), len(m._forward_hooks)), (0, 0))
        # re-attach (to two of them): marked again, after the new aga hook.
        plugin.attach("llama", layers=[4, 5], modules=modules[:2])
        self.wait_marked(stack, 2)
        self.assertEqual([h.__name__ for h in modules[0]._forward_hooks.values()],
                         ["aga_forward", "agaobs_forward_end_hook"])
        modules[0](0)
        self.assertEqual((self.count(0, 4), self.count(1, 4)), (1, 1))
        self.assertEqual(len(marker._marked), 2)
        aga_observability.shutdown_observability()
        for m in modules:
            self.assertEqual(len(m._forward_pre_hooks), 0)
            self.assertTrue(all(h.__name__ == "aga_forward" for h in m._forward_hooks.values()))
        self.assertEqual(marker._marked, {})
        modules[0](0)
        self.assertEqual(self.count(0, 4), 1)

    def test_hook_errors_never_reach_the_caller(self):
        self.env("counting")
        lib = marker.load(self.libs["counting"])
        # A ctypes call that raises inside ctypes (ArgumentError: an int
        # where a char* is declared), and a plain exception.
        bad = ctypes.CDLL(self.libs["counting"]).agaobs_forward_begin
        bad.argtypes = [ctypes.c_char_p]
        lib.begin = bad

        def boom(layer):
            raise RuntimeError("boom")
        lib.end = boom
        plugin, stack, modules = self.plugin_with_modules()
        self.wait_marked(stack, 3)
        for m in modules:
            self.assertEqual(m("out"), "out")
        self.assertEqual(stack.get_stats()["forward_marker"]["errors"], 6)
        self.assertEqual(self.count(0, 3), 0)

    def test_once_per_module_across_markers(self):
        self.env("counting")
        plugin, stack, modules = self.plugin_with_modules()
        self.wait_marked(stack, 3)
        other = marker.ForwardMarker(True, self.libs["counting"])
        other.bind(plugin)
        self.assertEqual(other.modules, 0)
        self.assertEqual([len(m._forward_pre_hooks) for m in modules], [1, 1, 1])
        other.close()
        self.assertEqual([len(m._forward_pre_hooks) for m in modules], [1, 1, 1])


class FindModulesTest(unittest.TestCase):
    """marker.hooked_modules: the routes to a handle's module and its layer."""

    def plugin(self, modules, hook_factory):
        p = standin.AGAPlugin.__new__(standin.AGAPlugin)  # no bus, no setup
        p._hooks = [m.register_forward_hook(hook_factory(i, m)) for i, m in enumerate(modules)]
        return p

    def test_gc_route_inline_and_materialised_dicts(self):
        mods = [standin.Module(), standin.Module()]
        vars(mods[1])  # an instance __dict__ object: the two-step gc route

        def factory(i, m):
            layer_idx = 10 + i

            def aga_forward(module, inputs, output):
                return layer_idx
            return aga_forward
        p = self.plugin(mods, factory)
        found = marker.hooked_modules(p)
        self.assertEqual([(m is mods[i], layer) for i, (m, layer) in enumerate(found)],
                         [(True, 10), (True, 11)])

    def test_closure_route_skips_gc(self):
        mods = [standin.Module() for _ in range(3)]

        def factory(i, m):
            def hook(module, inputs, output, _m=m):
                return None
            return lambda module, inputs, output: hook(module, inputs, output) and m
        p = self.plugin(mods, factory)
        saved = gc.get_referrers
        gc.get_referrers = None  # would raise if called
        try:
            found = marker.hooked_modules(p)
        finally:
            gc.get_referrers = saved
        self.assertEqual([m for m, _ in found], mods)
        self.assertEqual([layer for _, layer in found], [0, 1, 2])  # hook order

    def test_model_route_and_layer_list(self):
        mods = [standin.Module() for _ in range(2)]

        class Model:
            def modules(self):
                return iter([standin.Module()] + mods)
        p = self.plugin(mods, lambda i, m: (lambda module, inputs, output: None))
        p.model = Model()
        p._hooked_layers = [20, 21]
        saved = gc.get_referrers
        gc.get_referrers = None
        try:
            found = marker.hooked_modules(p)
        finally:
            gc.get_referrers = saved
        self.assertEqual(found, [(mods[0], 20), (mods[1], 21)])

    def test_unusable_handles_are_skipped(self):
        mod = standin.Module()
        p = self.plugin([mod], lambda i, m: (lambda module, inputs, output: None))
        p._hooks = [object(), p._hooks[0], None]
        found = marker.hooked_modules(p)
        self.assertEqual(found, [(mod, 1)])  # its position in _hooks
        gone = standin.Module()
        h = gone.register_forward_hook(lambda *a: None)
        del gone
        gc.collect()
        p._hooks = [h]
        self.assertEqual(marker.hooked_modules(p), [])  # dead weak reference
        p._hooks = None
        self.assertEqual(marker.hooked_modules(p), [])
        self.assertEqual(marker.signature(p), ())


class ProducerScriptTest(MarkerTestCase):
    def test_marker_producer_script(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGAOBS_")}
        env.update(PYTHONPATH=ROOT, AGAOBS_RING_DIR=self.ring_dir, AGAOBS_PRODUCER="marker-py",
                   AGAOBS_FORWARD_MARKER="1", AGAOBS_MARKER_LIB=self.libs["real"])
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "marker_producer.py"), "50"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
        try:
            self.assertEqual(p.stdout.readline().strip(), "ready")
            p.stdin.write("go\n")
            p.stdin.flush()
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(out.strip(), "done 100 100")
        rings = sorted(os.listdir(self.ring_dir))
        hot = [os.path.join(self.ring_dir, r) for r in rings if r.endswith("-hot.ring")]
        self.assertEqual(len(hot), 1)
        r = ringreader.Reader(hot[0])
        self.assertEqual(r.identity["producer"], "marker-py")
        recs = r.poll()
        self.assertEqual(len([x for x in recs if x["type"] == "forward"]), 100)
        st = [x["json"] for x in recs if x["type"] == "status"][-1]
        self.assertEqual(st["forward_marker"], {"enabled": True, "loaded": True,
                                                "library": self.libs["real"], "modules": 2})


if __name__ == "__main__":
    unittest.main()
