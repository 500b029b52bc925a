"""Audit persistence: the seed's storage classes, answered by agaobs-agent's
audit store (docs/seed-compatibility.md §8, §12.1).

aga-core's ``audit`` events reach the agent's durable, hash-chained store
through this process's audit ring; this process writes no audit file or
database. ``query()`` and ``get_stats()`` read the agent's admin API
(GET /api/v1/audit, /api/v1/audit/head). Writing records directly and
running retention were in-process jobs: they log one warning per method
naming the agent-side equivalent and never raise."""

from __future__ import annotations

import collections
import logging
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from . import _agent_api

logger = logging.getLogger("aga_observability")

_PAGE = 10000  # the agent's largest page (GET /api/v1/audit)
_WHERE = ("the audit trail is agaobs-agent's store (audit_storage_backend, audit_storage_path; "
          "GET /api/v1/audit on its admin listener, `agaobs-agent audit query`)")


class AuditStorageBackend(ABC):
    """The seed's storage interface, unchanged: a subclass of it is still a
    backend of its own (nothing here calls one)."""

    @abstractmethod
    def store(self, entry: Dict[str, Any]) -> None:
        ...

    @abstractmethod
    def store_batch(self, entries: List[Dict[str, Any]]) -> None:
        ...

    @abstractmethod
    def query(self, operation: Optional[str] = None, since: Optional[float] = None,
              limit: int = 100) -> List[Dict[str, Any]]:
        ...

    @abstractmethod
    def cleanup(self, retention_days: int) -> int:
        ...

    def shutdown(self) -> None:
        pass


def _seed_record(r: Dict[str, Any]) -> Dict[str, Any]:
    """An agent record with the seed's keys added: id (the chain seq),
    timestamp (aga-core's event time, epoch seconds), details {} when absent."""
    out = dict(r)
    out["id"] = r.get("seq")
    out["timestamp"] = r.get("event_timestamp")
    if out.get("details") is None:
        out["details"] = {}
    out["success"] = bool(r.get("success", True))
    out.setdefault("error", None)
    return out


class _AgentAuditStorage(AuditStorageBackend):
    _NAME = "AuditStorage"

    def __init__(self, path: str, flush_interval: float = 10, batch_size: int = 100, *, _quiet: bool = False):
        self._path = path
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._link = _agent_api.BusLink()

    # -- in-process jobs: one warning each ---------------------------------------

    def store(self, entry: Dict[str, Any]) -> None:
        """Nothing is written (one warning)."""
        self._no_direct_writes("store")

    def store_batch(self, entries: List[Dict[str, Any]]) -> None:
        """Nothing is written (one warning)."""
        self._no_direct_writes("store_batch")

    def _no_direct_writes(self, method: str) -> None:
        _agent_api.warn_once(f"{self._NAME}.{method}",
                             "aga_observability: %s.%s(): nothing was written; the agent stores every "
                             "'audit' event of an observed EventBus (aga-core's AuditLog.record, or "
                             "event_bus.emit('audit', {...})) in its tamper-evident store "
                             "(audit_storage_backend, audit_storage_path)", self._NAME, method)

    def cleanup(self, retention_days: int) -> int:
        """Returns 0: retention runs in the agent (one warning)."""
        _agent_api.warn_once(f"{self._NAME}.cleanup",
                             "aga_observability: %s.cleanup(): retention runs in agaobs-agent: "
                             "audit_retention_days (and audit_max_bytes) in its configuration, or "
                             "`agaobs-agent audit compact`; nothing was removed", self._NAME)
        return 0

    def _flush(self) -> None:
        """Nothing is buffered here: the audit ring is written at emit."""

    def subscribe(self, event_bus: Any) -> None:
        """Streams the bus's events (its audit events included) to the agent."""
        self._link.subscribe(event_bus)
        _agent_api.warn_once(f"{self._NAME}.subscribe",
                             "aga_observability: %s.subscribe(): this bus's audit events are streamed "
                             "to agaobs-agent and stored there, not at %s; query() reads them back",
                             self._NAME, self._path)

    def unsubscribe(self, event_bus: Any) -> None:
        self._link.unsubscribe(event_bus)

    def shutdown(self) -> None:
        self._link.unsubscribe()

    # -- reads from the agent ------------------------------------------------------

    def query(self, operation: Optional[str] = None, since: Optional[float] = None,
              limit: int = 100) -> List[Dict[str, Any]]:
        """The last ``limit`` records of the agent's audit trail (0: all),
        oldest first, optionally of one operation and received at or after
        ``since`` (epoch seconds). Each record is the agent's (seq, time,
        kind, producer, operation, details, success, error, event_timestamp,
        hash, ...) plus the seed's id and timestamp. [] when the agent
        cannot be read (one warning)."""
        what = f"{self._NAME}.query"
        try:
            try:
                limit = int(limit)
            except (TypeError, ValueError):
                limit = 100
            limit = max(limit, 0)
            base = {"operation": operation or None}
            if since:
                base["since"] = datetime.fromtimestamp(float(since), timezone.utc).isoformat()
            cursor = 0
            if not operation and limit > 0:
                # Chain seqs are 1..size: the tail starts after size - limit.
                head = _agent_api.read(what, "/api/v1/audit/head", None, what, _WHERE, "[]")
                if not isinstance(head, dict):
                    return []
                cursor = max(int(head.get("size") or 0) - limit, 0)
            out = collections.deque(maxlen=limit or None)
            while True:
                params = dict(base, limit=_PAGE, cursor=cursor or None)
                page = _agent_api.read(what, "/api/v1/audit", params, what, _WHERE, "[]")
                if not isinstance(page, dict):
                    return list(out) if out else []
                for r in page.get("records") or []:
                    if isinstance(r, dict):
                        out.append(_seed_record(r))
                nxt = page.get("next_cursor") or ""
                if not nxt or (not operation and limit > 0 and len(out) >= limit):
                    break
                cursor = int(nxt)
            return list(out)
        except Exception as e:
            logger.debug("aga_observability: %s: %s", what, e)
            return []

    def get_stats(self) -> Dict[str, Any]:
        """The agent's store: path, total_written and total_records (records
        in its hash chain), buffer_size (received, not yet durable),
        file_exists (writable), file_size (bytes stored), backend; zeros and
        path None when the agent cannot be read (one warning)."""
        what = f"{self._NAME}.get_stats"
        out = {"path": None, "total_written": 0, "buffer_size": 0, "total_records": 0,
               "file_exists": False, "file_size": 0, "backend": None, "agent_url": None}
        try:
            out["agent_url"] = _agent_api.agent_url()
            head = _agent_api.read(what, "/api/v1/audit/head", None, what, _WHERE, "zeros")
            if isinstance(head, dict):
                size = int(head.get("size") or 0)
                out.update(path=head.get("path"), total_written=size, total_records=size,
                           buffer_size=int(head.get("pending") or 0), file_exists=bool(head.get("writable")),
                           file_size=int(head.get("store_bytes") or 0), backend=head.get("backend"),
                           head=head.get("head"))
        except Exception as e:
            logger.debug("aga_observability: %s: %s", what, e)
        return out


class FileAuditStorage(_AgentAuditStorage):
    """The seed's JSONL backend; here the agent's store answers (its own
    ``file`` backend keeps the seed's JSONL files)."""

    SUBSCRIBER_ID = "aga-observability-audit-file"
    _NAME = "FileAuditStorage"

    def __init__(self, path: str = "aga_audit.jsonl", flush_interval: int = 10, batch_size: int = 100,
                 max_file_size: int = 100 * 1024 * 1024, max_files: int = 10, *, _quiet: bool = False):
        super().__init__(path, flush_interval, batch_size, _quiet=_quiet)
        self._max_file_size = max_file_size
        self._max_files = max_files


class SQLiteAuditStorage(_AgentAuditStorage):
    """The seed's SQLite backend; here the agent's store answers (the
    agent's ``sqlite`` backend name is an alias of ``bbolt``)."""

    SUBSCRIBER_ID = "aga-observability-audit-sqlite"
    _NAME = "SQLiteAuditStorage"

    def __init__(self, path: str = "aga_audit.db", flush_interval: int = 10, batch_size: int = 100,
                 *, _quiet: bool = False):
        super().__init__(path, flush_interval, batch_size, _quiet=_quiet)
