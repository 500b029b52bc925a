"""aga_observability 2.0: streams aga-core EventBus events into shared-memory
rings consumed by agaobs-agent (docs/ring-format.md). Metrics, logs, alerts,
audit storage and health run in the agent, not in the inference process.

Unmodified aga-core imports this module: ``AGAPlugin._setup_observability``
calls :func:`setup_observability` with its event bus and config.

The seed package's other public names (PrometheusExporter, AlertManager,
AuditStorage backends, HealthChecker, GrafanaDashboardGenerator, ...) are
importable from here and from their modules (docs/seed-compatibility.md
§12); they are loaded on first use, so importing this package costs what it
did without them."""

from .config import AlertRuleConfig, ObservabilityConfig
from .integration import bind_plugin, get_global_stack, setup_observability, shutdown_observability
from ._version import __version__
from .stack import ObservabilityStack

# name -> module of the seed-compatible names, imported on first access.
_LAZY = {
    "PrometheusExporter": "prometheus_exporter",
    "GrafanaDashboardGenerator": "grafana_dashboard",
    "AlertManager": "alert_manager",
    "AlertRule": "alert_manager",
    "AlertSeverity": "alert_manager",
    "AlertEvent": "alert_manager",
    "LogExporter": "log_exporter",
    "AuditStorageBackend": "audit_storage",
    "FileAuditStorage": "audit_storage",
    "SQLiteAuditStorage": "audit_storage",
    "HealthChecker": "health",
    "HealthStatus": "health",
}

__all__ = [
    "setup_observability",
    "bind_plugin",
    "get_global_stack",
    "shutdown_observability",
    "ObservabilityStack",
    "ObservabilityConfig",
    "AlertRuleConfig",
    *_LAZY,
    "__version__",
]


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
