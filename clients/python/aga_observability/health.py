"""HealthChecker: the seed's health API, answered by agaobs-agent's health
endpoint (docs/seed-compatibility.md §7, §12.1).

The agent judges each producer's components from its status snapshots
(``<producer>/kv_store``, ``/gate_system``, ``/retriever``, ``/attachment``,
``/ring``, ``/liveness``) and its own (audit, alerting, pipeline, gpu, bpf),
and serves them at health_path on health_port. ``check()`` reads that
document (AGAOBS_HEALTH_URL) and adds the custom checks registered here;
it never touches the plugin, so it costs the inference process no GPU
sync. ``start_server()`` starts nothing: the agent serves the endpoint."""

from __future__ import annotations

import logging
import time
from enum import Enum
from typing import Any, Callable, Dict, Optional

from . import _agent_api

logger = logging.getLogger("aga_observability")


class HealthStatus(Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"     # working, with reduced function
    UNHEALTHY = "unhealthy"


_RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def _worse(a: str, b: Any) -> str:
    """The worse of two statuses; one the seed did not know (disabled,
    closed, unknown, ...) counts as healthy, as in the seed and the agent."""
    if isinstance(b, HealthStatus):
        b = b.value
    return b if isinstance(b, str) and _RANK.get(b, 0) > _RANK.get(a, 0) else a


class HealthChecker:
    """The agent's health for this process, plus custom checks.

    ``url`` overrides AGAOBS_HEALTH_URL; ``port`` and ``path`` (the stack
    passes health_port and health_path) build the default
    http://127.0.0.1:<port><path>."""

    def __init__(self, *, url: Optional[str] = None, port: Optional[int] = None,
                 path: Optional[str] = None):
        self._plugin = None
        self._custom_checks: Dict[str, Callable[[], Dict[str, Any]]] = {}
        self._url = url
        self._port = port
        self._path = path

    def bind_plugin(self, plugin: Any) -> None:
        """Kept for the seed's API; the agent reads the plugin's state from
        the producer's snapshots (ObservabilityStack.bind_plugin)."""
        self._plugin = plugin

    def add_check(self, name: str, check_fn: Callable[[], Dict[str, Any]]) -> None:
        """Registers a check that check() runs in this process."""
        try:
            self._custom_checks[name] = check_fn
        except Exception:
            pass
        _agent_api.warn_once("HealthChecker.add_check",
                             "aga_observability: HealthChecker.add_check(): custom checks run in this "
                             "process, in HealthChecker.check(); the agent's health endpoint "
                             "(health_port, health_path; `agaobs-agent health`) does not include them")

    def url(self) -> str:
        return self._url or _agent_api.health_url(self._port, self._path)

    def check(self) -> Dict[str, Any]:
        """{"status", "components", "timestamp"}: the agent's components for
        this process's producers (all of them when this process has none)
        and the agent's own, then the custom checks; the status is the worst
        component's. Without an answer from the agent (one warning) only the
        custom checks are reported."""
        components: Dict[str, Any] = {}
        status = HealthStatus.HEALTHY.value
        try:
            url = self.url()
            doc, err = _agent_api.get_json(url, ok_status=(200, 503))
            if err is None and isinstance(doc, dict) and isinstance(doc.get("components"), dict):
                mine = _agent_api.local_producers()
                for name, comp in doc["components"].items():
                    producer = name.split("/", 1)[0] if "/" in name else None
                    if producer is not None and mine and producer not in mine:
                        continue
                    components[name] = comp
                    if isinstance(comp, dict):
                        status = _worse(status, comp.get("status"))
            else:
                _agent_api.warn_once("HealthChecker.check",
                                     "aga_observability: HealthChecker.check(): the agent's health endpoint "
                                     "%s did not answer (%s); health is judged by agaobs-agent (health_port, "
                                     "health_path; set AGAOBS_HEALTH_URL). Reporting the custom checks only.",
                                     url, err or "not a health document")
        except Exception as e:
            logger.debug("aga_observability: health: %s", e)
        for name, fn in list(self._custom_checks.items()):
            try:
                res = fn()
                if not isinstance(res, dict):
                    res = {"status": HealthStatus.UNHEALTHY.value,
                           "error": f"check returned {type(res).__name__}, not a dict"}
            except Exception as e:
                res = {"status": HealthStatus.UNHEALTHY.value, "error": str(e)}
            components[name] = res
            status = _worse(status, res.get("status"))
        return {"status": status, "components": components, "timestamp": time.time()}

    def start_server(self, port: int = 8080, path: str = "/health") -> None:
        """Starts nothing: the agent serves the endpoint (one warning)."""
        _agent_api.warn_once("HealthChecker.start_server",
                             "aga_observability: HealthChecker.start_server(): no server is started in "
                             "this process; agaobs-agent serves health at health_host:health_port "
                             "health_path (default :8080 /health, also /livez and /readyz)")

    def shutdown(self) -> None:
        pass
