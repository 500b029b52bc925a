"""LogExporter: the seed's event log API; agaobs-agent writes the event log
(docs/seed-compatibility.md §5, §12.1).

The agent logs every event this process streams to it, with the seed's
levels, messages and JSON keys, to its log_file (rotated by log_max_bytes
and log_backup_count). This class opens no handler and no file and never
formats an event: ``subscribe()`` streams the bus to the agent, and
``get_stats()`` reads the agent's event counts for this process's producers
(GET /api/v1/status)."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from . import _agent_api

logger = logging.getLogger("aga_observability")

# Event types the seed's LogExporter counted (it saw only bus events; the
# agent also counts the producer's hello, status and lifecycle records).
_EVENT_TYPES = ("forward", "retrieval", "audit", "event")


class LogExporter:
    SUBSCRIBER_ID = "aga-observability-log"

    def __init__(self, format: str = "json", level: str = "INFO", file: Optional[str] = None,
                 max_bytes: int = 100 * 1024 * 1024, backup_count: int = 5,
                 logger_name: str = "aga.observability", *, _quiet: bool = False):
        self._format = format
        self._level = level
        self._file = file
        self._max_bytes = max_bytes
        self._backup_count = backup_count
        self._logger_name = logger_name
        self._subscribed = False
        self._link = _agent_api.BusLink()
        if file and not _quiet:
            _agent_api.warn_once("LogExporter.file",
                                 "aga_observability: LogExporter(file=...): %r is not written by this "
                                 "process; agaobs-agent writes the event log: log_file, log_format, "
                                 "log_level, log_max_bytes and log_backup_count in its configuration", file)

    def subscribe(self, event_bus: Any) -> None:
        """Streams the bus's events to the agent, which logs them."""
        self._subscribed = self._link.subscribe(event_bus) or self._subscribed
        _agent_api.warn_once("LogExporter.subscribe",
                             "aga_observability: LogExporter.subscribe(): this bus's events are streamed "
                             "to agaobs-agent, which writes the event log (its log_file); no log "
                             "handler is installed in this process")

    def unsubscribe(self, event_bus: Any) -> None:
        self._link.unsubscribe(event_bus)
        self._subscribed = self._link.subscribed

    def get_stats(self) -> Dict[str, Any]:
        """subscribed and format as given here; event_count: the events the
        agent received from this process's producers (0 when it cannot be
        read, with one warning)."""
        out = {"subscribed": self._subscribed, "format": self._format, "event_count": 0,
               "handlers": 0, "producers": []}
        try:
            mine = _agent_api.local_producers()
            out["producers"] = mine
            st = _agent_api.read("LogExporter.get_stats", "/api/v1/status", None, "LogExporter.get_stats",
                                 "the agent writes and counts the event log (log_file; event_counts "
                                 "in GET /api/v1/status)", "event_count 0")
            counts = st.get("event_counts") if isinstance(st, dict) else None
            if isinstance(counts, dict):
                out["event_count"] = sum(int(n) for p in mine for t, n in (counts.get(p) or {}).items()
                                         if t in _EVENT_TYPES)
        except Exception as e:
            logger.debug("aga_observability: LogExporter.get_stats: %s", e)
        return out

    def shutdown(self) -> None:
        self._link.unsubscribe()
        self._subscribed = False
