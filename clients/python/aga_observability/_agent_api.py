"""Reads from agaobs-agent for the seed-compatible read methods
(docs/seed-compatibility.md §12.2), and the one-warning-per-method rule of
the seed-compatible modules.

Nothing here runs on the emitting thread or at import: urllib is imported
at the first read, each read is one HTTP GET with a 2 s timeout, without
proxies, and any failure gives None (the caller returns an empty result). The agent's admin API is ``AGAOBS_AGENT_URL`` (default
``http://127.0.0.1:8081``, the agent's default admin_listen_address); its
health endpoint, on its own listener, is ``AGAOBS_HEALTH_URL`` (default
``http://127.0.0.1:<health_port><health_path>``, 8080 and /health)."""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any, Iterable, Optional

logger = logging.getLogger("aga_observability")

DEFAULT_AGENT_URL = "http://127.0.0.1:8081"
DEFAULT_HEALTH_PORT = 8080
DEFAULT_HEALTH_PATH = "/health"
TIMEOUT = 2.0  # seconds, per request

_warned = set()
_warned_lock = threading.Lock()


def warn_once(key: str, msg: str, *args: Any) -> bool:
    """Logs msg as a warning the first time key is seen in this process,
    at debug after that. Returns whether it warned."""
    try:
        with _warned_lock:
            first = key not in _warned
            _warned.add(key)
        if first:
            logger.warning(msg, *args)
        else:
            logger.debug(msg, *args)
        return first
    except Exception:  # logging must never reach the caller
        return False


def reset_warnings() -> None:
    """Forgets which warnings were given (for tests)."""
    with _warned_lock:
        _warned.clear()


def _with_scheme(url: str) -> str:
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def agent_url() -> str:
    """Base URL of the agent's admin API."""
    return _with_scheme(os.environ.get("AGAOBS_AGENT_URL") or DEFAULT_AGENT_URL)


def health_url(port: Optional[int] = None, path: Optional[str] = None) -> str:
    """URL of the agent's health endpoint."""
    env = os.environ.get("AGAOBS_HEALTH_URL")
    if env:
        return _with_scheme(env)
    p = path if isinstance(path, str) and path.startswith("/") else DEFAULT_HEALTH_PATH
    try:
        port = int(port) if port is not None else DEFAULT_HEALTH_PORT
    except (TypeError, ValueError):
        port = DEFAULT_HEALTH_PORT
    return f"http://127.0.0.1:{port}{p}"


_opener = None


def get_json(url: str, ok_status: Iterable[int] = (200,)):
    """(value, None) for a JSON reply with a status in ok_status, else
    (None, why). Never raises."""
    global _opener
    try:
        import urllib.error
        import urllib.request
        if _opener is None:
            # No proxies: the agent is local (same host or network namespace).
            _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with _opener.open(req, timeout=TIMEOUT) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status = e.code
            try:
                body = e.read()
            finally:
                e.close()
            if status not in ok_status:
                text = body.decode("utf-8", "replace").strip()[:200]
                return None, f"HTTP {status}" + (f": {text}" if text else "")
        if status not in ok_status:
            return None, f"HTTP {status}"
        return json.loads(body.decode("utf-8")), None
    except Exception as e:  # URLError, timeouts, bad JSON, ...
        reason = getattr(e, "reason", None)
        return None, f"{type(e).__name__}: {reason if reason is not None else e}"


def read(key: str, path: str, params: Optional[dict], what: str, where: str, empty: str):
    """GET <agent_url><path>?params: the decoded JSON, or None after ONE
    warning per key saying where the data lives."""
    try:
        url = agent_url() + path
        q = {k: v for k, v in (params or {}).items() if v is not None}
        if q:
            from urllib.parse import urlencode
            url += "?" + urlencode(q)
        value, err = get_json(url)
        if err is None:
            return value
        warn_once(key, "aga_observability: %s: the agent at %s did not answer (%s); %s. "
                  "Returning %s (set AGAOBS_AGENT_URL to the agent's admin_listen_address).",
                  what, agent_url(), err, where, empty)
    except Exception:
        pass
    return None


def local_producers() -> list:
    """Names of this process's running producers (its rings' producer names)."""
    try:
        from . import producer as _producer
        return [p.name for p in _producer.all_producers() if p.name and p.state == "running"]
    except Exception:
        return []


class BusLink:
    """What a seed component's subscribe(bus) does here: the bus's events go
    to the agent through the bus's ring producer (shared with a stack on the
    same bus), held until unsubscribe() or shutdown()."""

    def __init__(self):
        self._held = {}  # id(bus) -> Producer

    def subscribe(self, bus: Any) -> bool:
        try:
            if not callable(getattr(bus, "subscribe", None)):
                return False  # not an EventBus: nothing to stream
            if id(bus) in self._held:
                return True
            from . import producer as _producer
            from .config import ObservabilityConfig, RingSettings
            settings = RingSettings.resolve(ObservabilityConfig())
            try:
                p = _producer.acquire(bus, settings)
            except OSError as e:
                _producer.warn_once(settings.ring_dir, "aga_observability: ring directory %s is "
                                    "not usable (%s); observability is disabled",
                                    settings.ring_dir, e)
                return False
            self._held[id(bus)] = p
            return True
        except Exception as e:
            logger.debug("aga_observability: subscribe failed: %s", e)
            return False

    def unsubscribe(self, bus: Any = None) -> None:
        try:
            from . import producer as _producer
            keys = list(self._held) if bus is None else [id(bus)]
            for k in keys:
                p = self._held.pop(k, None)
                if p is not None:
                    _producer.release(p)
        except Exception as e:
            logger.debug("aga_observability: unsubscribe failed: %s", e)

    @property
    def subscribed(self) -> bool:
        return bool(self._held)
