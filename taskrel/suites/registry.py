"""The suite registry: builders registered by name, which ``get_suite`` and ``taskrel suites``
read. Each built-in suite module registers itself with :func:`register_suite`.

>>> import taskrel.suites.planted  # a built-in suite's module registers it when imported
>>> registered_suites()["planted"][1].split(":")[0]
'synthetic, known truth'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, tuple[Callable[..., Any], str]] = {}


def register_suite(name: str, description: str) -> Callable:
    """Register a suite builder under ``name`` (used by ``get_suite`` and ``taskrel suites``)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = (fn, description)
        return fn

    return deco


def registered_suites() -> dict[str, tuple[Callable[..., Any], str]]:
    """The suites registered so far: name -> (builder, description), sorted by name."""
    return dict(sorted(_REGISTRY.items()))


__all__ = ["register_suite", "registered_suites"]
