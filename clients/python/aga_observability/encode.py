"""Encoding of EventBus events into record bodies (format §4), general path.

The FORWARD fast path lives in ring.make_forward_handler; everything here
runs for the other event kinds and for forward events whose data is not the
plain aga-core shape. Nothing here raises for a bad value: values JSON
cannot carry become strings, oversized bodies are truncated as the format
says, so an event is never lost because of what it carries."""

from __future__ import annotations

import json
import math
import numbers
from typing import Any, Mapping, Optional, Tuple

from . import ring

_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=str,
                         ensure_ascii=False).encode
_JSON_ASCII = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=str).encode
_MAX_DEPTH = 64


def _safe_str(v: Any) -> str:
    try:
        return str(v)
    except Exception:
        try:
            return repr(v)
        except Exception:
            return "<unrepresentable %s>" % type(v).__name__


def sanitize(v: Any, depth: int = 0, path: Optional[set] = None) -> Any:
    """A copy of v that JSON can carry: non-finite floats, odd keys, cycles,
    unprintable objects and over-deep nesting become strings."""
    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else _safe_str(v)
    if isinstance(v, str):
        # Lone surrogates cannot be encoded as UTF-8.
        return v.encode("utf-8", "replace").decode("utf-8")
    if depth >= _MAX_DEPTH:
        return _safe_str(v)
    if path is None:
        path = set()
    if isinstance(v, (Mapping, list, tuple, set, frozenset)):
        if id(v) in path:
            return "<cycle>"
        path.add(id(v))
        try:
            if isinstance(v, Mapping):
                return {(k if isinstance(k, str) else _safe_str(k)): sanitize(x, depth + 1, path)
                        for k, x in list(v.items())}
            return [sanitize(x, depth + 1, path) for x in list(v)]
        except Exception:
            return _safe_str(v)
        finally:
            path.discard(id(v))
    if isinstance(v, numbers.Real):
        try:
            f = float(v)
            return f if math.isfinite(f) else _safe_str(f)
        except Exception:
            pass
    return _safe_str(v)


def dumps(obj: Any) -> bytes:
    """Compact RFC 8259 JSON as UTF-8 (allow_nan=False, default=str)."""
    try:
        return _JSON(obj).encode("utf-8")
    except Exception:
        pass
    try:
        return _JSON(sanitize(obj)).encode("utf-8")
    except Exception:
        return _JSON_ASCII(_safe_str(obj)).encode("ascii")


def _truncate_utf8(b: bytes, n: int) -> bytes:
    """At most n bytes of b, cut at a character boundary."""
    if len(b) <= n:
        return b
    return b[:max(n, 0)].decode("utf-8", "ignore").encode("utf-8")


def truncated_marker(original: int) -> dict:
    return {"_truncated": True, "_original_bytes": original}


# -- FORWARD / RETRIEVAL ---------------------------------------------------------

def is_number(v: Any) -> bool:
    """A real number that is not a bool (bools are ints in Python, but not
    numbers for event fields)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)



def _integral(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _clamp_i32(v: int) -> int:
    return ring.I32_MIN if v < ring.I32_MIN else ring.I32_MAX if v > ring.I32_MAX else v


def forward_fields(d: Any) -> Optional[Tuple[float, float, float, int, int]]:
    """(gate, entropy, latency, layer, fields) of a forward event, or None
    when its data does not fit the fixed layout (then it goes as EVENT).
    Missing or None fields are written as 0 with their "has" bit clear."""
    if not isinstance(d, Mapping):
        return None
    bits = 0
    vals = []
    for key, bit in (("gate_mean", ring.FWD_HAS_GATE), ("entropy_mean", ring.FWD_HAS_ENTROPY),
                     ("latency_us", ring.FWD_HAS_LATENCY)):
        v = d.get(key)
        if v is None:
            vals.append(0.0)
            continue
        if not is_number(v):
            return None
        try:
            vals.append(float(v))
        except (TypeError, ValueError, OverflowError):
            return None
        bits |= bit
    layer = d.get("layer_idx")
    if layer is None:
        layer = 0
    elif _integral(layer):
        layer = _clamp_i32(int(layer))
        bits |= ring.FWD_HAS_LAYER
    else:
        return None
    applied = d.get("aga_applied")
    if applied is not None:
        if not isinstance(applied, (bool, numbers.Integral)):
            return None
        if applied:
            bits |= ring.FWD_APPLIED
    return vals[0], vals[1], vals[2], layer, bits


def retrieval_fields(d: Any):
    """(layer, results, injected, budget, fields, scores, ids as bytes) of a
    retrieval event, or None when it does not fit the fixed layout."""
    if not isinstance(d, Mapping):
        return None
    bits = 0
    ints = []
    for key, bit in (("layer_idx", ring.RET_HAS_LAYER), ("results_count", ring.RET_HAS_RESULTS),
                     ("injected_count", ring.RET_HAS_INJECTED),
                     ("budget_remaining", ring.RET_HAS_BUDGET)):
        v = d.get(key)
        if v is None:
            ints.append(0)
        elif _integral(v):
            ints.append(_clamp_i32(int(v)))
            bits |= bit
        else:
            return None
    scores = d.get("scores")
    ids = d.get("ids")
    scores = [] if scores is None else scores
    ids = [] if ids is None else ids
    if not isinstance(scores, (list, tuple)) or not isinstance(ids, (list, tuple)):
        return None
    if len(scores) > 0xFFFF or not all(is_number(s) for s in scores):
        return None
    if not all(isinstance(i, str) for i in ids):
        return None
    try:
        fscores = [float(s) for s in scores]
    except (TypeError, ValueError, OverflowError):
        return None
    bids = [i.encode("utf-8", "replace") for i in ids]
    if any(len(b) > 0xFFFF for b in bids):
        return None
    return ints[0], ints[1], ints[2], ints[3], bits, fscores, bids


# -- EVENT / AUDIT / STATUS ------------------------------------------------------

def event_name(t: Any) -> bytes:
    name = t if isinstance(t, str) else _safe_str(t)
    b = name.encode("utf-8", "replace")
    return b or b"unknown"


def event_body(name: bytes, data: Any, max_body: int) -> Tuple[bytes, bytes, int]:
    """(name, data JSON, flags) for an EVENT record whose body is at most
    max_body bytes: too-large data is replaced by a truncation marker."""
    payload = dumps(data)
    if 2 + len(name) + len(payload) <= max_body:
        return name, payload, 0
    payload = dumps(truncated_marker(len(payload)))
    name = _truncate_utf8(name, max_body - 2 - len(payload)) or b"?"
    return name, payload, ring.FLAG_TRUNCATED


def audit_object(data: Any, event_ts: float) -> dict:
    """The aga-core audit payload with the documented defaults."""
    if not isinstance(data, Mapping):
        data = {} if data is None else {"details": {"_value": data}}
    op = data.get("operation", "unknown")
    op = "unknown" if op is None else op if isinstance(op, str) else _safe_str(op)
    details = data.get("details")
    if details is None:
        details = {}
    elif not isinstance(details, dict):
        details = dict(details) if isinstance(details, Mapping) else {"_value": details}
    success = data.get("success", True)
    success = True if success is None else bool(success)
    error = data.get("error")
    if error is not None and not isinstance(error, str):
        error = _safe_str(error)
    ts = data.get("timestamp")
    if not (is_number(ts) and ts and math.isfinite(float(ts))):
        ts = event_ts
    return {"operation": op, "details": details, "success": success, "error": error,
            "timestamp": ts}


def audit_body(obj: dict, max_body: int) -> Tuple[bytes, int]:
    """(JSON, flags) for an AUDIT record whose JSON is at most max_body - 8
    bytes: details first become the truncation marker (format §4.3); a huge
    operation or error string is cut as a last resort."""
    room = max_body - 8
    body = dumps(obj)
    if len(body) <= room:
        return body, 0
    small = dict(obj, details=truncated_marker(len(body)))
    out = dumps(small)
    if len(out) > room:
        small["operation"] = _truncate_utf8(str(small["operation"]).encode(), 256).decode()
        out = dumps(small)
    if len(out) > room and small.get("error"):
        over = len(out) - room
        err = str(small["error"]).encode()
        small["error"] = _truncate_utf8(err, max(len(err) - over - 8, 0)).decode()
        out = dumps(small)
    return out, ring.FLAG_TRUNCATED


def json_record_body(obj: Any, max_body: int) -> Tuple[bytes, int]:
    """(JSON, flags) for a STATUS record."""
    body = dumps(obj)
    if len(body) <= max_body:
        return body, 0
    return dumps(truncated_marker(len(body))), ring.FLAG_TRUNCATED


def time_ns_of(event: Any, now_ns) -> int:
    """Record time: the event's own timestamp (epoch seconds), clamped to
    i64, else the current time."""
    try:
        ts = event.timestamp
        if is_number(ts):
            t = int(float(ts) * 1e9)
            return ring.I64_MIN if t < ring.I64_MIN else ring.I64_MAX if t > ring.I64_MAX else t
    except Exception:
        pass
    return now_ns()
