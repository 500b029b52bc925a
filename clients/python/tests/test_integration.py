"""Zero-code wiring with aga-core: auto-bind, STATUS snapshots, identity
and HELLO updates, the gate finiteness check."""

import os
import subprocess
import sys
import types
import unittest

import aga_observability
from aga_observability import identity
from aga_observability.status import GateCheck

import envutil
import ringreader
import standin
from helpers import RingTestCase


def latest_status(path):
    recs = ringreader.Reader(path).poll(release=False)
    st = [r["json"] for r in recs if r["type"] == "status"]
    return st[-1] if st else None


class AutoBindTest(RingTestCase):
    def test_plugin_bound_without_bind_plugin(self):
        # aga-core passes its AGAConfig, which carries none of our fields:
        # the ring settings come from the environment.
        os.environ["AGAOBS_RING_DIR"] = self.ring_dir
        os.environ["AGAOBS_RING_HOT_BYTES"] = "65536"
        os.environ["AGAOBS_RING_AUDIT_BYTES"] = "65536"
        os.environ["AGAOBS_STATUS_INTERVAL_SECONDS"] = "0.05"
        plugin = standin.AGAPlugin(standin.AGAConfig(max_slots=128))
        stack = aga_observability.get_global_stack()
        self.assertIsNotNone(stack)
        self.assertIs(stack.plugin, plugin)  # found by walking the caller frames
        for i in range(5):
            plugin.register(f"k{i}", pinned=(i < 2))
        plugin.unregister("k0")  # a pinned one
        plugin.register("k9", metadata={"namespace": "docs"})
        plugin.attach("llama")
        plugin._slot_change_counter, plugin._slot_change_window = 3, 4
        expected = plugin.get_store_stats()
        calls = plugin.stats_calls
        hot = stack.ring_paths["hot"]

        def fresh():
            st = latest_status(hot)
            return st if st and st.get("kv_store", {}).get("count") == expected["count"] \
                and "attachment" in st else None
        st = self.wait_for(fresh, what="a STATUS with the plugin state")
        self.assertEqual(st["kv_store"]["count"], expected["count"])
        self.assertEqual(st["kv_store"]["max_slots"], 128)
        self.assertAlmostEqual(st["kv_store"]["utilization"], expected["count"] / 128)
        self.assertEqual(st["kv_store"]["pinned"], expected["pinned_count"])
        self.assertTrue(st["bound"])
        self.assertEqual(st["attachment"], {"attached": True, "model_type": "llama", "hooks": 3})
        self.assertEqual(st["slot_change_rate"], 0.75)
        self.assertEqual(st["retriever"]["type"], "NullRetriever")
        self.assertEqual(st["retriever"]["stats"]["call_count"], 0)
        self.assertEqual(st["gate_system"], {"finite": None, "param_count": 0})
        self.assertEqual(st["event_bus"]["enabled"], True)
        self.assertEqual(st["build"], {"hidden_dim": 4096, "bottleneck_dim": 64,
                                       "max_slots": 128, "device": "cpu"})
        # Never the GPU-syncing accessors.
        self.assertEqual(plugin.stats_calls, calls)
        # The attach changed the model: a new HELLO carries it.
        hellos = [r["json"] for r in ringreader.Reader(hot).poll(release=False) if r["type"] == "hello"]
        self.assertGreaterEqual(len(hellos), 2)
        self.assertEqual(hellos[-1]["model"], "llama")
        self.assertEqual(hellos[-1]["max_slots"], 128)
        # clear() empties the store and the pinned set.
        plugin.clear()
        st = self.wait_for(lambda: (latest_status(hot) or {}).get("kv_store", {}).get("count") == 0
                           and latest_status(hot), what="count 0")
        self.assertEqual(st["kv_store"]["pinned"], 0)

    def test_disabled_plugin_config_leaves_bus_alone(self):
        os.environ["AGAOBS_RING_DIR"] = self.ring_dir
        plugin = standin.AGAPlugin(standin.AGAConfig(observability_enabled=False))
        self.assertIsNone(aga_observability.get_global_stack())
        self.assertNotIn("*", plugin.event_bus.get_stats()["subscribers"])

    def test_explicit_bind_plugin(self):
        bus, stack = self.start()
        plugin = types.SimpleNamespace(event_bus=bus, config=standin.AGAConfig(max_slots=64),
                                       _attached_model_name="qwen")
        aga_observability.bind_plugin(plugin)
        self.assertIs(stack.plugin, plugin)
        stack.shutdown()
        hot = ringreader.Reader(stack.ring_paths["hot"]).poll()
        hello = [r["json"] for r in hot if r["type"] == "hello"][-1]
        self.assertEqual((hello["model"], hello["max_slots"]), ("qwen", 64))
        self.assertTrue([r for r in hot if r["type"] == "status"][-1]["json"]["bound"])

    def test_status_survives_failing_plugin_fields(self):
        bus, stack = self.start()

        class Broken:
            event_bus = bus
            config = None

            @property
            def is_attached(self):
                raise RuntimeError("no")

            @property
            def retriever(self):
                raise RuntimeError("no")

            gate_system = None
        stack.bind_plugin(Broken())
        stack.shutdown()
        st = latest_status(stack.ring_paths["hot"])
        self.assertTrue(st["bound"])
        # A raising field is reported (the agent's health shows the error).
        self.assertEqual(st["attachment"], {"error": "RuntimeError: no"})
        self.assertEqual(st["retriever"], {"error": "RuntimeError: no"})
        self.assertIn("kv_store", st)

    def test_status_reports_retriever_stats_error(self):
        bus, stack = self.start()

        class Retriever:
            def get_stats(self):
                raise ValueError("index offline")

        class Plugin:
            event_bus = bus
            config = None
            retriever = Retriever()
            gate_system = None
            _hooks = [1]
        stack.bind_plugin(Plugin())
        stack.shutdown()
        st = latest_status(stack.ring_paths["hot"])
        self.assertEqual(st["retriever"], {"type": "Retriever", "error": "ValueError: index offline"})


class IdentityTest(RingTestCase):
    def test_names(self):
        self.assertEqual(identity.producer_name(None, "worker", None, 0), "worker")
        self.assertEqual(identity.producer_name(None, "worker", 3, 0), "worker-tp3")
        self.assertEqual(identity.producer_name(None, "worker", 3, 2), "worker-tp3.2")
        self.assertEqual(identity.producer_name("given", "worker", 3, 1), "given.1")

    def test_env_identity(self):
        env = {"AGAOBS_ROLE": "engine", "RANK": "1", "WORLD_SIZE": "4", "POD_NAME": "p-0",
               "POD_NAMESPACE": "ml", "CONTAINER_NAME": "srv"}
        with envutil.env(**env):
            bus, stack = self.start()
        ident = ringreader.Reader(stack.ring_paths["hot"]).identity
        inst = stack.get_stats()["instance"]
        want = "engine-tp1" + (".%d" % inst if inst else "")
        self.assertEqual(ident["producer"], want)
        for k, v in (("role", "engine"), ("rank", 1), ("world_size", 4), ("pod", "p-0"),
                     ("namespace", "ml"), ("container", "srv"), ("schema_version", 1),
                     ("instance", inst), ("client", "python/2.0.0")):
            self.assertEqual(ident[k], v)
        self.assertEqual(list(ident)[0], "producer")

    def test_explicit_producer_and_torch_rank(self):
        fake = types.ModuleType("torch")
        fake.distributed = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True,
                                                 get_rank=lambda: 5, get_world_size=lambda: 8)
        saved = sys.modules.get("torch")
        sys.modules["torch"] = fake
        rank = os.environ.pop("RANK", None)
        try:
            self.assertEqual(identity.rank_world(), (5, 8))
            os.environ["AGAOBS_PRODUCER"] = "svc"
            bus, stack = self.start()
        finally:
            if saved is None:
                del sys.modules["torch"]
            else:
                sys.modules["torch"] = saved
            if rank is not None:
                os.environ["RANK"] = rank
        self.assertTrue(stack.producer_name.split(".")[0] == "svc")

    def test_process_name(self):
        out = subprocess.run([sys.executable, "-c", "from aga_observability import identity;"
                              "print(identity.process_name())"], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), check=True)
        name = out.stdout.strip()
        self.assertTrue(name)  # argv[0] is "-c": falls back to /proc/self/comm
        self.assertNotEqual(name, "-c")
        self.assertNotIn("/", name)
        self.assertEqual(identity.process_name(), os.path.basename(sys.argv[0]).replace(".py", "")
                         if sys.argv[0] and not sys.argv[0].startswith("-") else identity.process_name())

    def test_identity_json_fits(self):
        ident = identity.identity("p" * 5000, "r" * 3000, 0, standin.AGAConfig())
        b = identity.identity_json(ident, 300)
        self.assertLessEqual(len(b), 300)


class FakeTensor:
    def __init__(self, values, device="cpu"):
        self.values = list(values)
        self.device = types.SimpleNamespace(type=device.split(":")[0])
        self._dev = device

    def __str__(self):
        return "tensor"

    def detach(self):
        return self

    def reshape(self, *_):
        return self

    def all(self):
        return all(self.values)


def fake_torch(syncs):
    import contextlib
    import math
    t = types.ModuleType("torch")
    t.no_grad = contextlib.nullcontext

    def cat(ts):
        return FakeTensor([v for x in ts for v in x.values])

    def isfinite(x):
        syncs.append(1)
        return FakeTensor([math.isfinite(v) for v in x.values])
    t.cat, t.isfinite = cat, isfinite
    return t


class GateCheckTest(unittest.TestCase):
    def setUp(self):
        self.syncs = []
        self.saved = sys.modules.get("torch")
        sys.modules["torch"] = fake_torch(self.syncs)

    def tearDown(self):
        if self.saved is None:
            del sys.modules["torch"]
        else:
            sys.modules["torch"] = self.saved

    def test_cpu_always_checked(self):
        g = GateCheck(0.0)
        self.assertTrue(g([FakeTensor([1.0, 2.0]), FakeTensor([3.0])], 0.0))
        self.assertEqual(len(self.syncs), 1)  # one fused reduction for the device
        self.assertFalse(g([FakeTensor([1.0, float("nan")])], 1.0))
        self.assertFalse(g([FakeTensor([float("inf")])], 2.0))

    def test_cuda_skipped_by_default(self):
        g = GateCheck(0.0)
        self.assertIsNone(g([FakeTensor([1.0], "cuda:0")], 0.0))
        self.assertEqual(self.syncs, [])

    def test_cuda_rate_limited(self):
        g = GateCheck(10.0)
        p = [FakeTensor([1.0], "cuda:0")]
        self.assertTrue(g(p, 100.0))
        p[0].values = [float("nan")]
        self.assertTrue(g(p, 105.0))   # within 10 s: last result, no new sync
        self.assertEqual(len(self.syncs), 1)
        self.assertFalse(g(p, 110.5))
        self.assertEqual(len(self.syncs), 2)

    def test_in_status(self):
        plugin = standin.AGAPlugin.__new__(standin.AGAPlugin)
        plugin.gate_system = standin.GateSystem([FakeTensor([0.5]), FakeTensor([1.0, 2.0])])
        from aga_observability import status
        p = types.SimpleNamespace(plugin=plugin, bus=standin.EventBus(), gate_check=GateCheck(0),
                                  aga_config_now=lambda: None, kv_counts=lambda: (0, 0),
                                  count_error=lambda: None)
        snap = status.snapshot(p, 0.0)
        self.assertEqual(snap["gate_system"], {"finite": True, "param_count": 2})


if __name__ == "__main__":
    unittest.main()
