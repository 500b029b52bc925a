"""PrometheusExporter: the seed's metrics API; agaobs-agent exposes the
metrics (docs/seed-compatibility.md §4, §12.1).

The agent keeps the seed's families, labels and buckets under
prometheus_prefix and serves them on prometheus_port (default 9090), with
the gauges and build info taken from the producer's snapshots and
identity. Nothing here needs prometheus_client, registers a collector or
opens a port; methods that fed or served in-process metrics log one
warning each naming the agent-side equivalent."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from . import _agent_api

logger = logging.getLogger("aga_observability")


class PrometheusExporter:
    SUBSCRIBER_ID = "aga-observability-prometheus"

    def __init__(self, prefix: str = "aga", port: int = 9090, labels: Optional[Dict[str, str]] = None,
                 registry: Optional[Any] = None, *, _quiet: bool = False):
        self._prefix = prefix
        self._port = port
        self._global_labels = dict(labels or {})
        self._registry = registry
        self._server_started = False
        self._subscribed = False
        self._link = _agent_api.BusLink()
        if registry is not None and not _quiet:
            _agent_api.warn_once("PrometheusExporter.registry",
                                 "aga_observability: PrometheusExporter(registry=...): nothing is registered; "
                                 "agaobs-agent exposes the metrics on its prometheus_port")

    def subscribe(self, event_bus: Any) -> None:
        """Streams the bus's events to the agent, which counts them."""
        self._subscribed = self._link.subscribe(event_bus) or self._subscribed
        _agent_api.warn_once("PrometheusExporter.subscribe",
                             "aga_observability: PrometheusExporter.subscribe(): this bus's events are "
                             "streamed to agaobs-agent, which exposes the metrics on its prometheus_port "
                             "(prometheus_prefix, prometheus_labels)")

    def unsubscribe(self, event_bus: Any) -> None:
        self._link.unsubscribe(event_bus)
        self._subscribed = self._link.subscribed

    def update_gauges(self, plugin: Any) -> None:
        """No-op: the gauges come from the producer's snapshots (one warning)."""
        _agent_api.warn_once("PrometheusExporter.update_gauges",
                             "aga_observability: PrometheusExporter.update_gauges(): the knowledge and "
                             "slot gauges come from the producer's STATUS snapshots "
                             "(status_interval_seconds), without a GPU sync; nothing to do here")

    def set_build_info(self, info: Dict[str, str]) -> None:
        """No-op: aga_build_info comes from the producer's identity (one warning)."""
        _agent_api.warn_once("PrometheusExporter.set_build_info",
                             "aga_observability: PrometheusExporter.set_build_info(): %s_build_info comes "
                             "from the producer's identity and snapshots (ObservabilityStack.bind_plugin "
                             "adds hidden_dim, bottleneck_dim, max_slots, device)", self._prefix)

    def start_server(self) -> None:
        """Starts nothing: the agent serves /metrics (one warning)."""
        _agent_api.warn_once("PrometheusExporter.start_server",
                             "aga_observability: PrometheusExporter.start_server(): no server is started "
                             "in this process; agaobs-agent serves /metrics on its prometheus_port "
                             "(default 9090)")

    def shutdown(self) -> None:
        self._link.unsubscribe()
        self._subscribed = False

    def get_stats(self) -> Dict[str, Any]:
        """The seed's keys (server_started is False: no server here), plus
        the agent's Prometheus sink counters (written, dropped) when it can
        be read (else one warning)."""
        out = {"server_started": self._server_started, "subscribed": self._subscribed, "port": self._port,
               "prefix": self._prefix, "window_size": 0, "agent_sink": None}
        try:
            st = _agent_api.read("PrometheusExporter.get_stats", "/api/v1/status", None,
                                 "PrometheusExporter.get_stats",
                                 "agaobs-agent exposes the metrics (its prometheus_port; sinks in "
                                 "GET /api/v1/status)", "no agent_sink")
            for s in (st.get("sinks") or []) if isinstance(st, dict) else []:
                if isinstance(s, dict) and s.get("Name") == "metrics":
                    out["agent_sink"] = {"written": s.get("Written"), "dropped": s.get("Dropped"),
                                         "errors": s.get("Errors")}
        except Exception as e:
            logger.debug("aga_observability: PrometheusExporter.get_stats: %s", e)
        return out
