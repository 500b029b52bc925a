"""GrafanaDashboardGenerator: the seed's dashboard generator, answering with
the agent's node dashboard (docs/seed-compatibility.md §9, §12.1).

There is no second generator here. ``_data/dashboard.json`` is what the Go
generator (`agaobs-agent dashboard --api-wrapper`) renders with the metric
prefix set to the placeholder ``AGAOBS_PREFIX``; a Go test
(internal/dashboard/python_copy_test.go) fails when the copy is stale and
checks that replacing the placeholder as below gives the generator's own
output for other prefixes. The file is read on first use, not at import."""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Dict, Optional

from . import _agent_api

logger = logging.getLogger("aga_observability")

PLACEHOLDER = "AGAOBS_PREFIX"
DATA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_data", "dashboard.json")

# What the Go generator accepts (internal/dashboard: Options.validate).
_PREFIX_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_REFRESH_RE = re.compile(r"^[1-9][0-9]*(s|m|h|d)$")
DEFAULT_TITLE = "AGA Observability"
DEFAULT_REFRESH = "30s"
DEFAULT_DATASOURCE = "Prometheus"

_template: Optional[str] = None


def _load_template() -> Optional[str]:
    global _template
    if _template is None:
        try:
            with open(DATA_PATH, "r", encoding="utf-8") as f:
                _template = f.read()
        except OSError as e:
            _agent_api.warn_once("GrafanaDashboardGenerator.template",
                                 "aga_observability: the packaged dashboard %s cannot be read (%s); "
                                 "`agaobs-agent dashboard --api-wrapper` prints the same dashboard",
                                 DATA_PATH, e)
            return None
    return _template


def _fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def _uid(prefix: str, fleet: bool) -> str:
    """The Go generator's dashboard uid (internal/dashboard: dashboardUID)."""
    uid = "agaobs-" + prefix + ("-fleet" if fleet else "")
    if len(uid) > 40:  # Grafana's limit: a hash keeps long prefixes distinct
        uid = "%s-%08x" % (uid[:31], _fnv1a32(uid.encode()))
    return uid


def render(prefix: str = "aga") -> Optional[str]:
    """The agent's node dashboard in the seed's {"dashboard": …, "overwrite":
    true} form, byte for byte what `agaobs-agent dashboard --api-wrapper`
    prints for prometheus_prefix=prefix; None when the copy is unreadable."""
    t = _load_template()
    if t is None:
        return None
    return (t.replace(f"agaobs-{PLACEHOLDER}-fleet", _uid(prefix, True))
            .replace(f"agaobs-{PLACEHOLDER}", _uid(prefix, False))
            .replace(PLACEHOLDER, prefix))


class GrafanaDashboardGenerator:
    """Grafana dashboard JSON for the agent's metrics.

    ``prefix`` is the agent's prometheus_prefix. ``title`` and ``refresh``
    default to the agent generator's ("AGA Observability", "30s"); the seed's
    were "AGA Observability Dashboard" and "5s". ``datasource`` names the
    Prometheus data source selected by default; the dashboard also declares
    it in ``__inputs``, so a UI import asks for it."""

    def __init__(self, prefix: str = "aga", datasource: str = DEFAULT_DATASOURCE,
                 title: Optional[str] = None, refresh: Optional[str] = None):
        self._prefix = prefix
        self._datasource = datasource
        self._title = title
        self._refresh = refresh

    def _options(self):
        prefix = self._prefix if isinstance(self._prefix, str) else ""
        if not _PREFIX_RE.match(prefix):
            _agent_api.warn_once("GrafanaDashboardGenerator.prefix",
                                 "aga_observability: dashboard prefix %r is not a metric name prefix "
                                 "(letters, digits, _); using \"aga\"", self._prefix)
            prefix = "aga"
        title = self._title.strip() if isinstance(self._title, str) else ""
        if title == DEFAULT_TITLE:
            title = ""
        refresh = self._refresh if isinstance(self._refresh, str) and self._refresh else None
        if refresh is not None and refresh != "off" and not _REFRESH_RE.match(refresh):
            _agent_api.warn_once("GrafanaDashboardGenerator.refresh",
                                 "aga_observability: dashboard refresh %r is not a Grafana interval "
                                 "(e.g. 10s, 1m) or off; using %s", refresh, DEFAULT_REFRESH)
            refresh = None
        if refresh == DEFAULT_REFRESH:
            refresh = None
        ds = self._datasource if isinstance(self._datasource, str) and self._datasource else DEFAULT_DATASOURCE
        return prefix, title, refresh, ds

    def to_dict(self) -> Dict[str, Any]:
        """The dashboard as a dict: {"dashboard": {...}, "overwrite": True}."""
        try:
            prefix, title, refresh, ds = self._options()
            text = render(prefix)
            if text is None:
                return {"dashboard": {}, "overwrite": True}
            d = json.loads(text)
            dash = d["dashboard"]
            if title:
                dash["title"] = title
            if refresh is not None:
                dash["refresh"] = "" if refresh == "off" else refresh
            if ds != DEFAULT_DATASOURCE:
                for v in dash.get("templating", {}).get("list", []):
                    if v.get("type") == "datasource":
                        v["current"] = {"selected": False, "text": ds, "value": ds}
            return d
        except Exception as e:
            logger.debug("aga_observability: dashboard failed: %s", e)
            return {"dashboard": {}, "overwrite": True}

    def generate(self) -> str:
        """The dashboard JSON text (2-space indent). With the default title,
        refresh and datasource it is exactly the agent generator's output."""
        try:
            prefix, title, refresh, ds = self._options()
            if not title and refresh is None and ds == DEFAULT_DATASOURCE:
                text = render(prefix)
                if text is not None:
                    return text
            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        except Exception as e:
            logger.debug("aga_observability: dashboard failed: %s", e)
            return json.dumps({"dashboard": {}, "overwrite": True}, indent=2) + "\n"

    def save(self, path: str) -> None:
        """Writes generate() to path (a failure is logged, never raised)."""
        try:
            text = self.generate()
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        except Exception as e:
            logger.warning("aga_observability: cannot write the dashboard to %s: %s", path, e)
