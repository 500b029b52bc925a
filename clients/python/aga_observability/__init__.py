"""aga_observability 2.0: streams aga-core EventBus events into shared-memory
rings consumed by agaobs-agent (docs/ring-format.md). Metrics, logs, alerts,
audit storage and health run in the agent, not in the inference process.

Unmodified aga-core imports this module: ``AGAPlugin._setup_observability``
calls :func:`setup_observability` with its event bus and config."""

from .config import AlertRuleConfig, ObservabilityConfig
from .integration import bind_plugin, get_global_stack, setup_observability, shutdown_observability
from ._version import __version__
from .stack import ObservabilityStack

__all__ = [
    "setup_observability",
    "bind_plugin",
    "get_global_stack",
    "shutdown_observability",
    "ObservabilityStack",
    "ObservabilityConfig",
    "AlertRuleConfig",
    "__version__",
]
