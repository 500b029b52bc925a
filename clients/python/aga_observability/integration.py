"""Zero-code entry points called by aga-core.

``AGAPlugin.__init__`` runs ``setup_observability(self.event_bus,
self.config)`` and never calls ``bind_plugin``; so setup finds the plugin
itself by walking up the calling frames for a ``self`` whose ``event_bus``
is this bus."""

from __future__ import annotations

import logging
import sys
from typing import Any, Mapping, Optional

from .config import ObservabilityConfig
from .stack import ObservabilityStack, running_stacks

logger = logging.getLogger("aga_observability")

_MAX_FRAMES = 32

# The stack setup_observability returned first (the seed's process-global
# stack): what get_global_stack() returns while it runs.
_global_stack: Optional[ObservabilityStack] = None


def _find_plugin(event_bus: Any, frame) -> Any:
    """The object owning event_bus among the callers' ``self`` locals."""
    try:
        depth = 0
        while frame is not None and depth < _MAX_FRAMES:
            obj = frame.f_locals.get("self")
            if obj is not None:
                try:
                    if getattr(obj, "event_bus", None) is event_bus:
                        return obj
                except Exception:
                    pass
            frame = frame.f_back
            depth += 1
    except Exception:
        pass
    finally:
        del frame  # no frame reference cycles
    return None


def _stack_for(event_bus: Any) -> Optional[ObservabilityStack]:
    for s in running_stacks():
        if s.event_bus is event_bus:
            return s
    return None


def setup_observability(event_bus: Any, aga_config: Any = None) -> Optional[ObservabilityStack]:
    """Starts streaming ``event_bus`` into rings; returns the stack, or None
    when disabled or when the ring directory is unusable. Never raises.

    ``aga_config`` is an AGAConfig (the reference's 7 fields are mapped and
    its build fields go into HELLO), an ObservabilityConfig, a dict, or None.
    Each bus gets its own stack and ring pair; calling again for the same bus
    returns its stack."""
    try:
        if event_bus is None:
            return None
        aga_cfg = None
        if isinstance(aga_config, ObservabilityConfig):
            cfg = aga_config
        elif isinstance(aga_config, Mapping):
            cfg = ObservabilityConfig.from_dict(aga_config)
        elif aga_config is not None:
            cfg = ObservabilityConfig.from_aga_config(aga_config)
            aga_cfg = aga_config
        else:
            cfg = ObservabilityConfig()
        if not cfg.enabled:
            return None
        plugin = _find_plugin(event_bus, sys._getframe(1))
        stack = _stack_for(event_bus)
        if stack is not None:
            if plugin is not None and stack.plugin is None:
                stack.bind_plugin(plugin)
            return _remember(stack)
        stack = ObservabilityStack(event_bus, cfg)
        stack._aga_config = aga_cfg
        if plugin is not None:
            stack.bind_plugin(plugin)
        return _remember(stack) if stack.start() else None
    except Exception as e:
        logger.warning("aga_observability: setup failed (%s); observability is disabled", e)
        return None


def _remember(stack: ObservabilityStack) -> ObservabilityStack:
    global _global_stack
    g = _global_stack
    if g is None or not g.running:
        _global_stack = stack
    return stack


def get_global_stack() -> Optional[ObservabilityStack]:
    """The stack setup_observability returned (the first of them while it
    runs), else the first running stack of this process."""
    g = _global_stack
    if g is not None and g.running:
        return g
    stacks = running_stacks()
    return stacks[0] if stacks else None


def bind_plugin(plugin: Any) -> None:
    """Binds plugin to the stack of its event bus, else to the first stack."""
    try:
        stack = _stack_for(getattr(plugin, "event_bus", None)) or get_global_stack()
        if stack is not None:
            stack.bind_plugin(plugin)
    except Exception as e:
        logger.debug("aga_observability: bind_plugin failed: %s", e)


def shutdown_observability() -> None:
    """Shuts down every running stack: a last STATUS, rings marked closed."""
    global _global_stack
    _global_stack = None
    for s in running_stacks():
        try:
            s.shutdown()
        except Exception as e:
            logger.debug("aga_observability: shutdown failed: %s", e)
