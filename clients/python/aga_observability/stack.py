"""ObservabilityStack: the reference package's orchestrator, now a thin
handle on the bus's ring producer. Exporters, alerting, audit storage and
health run in agaobs-agent, out of the inference process.

The seed's component attributes stay (docs/seed-compatibility.md §12.1),
present when their feature is enabled as in the seed: handles that read
the agent's admin API and never subscribe to the bus, so the emitting
thread does exactly one ring write per event whatever is enabled."""

from __future__ import annotations

import threading
from typing import Any, List, Mapping, Optional

from . import producer as _producer
from ._version import __version__
from .config import ObservabilityConfig, RingSettings

_stacks_lock = threading.Lock()
_stacks: List["ObservabilityStack"] = []  # running stacks, oldest first


class ObservabilityStack:
    """Streams every event of ``event_bus`` into a hot and an audit ring.

    Several stacks on one bus share its producer (the bus is subscribed to
    once); its rings are closed when the last of them shuts down."""

    def __init__(self, event_bus: Any, config: Optional[ObservabilityConfig] = None):
        self.event_bus = event_bus
        self._aga_config = None  # the AGAConfig given to setup_observability
        if config is None:
            config = ObservabilityConfig()
        elif isinstance(config, Mapping):
            config = ObservabilityConfig.from_dict(config)
        elif not isinstance(config, ObservabilityConfig):
            # An AGAConfig, as the seed's docstring passed plugin.config.
            self._aga_config = config
            config = ObservabilityConfig.from_aga_config(config)
        self.config = config
        self._plugin = None
        self._producer: Optional[_producer.Producer] = None
        self._last: Optional[_producer.Producer] = None  # kept for stats after shutdown
        self._running = False
        self._lock = threading.Lock()
        self.prometheus_exporter = None
        self.log_exporter = None
        self.audit_storage = None
        self.alert_manager = None
        self.health_checker = None
        self.dashboard_generator = None
        for make in (self._make_prometheus, self._make_log, self._make_audit, self._make_alert,
                     self._make_health, self._make_dashboard):
            try:
                make(self.config)
            except Exception as e:  # fail-open: the ring stream does not need them
                import logging
                logging.getLogger("aga_observability").debug("aga_observability: %s: %s", make.__name__, e)

    # The seed's components, by the seed's config switches. Quiet: the
    # config keys they would warn about are documented as the agent's.

    def _make_prometheus(self, cfg) -> None:
        if cfg.prometheus_enabled:
            from .prometheus_exporter import PrometheusExporter
            self.prometheus_exporter = PrometheusExporter(prefix=cfg.prometheus_prefix, port=cfg.prometheus_port,
                                                          labels=cfg.prometheus_labels, _quiet=True)

    def _make_log(self, cfg) -> None:
        if cfg.log_enabled:
            from .log_exporter import LogExporter
            self.log_exporter = LogExporter(format=cfg.log_format, level=cfg.log_level, file=cfg.log_file,
                                            max_bytes=cfg.log_max_bytes, backup_count=cfg.log_backup_count,
                                            _quiet=True)

    def _make_audit(self, cfg) -> None:
        backend = cfg.audit_storage_backend
        if backend in ("file", "sqlite"):
            from .audit_storage import FileAuditStorage, SQLiteAuditStorage
            path = str(cfg.audit_storage_path or "aga_audit.db")
            if backend == "file":
                self.audit_storage = FileAuditStorage(path=path.replace(".db", ".jsonl"),
                                                      flush_interval=cfg.audit_flush_interval,
                                                      batch_size=cfg.audit_batch_size, _quiet=True)
            else:
                self.audit_storage = SQLiteAuditStorage(path=path, flush_interval=cfg.audit_flush_interval,
                                                        batch_size=cfg.audit_batch_size, _quiet=True)

    def _make_alert(self, cfg) -> None:
        if cfg.alert_enabled:
            from .alert_manager import AlertManager, AlertRule, AlertSeverity
            from .config import AlertRuleConfig
            rules = []
            for rc in cfg.alert_rules or []:
                try:
                    if isinstance(rc, Mapping):
                        rc = AlertRuleConfig.from_dict(rc)
                    try:
                        sev = AlertSeverity(rc.severity)
                    except ValueError:
                        sev = rc.severity
                    rules.append(AlertRule(name=rc.name, metric=rc.metric, operator=rc.operator,
                                           threshold=rc.threshold, window_seconds=rc.window_seconds,
                                           severity=sev, message=rc.message, cooldown_seconds=rc.cooldown_seconds))
                except Exception:
                    continue
            self.alert_manager = AlertManager(rules=rules, use_defaults=True, webhook_url=cfg.alert_webhook_url,
                                              _quiet=True)

    def _make_health(self, cfg) -> None:
        if cfg.health_enabled:
            from .health import HealthChecker
            self.health_checker = HealthChecker(port=cfg.health_port, path=cfg.health_path)

    def _make_dashboard(self, cfg) -> None:
        from .grafana_dashboard import GrafanaDashboardGenerator
        self.dashboard_generator = GrafanaDashboardGenerator(
            prefix=cfg.prometheus_prefix if cfg.prometheus_enabled else "aga")

    # The seed's own attribute names for two of them.
    @property
    def prometheus(self):
        return self.prometheus_exporter

    @property
    def health(self):
        return self.health_checker

    def start(self) -> bool:
        """Creates the rings and subscribes. Returns False, after ONE warning
        per ring directory, when the ring directory is unusable (fail-open)."""
        with self._lock:
            if self._running:
                return True
            settings = RingSettings.resolve(self.config)
            try:
                p = _producer.acquire(self.event_bus, settings, self._aga_config)
            except OSError as e:
                _producer.warn_once(settings.ring_dir, "aga_observability: ring directory %s is "
                                    "not usable (%s); observability is disabled",
                                    settings.ring_dir, e)
                return False
            except Exception as e:
                _producer.warn_once(repr(e), "aga_observability: cannot observe this event "
                                    "bus (%s); observability is disabled for it", e)
                return False
            self._producer = self._last = p
            self._running = True
            if self._plugin is not None:
                p.bind(self._plugin)
        with _stacks_lock:
            _stacks.append(self)
        return True

    def bind_plugin(self, plugin: Any) -> None:
        """Adds the plugin's pull-side state to STATUS snapshots and its build
        fields to HELLO. Attributes are read lazily (getattr with defaults),
        so a plugin still inside its __init__ may be bound."""
        self._plugin = plugin
        h = self.health_checker
        if h is not None:
            h.bind_plugin(plugin)
        p = self._producer
        if p is not None:
            try:
                p.bind(plugin)
            except Exception:
                p.count_error()

    def shutdown(self) -> None:
        """Marks the rings closed (after a last STATUS) and unsubscribes;
        releases any bus a component was subscribed to by hand."""
        for c in (self.prometheus_exporter, self.log_exporter, self.audit_storage, self.alert_manager,
                  self.health_checker):
            if c is not None:
                try:
                    c.shutdown()
                except Exception:
                    pass
        with self._lock:
            if not self._running:
                return
            self._running = False
            p, self._producer = self._producer, None
        with _stacks_lock:
            if self in _stacks:
                _stacks.remove(self)
        try:
            _producer.release(p)
        except Exception:
            pass

    @property
    def running(self) -> bool:
        return self._running

    @property
    def plugin(self) -> Any:
        return self._plugin

    @property
    def producer_name(self) -> Optional[str]:
        p = self._last
        return p.name if p is not None else None

    @property
    def ring_paths(self) -> dict:
        """Paths of the ring pair (also after shutdown)."""
        p = self._last
        if p is None or p.hot is None:
            return {}
        return {"hot": p.hot.path, "audit": p.audit.path}

    def get_stats(self) -> dict:
        """running, version and the ring producer's counters; each
        component's get_stats() reads its part from the agent."""
        d = {"running": self._running, "version": __version__}
        p = self._last
        if p is not None:
            d.update(p.stats())
        return d

    def generate_dashboard(self, path: Optional[str] = None) -> str:
        """The agent's Grafana dashboard JSON for this stack's
        prometheus_prefix (the seed's {"dashboard": …} form); also written to
        path when given. Never raises."""
        gen = self.dashboard_generator
        if gen is None:
            from .grafana_dashboard import GrafanaDashboardGenerator
            gen = GrafanaDashboardGenerator()
        if path:
            gen.save(path)
        return gen.generate()


def running_stacks() -> List[ObservabilityStack]:
    with _stacks_lock:
        return list(_stacks)


def _after_fork_child() -> None:
    global _stacks_lock
    _stacks_lock = threading.Lock()


import os as _os  # noqa: E402

if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_child)
