"""The seed package's public API (docs/seed-compatibility.md §12): every
documented name importable with the seed's signature, nothing started by
importing it, nothing added to the emit path, the dashboard equal to the
Go generator's, reads answered by a running agent (the real binary), an
unreachable agent giving an empty result and one warning, and no call
raising into the caller."""

import importlib
import inspect
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import aga_observability
from aga_observability import _agent_api

import standin
from envutil import env as environ
from helpers import RingTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.dirname(HERE)                       # clients/python
REPO = os.path.dirname(os.path.dirname(CLIENT))      # the repository root
DEADLINE = 60.0  # seconds to wait for the agent (a loaded 2-vCPU machine)

# The seed's documented surface: module -> public names (its README's
# package layout and __init__ exports, its classes' public methods).
SEED_NAMES = {
    "aga_observability": ["setup_observability", "ObservabilityStack", "ObservabilityConfig", "PrometheusExporter",
                          "GrafanaDashboardGenerator", "AlertManager", "AlertRule", "AlertSeverity", "LogExporter",
                          "AuditStorageBackend", "FileAuditStorage", "SQLiteAuditStorage", "HealthChecker",
                          "HealthStatus", "__version__", "AlertRuleConfig", "get_global_stack", "bind_plugin",
                          "shutdown_observability"],
    "aga_observability.config": ["ObservabilityConfig", "AlertRuleConfig"],
    "aga_observability.integration": ["setup_observability", "get_global_stack", "bind_plugin",
                                      "shutdown_observability"],
    "aga_observability.stack": ["ObservabilityStack"],
    "aga_observability.prometheus_exporter": ["PrometheusExporter"],
    "aga_observability.grafana_dashboard": ["GrafanaDashboardGenerator"],
    "aga_observability.alert_manager": ["AlertManager", "AlertRule", "AlertSeverity", "AlertEvent"],
    "aga_observability.log_exporter": ["LogExporter"],
    "aga_observability.audit_storage": ["AuditStorageBackend", "FileAuditStorage", "SQLiteAuditStorage"],
    "aga_observability.health": ["HealthChecker", "HealthStatus"],
}

# "module:Class.method" -> the seed's parameter names, in order (self left out).
SEED_SIGNATURES = {
    "stack:ObservabilityStack.__init__": ["event_bus", "config"],
    "stack:ObservabilityStack.start": [],
    "stack:ObservabilityStack.bind_plugin": ["plugin"],
    "stack:ObservabilityStack.shutdown": [],
    "stack:ObservabilityStack.get_stats": [],
    "stack:ObservabilityStack.generate_dashboard": ["path"],
    "integration:setup_observability": ["event_bus", "aga_config"],
    "integration:bind_plugin": ["plugin"],
    "prometheus_exporter:PrometheusExporter.__init__": ["prefix", "port", "labels", "registry"],
    "prometheus_exporter:PrometheusExporter.subscribe": ["event_bus"],
    "prometheus_exporter:PrometheusExporter.unsubscribe": ["event_bus"],
    "prometheus_exporter:PrometheusExporter.update_gauges": ["plugin"],
    "prometheus_exporter:PrometheusExporter.set_build_info": ["info"],
    "prometheus_exporter:PrometheusExporter.start_server": [],
    "prometheus_exporter:PrometheusExporter.shutdown": [],
    "prometheus_exporter:PrometheusExporter.get_stats": [],
    "grafana_dashboard:GrafanaDashboardGenerator.__init__": ["prefix", "datasource", "title", "refresh"],
    "grafana_dashboard:GrafanaDashboardGenerator.generate": [],
    "grafana_dashboard:GrafanaDashboardGenerator.to_dict": [],
    "grafana_dashboard:GrafanaDashboardGenerator.save": ["path"],
    "alert_manager:AlertRule.__init__": ["name", "metric", "operator", "threshold", "window_seconds", "severity",
                                         "message", "cooldown_seconds"],
    "alert_manager:AlertRule.evaluate": ["value"],
    "alert_manager:AlertRule.format_message": ["value"],
    "alert_manager:AlertEvent.__init__": ["rule_name", "metric", "value", "threshold", "severity", "message",
                                          "timestamp", "resolved"],
    "alert_manager:AlertManager.__init__": ["rules", "use_defaults", "max_history", "webhook_url"],
    "alert_manager:AlertManager.add_rule": ["rule"],
    "alert_manager:AlertManager.remove_rule": ["name"],
    "alert_manager:AlertManager.add_callback": ["callback"],
    "alert_manager:AlertManager.subscribe": ["event_bus"],
    "alert_manager:AlertManager.unsubscribe": ["event_bus"],
    "alert_manager:AlertManager.update_plugin_metrics": ["plugin"],
    "alert_manager:AlertManager.get_alerts": ["severity", "limit", "since"],
    "alert_manager:AlertManager.get_stats": [],
    "alert_manager:AlertManager.shutdown": [],
    "log_exporter:LogExporter.__init__": ["format", "level", "file", "max_bytes", "backup_count", "logger_name"],
    "log_exporter:LogExporter.subscribe": ["event_bus"],
    "log_exporter:LogExporter.unsubscribe": ["event_bus"],
    "log_exporter:LogExporter.get_stats": [],
    "log_exporter:LogExporter.shutdown": [],
    "audit_storage:AuditStorageBackend.store": ["entry"],
    "audit_storage:AuditStorageBackend.store_batch": ["entries"],
    "audit_storage:AuditStorageBackend.query": ["operation", "since", "limit"],
    "audit_storage:AuditStorageBackend.cleanup": ["retention_days"],
    "audit_storage:AuditStorageBackend.shutdown": [],
    "audit_storage:FileAuditStorage.__init__": ["path", "flush_interval", "batch_size", "max_file_size", "max_files"],
    "audit_storage:SQLiteAuditStorage.__init__": ["path", "flush_interval", "batch_size"],
    "health:HealthChecker.__init__": [],
    "health:HealthChecker.bind_plugin": ["plugin"],
    "health:HealthChecker.add_check": ["name", "check_fn"],
    "health:HealthChecker.check": [],
    "health:HealthChecker.start_server": ["port", "path"],
    "health:HealthChecker.shutdown": [],
}
for _cls in ("FileAuditStorage", "SQLiteAuditStorage"):
    for _m in ("store", "store_batch", "query", "cleanup", "shutdown", "subscribe", "unsubscribe", "get_stats"):
        SEED_SIGNATURES[f"audit_storage:{_cls}.{_m}"] = {
            "store": ["entry"], "store_batch": ["entries"], "query": ["operation", "since", "limit"],
            "cleanup": ["retention_days"], "subscribe": ["event_bus"], "unsubscribe": ["event_bus"]}.get(_m, [])


def closed_port() -> int:
    """A local TCP port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_env(**kw):
    """The environment for the agent binary: no AGAOBS_* variable (it reads
    them as configuration)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGAOBS_")}
    env.update(kw)
    return env


def warnings_of(records):
    return [r for r in records if r.levelno == logging.WARNING and r.name == "aga_observability"]


class Capture(logging.Handler):
    """Every record of the aga_observability logger, whatever its level."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        lg = logging.getLogger("aga_observability")
        self._level = lg.level
        lg.setLevel(logging.DEBUG)
        lg.addHandler(self)
        return self

    def __exit__(self, *exc):
        lg = logging.getLogger("aga_observability")
        lg.removeHandler(self)
        lg.setLevel(self._level)

    def warnings(self):
        return [r.getMessage() for r in warnings_of(self.records)]


class SurfaceTest(unittest.TestCase):
    def test_every_documented_name_importable(self):
        for mod, names in SEED_NAMES.items():
            m = importlib.import_module(mod)
            for n in names:
                self.assertTrue(hasattr(m, n), f"{mod}.{n}")
        self.assertEqual(set(aga_observability.__all__) - {"__version__"},
                         {n for n in dir(aga_observability) if n in aga_observability.__all__} - {"__version__"})
        ns = {}
        exec("from aga_observability import *", ns)
        for n in SEED_NAMES["aga_observability"]:
            if n != "__version__":
                self.assertIn(n, ns)

    def test_seed_signatures(self):
        for where, params in SEED_SIGNATURES.items():
            mod, qual = where.split(":")
            obj = importlib.import_module("aga_observability." + mod)
            for part in qual.split("."):
                obj = getattr(obj, part)
            sig = inspect.signature(obj)
            got = [p.name for p in sig.parameters.values()
                   if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)]
            self.assertEqual(got, params, where)
            # Anything added is keyword-only and private.
            extra = [p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]
            self.assertTrue(all(n.startswith("_") or where.startswith("health:HealthChecker.__init__")
                                for n in extra), (where, extra))

    def test_default_addresses_are_the_agents(self):
        with environ(AGAOBS_AGENT_URL=None, AGAOBS_HEALTH_URL=None):
            self.assertEqual(_agent_api.agent_url(), "http://127.0.0.1:8081")
            self.assertEqual(aga_observability.HealthChecker().url(), "http://127.0.0.1:8080/health")
            s = aga_observability.ObservabilityStack(standin.EventBus(), aga_observability.ObservabilityConfig(
                health_port=18080, health_path="/healthz"))
            self.assertEqual(s.health_checker.url(), "http://127.0.0.1:18080/healthz")
        with environ(AGAOBS_AGENT_URL="10.0.0.1:9999/", AGAOBS_HEALTH_URL="http://h:1/x"):
            self.assertEqual(_agent_api.agent_url(), "http://10.0.0.1:9999")
            self.assertEqual(aga_observability.HealthChecker().url(), "http://h:1/x")
        # The agent's defaults (internal/config): admin listener, health port and path.
        with open(os.path.join(REPO, "internal", "config", "config.go"), encoding="utf-8") as f:
            src = f.read()
        self.assertIn('AdminListenAddress:             "127.0.0.1:8081"', src)
        self.assertIn("HealthPort:    8080", src)
        self.assertIn('HealthPath:    "/health"', src)

    def test_enums_and_defaults(self):
        from aga_observability.alert_manager import AlertManager, AlertSeverity
        from aga_observability.health import HealthStatus
        self.assertEqual([s.value for s in AlertSeverity], ["info", "warning", "critical"])
        self.assertEqual([s.value for s in HealthStatus], ["healthy", "degraded", "unhealthy"])
        self.assertEqual([(r.name, r.metric, r.threshold, r.window_seconds, r.severity.value, r.cooldown_seconds)
                          for r in AlertManager.DEFAULT_RULES],
                         [("slo_latency_p99", "latency_p99", 1000.0, 60, "warning", 300),
                          ("slo_latency_critical", "latency_p99", 5000.0, 30, "critical", 60),
                          ("high_utilization", "knowledge_utilization", 0.95, 60, "warning", 600),
                          ("slot_thrashing", "slot_change_rate", 0.5, 30, "warning", 120)])

    def test_alert_rule_functions(self):
        from aga_observability.alert_manager import AlertRule, AlertSeverity
        r = AlertRule(name="r", metric="m", operator=">", threshold=0.5)
        self.assertEqual([r.evaluate(v) for v in (0.6, 0.5, 0.4)], [True, False, False])
        self.assertTrue(AlertRule("r", "m", "==", 0.5).evaluate(0.50000000001))
        self.assertTrue(AlertRule("r", "m", "!=", 0.5).evaluate(0.6))  # the agent's added operator
        self.assertFalse(AlertRule("r", "m", "!=", 0.5).evaluate(0.5))
        self.assertFalse(AlertRule("r", "m", "~", 0.5).evaluate(0.6))
        self.assertEqual(AlertRule("t", "latency_p99", ">", 0, severity=AlertSeverity.WARNING).format_message(99.5),
                         "[WARNING] t: latency_p99 = 99.5000 > 0")
        self.assertEqual(AlertRule("t", "m", ">", 100.0, message="{value:.1f} > {threshold:.0f}").format_message(150),
                         "150.0 > 100")

    def test_agent_config(self):
        from aga_observability.alert_manager import AlertManager, AlertRule
        with Capture():
            am = AlertManager(use_defaults=False)
            am.add_rule(AlertRule("high_entropy", "entropy_mean", ">", 4.5, severity="critical",
                                  message="Entropy {value:.2f}"))
        text = am.agent_config()
        self.assertEqual(text, 'alert_use_default_rules: false\nalert_rules:\n  - name: "high_entropy"\n'
                               '    metric: "entropy_mean"\n    operator: ">"\n    threshold: 4.5\n'
                               '    window_seconds: 60\n    severity: "critical"\n    cooldown_seconds: 300\n'
                               '    message: "Entropy {value:.2f}"\n')
        self.assertEqual(AlertManager().agent_config(), "alert_use_default_rules: true\n")


class ImportCostTest(unittest.TestCase):
    """Importing (and constructing) the seed-compatible modules starts no
    thread, server or file, and importing the package loads none of them."""

    SCRIPT = r"""
import json, os, sys, threading
import aga_observability
lazy = sorted(m for m in sys.modules if m.split(".")[-1] in (
    "alert_manager", "audit_storage", "health", "log_exporter", "prometheus_exporter", "grafana_dashboard"))
from aga_observability import *
from aga_observability import (alert_manager, audit_storage, grafana_dashboard, health, log_exporter,
                               prometheus_exporter, AlertEvent)
def links():
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the directory's own descriptor, closed by now
            pass
    return out
objs = [PrometheusExporter(), PrometheusExporter(registry=object()), LogExporter(file="events.log"),
        FileAuditStorage(path="sub/aga_audit.jsonl"), SQLiteAuditStorage(path="aga_audit.db"),
        AlertManager(), HealthChecker(), GrafanaDashboardGenerator()]
json.dump({"lazy": lazy, "threads": threading.active_count(), "files": sorted(os.listdir(".")),
           "ring_dir": os.path.exists(os.environ["AGAOBS_RING_DIR"]),
           "urllib": "urllib.request" in sys.modules,
           "sockets": sorted(x for x in links() if x.startswith("socket:"))}, sys.stdout)
"""

    def test_import_starts_nothing(self):
        tmp = tempfile.mkdtemp(prefix="agaobs-import-")
        self.addCleanup(shutil.rmtree, tmp, True)
        env = dict(os.environ, PYTHONPATH=CLIENT, AGAOBS_RING_DIR=os.path.join(tmp, "rings"),
                   PYTHONDONTWRITEBYTECODE="1")
        out = subprocess.run([sys.executable, "-c", self.SCRIPT], cwd=tmp, env=env, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        got = json.loads(out.stdout)
        self.assertEqual(got["lazy"], [], "importing the package loaded a seed-compatible module")
        self.assertEqual(got["threads"], 1)
        self.assertEqual(got["files"], [])
        self.assertFalse(got["ring_dir"])
        self.assertFalse(got["urllib"], "urllib is imported at the first read, not before")
        self.assertEqual(got["sockets"], [])


class EmitPathTest(RingTestCase):
    def test_components_add_nothing_to_the_bus(self):
        bus, stack = self.start(prometheus_enabled=True, log_enabled=True, log_file=os.path.join(self.tmp, "x.log"),
                                audit_storage_backend="sqlite",
                                audit_storage_path=os.path.join(self.tmp, "a.db"), alert_enabled=True,
                                alert_rules=[aga_observability.AlertRuleConfig(name="x", metric="gate_mean")],
                                health_enabled=True)
        for attr in ("prometheus_exporter", "log_exporter", "audit_storage", "alert_manager", "health_checker",
                     "dashboard_generator"):
            self.assertIsNotNone(getattr(stack, attr), attr)
        # One "*" subscription: the ring producer. No component handler.
        self.assertEqual(bus.get_stats()["subscribers"], {"*": 1})
        bus.emit("forward", standin.forward_data(1))
        hot = self.records(stack.ring_paths["hot"], "forward")
        self.assertEqual(len(hot), 1)
        self.assertEqual(os.listdir(self.tmp), ["rings"])  # no log file, no database


class StackTest(RingTestCase):
    def test_attributes_follow_the_switches(self):
        off = dict(prometheus_enabled=False, log_enabled=False, alert_enabled=False, health_enabled=False)
        s = aga_observability.ObservabilityStack(standin.EventBus(), self.config(**off))
        for attr in ("prometheus_exporter", "prometheus", "log_exporter", "audit_storage", "alert_manager",
                     "health_checker", "health"):
            self.assertIsNone(getattr(s, attr), attr)
        self.assertIsNotNone(s.dashboard_generator)
        s = aga_observability.ObservabilityStack(standin.EventBus(), self.config())
        self.assertIs(s.prometheus, s.prometheus_exporter)
        self.assertIs(s.health, s.health_checker)
        for attr in ("prometheus_exporter", "log_exporter", "alert_manager", "health_checker"):
            self.assertIsNotNone(getattr(s, attr), attr)
        self.assertIsNone(s.audit_storage)  # backend "memory", as the seed
        from aga_observability.audit_storage import FileAuditStorage, SQLiteAuditStorage
        s = aga_observability.ObservabilityStack(standin.EventBus(), self.config(audit_storage_backend="file"))
        self.assertIsInstance(s.audit_storage, FileAuditStorage)
        self.assertEqual(s.audit_storage._path, "aga_audit.jsonl")
        s = aga_observability.ObservabilityStack(standin.EventBus(), self.config(audit_storage_backend="sqlite"))
        self.assertIsInstance(s.audit_storage, SQLiteAuditStorage)
        s = aga_observability.ObservabilityStack(standin.EventBus(), {"ring_dir": self.ring_dir, "log_enabled": False})
        self.assertIsNone(s.log_exporter)  # a dict config, as from_dict reads it

    def test_seed_readme_manual_integration(self):
        """The seed README's manual integration, verbatim but for the ring
        directory: it runs, and writes no file of its own."""
        from aga_observability import AlertRuleConfig, ObservabilityConfig, ObservabilityStack
        cwd = os.getcwd()
        os.chdir(self.tmp)
        self.addCleanup(os.chdir, cwd)
        os.environ["AGAOBS_RING_DIR"] = self.ring_dir
        plugin = standin.AGAPlugin(standin.AGAConfig(observability_enabled=False))
        obs_config = ObservabilityConfig(
            prometheus_enabled=True, prometheus_port=9090, prometheus_prefix="aga",
            prometheus_labels={"env": "production"}, log_format="json", log_file="aga_events.log",
            audit_storage_backend="sqlite", audit_storage_path="aga_audit.db", alert_enabled=True,
            alert_webhook_url="https://hooks.example/x",
            alert_rules=[AlertRuleConfig(name="custom_high_entropy", metric="entropy_mean", operator=">",
                                         threshold=5.0, severity="critical", message="Entropy {value:.2f}")],
            health_enabled=True, health_port=8080, health_path="/health")
        with Capture() as cap:
            stack = ObservabilityStack(event_bus=plugin.event_bus, config=obs_config)
            self.assertTrue(stack.start())
            stack.bind_plugin(plugin)
            plugin.register("k1")
            stack.generate_dashboard("aga_dashboard.json")
            stack.shutdown()
        self.assertEqual(cap.warnings(), [])
        self.assertEqual(sorted(os.listdir(self.tmp)), ["aga_dashboard.json", "rings"])
        self.assertIs(stack.health_checker._plugin, plugin)
        self.assertIn("custom_high_entropy", stack.alert_manager.agent_config())
        self.assertIn('alert_webhook_url: "https://hooks.example/x"', stack.alert_manager.agent_config())

    def test_odd_configs_never_raise(self):
        cfgs = [self.config(alert_rules=[{"name": "x", "metric": "gate_mean", "bogus": 1}, None, 3],
                            audit_storage_backend="file", audit_storage_path=None, prometheus_prefix="bad-prefix",
                            health_port="x", health_path=None),
                standin.AGAConfig(), {"log_enabled": "yes", "ring_dir": self.ring_dir}]
        with Capture():
            for cfg in cfgs:
                s = aga_observability.ObservabilityStack(standin.EventBus(), cfg)
                self.assertIn('"dashboard"', s.generate_dashboard())
                s.get_stats()
                s.shutdown()
        s = aga_observability.ObservabilityStack(standin.EventBus(), cfgs[0])
        self.assertEqual([r for r in s.alert_manager._rules], ["slo_latency_p99", "slo_latency_critical",
                                                               "high_utilization", "slot_thrashing", "x"])
        self.assertEqual(s.health_checker.url(), "http://127.0.0.1:8080/health")

    def test_global_stack_is_the_one_setup_returned(self):
        os.environ["AGAOBS_RING_DIR"] = self.ring_dir
        bus1, bus2 = standin.EventBus(), standin.EventBus()
        s1 = aga_observability.setup_observability(bus1, standin.AGAConfig())
        s2 = aga_observability.setup_observability(bus2, standin.AGAConfig())
        self.assertIsNotNone(s1)
        self.assertIsNot(s1, s2)
        self.assertIs(aga_observability.get_global_stack(), s1)
        self.assertIs(aga_observability.setup_observability(bus1), s1)
        s1.shutdown()
        self.assertIs(aga_observability.get_global_stack(), s2)
        aga_observability.shutdown_observability()
        self.assertIsNone(aga_observability.get_global_stack())
        s3 = aga_observability.setup_observability(standin.EventBus())
        self.assertIs(aga_observability.get_global_stack(), s3)
        # The seed's tests reset the singleton by hand.
        from aga_observability import integration
        integration._global_stack = None
        self.assertIs(aga_observability.get_global_stack(), s3)

    def test_generate_dashboard(self):
        from aga_observability.grafana_dashboard import render
        bus, stack = self.start(prometheus_prefix="myaga")
        path = os.path.join(self.tmp, "d", "aga_dashboard.json")
        os.makedirs(os.path.dirname(path))
        text = stack.generate_dashboard(path)
        with open(path, encoding="utf-8") as f:
            self.assertEqual(f.read(), text)
        self.assertEqual(text, render("myaga"))
        self.assertIn('"dashboard"', text)
        self.assertIn("myaga_forward_latency_us_bucket", text)
        # With Prometheus off the seed used the "aga" prefix.
        s = aga_observability.ObservabilityStack(bus, self.config(prometheus_enabled=False, prometheus_prefix="x"))
        self.assertEqual(s.generate_dashboard(), render("aga"))
        with Capture() as cap:  # an unwritable path: logged, not raised
            self.assertEqual(stack.generate_dashboard(os.path.join(self.tmp, "no", "such", "dir", "d.json")), text)
        self.assertEqual(len(cap.warnings()), 1)


class DashboardTest(unittest.TestCase):
    def test_default_is_the_committed_dashboard(self):
        from aga_observability.grafana_dashboard import GrafanaDashboardGenerator
        text = GrafanaDashboardGenerator().generate()
        d = json.loads(text)
        self.assertEqual(list(d), ["dashboard", "overwrite"])
        self.assertIs(d["overwrite"], True)
        # dashboards/aga.json is the Go generator's output (internal/dashboard tests).
        with open(os.path.join(REPO, "dashboards", "aga.json"), encoding="utf-8") as f:
            self.assertEqual(d["dashboard"], json.load(f))
        self.assertEqual(GrafanaDashboardGenerator().to_dict(), d)
        self.assertNotIn("AGAOBS_PREFIX", text)

    def test_seed_options(self):
        from aga_observability.grafana_dashboard import GrafanaDashboardGenerator
        d = GrafanaDashboardGenerator(title="My AGA", refresh="10s", datasource="MyProm").to_dict()["dashboard"]
        self.assertEqual((d["title"], d["refresh"]), ("My AGA", "10s"))
        ds = d["templating"]["list"][0]
        self.assertEqual((ds["name"], ds["current"]["value"]), ("datasource", "MyProm"))
        self.assertEqual(GrafanaDashboardGenerator(refresh="off").to_dict()["dashboard"]["refresh"], "")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertTrue({"row", "stat", "timeseries", "heatmap"} <= {p["type"] for p in d["panels"]})
        text = GrafanaDashboardGenerator(prefix="test_aga").generate()
        for fam in ("test_aga_forward", "test_aga_retrieval", "test_aga_knowledge", "test_aga_activation"):
            self.assertIn(fam, text)
        self.assertIn('"uid": "agaobs-test_aga"', text)

    def test_bad_options_fall_back(self):
        from aga_observability import _agent_api
        from aga_observability.grafana_dashboard import GrafanaDashboardGenerator, render
        _agent_api.reset_warnings()
        with Capture() as cap:
            self.assertEqual(GrafanaDashboardGenerator(prefix="my-aga").generate(), render("aga"))
            self.assertEqual(GrafanaDashboardGenerator(prefix=None).generate(), render("aga"))
            self.assertEqual(GrafanaDashboardGenerator(refresh="5x").to_dict()["dashboard"]["refresh"], "30s")
        self.assertEqual(len(cap.warnings()), 2)  # one per option kind

    def test_copy_is_packaged(self):
        sys.path.insert(0, os.path.join(CLIENT, "_build"))
        try:
            backend = importlib.import_module("agaobs_build")
        finally:
            sys.path.pop(0)
        names = [n for n, _ in backend._package_files(CLIENT)]
        self.assertIn("aga_observability/_data/dashboard.json", names)


class UnreachableAgentTest(unittest.TestCase):
    """A closed port: every read returns its empty result after one warning
    per method saying where the data lives; nothing raises."""

    def setUp(self):
        port = closed_port()
        self.tmp = tempfile.mkdtemp(prefix="agaobs-unreachable-")
        self._env = environ(AGAOBS_AGENT_URL=f"127.0.0.1:{port}",
                            AGAOBS_HEALTH_URL=f"http://127.0.0.1:{port}/health",
                            AGAOBS_RING_DIR=os.path.join(self.tmp, "rings"))
        self._env.__enter__()
        _agent_api.reset_warnings()

    def tearDown(self):
        aga_observability.shutdown_observability()
        self._env.__exit__(None, None, None)
        _agent_api.reset_warnings()
        shutil.rmtree(self.tmp, True)

    def test_reads_empty_with_one_warning(self):
        from aga_observability import (AlertManager, FileAuditStorage, HealthChecker, LogExporter,
                                       PrometheusExporter, SQLiteAuditStorage)
        am = AlertManager()
        reads = [
            ("AlertManager.get_alerts", am.get_alerts, [], "/api/v1/alerts"),
            ("AlertManager.get_active_alerts", am.get_active_alerts, [], "/api/v1/alerts"),
            ("AlertManager.get_rules", am.get_rules, [], "/api/v1/rules"),
            ("AlertManager.get_stats", am.get_stats,
             {"rules_count": 0, "total_alerts": 0, "by_severity": {}, "active_metrics": [], "callbacks_count": 0},
             "/api/v1/alerts"),
            ("FileAuditStorage.query", FileAuditStorage().query, [], "/api/v1/audit"),
            ("SQLiteAuditStorage.query", lambda: SQLiteAuditStorage().query(operation="register"), [],
             "/api/v1/audit"),
            ("FileAuditStorage.get_stats", FileAuditStorage().get_stats,
             {"path": None, "total_written": 0, "total_records": 0, "buffer_size": 0}, "audit_storage_path"),
            ("SQLiteAuditStorage.get_stats", SQLiteAuditStorage().get_stats,
             {"path": None, "total_written": 0, "total_records": 0}, "/api/v1/audit"),
            ("LogExporter.get_stats", LogExporter().get_stats, {"event_count": 0, "subscribed": False},
             "log_file"),
            ("PrometheusExporter.get_stats", PrometheusExporter().get_stats,
             {"agent_sink": None, "server_started": False, "port": 9090, "prefix": "aga"}, "prometheus_port"),
            ("HealthChecker.check", HealthChecker().check, {"status": "healthy", "components": {}}, "health_port"),
        ]
        for name, fn, empty, where in reads:
            with self.subTest(name):
                with Capture() as cap:
                    t0 = time.monotonic()
                    results = [fn() for _ in range(3)]
                    self.assertLess(time.monotonic() - t0, 5.0)
                for r in results:
                    if isinstance(empty, dict):
                        self.assertEqual({k: r[k] for k in empty}, empty)
                    else:
                        self.assertEqual(r, empty)
                msgs = cap.warnings()
                self.assertEqual(len(msgs), 1, msgs)
                self.assertIn(name, msgs[0])
                self.assertIn(where, msgs[0])
        self.assertIsInstance(HealthChecker().check()["timestamp"], float)

    def test_in_process_methods_warn_once_and_name_the_agent_key(self):
        from aga_observability import (AlertManager, AlertRule, FileAuditStorage, HealthChecker, LogExporter,
                                       PrometheusExporter, SQLiteAuditStorage)
        am, fa, sa, hc, pe = AlertManager(), FileAuditStorage(), SQLiteAuditStorage(), HealthChecker(), \
            PrometheusExporter()
        rule = AlertRule("x", "gate_mean", ">", 0.9)
        calls = [
            ("AlertManager.add_rule", lambda: am.add_rule(rule), None, "alert_rules"),
            ("AlertManager.remove_rule", lambda: am.remove_rule("x"), None, "alert_rules"),
            ("AlertManager.add_callback", lambda: am.add_callback(print), None, "alert_exec_command"),
            ("AlertManager.update_plugin_metrics", lambda: am.update_plugin_metrics(object()), None,
             "status_interval_seconds"),
            ("AlertManager(rules=...)", lambda: AlertManager(rules=[rule]), None, "alert_rules"),
            ("AlertManager(webhook_url=...)", lambda: AlertManager(webhook_url="http://x"), None,
             "alert_webhook_url"),
            ("FileAuditStorage.store", lambda: fa.store({"operation": "x"}), None, "audit_storage_path"),
            ("SQLiteAuditStorage.store_batch", lambda: sa.store_batch([{"operation": "x"}]), None,
             "audit_storage_path"),
            ("FileAuditStorage.cleanup", lambda: fa.cleanup(90), 0, "audit_retention_days"),
            ("HealthChecker.start_server", lambda: hc.start_server(8080), None, "health_port"),
            ("HealthChecker.add_check", lambda: hc.add_check("c", lambda: {"status": "healthy"}), None,
             "health_port"),
            ("PrometheusExporter.start_server", pe.start_server, None, "prometheus_port"),
            ("PrometheusExporter.update_gauges", lambda: pe.update_gauges(object()), None, "STATUS snapshots"),
            ("PrometheusExporter.set_build_info", lambda: pe.set_build_info({"v": "1"}), None, "bind_plugin"),
            ("PrometheusExporter(registry=...)", lambda: PrometheusExporter(registry=object()), None,
             "prometheus_port"),
            ("LogExporter(file=...)", lambda: LogExporter(file="/nonexistent/dir/events.log"), None, "log_file"),
        ]
        for name, fn, want, key in calls:
            with self.subTest(name):
                with Capture() as cap:
                    results = [fn() for _ in range(3)]
                if want is not None:
                    self.assertEqual(results, [want] * 3)
                msgs = cap.warnings()
                self.assertEqual(len(msgs), 1, msgs)
                self.assertIn(name, msgs[0])
                self.assertIn(key, msgs[0])
        self.assertFalse(os.path.exists("/nonexistent/dir"))
        self.assertTrue(am.remove_rule("slot_thrashing"))  # recorded rules stay a local record
        self.assertFalse(am.remove_rule("slot_thrashing"))

    def test_no_call_raises(self):
        from aga_observability import (AlertManager, AlertRule, FileAuditStorage, GrafanaDashboardGenerator,
                                       HealthChecker, LogExporter, PrometheusExporter, SQLiteAuditStorage)
        odd = [None, "x", -1, object(), float("nan")]
        with Capture():
            for url in ("::not a url::", "http://[bad", "", "http://127.0.0.1:1/x y"):
                with environ(AGAOBS_AGENT_URL=url or None, AGAOBS_HEALTH_URL=url or None,
                             AGAOBS_RING_DIR=os.path.join(self.tmp, "rings")):
                    am = AlertManager(rules=[None, object()], use_defaults=None)
                    for v in odd:
                        am.get_alerts(severity=v, limit=v, since=v)
                        am.get_active_alerts(severity=v)
                        am.add_rule(v)
                        am.remove_rule(v)
                        am.add_callback(v)
                        am.subscribe(v)
                        am.unsubscribe(v)
                        am.update_plugin_metrics(v)
                        AlertRule("r", "m", str(v), v, message=str(v) + "{value:.q}").evaluate(v)
                        AlertRule("r", "m", ">", v, message="{nope}").format_message(v)
                        for s in (FileAuditStorage(path=v), SQLiteAuditStorage(path=v)):
                            s.store(v)
                            s.store_batch(v)
                            s.query(operation=v, since=v, limit=v)
                            s.cleanup(v)
                            s.subscribe(v)
                            s.unsubscribe(v)
                            s.get_stats()
                            s.shutdown()
                        hc = HealthChecker(url=v if isinstance(v, str) else None)
                        hc.add_check("bad", lambda: 1 / 0)
                        hc.add_check("odd", lambda: "not a dict")
                        self.assertEqual(hc.check()["status"], "unhealthy")
                        hc.start_server(v, v)
                        le = LogExporter(format=v, level=v, file=None)
                        le.subscribe(v)
                        le.get_stats()
                        le.shutdown()
                        pe = PrometheusExporter(prefix=v, port=v, labels=None)
                        pe.subscribe(v)
                        pe.get_stats()
                        pe.shutdown()
                        g = GrafanaDashboardGenerator(prefix=v, datasource=v, title=v, refresh=v)
                        g.generate()
                        g.to_dict()
                        g.save(os.path.join("/nonexistent", str(v)))
                    am.get_stats()
                    am.get_rules()
                    am.agent_config()
                    am.shutdown()


class AgentProcess:
    """The real agaobs-agent on temporary ports and directories."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.ring_dir = os.path.join(tmp, "rings")
        self.admin, self.health, self.metrics = closed_port(), closed_port(), closed_port()
        self.log_file = os.path.join(tmp, "events.log")
        self.exec_out = os.path.join(tmp, "alerts.jsonl")
        self.audit_path = os.path.join(tmp, "aga_audit.db")
        self.proc = None

    @staticmethod
    def binary(tmp: str):
        """AGAOBS_AGENT_BIN, else bin/agaobs-agent when no Go source is newer,
        else a fresh `go build`; None when none can be had."""
        env_bin = os.environ.get("AGAOBS_AGENT_BIN")
        if env_bin:
            return env_bin if os.access(env_bin, os.X_OK) else None
        built = os.path.join(REPO, "bin", "agaobs-agent")
        if os.access(built, os.X_OK):
            newest = 0.0
            for top in ("cmd", "internal"):
                for d, _, files in os.walk(os.path.join(REPO, top)):
                    for f in files:
                        if f.endswith(".go") and not f.endswith("_test.go"):
                            newest = max(newest, os.path.getmtime(os.path.join(d, f)))
            if os.path.getmtime(built) >= newest:
                return built
        go = shutil.which("go")
        if go and os.path.exists(os.path.join(REPO, "go.mod")):
            out = os.path.join(tmp, "agaobs-agent")
            env = dict(os.environ, CGO_CFLAGS=os.environ.get("CGO_CFLAGS", "-O2 -g -Wno-deprecated-declarations"))
            r = subprocess.run([go, "build", "-o", out, "./cmd/agaobs-agent"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=600)
            if r.returncode == 0:
                return out
            sys.stderr.write(f"go build of the agent failed:\n{r.stderr[-2000:]}\n")
        return built if os.access(built, os.X_OK) else None

    def start(self, binary: str) -> None:
        cfg = os.path.join(self.tmp, "agent.yaml")
        with open(cfg, "w") as f:
            f.write("\n".join([
                f"ring_dir: {json.dumps(self.ring_dir)}",
                'state_path: ""',
                f'admin_listen_address: "127.0.0.1:{self.admin}"',
                'health_host: "127.0.0.1"',
                f"health_port: {self.health}",
                'prometheus_host: "127.0.0.1"',
                f"prometheus_port: {self.metrics}",
                f"audit_storage_path: {json.dumps(self.audit_path)}",
                f"log_file: {json.dumps(self.log_file)}",
                "log_level: DEBUG",
                "gpu_enabled: false",
                "bpf_enabled: false",
                "agent_log_level: warn",
                f"alert_exec_command: {json.dumps('cat >> ' + self.exec_out + '; echo >> ' + self.exec_out)}",
                "alert_rules:",
                "  - name: seed_compat_latency",
                "    metric: latency_p99",
                '    operator: ">"',
                "    threshold: 0",
                "    cooldown_seconds: 0",
                "    severity: critical",
                "",
            ]))
        self.stderr = open(os.path.join(self.tmp, "agent.stderr"), "w")
        self.proc = subprocess.Popen([binary, "run", "--config", cfg], stdout=self.stderr, stderr=self.stderr,
                                     env=agent_env())
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            value, err = _agent_api.get_json(f"http://127.0.0.1:{self.admin}/api/v1/status")
            if err is None:
                return
            time.sleep(0.05)
        self.stop()
        with open(os.path.join(self.tmp, "agent.stderr")) as f:
            raise RuntimeError("the agent did not start:\n" + f.read()[-2000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "stderr", None):
            self.stderr.close()


class RunningAgentTest(unittest.TestCase):
    """Reads against the real agent return the agent's data."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="agaobs-seedcompat-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK)
                                   else None)
        binary = AgentProcess.binary(cls.tmp)
        if binary is None:
            shutil.rmtree(cls.tmp, True)
            raise unittest.SkipTest("no agaobs-agent binary (make build, or Go to build one, or AGAOBS_AGENT_BIN)")
        cls.agent = AgentProcess(cls.tmp)
        try:
            cls.agent.start(binary)
        except Exception:
            shutil.rmtree(cls.tmp, True)
            raise
        cls.binary = binary

    @classmethod
    def tearDownClass(cls):
        cls.agent.stop()
        shutil.rmtree(cls.tmp, True)

    def setUp(self):
        self._saved = {k: v for k, v in os.environ.items() if k.startswith("AGAOBS_")}
        for k in self._saved:
            del os.environ[k]
        self.name = "seedcompat-" + self.id().rsplit(".", 1)[-1].replace("_", "-")[5:]
        os.environ.update(AGAOBS_AGENT_URL=f"127.0.0.1:{self.agent.admin}",
                          AGAOBS_HEALTH_URL=f"http://127.0.0.1:{self.agent.health}/health",
                          AGAOBS_RING_DIR=self.agent.ring_dir, AGAOBS_PRODUCER=self.name,
                          AGAOBS_STATUS_INTERVAL_SECONDS="0.1", AGAOBS_RING_HOT_BYTES="65536",
                          AGAOBS_RING_AUDIT_BYTES="65536")
        _agent_api.reset_warnings()

    def tearDown(self):
        aga_observability.shutdown_observability()
        for k in [k for k in os.environ if k.startswith("AGAOBS_")]:
            del os.environ[k]
        os.environ.update(self._saved)

    def wait_for(self, cond, what, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            time.sleep(0.05)

    def plugin(self, **kw):
        p = standin.AGAPlugin(standin.AGAConfig(**kw))
        stack = aga_observability.get_global_stack()
        self.assertIsNotNone(stack)
        # AGAOBS_PRODUCER, plus ".<instance>" after this process's first producer.
        self.assertTrue(stack.producer_name.split(".")[0] == self.name, stack.producer_name)
        self.name = stack.producer_name
        return p, stack

    def test_alerts(self):
        from aga_observability import AlertManager, AlertSeverity
        plugin, stack = self.plugin()
        for i in range(5):
            plugin.event_bus.emit("forward", standin.forward_data(i))
        am = stack.alert_manager

        def mine(alerts):
            return [a for a in alerts if a.get("rule_name") == "seed_compat_latency" and a.get("producer") == self.name]
        hist = self.wait_for(lambda: mine(am.get_alerts()), "the agent's alert in get_alerts()")
        a = hist[0]
        for k in ("rule_name", "metric", "value", "threshold", "severity", "message", "timestamp"):
            self.assertIn(k, a)
        self.assertEqual((a["metric"], a["severity"], a["threshold"], a["status"]),
                         ("latency_p99", "critical", 0, "firing"))
        self.assertGreater(a["value"], 0)
        self.assertIsInstance(a["timestamp"], float)
        self.assertTrue(mine(am.get_alerts(severity=AlertSeverity.CRITICAL)))
        self.assertFalse(mine(am.get_alerts(severity=AlertSeverity.WARNING)))
        self.assertFalse(mine(am.get_alerts(since=time.time() + 3600)))
        self.assertTrue(mine(am.get_alerts(since=a["timestamp"])))
        active = mine(am.get_active_alerts())
        self.assertEqual(active[0]["state"], "firing")
        names = [r["name"] for r in am.get_rules()]
        want = ["slo_latency_p99", "slo_latency_critical", "high_utilization", "slot_thrashing",
                "seed_compat_latency"]
        self.assertEqual([n for n in names if n in want], want)  # the agent adds rules of its own
        st = am.get_stats()
        self.assertEqual(st["rules_count"], len(names))
        self.assertGreaterEqual(st["total_alerts"], 1)
        self.assertGreaterEqual(st["by_severity"].get("critical", 0), 1)
        self.assertIn("latency_p99", st["active_metrics"])
        # The seed's callbacks: the agent's notification channels (here
        # alert_exec_command) receive the alert.
        def notified():
            try:
                with open(self.agent.exec_out) as f:
                    return [json.loads(line) for line in f if line.strip()]
            except (OSError, ValueError):
                return None
        got = self.wait_for(lambda: [n for n in notified() or [] if n.get("rule") == "seed_compat_latency"
                                     and n.get("producer") == self.name], "the alert at alert_exec_command")
        self.assertEqual(got[0]["severity"], "critical")

    def test_audit(self):
        from aga_observability import FileAuditStorage, SQLiteAuditStorage
        plugin, stack = self.plugin()
        key = f"k-{os.getpid()}-{time.time_ns()}"
        plugin.register(key, metadata={"namespace": "docs"})
        storage = FileAuditStorage()

        def mine(recs):
            return [r for r in recs if r.get("producer") == self.name and r["details"].get("id") == key]
        recs = self.wait_for(lambda: mine(storage.query(operation="register")), "the register record")
        r = recs[0]
        self.assertEqual((r["operation"], r["success"], r["error"], r["kind"]), ("register", True, None, "producer"))
        self.assertEqual(r["details"]["metadata"]["namespace"], "docs")
        self.assertEqual(r["id"], r["seq"])
        self.assertIsInstance(r["timestamp"], float)
        self.assertTrue(mine(SQLiteAuditStorage().query(limit=1)), "the last record is the register")
        last3 = storage.query(limit=3)
        self.assertEqual(len(last3), 3)
        self.assertEqual([x["seq"] for x in last3], sorted(x["seq"] for x in last3))
        self.assertEqual(last3[-1]["seq"], r["seq"])
        self.assertEqual(storage.query(since=time.time() + 3600), [])
        self.assertTrue(all(x["operation"] == "register" for x in storage.query(operation="register", limit=0)))
        self.assertGreaterEqual(len(storage.query(limit=0)), r["seq"])  # nothing removed yet
        st = storage.get_stats()
        self.assertEqual((st["path"], st["backend"]), (self.agent.audit_path, "bbolt"))
        self.assertGreaterEqual(st["total_records"], r["seq"])
        self.assertTrue(st["file_exists"])
        # subscribe(bus) on its own: the bus's audit events reach the agent.
        aga_observability.shutdown_observability()
        bus = standin.EventBus()
        s = SQLiteAuditStorage()
        with Capture() as cap:
            s.subscribe(bus)
        self.assertIn("streamed to agaobs-agent", cap.warnings()[0])
        self.name, = _agent_api.local_producers()
        bus.emit("audit", {"operation": "seed_subscribe", "details": {"id": key}, "success": True,
                           "timestamp": time.time()})
        self.wait_for(lambda: mine(s.query(operation="seed_subscribe")), "the subscribed bus's record")
        s.shutdown()
        self.assertEqual(bus.get_stats()["subscribers"].get("*", 0), 0)

    def test_health(self):
        from aga_observability import HealthChecker
        plugin, stack = self.plugin(max_slots=4)
        for i in range(4):
            plugin.register(f"k{i}")  # utilization 1.0 > 0.95: degraded
        hc = stack.health_checker
        self.assertIsNotNone(hc)

        def degraded():
            c = hc.check()
            kv = c["components"].get(f"{self.name}/kv_store", {})
            at = c["components"].get(f"{self.name}/attachment", {})
            return c if kv.get("status") == "degraded" and at.get("status") == "degraded" else None
        c = self.wait_for(degraded, "kv_store and attachment degraded")
        self.assertEqual(c["status"], "degraded")
        self.assertEqual(c["components"][f"{self.name}/kv_store"]["utilization"], 1.0)
        self.assertIn("audit", c["components"])  # the agent's own components
        # Only this process's producers (others on the node are left out).
        self.assertEqual({n.split("/")[0] for n in c["components"] if "/" in n}, {self.name})
        plugin.attach("llama")
        self.wait_for(lambda: hc.check()["components"].get(f"{self.name}/attachment", {}).get("status") == "healthy",
                      "attachment healthy")
        with Capture():
            hc.add_check("custom", lambda: {"status": "unhealthy", "why": "test"})
        c = hc.check()
        self.assertEqual(c["components"]["custom"], {"status": "unhealthy", "why": "test"})
        self.assertEqual(c["status"], "unhealthy")
        self.assertIsInstance(c["timestamp"], float)
        # A checker of its own (no stack) reads the same endpoint.
        self.assertIn(f"{self.name}/kv_store", HealthChecker().check()["components"])

    def test_log_and_metrics(self):
        from aga_observability import LogExporter, PrometheusExporter
        plugin, stack = self.plugin()
        n = 7
        for i in range(n):
            plugin.event_bus.emit("forward", standin.forward_data(i))
        le = LogExporter()
        self.wait_for(lambda: le.get_stats()["event_count"] == n, f"event_count {n}")
        self.assertEqual(le.get_stats()["producers"], [self.name])

        def logged():
            try:
                with open(self.agent.log_file, encoding="utf-8") as f:
                    lines = [json.loads(line) for line in f if line.strip()]
            except (OSError, ValueError):
                return None
            return [x for x in lines if x.get("producer") == self.name and x.get("event_type") == "forward"]
        lines = self.wait_for(lambda: len(logged() or []) == n and logged(), "the forward lines in the log file")
        self.assertTrue(lines[0]["message"].startswith("layer="))
        pe = PrometheusExporter()
        self.wait_for(lambda: (pe.get_stats()["agent_sink"] or {}).get("written", 0) >= n, "the metrics sink")

    def test_dashboard_equals_the_agent_binary(self):
        from aga_observability.grafana_dashboard import GrafanaDashboardGenerator

        def agent_dashboard(*args):
            r = subprocess.run([self.binary, "dashboard", "--api-wrapper", *args], capture_output=True,
                               timeout=120, env=agent_env())
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.decode("utf-8")
        self.assertEqual(GrafanaDashboardGenerator().generate(), agent_dashboard())
        long = "q" * 36
        for prefix in ("myaga", long):
            self.assertEqual(GrafanaDashboardGenerator(prefix=prefix).generate(),
                             agent_dashboard("--prometheus-prefix", prefix), prefix)
        got = GrafanaDashboardGenerator(prefix="myaga", title="My AGA", refresh="10s").generate()
        self.assertEqual(json.loads(got), json.loads(agent_dashboard("--prometheus-prefix", "myaga", "--title", "My AGA",
                                                                     "--refresh", "10s")))


if __name__ == "__main__":
    unittest.main()
