"""ObservabilityStack: the reference package's orchestrator, now a thin
handle on the bus's ring producer. Exporters, alerting, audit storage and
health run in agaobs-agent, out of the inference process."""

from __future__ import annotations

import threading
from typing import Any, List, Optional

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
        self.config = config if config is not None else ObservabilityConfig()
        self._aga_config = None  # the AGAConfig given to setup_observability
        self._plugin = None
        self._producer: Optional[_producer.Producer] = None
        self._last: Optional[_producer.Producer] = None  # kept for stats after shutdown
        self._running = False
        self._lock = threading.Lock()

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
        p = self._producer
        if p is not None:
            try:
                p.bind(plugin)
            except Exception:
                p.count_error()

    def shutdown(self) -> None:
        """Marks the rings closed (after a last STATUS) and unsubscribes."""
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
        d = {"running": self._running, "version": __version__}
        p = self._last
        if p is not None:
            d.update(p.stats())
        return d


def running_stacks() -> List[ObservabilityStack]:
    with _stacks_lock:
        return list(_stacks)


def _after_fork_child() -> None:
    global _stacks_lock
    _stacks_lock = threading.Lock()


import os as _os  # noqa: E402

if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_child)
