"""Forward marker: an out-of-band check of aga-core's in-band ``latency_us``.

With ``forward_marker`` on (``AGAOBS_FORWARD_MARKER=1``; off by default,
because each marker costs a uprobe trap when the agent probes it), every
module that aga-core hooked gets two more hooks:

* a forward pre-hook calling ``agaobs_forward_begin(layer)``, and
* a forward hook, registered after aga-core's so that it runs after it,
  calling ``agaobs_forward_end(layer)``.

Both functions are exported no-ops of a tiny native library (C source:
``clients/c/marker/agaobs_marker.c``); agaobs-agent puts a uprobe on each
and turns begin/end pairs of a thread into
``agaobs_bpf_forward_latency_seconds{producer}``.

The library is, in this order: ``marker_lib`` / ``AGAOBS_MARKER_LIB`` (an
explicit path, which overrides the rest), the ``_agaobs_marker.so`` that the
build backend put into this package (only in the platform wheel built with
``AGAOBS_BUILD_NATIVE=1``; the default ``py3-none-any`` wheel has none), then ``libagaobs_marker.so`` on the
dynamic loader's path. None of them: ONE warning per process, and no
markers. It is loaded with ``ctypes.PyDLL``: the call keeps the GIL (the
function does nothing, so releasing and re-taking the GIL would cost more
than the call and could hand the GIL to another thread in the middle of a
forward). The function objects are cached with ``restype = None`` and no
``argtypes``: a Python int is passed as a C int directly, which is ~50 ns
cheaper per call than the ``argtypes`` conversion (layers are checked to fit
an int when the hooks are made).

Finding the hooked modules. aga-core keeps only the torch
``RemovableHandle``\\ s of its hooks (``plugin._hooks``). A handle's
``hooks_dict_ref()`` is the hooked module's ``_forward_hooks`` dict, and the
dict does not know its module. Its owner is looked up, cheapest first:

1. the hook function: a closure cell, bound ``__self__`` or partial argument
   that is a module whose ``_forward_hooks`` is that dict;
2. a model the plugin keeps (``model``, ``_model``, ``_attached_model``):
   its ``modules()``;
3. ``gc.get_referrers`` on all the dicts at once: the objects (or instance
   ``__dict__``\\ s, then their objects) that hold them. This scans the
   heap once (~15 ms per million gc-tracked objects on the development VM,
   holding the GIL) from the caller's or the housekeeping thread, only when
   the plugin's hooks change (attach).

A handle whose module is not found is skipped (debug log). The layer of a
module is the ``layer_idx`` (or ``layer_index``/``layer_id``) that
aga-core's hook closure captured, which is the ``layer_idx`` of its forward
events; else the plugin's layer list (``_hooked_layers``, ``hooked_layers``,
``_attached_layers``, ``_layer_indices``) when it has one int per handle;
else the handle's position in ``_hooks``.

Life cycle. Binding the plugin marks the modules hooked at that time. The
housekeeping thread compares a signature of ``plugin._hooks`` (the handles'
ids) every tick; when it changes (aga-core attached later, re-attached or
detached) the marker hooks are removed and made again for the new hooks.
Each module is marked once per process. Shutdown (and binding another
plugin) removes them. Registering or removing hooks from the housekeeping
thread is safe against a concurrent forward on torch >= 2.0, whose module
call copies its hook dicts into a tuple before running them.

Fail-open: nothing here raises into the caller; a hook body catches every
exception of its one call (counted in ``errors``)."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

logger = logging.getLogger("aga_observability")

ABI_VERSION = 1
# Where the library is looked for after the explicit path (tests patch these).
PACKAGED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_agaobs_marker.so")
SONAME = "libagaobs_marker.so"

_LAYER_NAMES = ("layer_idx", "layer_index", "layer_id")
_LAYER_LISTS = ("_hooked_layers", "hooked_layers", "_attached_layers", "_layer_indices")
_MODEL_ATTRS = ("model", "_model", "_attached_model")
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


class MarkerLib:
    """A loaded marker library: ``begin(layer)`` and ``end(layer)`` are the
    cached ctypes function objects the hooks call."""

    def __init__(self, path: str, cdll: Any):
        self.path = path
        self.cdll = cdll
        self.begin = cdll.agaobs_forward_begin
        self.end = cdll.agaobs_forward_end
        for f in (self.begin, self.end):
            f.restype = None


_load_lock = threading.Lock()
_loaded: Dict[Optional[str], Optional[MarkerLib]] = {}  # explicit path -> library (None: not found)
_warned = set()


def _warn_once(key: str, msg: str, *args) -> None:
    if key in _warned:
        logger.debug(msg, *args)
    else:
        _warned.add(key)
        logger.warning(msg, *args)


def _open(path: str) -> MarkerLib:
    cdll = ctypes.PyDLL(path)
    version = cdll.agaobs_marker_abi_version
    version.restype = ctypes.c_int
    v = version()
    if v != ABI_VERSION:
        raise OSError(f"agaobs_marker_abi_version() = {v}, want {ABI_VERSION}")
    return MarkerLib(path, cdll)


def load(explicit: Optional[str] = None) -> Optional[MarkerLib]:
    """The marker library (cached per process): ``explicit`` first, then
    the packaged one, then ``libagaobs_marker.so`` on the loader path; None
    after ONE warning per process when none loads. Never raises."""
    with _load_lock:
        if explicit in _loaded:
            return _loaded[explicit]
        tried: List[str] = []
        lib = None
        candidates = []
        if explicit:
            candidates.append(explicit)
        if os.path.exists(PACKAGED):
            candidates.append(PACKAGED)
        candidates.append(SONAME)
        for path in candidates:
            try:
                lib = _open(path)
                break
            except Exception as e:  # noqa: BLE001 - OSError, AttributeError (missing symbol), ...
                tried.append(f"{path}: {e}")
                if path == explicit:
                    _warn_once("explicit:" + explicit, "aga_observability: marker library %s "
                               "(AGAOBS_MARKER_LIB) cannot be loaded (%s); trying the others",
                               explicit, e)
        _loaded[explicit] = lib
        if lib is None:
            _warn_once("missing", "aga_observability: forward_marker is enabled but no marker "
                       "library could be loaded (%s); forward markers are off. Install the "
                       "platform wheel (AGAOBS_BUILD_NATIVE=1 pip install --no-index "
                       "clients/python, with a C compiler), or set AGAOBS_MARKER_LIB to a "
                       "libagaobs_marker.so (make -C clients/c marker)", "; ".join(tried))
        else:
            logger.debug("aga_observability: forward marker library %s", lib.path)
        return lib


def _reset_for_tests() -> None:
    """Forgets loaded libraries and warnings (tests only)."""
    with _load_lock:
        _loaded.clear()
        _warned.clear()


# -- the hooks -------------------------------------------------------------------------

def make_hooks(lib: MarkerLib, layer: int, errors: List[int]):
    """(pre-hook, post-hook) for one module: each one ctypes call, and any
    exception swallowed (counted in errors[0])."""
    def agaobs_forward_begin_hook(module, args, _begin=lib.begin, _layer=layer):
        try:
            _begin(_layer)
        except Exception:  # noqa: BLE001 - never break inference
            errors[0] += 1

    def agaobs_forward_end_hook(module, args, output, _end=lib.end, _layer=layer):
        try:
            _end(_layer)
        except Exception:  # noqa: BLE001
            errors[0] += 1

    return agaobs_forward_begin_hook, agaobs_forward_end_hook


# -- finding the hooked modules ----------------------------------------------------------

def _hooks_of(plugin: Any) -> list:
    hooks = getattr(plugin, "_hooks", None)
    if hooks is None:
        return []
    if isinstance(hooks, dict):
        hooks = hooks.values()
    try:
        return list(hooks)
    except TypeError:
        return []


def signature(plugin: Any) -> tuple:
    """Identifies the plugin's current hooks cheaply: a torch handle's ``id``
    comes from a process-wide counter and is never reused."""
    return tuple((id(h), getattr(h, "id", None)) for h in _hooks_of(plugin))


def _hook_dict(handle: Any):
    ref = getattr(handle, "hooks_dict_ref", None)
    if not callable(ref):
        return None
    d = ref()
    return d if isinstance(d, dict) else None


def _hook_fn(handle: Any, d: dict):
    try:
        return d.get(getattr(handle, "id", None))
    except TypeError:
        return None


def _owns(obj: Any, d: dict) -> bool:
    if isinstance(obj, (dict, list, tuple, set, frozenset, type)):
        return False
    try:
        return obj.__dict__.get("_forward_hooks") is d
    except Exception:  # noqa: BLE001 - no __dict__, odd objects
        return False


def _from_hook_fn(fn: Any, d: dict):
    """The module among the hook function's closure cells, bound object or
    partial arguments."""
    seen = []
    for _ in range(3):  # unwrap a few layers (partial, bound method, wrapper)
        if fn is None:
            break
        cands = []
        cells = getattr(fn, "__closure__", None) or ()
        for c in cells:
            try:
                cands.append(c.cell_contents)
            except ValueError:  # empty cell
                pass
        cands.append(getattr(fn, "__self__", None))
        cands.extend(getattr(fn, "args", None) or ())
        for obj in cands:
            if obj is not None and _owns(obj, d):
                return obj
        seen.append(fn)
        fn = getattr(fn, "func", None) or getattr(fn, "__wrapped__", None)
        if fn in seen:
            break
    return None


def _from_model(plugin: Any, pending: Dict[int, dict]) -> Dict[int, Any]:
    found = {}
    for name in _MODEL_ATTRS:
        model = getattr(plugin, name, None)
        modules = getattr(model, "modules", None)
        if not callable(modules):
            continue
        try:
            for m in modules():
                d = getattr(m, "_forward_hooks", None)
                if d is not None and id(d) in pending and pending[id(d)] is d:
                    found[id(d)] = m
        except Exception:  # noqa: BLE001
            continue
        if len(found) == len(pending):
            break
    return found


def _from_gc(pending: Dict[int, dict]) -> Dict[int, Any]:
    """One heap scan for all dicts: objects holding them directly (inline
    instance values) or through their instance ``__dict__``."""
    found: Dict[int, Any] = {}
    inst_dicts: Dict[int, Tuple[dict, int]] = {}  # id(instance __dict__) -> (it, id(hook dict))
    dicts = list(pending.values())
    for r in gc.get_referrers(*dicts):
        if isinstance(r, dict):
            hd = r.get("_forward_hooks") if "_forward_hooks" in r else None
            if hd is not None and pending.get(id(hd)) is hd:
                inst_dicts[id(r)] = (r, id(hd))
            continue
        for d in dicts:
            if _owns(r, d):
                found.setdefault(id(d), r)
    todo = {k: v for k, v in inst_dicts.items() if v[1] not in found}
    if todo:
        for r in gc.get_referrers(*[v[0] for v in todo.values()]):
            if isinstance(r, (dict, list, tuple)):
                continue
            try:
                rd = r.__dict__
            except Exception:  # noqa: BLE001
                continue
            entry = todo.get(id(rd))
            if entry is not None and entry[0] is rd:
                found.setdefault(entry[1], r)
    del dicts
    return found


def _closure_layer(fn: Any) -> Optional[int]:
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None)
    if code is None or not cells:
        return None
    for name, cell in zip(code.co_freevars, cells):
        if name in _LAYER_NAMES:
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            if isinstance(v, int) and not isinstance(v, bool):
                return v
    return None


def _layer_list(plugin: Any, n: int) -> Optional[list]:
    for name in _LAYER_LISTS:
        v = getattr(plugin, name, None)
        if isinstance(v, (list, tuple)) and len(v) == n and all(
                isinstance(x, int) and not isinstance(x, bool) for x in v):
            return list(v)
    return None


def hooked_modules(plugin: Any) -> List[Tuple[Any, int]]:
    """[(module, layer)] of the plugin's hooks, one entry per module, in
    hook order. Handles without a live hook dict or a findable module are
    left out."""
    handles = _hooks_of(plugin)
    listed = _layer_list(plugin, len(handles))
    entries = []  # (position, handle, dict)
    pending: Dict[int, dict] = {}
    owners: Dict[int, Any] = {}
    for pos, h in enumerate(handles):
        d = _hook_dict(h)
        if d is None:
            continue
        entries.append((pos, h, d))
        if id(d) in owners or id(d) in pending:
            continue
        m = _from_hook_fn(_hook_fn(h, d), d)
        if m is not None:
            owners[id(d)] = m
        else:
            pending[id(d)] = d
    if pending:
        owners.update(_from_model(plugin, pending))
        pending = {k: v for k, v in pending.items() if k not in owners}
    if pending:
        owners.update(_from_gc(pending))
    out, seen = [], set()
    for pos, h, d in entries:
        m = owners.get(id(d))
        if m is None:
            logger.debug("aga_observability: forward marker: no module found for hook %d", pos)
            continue
        if id(d) in seen:
            continue
        seen.add(id(d))
        layer = _closure_layer(_hook_fn(h, d))
        if layer is None:
            layer = listed[pos] if listed is not None else pos
        out.append((m, min(max(layer, _INT_MIN), _INT_MAX)))
    return out


# -- per producer --------------------------------------------------------------------------

_marked_lock = threading.Lock()
_marked: Dict[int, "ForwardMarker"] = {}  # id(module._forward_hooks) -> the marker that marks it


class ForwardMarker:
    """The marker hooks of one producer's bound plugin."""

    def __init__(self, enabled: bool, lib_path: Optional[str] = None):
        self.enabled = bool(enabled)
        self.lib_path = lib_path
        self.lib: Optional[MarkerLib] = None
        self.errors = [0]  # hook-body exceptions (a list: the hooks add to it)
        self._lock = threading.Lock()
        self._plugin = None
        self._signature: Optional[tuple] = None
        self._handles: List[Tuple[int, Any, Any]] = []  # (id(hook dict), pre handle, post handle)
        self._layers: List[int] = []

    def bind(self, plugin: Any) -> None:
        """Marks the plugin's hooked modules (a different plugin's marks are
        removed first). Never raises."""
        if not self.enabled:
            return
        try:
            with self._lock:
                if self.lib is None:
                    self.lib = load(self.lib_path)  # cached; warns once when missing
                if plugin is not self._plugin:
                    self._remove()
                    self._plugin = plugin
                    self._signature = None
            self.refresh()
        except Exception as e:  # noqa: BLE001
            logger.debug("aga_observability: forward marker bind failed: %s", e)

    def refresh(self) -> None:
        """The housekeeping check: re-marks when the plugin's hooks changed.
        Costs one tuple of the handles' ids when nothing changed."""
        plugin = self._plugin
        if plugin is None or self.lib is None:  # off, unbound, or no library
            return
        sig = signature(plugin)
        if sig == self._signature:
            return
        with self._lock:
            if plugin is not self._plugin or sig == self._signature:
                return
            self._remove()
            self._signature = sig
            if sig:
                self._mark(hooked_modules(plugin))

    def _mark(self, modules) -> None:
        for module, layer in modules:
            key = id(module._forward_hooks)
            with _marked_lock:
                if key in _marked:
                    continue  # once per module
                _marked[key] = self
            try:
                pre, post = make_hooks(self.lib, layer, self.errors)
                hp = module.register_forward_pre_hook(pre)
                try:
                    hf = module.register_forward_hook(post)
                except BaseException:
                    hp.remove()
                    raise
            except Exception as e:  # noqa: BLE001
                with _marked_lock:
                    _marked.pop(key, None)
                logger.debug("aga_observability: forward marker: cannot hook %r: %s",
                             type(module).__name__, e)
                continue
            self._handles.append((key, hp, hf))
            self._layers.append(layer)

    def _remove(self) -> None:
        handles, self._handles, self._layers = self._handles, [], []
        for key, hp, hf in handles:
            for h in (hf, hp):
                try:
                    h.remove()
                except Exception:  # noqa: BLE001
                    pass
            with _marked_lock:
                if _marked.get(key) is self:
                    del _marked[key]

    def close(self) -> None:
        """Removes every marker hook and forgets the plugin."""
        with self._lock:
            self._remove()
            self._plugin = None
            self._signature = None

    def after_fork_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def modules(self) -> int:
        return len(self._handles)

    def stats(self) -> Optional[dict]:
        """For get_stats() and STATUS; None when disabled."""
        if not self.enabled:
            return None
        return {"enabled": True, "loaded": self.lib is not None,
                "library": self.lib.path if self.lib is not None else None,
                "modules": len(self._handles), "layers": list(self._layers),
                "errors": self.errors[0]}


def _after_fork_child() -> None:
    global _load_lock, _marked_lock
    _load_lock = threading.Lock()
    _marked_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
