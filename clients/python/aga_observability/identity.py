"""Producer identity (format §2.2): header identity JSON and HELLO body."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional, Tuple

from . import encode
from ._version import __version__
from .ring import MAX_IDENTITY_LEN, SCHEMA_VERSION

CLIENT = "python/" + __version__

# Keys in the order of format §2.2; the ones dropped first when the JSON
# would not fit come last in _DROP_ORDER.
_DROP_ORDER = ("container", "namespace", "pod", "device", "process", "model", "role",
               "aga_version", "client")


def process_name() -> str:
    """basename of sys.argv[0] without ".py", else /proc/self/comm."""
    try:
        arg0 = sys.argv[0] if sys.argv else ""
    except Exception:
        arg0 = ""
    name = os.path.basename(arg0 or "")
    if name.endswith(".py"):
        name = name[:-3]
    if name and not name.startswith("-"):
        return name
    try:
        with open("/proc/self/comm", encoding="utf-8", errors="replace") as f:
            comm = f.read().strip()
        if comm:
            return comm
    except OSError:
        pass
    return "python"


def _int_env(name: str) -> Optional[int]:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def rank_world() -> Tuple[Optional[int], Optional[int]]:
    """RANK/WORLD_SIZE, else torch.distributed when torch is already imported
    and initialised. torch is never imported here (it is slow and heavy)."""
    rank, world = _int_env("RANK"), _int_env("WORLD_SIZE")
    if rank is None:
        torch = sys.modules.get("torch")
        try:
            dist = getattr(torch, "distributed", None) if torch is not None else None
            if dist is not None and dist.is_available() and dist.is_initialized():
                rank, world = int(dist.get_rank()), int(dist.get_world_size())
        except Exception:
            pass
    return rank, world


def aga_version() -> Optional[str]:
    aga = sys.modules.get("aga")
    v = getattr(aga, "__version__", None) if aga is not None else None
    return str(v) if v is not None else None


def _opt_int(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def build_fields(config: Any) -> dict:
    """hidden_dim, bottleneck_dim, max_slots, device of an AGAConfig (getattr,
    because the config may be anything or partially built)."""
    out = {}
    for key in ("hidden_dim", "bottleneck_dim", "max_slots"):
        v = _opt_int(getattr(config, key, None))
        if v is not None:
            out[key] = v
    dev = getattr(config, "device", None)
    if dev is not None:
        out["device"] = encode._safe_str(dev)
    return out


def producer_name(explicit: Optional[str], role: str, rank: Optional[int], instance: int) -> str:
    name = explicit or (f"{role}-tp{rank}" if rank is not None else role)
    return f"{name}.{instance}" if instance > 0 else name


def identity(producer: str, role: str, instance: int, config: Any = None,
             model: Optional[str] = None) -> dict:
    rank, world = rank_world()
    d = {"producer": producer, "role": role, "instance": instance, "rank": rank,
         "world_size": world, "model": model, "aga_version": aga_version()}
    d.update(build_fields(config))
    env = os.environ
    d.update(pod=env.get("POD_NAME") or None, namespace=env.get("POD_NAMESPACE") or None,
             container=env.get("CONTAINER_NAME") or None, process=process_name(),
             client=CLIENT, schema_version=SCHEMA_VERSION)
    ordered = {}
    for k in ("producer", "role", "instance", "rank", "world_size", "model", "aga_version",
              "hidden_dim", "bottleneck_dim", "max_slots", "device", "pod", "namespace",
              "container", "process", "client", "schema_version"):
        if d.get(k) is not None:
            ordered[k] = d[k]
    return ordered


def identity_json(ident: dict, limit: int = MAX_IDENTITY_LEN) -> bytes:
    """The identity as JSON of at most ``limit`` bytes: optional descriptive
    keys are dropped, then the producer name is cut, until it fits."""
    ident = dict(ident)
    out = encode.dumps(ident)
    for key in _DROP_ORDER:
        if len(out) <= limit:
            return out
        if ident.pop(key, None) is not None:
            out = encode.dumps(ident)
    while len(out) > limit and len(ident["producer"]) > 1:
        ident["producer"] = ident["producer"][:max(1, len(ident["producer"]) - (len(out) - limit) - 1)]
        out = encode.dumps(ident)
    return out
