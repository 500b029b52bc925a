"""AlertManager: the seed's alert API, answered by agaobs-agent's alert
engine (docs/seed-compatibility.md §6, §12.1).

Rules are evaluated in the agent, on the events this process streams to it,
never here: nothing in this module runs on the emitting thread. The alert
history and the active alerts are read from the agent's admin API
(GET /api/v1/alerts). What changed in-process state in the seed (adding or
removing rules at run time, callbacks, feeding plugin metrics) logs one
warning per method naming the agent-side equivalent, and never raises.

``AlertRule.evaluate`` and ``format_message`` keep working as pure
functions with the agent's semantics (§6.2), and the rules an AlertManager
was given can be turned into the agent's configuration with
``agent_config()``."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Dict, List, Optional

from . import _agent_api

logger = logging.getLogger("aga_observability")

_TOLERANCE = 1e-9  # == and != (the agent's alert engine, §6.2)
_RULES_ADVICE = ("rules are evaluated by agaobs-agent: put them under alert_rules in its configuration "
                 "file and reload it (SIGHUP; alert_rules and alert_use_default_rules reload at once); "
                 "AlertManager.agent_config() prints them in that form")


class AlertSeverity(Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def _severity_text(s: Any) -> str:
    return s.value if isinstance(s, AlertSeverity) else str(s)


@dataclass
class AlertRule:
    """One rule, as the seed spelled it; the agent's alert_rules entry takes
    the same fields (plus for, keep_firing_for, labels, annotations)."""
    name: str
    metric: str
    operator: str = ">"
    threshold: float = 0.0
    window_seconds: int = 60
    severity: AlertSeverity = AlertSeverity.WARNING
    message: str = ""
    cooldown_seconds: int = 300

    def evaluate(self, value: float) -> bool:
        """The agent's comparison: >, <, >=, <=, and == / != within 1e-9.
        Another operator (which the agent's configuration rejects) is False."""
        try:
            t, op = self.threshold, self.operator
            if op == ">":
                return value > t
            if op == "<":
                return value < t
            if op == ">=":
                return value >= t
            if op == "<=":
                return value <= t
            if op == "==":
                return abs(value - t) < _TOLERANCE
            if op == "!=":
                return abs(value - t) >= _TOLERANCE
            logger.debug("aga_observability: alert rule %s: unknown operator %r", self.name, op)
        except Exception:
            pass
        return False

    def format_message(self, value: float) -> str:
        """The message template rendered as the agent renders it (Python
        format fields value, threshold, metric, name), else the default
        ``[SEVERITY] name: metric = value op threshold``."""
        default = None
        try:
            if self.message:
                try:
                    return self.message.format(value=value, threshold=self.threshold,
                                               metric=self.metric, name=self.name)
                except Exception as e:
                    logger.debug("aga_observability: alert rule %s: message template: %s", self.name, e)
            default = (f"[{_severity_text(self.severity).upper()}] {self.name}: "
                       f"{self.metric} = {value:.4f} {self.operator} {self.threshold}")
        except Exception:
            default = f"{self.name}: {self.metric} = {value!r}"
        return default

    def to_config(self) -> Dict[str, Any]:
        """The rule as an entry of the agent's alert_rules."""
        d = {"name": self.name, "metric": self.metric, "operator": self.operator,
             "threshold": self.threshold, "window_seconds": self.window_seconds,
             "severity": _severity_text(self.severity), "cooldown_seconds": self.cooldown_seconds}
        if self.message:
            d["message"] = self.message
        return d


@dataclass
class AlertEvent:
    """An alert as the seed's callbacks received it."""
    rule_name: str
    metric: str
    value: float
    threshold: float
    severity: AlertSeverity
    message: str
    timestamp: float = field(default_factory=time.time)
    resolved: bool = False


def _rule(name, metric, threshold, window, severity, cooldown, message) -> AlertRule:
    return AlertRule(name=name, metric=metric, operator=">", threshold=threshold, window_seconds=window,
                     severity=severity, message=message, cooldown_seconds=cooldown)


class AlertManager:
    """The agent's alerts, seen from this process."""

    SUBSCRIBER_ID = "aga-observability-alert"

    # The agent's default rules (alert_use_default_rules: true), as it
    # defines them: the seed's four, messages translated to English.
    DEFAULT_RULES = [
        _rule("slo_latency_p99", "latency_p99", 1000.0, 60, AlertSeverity.WARNING, 300,
              "SLO violation: P99 latency {value:.1f}µs exceeds {threshold:.0f}µs"),
        _rule("slo_latency_critical", "latency_p99", 5000.0, 30, AlertSeverity.CRITICAL, 60,
              "Critical: P99 latency {value:.1f}µs far above the {threshold:.0f}µs threshold"),
        _rule("high_utilization", "knowledge_utilization", 0.95, 60, AlertSeverity.WARNING, 600,
              "KVStore utilization too high: {value:.1%}, evictions likely"),
        _rule("slot_thrashing", "slot_change_rate", 0.5, 30, AlertSeverity.WARNING, 120,
              "Slot thrashing risk: change rate {value:.2f} above {threshold:.2f}"),
    ]

    def __init__(self, rules: Optional[List[AlertRule]] = None, use_defaults: bool = True,
                 max_history: int = 1000, webhook_url: Optional[str] = None, *, _quiet: bool = False):
        self._rules: Dict[str, AlertRule] = {}  # what agent_config() renders
        self._use_defaults = bool(use_defaults)
        self._max_history = max_history
        self._webhook_url = webhook_url
        self._callbacks: List[Callable[[AlertEvent], None]] = []
        self._link = _agent_api.BusLink()
        try:
            if use_defaults:
                for r in self.DEFAULT_RULES:
                    self._rules[r.name] = r
            for r in rules or []:
                if getattr(r, "name", None) is not None:
                    self._rules[r.name] = r
            if not _quiet:
                if rules:
                    _agent_api.warn_once("AlertManager.rules", "aga_observability: AlertManager(rules=...): "
                                         "%s", _RULES_ADVICE)
                if webhook_url:
                    _agent_api.warn_once("AlertManager.webhook_url",
                                         "aga_observability: AlertManager(webhook_url=...): the agent posts "
                                         "alerts: set alert_webhook_url (alert_webhook_format: reference "
                                         "keeps the seed's body) in its configuration")
        except Exception as e:
            logger.debug("aga_observability: AlertManager: %s", e)

    # -- in-process state: kept for agent_config(), with one warning ------------

    def add_rule(self, rule: AlertRule) -> None:
        """Records the rule for agent_config(); the agent does not see it."""
        try:
            self._rules[rule.name] = rule
        except Exception:
            pass
        _agent_api.warn_once("AlertManager.add_rule", "aga_observability: AlertManager.add_rule(): %s",
                             _RULES_ADVICE)

    def remove_rule(self, name: str) -> bool:
        """Forgets a recorded rule (True if it was recorded); the agent keeps
        evaluating its own rules."""
        _agent_api.warn_once("AlertManager.remove_rule",
                             "aga_observability: AlertManager.remove_rule(): the agent's rules are its "
                             "configuration: delete the rule from alert_rules (a default rule: "
                             "alert_use_default_rules: false) and reload it (SIGHUP)")
        try:
            return self._rules.pop(name, None) is not None
        except Exception:
            return False

    def add_callback(self, callback: Callable[[AlertEvent], None]) -> None:
        """Not called: the agent notifies instead."""
        try:
            self._callbacks.append(callback)
        except Exception:
            pass
        _agent_api.warn_once("AlertManager.add_callback",
                             "aga_observability: AlertManager.add_callback(): callbacks are not called in "
                             "this process; agaobs-agent notifies through alert_webhook_url, "
                             "alertmanager_urls or alert_exec_command (the alert as JSON on stdin)")

    def subscribe(self, event_bus: Any) -> None:
        """Streams the bus's events to the agent, which evaluates the rules."""
        self._link.subscribe(event_bus)
        _agent_api.warn_once("AlertManager.subscribe",
                             "aga_observability: AlertManager.subscribe(): this bus's events are streamed "
                             "to agaobs-agent, which evaluates its alert_rules; alerts are read back with "
                             "get_alerts() (GET /api/v1/alerts)")

    def unsubscribe(self, event_bus: Any) -> None:
        self._link.unsubscribe(event_bus)

    def update_plugin_metrics(self, plugin: Any) -> None:
        """No-op: the agent reads these values from the producer's snapshots."""
        _agent_api.warn_once("AlertManager.update_plugin_metrics",
                             "aga_observability: AlertManager.update_plugin_metrics(): "
                             "knowledge_utilization and slot_change_rate reach the agent in the "
                             "producer's STATUS snapshots (status_interval_seconds); nothing to do here")

    def shutdown(self) -> None:
        try:
            self._callbacks.clear()
            self._link.unsubscribe()
        except Exception:
            pass

    # -- reads from the agent ------------------------------------------------------

    def _read_alerts(self, what: str, severity=None, limit: int = 100, since=None):
        params = {}
        if severity:
            params["severity"] = _severity_text(severity)
        try:
            params["limit"] = max(int(limit), 0)
        except (TypeError, ValueError):
            params["limit"] = 100
        if since:
            params["since"] = repr(float(since))
        return _agent_api.read(what, "/api/v1/alerts", params, what,
                               "alerts are evaluated and kept by agaobs-agent (GET /api/v1/alerts on its "
                               "admin listener, `agaobs-agent` log, alert_webhook_url)", "no alerts")

    def get_alerts(self, severity: Optional[AlertSeverity] = None, limit: int = 100,
                   since: Optional[float] = None) -> List[Dict[str, Any]]:
        """The agent's notification history, oldest first, in the seed's
        shape (rule_name, metric, value, threshold, severity, message,
        timestamp) plus status (firing/resolved) and producer."""
        try:
            body = self._read_alerts("AlertManager.get_alerts", severity, limit, since)
            if not isinstance(body, dict):
                return []
            return [dict(h) for h in (body.get("history") or []) if isinstance(h, dict)]
        except Exception:
            return []

    def get_active_alerts(self, severity: Optional[AlertSeverity] = None) -> List[Dict[str, Any]]:
        """The agent's pending, firing and recently resolved alerts (rule_name,
        producer, state, severity, metric, value, threshold, message,
        active_at, fired_at, resolved_at, labels)."""
        try:
            body = self._read_alerts("AlertManager.get_active_alerts", severity, 1, None)
            if not isinstance(body, dict):
                return []
            return [dict(a) for a in (body.get("active") or []) if isinstance(a, dict)]
        except Exception:
            return []

    def get_rules(self) -> List[Dict[str, Any]]:
        """The rules the agent evaluates (GET /api/v1/rules), with their state."""
        try:
            body = _agent_api.read("AlertManager.get_rules", "/api/v1/rules", None, "AlertManager.get_rules",
                                   "the rules are the agent's alert_rules (GET /api/v1/rules)", "no rules")
            rules = body.get("rules") if isinstance(body, dict) else None
            return [dict(r) for r in rules or [] if isinstance(r, dict)]
        except Exception:
            return []

    def get_stats(self) -> Dict[str, Any]:
        """rules_count, total_alerts, by_severity and active_metrics from the
        agent (zeros when it cannot be read), callbacks_count from here."""
        out = {"rules_count": 0, "total_alerts": 0, "by_severity": {}, "active_metrics": [],
               "callbacks_count": 0, "agent_url": None}
        try:
            out["callbacks_count"] = len(self._callbacks)
            out["agent_url"] = _agent_api.agent_url()
            body = self._read_alerts("AlertManager.get_stats", None, 0, None)
            if isinstance(body, dict):
                hist = [h for h in body.get("history") or [] if isinstance(h, dict)]
                out["total_alerts"] = len(hist)
                for h in hist:
                    sev = str(h.get("severity"))
                    out["by_severity"][sev] = out["by_severity"].get(sev, 0) + 1
                rules = _agent_api.read("AlertManager.get_stats", "/api/v1/rules", None,
                                        "AlertManager.get_stats", "the rules are the agent's alert_rules "
                                        "(GET /api/v1/rules)", "rules_count 0")
                rules = rules.get("rules") if isinstance(rules, dict) else None
                if isinstance(rules, list):
                    out["rules_count"] = len(rules)
                    out["active_metrics"] = sorted({str(r.get("metric")) for r in rules
                                                    if isinstance(r, dict) and r.get("values")})
        except Exception:
            pass
        return out

    # -- migration aid --------------------------------------------------------------

    def agent_config(self) -> str:
        """The rules given to this AlertManager (beyond the unchanged defaults)
        as the agent's YAML configuration: alert_use_default_rules,
        alert_rules and alert_webhook_url."""
        try:
            defaults = {r.name: r for r in self.DEFAULT_RULES}
            lines = [f"alert_use_default_rules: {'true' if self._use_defaults else 'false'}"]
            custom = [r for n, r in self._rules.items() if defaults.get(n) is not r]
            if custom:
                lines.append("alert_rules:")
                for r in custom:
                    first = True
                    for k, v in r.to_config().items():
                        # JSON scalars are valid YAML scalars.
                        lines.append(("  - " if first else "    ") + f"{k}: {json.dumps(v, ensure_ascii=False)}")
                        first = False
            if self._webhook_url:
                lines.append(f"alert_webhook_url: {json.dumps(self._webhook_url)}")
            return "\n".join(lines) + "\n"
        except Exception as e:
            logger.debug("aga_observability: agent_config: %s", e)
            return ""
