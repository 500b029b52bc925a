"""Configuration: the reference package's fields (kept so existing callers
and AGAConfig mappings keep working) plus the ring client's own fields.

Prometheus, logging, audit storage, alerting and health now live in
agaobs-agent; their fields are accepted and carried, but this package does
not act on them. The ring fields below do the work here; each one left None
is read from its environment variable, then from the built-in default."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

logger = logging.getLogger("aga_observability")

DEFAULT_RING_DIR = "/dev/shm/agaobs"


@dataclass
class AlertRuleConfig:
    name: str = ""
    metric: str = ""
    operator: str = ">"
    threshold: float = 0.0
    window_seconds: int = 60
    severity: str = "warning"
    message: str = ""
    cooldown_seconds: int = 300

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AlertRuleConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class ObservabilityConfig:
    # -- seed fields (docs/seed-compatibility.md §3.1), same defaults ------
    enabled: bool = True
    prometheus_enabled: bool = True
    prometheus_port: int = 9090
    prometheus_prefix: str = "aga"
    prometheus_labels: Dict[str, str] = field(default_factory=dict)
    log_enabled: bool = True
    log_format: str = "json"
    log_level: str = "INFO"
    log_file: Optional[str] = None
    log_max_bytes: int = 100 * 1024 * 1024
    log_backup_count: int = 5
    audit_storage_backend: str = "memory"
    audit_storage_path: str = "aga_audit.db"
    audit_retention_days: int = 90
    audit_flush_interval: int = 10
    audit_batch_size: int = 100
    alert_enabled: bool = True
    alert_rules: List[AlertRuleConfig] = field(default_factory=list)
    alert_webhook_url: Optional[str] = None
    alert_log_level: str = "WARNING"
    health_enabled: bool = True
    health_port: int = 8080
    health_path: str = "/health"
    # -- ring client fields: None = environment variable, then default ------
    ring_dir: Optional[str] = None                     # AGAOBS_RING_DIR, /dev/shm/agaobs
    ring_hot_bytes: Optional[int] = None               # AGAOBS_RING_HOT_BYTES, 4194304
    ring_audit_bytes: Optional[int] = None             # AGAOBS_RING_AUDIT_BYTES, 1048576
    ring_audit_wait_us: Optional[int] = None           # AGAOBS_RING_AUDIT_WAIT_US, 200
    producer: Optional[str] = None                     # AGAOBS_PRODUCER
    role: Optional[str] = None                         # AGAOBS_ROLE
    status_interval_seconds: Optional[float] = None    # AGAOBS_STATUS_INTERVAL_SECONDS, 2.0
    status_gate_check_seconds: Optional[float] = None  # AGAOBS_STATUS_GATE_CHECK_SECONDS, 0.0
    forward_marker: Optional[bool] = None              # AGAOBS_FORWARD_MARKER, False
    marker_lib: Optional[str] = None                   # AGAOBS_MARKER_LIB (path of the marker library)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ObservabilityConfig":
        """Builds a config from a mapping without touching it: unknown keys
        are ignored, rule dicts become AlertRuleConfig copies and container
        values are copied, so the caller's objects are never shared."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: Dict[str, Any] = {}
        for k, v in d.items():
            if k not in names:
                continue
            if k == "alert_rules":
                v = [AlertRuleConfig.from_dict(r) if isinstance(r, Mapping) else r for r in (v or [])]
            elif isinstance(v, dict):
                v = dict(v)
            elif isinstance(v, list):
                v = list(v)
            kwargs[k] = v
        return cls(**kwargs)

    @classmethod
    def from_aga_config(cls, c: Any) -> "ObservabilityConfig":
        """The reference mapping: 7 AGAConfig attributes, the rest default."""
        d = cls()
        return cls(
            enabled=getattr(c, "observability_enabled", d.enabled),
            prometheus_enabled=getattr(c, "prometheus_enabled", d.prometheus_enabled),
            prometheus_port=getattr(c, "prometheus_port", d.prometheus_port),
            log_format=getattr(c, "log_format", d.log_format),
            log_level=getattr(c, "log_level", d.log_level),
            audit_storage_backend=getattr(c, "audit_storage_backend", d.audit_storage_backend),
            audit_retention_days=getattr(c, "audit_retention_days", d.audit_retention_days),
        )


def _env(name: str) -> Optional[str]:
    v = os.environ.get(name)
    return v if v not in (None, "") else None


def _pick(value, env: str, default, conv):
    """config value, else environment, else default; a bad value falls
    back to the default with a debug message (fail-open)."""
    raw = value if value is not None else _env(env)
    if raw is None:
        return default
    try:
        return conv(raw)
    except (TypeError, ValueError):
        logger.debug("aga_observability: ignoring bad %s=%r", env, raw)
        return default


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(v) -> bool:
    """A bool, or a string spelled 1/true/yes/on or 0/false/no/off (any case)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v != 0
    t = str(v).strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(v)


def _ring_size(v) -> int:
    """Rounds up to a power of two >= 4096 (format §2)."""
    n = max(int(v), 4096)
    return 1 << (n - 1).bit_length()


@dataclass(frozen=True)
class RingSettings:
    """The ring client's fields (rings, identity, STATUS, forward marker)
    with environment and defaults applied."""
    ring_dir: str
    hot_bytes: int
    audit_bytes: int
    audit_wait_us: int
    producer: Optional[str]
    role: Optional[str]
    status_interval: float
    gate_check_seconds: float
    forward_marker: bool = False
    marker_lib: Optional[str] = None

    @classmethod
    def resolve(cls, cfg: ObservabilityConfig) -> "RingSettings":
        return cls(
            ring_dir=_pick(cfg.ring_dir, "AGAOBS_RING_DIR", DEFAULT_RING_DIR, str),
            hot_bytes=_pick(cfg.ring_hot_bytes, "AGAOBS_RING_HOT_BYTES", 4 << 20, _ring_size),
            audit_bytes=_pick(cfg.ring_audit_bytes, "AGAOBS_RING_AUDIT_BYTES", 1 << 20, _ring_size),
            audit_wait_us=_pick(cfg.ring_audit_wait_us, "AGAOBS_RING_AUDIT_WAIT_US", 200,
                                lambda v: max(int(v), 0)),
            producer=_pick(cfg.producer, "AGAOBS_PRODUCER", None, str),
            role=_pick(cfg.role, "AGAOBS_ROLE", None, str),
            status_interval=_pick(cfg.status_interval_seconds, "AGAOBS_STATUS_INTERVAL_SECONDS",
                                  2.0, lambda v: max(float(v), 0.01)),
            gate_check_seconds=_pick(cfg.status_gate_check_seconds,
                                     "AGAOBS_STATUS_GATE_CHECK_SECONDS", 0.0,
                                     lambda v: max(float(v), 0.0)),
            forward_marker=_pick(cfg.forward_marker, "AGAOBS_FORWARD_MARKER", False, _bool),
            marker_lib=_pick(cfg.marker_lib, "AGAOBS_MARKER_LIB", None, str),
        )
