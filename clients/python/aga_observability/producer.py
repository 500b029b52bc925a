"""One Producer per observed EventBus: its hot and audit rings, the "*"
handler that encodes every event into them, and the plugin state the STATUS
snapshots need. Process-wide state (instance counter, registry, at-fork and
atexit hooks, doorbells) lives at the bottom of this module."""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from typing import Any, Dict, Optional

from . import encode, ring
from . import identity as _identity
from .config import RingSettings
from .marker import ForwardMarker
from .status import HOUSEKEEPER, GateCheck, snapshot

logger = logging.getLogger("aga_observability")

_RUNNING = "running"
_FORKED = "forked"      # inherited from the parent: re-create rings on first emit
_CLOSED = "closed"
_DISABLED = "disabled"  # rings could not be created


class Producer:
    def __init__(self, bus: Any, settings: RingSettings, aga_config: Any = None):
        self.bus = bus
        self.settings = settings
        self.aga_config = aga_config
        self.plugin = None
        self.status_interval = settings.status_interval
        self.gate_check = GateCheck(settings.gate_check_seconds)
        self.marker = ForwardMarker(settings.forward_marker, settings.marker_lib)
        self.instance = -1
        self.name = ""
        self.role = ""
        self.hot: Optional[ring.RingWriter] = None
        self.audit: Optional[ring.RingWriter] = None
        self.state = _CLOSED
        self.errors = 0
        self.refs = 0
        self.subscriber_id = ""
        self._pid = 0
        # The "*" handler, subscribed once for the producer's life; its fast
        # path is bound to the current hot ring (unbound: general path only).
        # The C extension's handler and ring writers when it is loaded
        # (ring.use_native(); AGAOBS_NATIVE=0 turns it off), else pure Python.
        self._native = ring.use_native()
        self.on_event, self._bind_fast = ring.make_forward_handler(self._general_safe,
                                                                   native=self._native)
        self._slow_lock = threading.Lock()  # rare paths: creation, revival, audit tracking
        self._kv_count = 0
        self._pinned: Dict[str, Any] = {}
        self._last_identity = None
        self._next_status = 0.0
        self._now_ns = time.time_ns

    # -- lifecycle ---------------------------------------------------------------

    def open(self) -> None:
        """Creates the ring pair and subscribes to "*". Raises OSError (or
        ValueError) when the ring directory cannot be used."""
        s = self.settings
        ring.ensure_ring_dir(s.ring_dir)
        if self.instance < 0:
            self.instance = next_instance()
            self.role = s.role or _identity.process_name()
            rank, _ = _identity.rank_world()
            self.name = _identity.producer_name(s.producer, self.role, rank, self.instance)
        self._create_rings()
        self.subscriber_id = f"aga-observability-ring-{self.instance}"
        try:
            self.bus.subscribe("*", self.on_event, subscriber_id=self.subscriber_id)
        except BaseException:
            self.close(final_status=False)
            raise

    def _create_rings(self) -> None:
        s = self.settings
        proc = ring.process_info()
        bell = doorbell_for(s.ring_dir)
        ident = self.identity()
        writers = []
        try:
            for cls, size in ((ring.CLASS_HOT, s.hot_bytes), (ring.CLASS_AUDIT, s.audit_bytes)):
                limit = min(ring.MAX_IDENTITY_LEN, ring.default_max_record_len(size) - ring.REC_HDR)
                writers.append(ring.create_ring(
                    s.ring_dir, ring_class=cls, capacity=size,
                    identity=_identity.identity_json(ident, limit), instance=self.instance,
                    proc=proc, audit_wait_ns=s.audit_wait_us * 1000, doorbell=bell,
                    native=self._native))
        except BaseException:
            for w in writers:  # never leave half a pair behind
                w.mark_closed(time.time_ns())
                try:
                    os.unlink(w.path)
                except OSError:
                    pass
            raise
        self.hot, self.audit = writers
        self._last_identity = ident
        self._pid = proc[0]
        self.state = _RUNNING
        self._bind_fast(self.hot)
        self._next_status = time.monotonic() + self.status_interval
        HOUSEKEEPER.add(self)

    def close(self, final_status: bool = True) -> None:
        """Unsubscribes, writes a last STATUS and marks both rings closed."""
        with self._slow_lock:
            if self.state in (_CLOSED, _DISABLED):
                return
            was_running = self.state == _RUNNING and self._pid == os.getpid()
            self.state = _CLOSED
        HOUSEKEEPER.remove(self)
        try:
            self.bus.unsubscribe("*", self.on_event, subscriber_id=self.subscriber_id)
        except Exception:
            try:
                self.bus.unsubscribe("*", self.on_event)
            except Exception:
                pass
        if was_running:
            if final_status:
                try:
                    self.write_status(time.monotonic())
                except Exception:
                    self.count_error()
            now = time.time_ns()
            self.hot.mark_closed(now)
            self.audit.mark_closed(now)
        self._bind_fast(None)
        try:
            self.marker.close()  # after the last STATUS, which still reports the marked modules
        except Exception:
            self.count_error()

    def close_at_exit(self) -> None:
        if self.state == _RUNNING and self._pid == os.getpid():
            now = time.time_ns()
            self.hot.mark_closed(now)
            self.audit.mark_closed(now)

    def after_fork_child(self) -> None:
        """The child must never write the parent's rings: drop them without
        touching them; the first emit in the child creates its own."""
        self._slow_lock = threading.Lock()
        self.marker.after_fork_child()
        for w in (self.hot, self.audit):
            if w is not None:
                w.disown()
        self._bind_fast(None)
        if self.state == _RUNNING:
            self.state = _FORKED

    def _revive(self) -> bool:
        """In a forked child, on the first emit: create this process's rings."""
        with self._slow_lock:
            if self.state == _RUNNING:
                return True  # another thread revived it
            if self.state != _FORKED:
                return False
            try:
                self._create_rings()
                return True
            except Exception as e:
                self.state = _DISABLED
                warn_once(self.settings.ring_dir, "aga_observability: cannot create rings in %s "
                          "after fork (%s); observability disabled in pid %d",
                          self.settings.ring_dir, e, os.getpid())
                return False

    # -- the EventBus handler ------------------------------------------------------

    def _general_safe(self, ev) -> None:
        """Every event the forward fast path does not take. Never raises: the
        handler runs on the emitting thread of the inference code."""
        try:
            self._general(ev)
        except Exception:
            self.errors += 1

    def _general(self, ev) -> None:
        if self.state != _RUNNING and not self._revive():
            return
        t = encode.time_ns_of(ev, self._now_ns)
        etype = getattr(ev, "type", None)
        data = getattr(ev, "data", None)
        if etype == "forward":
            f = encode.forward_fields(data)
            if f is not None:
                self.hot.write_forward(t, *f)
                return
        elif etype == "retrieval":
            r = encode.retrieval_fields(data)
            if r is not None:
                if self.hot.write_retrieval(t, *r) != ring.TOO_LARGE:
                    return
        elif etype == "audit":
            self._audit(t, data, ev)
            return
        self._event(t, etype, data)

    def _event(self, t: int, etype: Any, data: Any) -> None:
        name, payload, flags = encode.event_body(encode.event_name(etype), data,
                                                 self.hot.max_record_len - ring.REC_HDR)
        if self.hot.write_event(t, name, payload, flags) == ring.TOO_LARGE:
            self.errors += 1

    def _audit(self, t: int, data: Any, ev) -> None:
        ets = getattr(ev, "timestamp", None)
        obj = encode.audit_object(data, ets if encode.is_number(ets) else t / 1e9)
        try:
            self._track(obj["operation"], obj["details"])
            if obj["operation"] in ("attach", "detach"):
                self.refresh_identity()  # the model changed: a new HELLO now
        except Exception:
            self.errors += 1
        body, flags = encode.audit_body(obj, self.audit.max_record_len - ring.REC_HDR)
        if self.audit.write_audit(t, body, flags) == ring.TOO_LARGE:
            self.errors += 1

    def _track(self, op: str, details: dict) -> None:
        """Knowledge count and pinned set for STATUS, from audit details.

        The count is the latest store_count (register, register_batch,
        unregister, clear) or knowledge_count (attach, streaming start).
        Pinned entries are approximated: register(pinned=True) adds the id,
        a register without pinned, unregister and clear remove it; clear(namespace)
        removes only ids registered with that namespace in their metadata.
        LRU evictions never touch pinned entries, so they need no event."""
        count = details.get("store_count")
        if count is None and op in ("attach", "streaming_session_start"):
            count = details.get("knowledge_count")
        with self._slow_lock:
            if isinstance(count, int) and not isinstance(count, bool):
                self._kv_count = count
            kid = details.get("id")
            if op == "register" and isinstance(kid, str):
                if details.get("pinned") is True:
                    meta = details.get("metadata")
                    self._pinned[kid] = meta.get("namespace") if isinstance(meta, dict) else None
                else:
                    self._pinned.pop(kid, None)
            elif op == "unregister" and isinstance(kid, str):
                self._pinned.pop(kid, None)
            elif op == "clear":
                ns = details.get("namespace")
                if ns is None:
                    self._pinned.clear()
                else:
                    for k in [k for k, v in self._pinned.items() if v == ns]:
                        del self._pinned[k]

    # -- plugin state, STATUS and HELLO ----------------------------------------------

    def bind(self, plugin: Any) -> None:
        self.plugin = plugin
        self.marker.bind(plugin)  # never raises; a no-op unless forward_marker is on
        if self.state == _RUNNING:
            self.refresh_identity()

    def kv_counts(self):
        with self._slow_lock:
            return self._kv_count, len(self._pinned)

    def aga_config_now(self) -> Any:
        """The plugin's config once bound (read lazily: a plugin bound during
        its __init__ gains attributes later), else the config given at setup."""
        cfg = getattr(self.plugin, "config", None) if self.plugin is not None else None
        return cfg if cfg is not None else self.aga_config

    def identity(self) -> dict:
        model = getattr(self.plugin, "_attached_model_name", None) if self.plugin is not None else None
        return _identity.identity(self.name, self.role, self.instance, self.aga_config_now(),
                                  str(model) if model is not None else None)

    def refresh_identity(self) -> None:
        """Sends a new HELLO on both rings when a descriptive field changed
        (model after attach, build fields after bind, rank after init)."""
        ident = self.identity()
        if ident == self._last_identity:
            return
        self._last_identity = ident
        now = time.time_ns()
        for w in (self.hot, self.audit):
            body = _identity.identity_json(ident, min(ring.MAX_IDENTITY_LEN,
                                                      w.max_record_len - ring.REC_HDR))
            w.write_record(ring.T_HELLO, 0, now, body)

    def write_status(self, now: float) -> None:
        snap = snapshot(self, now)
        body, flags = encode.json_record_body(snap, self.hot.max_record_len - ring.REC_HDR)
        self.hot.write_record(ring.T_STATUS, flags, time.time_ns(), body)

    def housekeep(self, now: float) -> None:
        if self.state != _RUNNING or self._pid != os.getpid():
            return
        self.hot.heartbeat()
        self.audit.heartbeat()
        try:
            self.marker.refresh()  # hooks attached after binding (cheap when unchanged)
        except Exception:
            self.count_error()
        if now >= self._next_status:
            self._next_status = now + self.status_interval
            try:
                self.refresh_identity()
            except Exception:
                self.count_error()
            self.write_status(now)

    def count_error(self) -> None:
        self.errors += 1

    def stats(self) -> dict:
        d = {"producer": self.name, "instance": self.instance, "state": self.state,
             "ring_dir": self.settings.ring_dir, "bound": self.plugin is not None,
             "errors": self.errors,
             # the FORWARD fast path runs in the C extension (else pure Python)
             "native": self._native and isinstance(self.hot, ring.NativeRingWriter)}
        if self.hot is not None:
            d["hot"] = self.hot.stats()
            d["audit"] = self.audit.stats()
        fm = self.marker.stats()
        if fm is not None:
            d["forward_marker"] = fm
        return d


# -- process-wide state ----------------------------------------------------------------

_instances = itertools.count()
_registry_lock = threading.Lock()
_producers: Dict[int, Producer] = {}   # id(bus) -> Producer (holds the bus)
_doorbells: Dict[str, ring.Doorbell] = {}
_doorbells_lock = threading.Lock()
_warned = set()


def next_instance() -> int:
    return next(_instances)


def doorbell_for(ring_dir: str) -> ring.Doorbell:
    with _doorbells_lock:
        bell = _doorbells.get(ring_dir)
        if bell is None:
            bell = _doorbells[ring_dir] = ring.Doorbell(os.path.join(ring_dir, ring.DOORBELL_NAME))
        return bell


def warn_once(key: str, msg: str, *args) -> None:
    """One warning per ring directory and process; repeats go to debug."""
    if key in _warned:
        logger.debug(msg, *args)
    else:
        _warned.add(key)
        logger.warning(msg, *args)


def acquire(bus: Any, settings: RingSettings, aga_config: Any = None) -> Producer:
    """The bus's producer, created (rings and subscription) on first use;
    each caller holds a reference until release()."""
    with _registry_lock:
        p = _producers.get(id(bus))
        if p is None or p.bus is not bus or p.state in (_CLOSED, _DISABLED):
            p = Producer(bus, settings, aga_config)
            p.open()  # raises: nothing is registered
            _producers[id(bus)] = p
        elif p.aga_config is None:
            p.aga_config = aga_config
        p.refs += 1
        return p


def release(p: Producer) -> None:
    with _registry_lock:
        p.refs -= 1
        if p.refs > 0:
            return
        if _producers.get(id(p.bus)) is p:
            del _producers[id(p.bus)]
    p.close()


def all_producers():
    with _registry_lock:
        return list(_producers.values())


def _at_exit() -> None:
    for p in all_producers():
        try:
            p.close_at_exit()
        except Exception:
            pass


def _after_fork_child() -> None:
    global _registry_lock, _doorbells_lock
    _registry_lock = threading.Lock()
    _doorbells_lock = threading.Lock()
    HOUSEKEEPER.after_fork_child()
    for bell in _doorbells.values():
        bell.after_fork_child()
    for p in _producers.values():
        p.after_fork_child()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
