"""STATUS snapshots (format §4.4) and the process's housekeeping thread.

A snapshot must never stall inference, so it reads only what is cheap and
host-side: the knowledge count comes from the latest ``store_count`` seen in
audit events (tracked by the producer), never from ``get_store_stats()``,
``get_diagnostics()`` or ``knowledge_count``, which call ``.item()`` on a GPU
tensor. Every field is computed on its own; a field that fails is left out.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Optional

from . import identity as _identity


def _num(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v


class GateCheck:
    """gate_system finiteness: one fused reduction (isfinite().all() over the
    concatenated parameters of each device), which syncs with the device.

    CPU parameters are always checked. Parameters on CUDA (or any other
    accelerator) are checked only when ``every`` > 0 and at most that often:
    a synchronising call from this thread while the inference thread captures
    a CUDA graph can break the capture. Between checks the last result is
    reported; with ``every`` = 0 the result is None ("finite": null)."""

    def __init__(self, every: float):
        self.every = every
        self._last_time = None
        self._last_value = None

    def __call__(self, params, now: float) -> Optional[bool]:
        torch = sys.modules.get("torch")
        if torch is None or not params:
            return None
        on_device = any(getattr(getattr(p, "device", None), "type", "cpu") != "cpu" for p in params)
        if on_device:
            if self.every <= 0:
                return None
            if self._last_time is not None and now - self._last_time < self.every:
                return self._last_value
        groups = {}
        for p in params:
            groups.setdefault(str(getattr(p, "device", "cpu")), []).append(p)
        with torch.no_grad():
            finite = True
            for ps in groups.values():
                try:
                    flat = torch.cat([p.detach().reshape(-1) for p in ps])
                    ok = bool(torch.isfinite(flat).all())
                except Exception:  # e.g. mixed dtypes on an old torch
                    ok = all(bool(torch.isfinite(p.detach()).all()) for p in ps)
                finite = finite and ok
        if on_device:
            self._last_time, self._last_value = now, finite
        return finite


def _error_text(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text[:200]


def snapshot(producer, now: float) -> dict:
    """The STATUS JSON object for one producer (one event bus)."""
    plugin = producer.plugin
    config = producer.aga_config_now()
    out: dict = {"bound": plugin is not None}

    def field(name, fn, report=False):
        try:
            v = fn()
            if v is not None:
                out[name] = v
        except Exception as e:  # noqa: BLE001 - a snapshot never raises
            producer.count_error()
            if report:
                # The agent's health turns this into the component's error,
                # as the reference's HealthChecker did.
                out[name] = {"error": _error_text(e)}

    def kv_store():
        count, pinned = producer.kv_counts()
        d = {"count": count}
        max_slots = _num(getattr(config, "max_slots", None))
        if max_slots:
            d["max_slots"] = max_slots
            d["utilization"] = count / max_slots
        d["pinned"] = pinned
        return d

    def slot_change_rate():
        if plugin is None:
            return None
        # aga-core's definition: counter / max(window, 1) (slot changes per
        # retrieval); plain ints, read without touching the store.
        counter = _num(getattr(plugin, "_slot_change_counter", None))
        if counter is None:
            return None
        window = _num(getattr(plugin, "_slot_change_window", None)) or 0
        return counter / max(window, 1)

    def attachment():
        if plugin is None:
            return None
        attached = getattr(plugin, "is_attached", None)
        if callable(attached):
            attached = attached()
        hooks = getattr(plugin, "_hooks", None)
        d = {"attached": bool(attached) if attached is not None else bool(hooks)}
        model = getattr(plugin, "_attached_model_name", None)
        if model is not None:
            d["model_type"] = str(model)
        if hooks is not None:
            d["hooks"] = len(hooks)
        return d

    def gate_system():
        gs = getattr(plugin, "gate_system", None) if plugin is not None else None
        if gs is None:
            return None
        params = list(gs.parameters())
        return {"finite": producer.gate_check(params, now), "param_count": len(params)}

    def retriever():
        r = getattr(plugin, "retriever", None) if plugin is not None else None
        if r is None:
            return None
        d = {"type": type(r).__name__}
        get_stats = getattr(r, "get_stats", None)
        if callable(get_stats):
            try:
                st = get_stats()
                if isinstance(st, dict):
                    d["stats"] = st
            except Exception as e:  # noqa: BLE001
                producer.count_error()
                d["error"] = _error_text(e)
        return d

    def event_bus():
        bus = producer.bus
        d = {}
        st = bus.get_stats() if callable(getattr(bus, "get_stats", None)) else None
        if isinstance(st, dict):
            for k in ("total_emitted", "total_consumed", "buffer_size", "buffer_capacity"):
                if k in st:
                    d[k] = st[k]
        enabled = getattr(bus, "enabled", None)
        if enabled is not None:
            d["enabled"] = bool(enabled)
        return d or None

    def build():
        d = {}
        v = _identity.aga_version()
        if v is not None:
            d["version"] = v
        d.update(_identity.build_fields(config))
        return d or None

    def forward_marker():
        m = getattr(producer, "marker", None)
        st = m.stats() if m is not None else None
        if st is None:
            return None  # off: not reported
        return {k: st[k] for k in ("enabled", "loaded", "library", "modules")}

    field("kv_store", kv_store, report=True)
    field("slot_change_rate", slot_change_rate)
    field("attachment", attachment, report=True)
    field("gate_system", gate_system, report=True)
    field("retriever", retriever, report=True)
    field("event_bus", event_bus)
    field("build", build)
    field("forward_marker", forward_marker)
    return out


class Housekeeper:
    """ONE daemon thread per process for all producers: heartbeats at least
    every second (ticks of at most 0.5 s), STATUS snapshots every
    status_interval, and a new HELLO when descriptive identity fields change.
    The thread exits when no producer is left and is restarted on demand
    (also in a forked child, where it does not exist)."""

    TICK = 0.5

    def __init__(self):
        self._lock = threading.Lock()
        self._producers = []
        self._thread = None
        self._wake = threading.Event()

    def add(self, producer) -> None:
        with self._lock:
            if producer not in self._producers:
                self._producers.append(producer)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="agaobs-status", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, producer) -> None:
        with self._lock:
            if producer in self._producers:
                self._producers.remove(producer)

    def _run(self) -> None:
        while True:
            with self._lock:
                producers = list(self._producers)
                if not producers:
                    self._thread = None
                    return
            tick = self.TICK
            now = time.monotonic()
            for p in producers:
                try:
                    p.housekeep(now)
                except Exception:
                    p.count_error()
                tick = min(tick, p.status_interval)
            self._wake.wait(max(tick, 0.01))
            self._wake.clear()

    def after_fork_child(self) -> None:
        self._lock = threading.Lock()
        self._producers = []
        self._thread = None
        self._wake = threading.Event()


HOUSEKEEPER = Housekeeper()
