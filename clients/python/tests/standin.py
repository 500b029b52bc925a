"""Stand-ins for the aga-core pieces the client touches, mirroring their
documented semantics (shared/reference/python-reference.md §1).

EventBus: emit() is unlocked, appends to a deque ring, counts, then calls
the handlers of the event type and then the "*" handlers on the caller's
thread, swallowing handler exceptions; unsubscribe with a subscriber_id
removes that id from every type. AGAPlugin: its __init__ creates the bus
and calls _setup_observability() exactly as aga-core does, BEFORE the rest
of the plugin exists; register/unregister/clear emit aga-core audit events."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

logger = logging.getLogger("aga.instrumentation")


@dataclass
class Event:
    type: str
    timestamp: float
    data: Dict[str, Any] = field(default_factory=dict)
    source: str = "aga-core"


class EventBus:
    def __init__(self, buffer_size: int = 10000, enabled: bool = True):
        self._buffer = deque(maxlen=buffer_size)
        self._buffer_size = buffer_size
        self._subscribers: Dict[str, List[tuple]] = defaultdict(list)
        self._lock = threading.Lock()
        self._enabled = enabled
        self._total_emitted = 0
        self._total_consumed = 0

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, v: bool) -> None:
        self._enabled = v

    def subscribe(self, event_type: str, handler: Callable, subscriber_id: Optional[str] = None) -> None:
        with self._lock:
            self._subscribers[event_type].append((handler, subscriber_id))

    def unsubscribe(self, event_type: str, handler: Optional[Callable] = None,
                    subscriber_id: Optional[str] = None) -> None:
        with self._lock:
            if subscriber_id is not None:
                for t in list(self._subscribers):
                    self._subscribers[t] = [s for s in self._subscribers[t] if s[1] != subscriber_id]
            elif handler is not None:
                self._subscribers[event_type] = [s for s in self._subscribers[event_type]
                                                 if s[0] != handler]

    def emit(self, event_type: str, data: Optional[Dict[str, Any]] = None) -> None:
        if not self._enabled:
            return
        event = Event(type=event_type, timestamp=time.time(), data=data or {})
        self._buffer.append(event)
        self._total_emitted += 1
        handlers = self._subscribers.get(event_type, []) + self._subscribers.get("*", [])
        for handler, _sid in handlers:
            try:
                handler(event)
                self._total_consumed += 1
            except Exception as e:
                logger.debug("event handler error: %s", e)

    def query(self, event_type=None, limit=100, since=None):
        items = [e for e in self._buffer
                 if (event_type is None or e.type == event_type) and (not since or e.timestamp >= since)]
        return [{"type": e.type, "timestamp": e.timestamp, "data": e.data} for e in items[-limit:]]

    def get_stats(self) -> Dict[str, Any]:
        return {"total_emitted": self._total_emitted, "total_consumed": self._total_consumed,
                "buffer_size": len(self._buffer), "buffer_capacity": self._buffer_size,
                "subscribers": {t: len(s) for t, s in self._subscribers.items()}}


class AGAConfig:
    """The AGAConfig fields the client reads."""

    def __init__(self, **kw):
        self.hidden_dim = 4096
        self.bottleneck_dim = 64
        self.max_slots = 256
        self.device = "cpu"
        self.instrumentation_enabled = True
        self.event_buffer_size = 10000
        self.observability_enabled = True
        self.prometheus_enabled = True
        self.prometheus_port = 9090
        self.log_format = "json"
        self.log_level = "INFO"
        self.audit_storage_backend = "memory"
        self.audit_retention_days = 90
        for k, v in kw.items():
            setattr(self, k, v)


class NullRetriever:
    def __init__(self):
        self.call_count = 0

    def get_stats(self):
        return {"type": "NullRetriever", "call_count": self.call_count, "description": "no retrieval"}


class GateSystem:
    def __init__(self, params=()):
        self._params = list(params)

    def parameters(self):
        return iter(self._params)


class AGAPlugin:
    def __init__(self, config: AGAConfig):
        self.config = config
        self.event_bus = EventBus(buffer_size=config.event_buffer_size,
                                  enabled=config.instrumentation_enabled)
        self._setup_observability()
        # Everything below exists only AFTER observability was set up, as in
        # aga-core: the client must read it lazily.
        self._store: Dict[str, dict] = {}
        self._hooks: List[Any] = []
        self._attached_model_name: Optional[str] = None
        self._slot_change_counter = 0
        self._slot_change_window = 0
        self.retriever = NullRetriever()
        self.gate_system = GateSystem()
        self.stats_calls = 0  # get_store_stats() is a GPU sync in aga-core

    def _setup_observability(self):
        """Verbatim shape of aga-core's AGAPlugin._setup_observability."""
        if not self.config.observability_enabled:
            return
        try:
            from aga_observability import setup_observability
            setup_observability(self.event_bus, self.config)
        except ImportError:
            logger.debug("aga-observability not installed, skipping")

    @property
    def is_attached(self) -> bool:
        return bool(self._hooks)

    def _audit(self, operation: str, details: Dict[str, Any]) -> None:
        self.event_bus.emit("audit", {"operation": operation, "details": details, "success": True,
                                      "error": None, "timestamp": time.time()})

    def register(self, id: str, reliability: float = 1.0, pinned: bool = False,
                 metadata: Optional[dict] = None) -> bool:
        self._store[id] = {"pinned": pinned}
        meta = {"source": "api"}
        meta.update(metadata or {})
        self._audit("register", {"id": id, "reliability": reliability, "pinned": pinned,
                                 "metadata": meta, "store_count": len(self._store)})
        return True

    def unregister(self, id: str) -> bool:
        if self._store.pop(id, None) is None:
            return False
        self._audit("unregister", {"id": id, "store_count": len(self._store)})
        return True

    def clear(self, namespace: Optional[str] = None) -> None:
        self._store.clear()
        self._audit("clear", {"namespace": namespace, "store_count": len(self._store)})

    def attach(self, model_type: str = "llama", layers=(-1, -2, -3)) -> None:
        self._hooks = [object() for _ in layers]
        self._attached_model_name = model_type
        self._audit("attach", {"model_type": model_type, "layers": list(layers),
                               "hooks": len(self._hooks), "knowledge_count": len(self._store)})

    def get_store_stats(self) -> Dict[str, Any]:
        self.stats_calls += 1
        pinned = sum(1 for v in self._store.values() if v["pinned"])
        return {"count": len(self._store), "max_slots": self.config.max_slots,
                "utilization": len(self._store) / self.config.max_slots,
                "pinned_count": pinned, "unpinned_count": len(self._store) - pinned}

    def get_diagnostics(self):
        self.stats_calls += 1
        return {}

    @property
    def knowledge_count(self) -> int:
        self.stats_calls += 1
        return len(self._store)


def forward_data(i: int = 0) -> Dict[str, Any]:
    """An aga-core shaped forward event payload."""
    return {"aga_applied": i % 2 == 0, "gate_mean": 0.25 + (i % 7) / 100.0,
            "entropy_mean": 1.5, "layer_idx": i % 3, "latency_us": 80.0 + i % 11}
