"""ObservabilityConfig: reference fields and defaults, from_dict without
mutating its input, from_aga_config, environment resolution."""

import copy
import dataclasses
import os
import unittest

import aga_observability
from aga_observability import AlertRuleConfig, ObservabilityConfig
from aga_observability.config import RingSettings

import standin

REFERENCE_DEFAULTS = {
    "enabled": True, "prometheus_enabled": True, "prometheus_port": 9090,
    "prometheus_prefix": "aga", "prometheus_labels": {}, "log_enabled": True,
    "log_format": "json", "log_level": "INFO", "log_file": None,
    "log_max_bytes": 104857600, "log_backup_count": 5, "audit_storage_backend": "memory",
    "audit_storage_path": "aga_audit.db", "audit_retention_days": 90,
    "audit_flush_interval": 10, "audit_batch_size": 100, "alert_enabled": True,
    "alert_rules": [], "alert_webhook_url": None, "alert_log_level": "WARNING",
    "health_enabled": True, "health_port": 8080, "health_path": "/health",
}
OURS = ("ring_dir", "ring_hot_bytes", "ring_audit_bytes", "ring_audit_wait_us", "producer",
        "role", "status_interval_seconds", "status_gate_check_seconds", "forward_marker", "marker_lib")


class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.saved = {k: v for k, v in os.environ.items() if k.startswith("AGAOBS_")}
        for k in self.saved:
            del os.environ[k]

    def tearDown(self):
        for k in [k for k in os.environ if k.startswith("AGAOBS_")]:
            del os.environ[k]
        os.environ.update(self.saved)

    def test_defaults(self):
        c = ObservabilityConfig()
        for k, v in REFERENCE_DEFAULTS.items():
            self.assertEqual(getattr(c, k), v, k)
        for k in OURS:
            self.assertIsNone(getattr(c, k), k)
        names = [f.name for f in dataclasses.fields(ObservabilityConfig)]
        self.assertEqual(names, list(REFERENCE_DEFAULTS) + list(OURS))
        r = AlertRuleConfig()
        self.assertEqual((r.name, r.metric, r.operator, r.threshold, r.window_seconds, r.severity,
                          r.message, r.cooldown_seconds), ("", "", ">", 0.0, 60, "warning", "", 300))
        self.assertEqual(aga_observability.__version__, "2.0.0")

    def test_from_dict_does_not_mutate(self):
        d = {"prometheus_port": 9191, "alert_rules": [{"name": "r", "threshold": 2.0, "bogus": 1}],
             "prometheus_labels": {"env": "prod"}, "unknown": object(), "ring_dir": "/x"}
        snapshot = copy.deepcopy({k: v for k, v in d.items() if k != "unknown"})
        c = ObservabilityConfig.from_dict(d)
        self.assertEqual({k: v for k, v in d.items() if k != "unknown"}, snapshot)
        self.assertIsInstance(d["alert_rules"][0], dict)
        self.assertIsInstance(c.alert_rules[0], AlertRuleConfig)
        self.assertEqual((c.alert_rules[0].name, c.alert_rules[0].threshold), ("r", 2.0))
        self.assertEqual((c.prometheus_port, c.ring_dir), (9191, "/x"))
        c.prometheus_labels["x"] = "y"
        self.assertEqual(d["prometheus_labels"], {"env": "prod"})  # not shared

    def test_from_aga_config(self):
        a = standin.AGAConfig(observability_enabled=False, prometheus_port=9091, log_format="text",
                              log_level="DEBUG", audit_storage_backend="sqlite",
                              audit_retention_days=60, health_port=1)
        c = ObservabilityConfig.from_aga_config(a)
        self.assertEqual((c.enabled, c.prometheus_port, c.log_format, c.log_level,
                          c.audit_storage_backend, c.audit_retention_days),
                         (False, 9091, "text", "DEBUG", "sqlite", 60))
        self.assertEqual(c.health_port, 8080)
        self.assertEqual(ObservabilityConfig.from_aga_config(object()), ObservabilityConfig())

    def test_ring_settings_env_and_defaults(self):
        s = RingSettings.resolve(ObservabilityConfig())
        self.assertEqual((s.ring_dir, s.hot_bytes, s.audit_bytes, s.audit_wait_us, s.producer,
                          s.role, s.status_interval, s.gate_check_seconds),
                         ("/dev/shm/agaobs", 4194304, 1048576, 200, None, None, 2.0, 0.0))
        os.environ.update(AGAOBS_RING_DIR="/e", AGAOBS_RING_HOT_BYTES="100000",
                          AGAOBS_RING_AUDIT_BYTES="junk", AGAOBS_RING_AUDIT_WAIT_US="50",
                          AGAOBS_PRODUCER="p", AGAOBS_ROLE="r", AGAOBS_STATUS_INTERVAL_SECONDS="0.5",
                          AGAOBS_STATUS_GATE_CHECK_SECONDS="30")
        s = RingSettings.resolve(ObservabilityConfig())
        self.assertEqual((s.ring_dir, s.hot_bytes, s.audit_bytes, s.audit_wait_us, s.producer,
                          s.role, s.status_interval, s.gate_check_seconds),
                         ("/e", 131072, 1048576, 50, "p", "r", 0.5, 30.0))
        # The config wins over the environment.
        s = RingSettings.resolve(ObservabilityConfig(ring_dir="/c", ring_hot_bytes=4096, producer="q"))
        self.assertEqual((s.ring_dir, s.hot_bytes, s.producer), ("/c", 4096, "q"))

    def test_forward_marker_settings(self):
        s = RingSettings.resolve(ObservabilityConfig())
        self.assertEqual((s.forward_marker, s.marker_lib), (False, None))  # off by default
        for text, want in (("1", True), ("true", True), ("YES", True), (" on ", True),
                           ("0", False), ("false", False), ("off", False), ("no", False),
                           ("maybe", False), ("", False)):
            os.environ["AGAOBS_FORWARD_MARKER"] = text
            self.assertIs(RingSettings.resolve(ObservabilityConfig()).forward_marker, want, text)
        os.environ.update(AGAOBS_FORWARD_MARKER="1", AGAOBS_MARKER_LIB="/opt/libagaobs_marker.so")
        s = RingSettings.resolve(ObservabilityConfig())
        self.assertEqual((s.forward_marker, s.marker_lib), (True, "/opt/libagaobs_marker.so"))
        # The config wins over the environment; from_dict takes the fields too.
        s = RingSettings.resolve(ObservabilityConfig(forward_marker=False, marker_lib="/x.so"))
        self.assertEqual((s.forward_marker, s.marker_lib), (False, "/x.so"))
        del os.environ["AGAOBS_FORWARD_MARKER"]
        c = ObservabilityConfig.from_dict({"forward_marker": True})
        self.assertIs(RingSettings.resolve(c).forward_marker, True)


if __name__ == "__main__":
    unittest.main()
