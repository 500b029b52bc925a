"""Stand-ins for the aga-core pieces the client touches, mirroring their
documented semantics (docs/seed-compatibility.md §2).

EventBus: emit() is unlocked, appends to a deque ring, counts, then calls
the handlers of the event type and then the "*" handlers on the caller's
thread, swallowing handler exceptions; unsubscribe with a subscriber_id
removes that id from every type. AGAPlugin: its __init__ creates the bus
and calls _setup_observability() exactly as aga-core does, BEFORE the rest
of the plugin exists; register/unregister/clear emit aga-core audit events.

Module / RemovableHandle: the parts of torch.nn.Module's hook machinery the
forward marker uses (``register_forward_hook``, ``register_forward_pre_hook``,
the ``_forward_hooks`` / ``_forward_pre_hooks`` OrderedDicts, handles with a
process-wide ``id``, ``hooks_dict_ref`` and ``remove()``; a call runs the
pre-hooks, the forward function, then the forward hooks, and lets a hook's
exception propagate as torch does). ``AGAPlugin.attach(..., modules=[...])``
hooks them as aga-core hooks ``layer.self_attn``: one forward hook per module,
a closure over ``layer_idx`` that emits a ``forward`` event, its handle kept
in ``plugin._hooks``."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from collections import OrderedDict, defaultdict, deque
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


class RemovableHandle:
    """torch.utils.hooks.RemovableHandle: a weak reference to the hook dict
    and a process-wide id (never reused)."""

    _ids = itertools.count()

    def __init__(self, hooks_dict: "OrderedDict"):
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        d = self.hooks_dict_ref()
        if d is not None and self.id in d:
            del d[self.id]


class Module:
    """The hook machinery of torch.nn.Module. ``forward`` defaults to the
    identity; ``calls`` counts forwards."""

    def __init__(self, forward: Optional[Callable] = None, name: str = ""):
        self._forward_hooks: "OrderedDict[int, Callable]" = OrderedDict()
        self._forward_pre_hooks: "OrderedDict[int, Callable]" = OrderedDict()
        self._fn = forward if forward is not None else (lambda x: x)
        self.name = name
        self.calls = 0

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        h = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[h.id] = hook
        return h

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        h = RemovableHandle(self._forward_hooks)
        self._forward_hooks[h.id] = hook
        return h

    def forward(self, *args):
        self.calls += 1
        return self._fn(*args)

    def __call__(self, *args):
        # As torch >= 2.0: the hook dicts are copied before the hooks run.
        for hook in (*self._forward_pre_hooks.values(),):
            r = hook(self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
        out = self.forward(*args)
        for hook in (*self._forward_hooks.values(),):
            r = hook(self, args, out)
            if r is not None:
                out = r
        return out


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

    def attach(self, model_type: str = "llama", layers=(-1, -2, -3), modules=None,
               num_layers: int = 32) -> None:
        """Without ``modules``: placeholder handles, as before. With them (one
        per entry of ``layers``): a forward hook on each, as aga-core hooks
        ``layer.self_attn``; negative layers count from ``num_layers``."""
        if modules is None:
            self._hooks = [object() for _ in layers]
        else:
            modules = list(modules)
            if len(modules) != len(layers):
                raise ValueError("one module per layer")
            self._hooks = []
            for layer, module in zip(layers, modules):
                layer_idx = layer if layer >= 0 else num_layers + layer
                self._hooks.append(module.register_forward_hook(self._create_layer_forward(layer_idx)))
        self._attached_model_name = model_type
        self._audit("attach", {"model_type": model_type, "layers": list(layers),
                               "hooks": len(self._hooks), "knowledge_count": len(self._store)})

    def detach(self) -> None:
        for h in self._hooks:
            remove = getattr(h, "remove", None)
            if callable(remove):
                remove()
        self._hooks = []
        self._attached_model_name = None
        self._audit("detach", {})

    def _create_layer_forward(self, layer_idx: int):
        """aga-core's shape: a closure over layer_idx that times itself and
        emits one forward event per call; it returns the output."""
        bus = self.event_bus

        def aga_forward(module, inputs, output):
            t0 = time.perf_counter()
            bus.emit("forward", {"aga_applied": True, "gate_mean": 0.3, "entropy_mean": 1.0,
                                 "layer_idx": layer_idx,
                                 "latency_us": (time.perf_counter() - t0) * 1e6})
            return output

        return aga_forward

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
