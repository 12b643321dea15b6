"""The suite registry: builders registered by name, which ``get_suite`` and ``taskrel suites``
read. Each built-in suite module registers itself with :func:`register_suite`.

>>> from taskrel.suite import Suite
>>> @register_suite("doc-example", "a suite made in a doctest")
... def build() -> Suite: ...
>>> registered_suites()["doc-example"][1]
'a suite made in a doctest'
>>> forget_suite("doc-example")
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


def forget_suite(name: str) -> None:
    """Remove a registered suite (a test's or a notebook's own); an unknown name is ignored."""
    _REGISTRY.pop(name, None)


__all__ = ["forget_suite", "register_suite", "registered_suites"]
