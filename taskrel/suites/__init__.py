"""Built-in suites. All data ships inside installed packages: nothing is downloaded.

>>> sorted(list_suites())[1:5]
['digits', 'mnist', 'mnist-dense', 'mnist-scarce']
>>> get_suite("nope")
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: unknown suite 'nope'; built-in suites are: bayesnet, digits, mnist, mnist-dense, mnist-scarce, moleculeace, multimnist, planted, planted-many, qm9, qm9-scarce, yeast
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.suite import Suite

_REGISTRY: dict[str, tuple[Callable[..., Suite], str]] = {}


def register_suite(name: str, description: str) -> Callable:
    """Register a suite builder under ``name`` (used by ``get_suite`` and ``taskrel suites``)."""

    def deco(fn: Callable[..., Suite]) -> Callable[..., Suite]:
        _REGISTRY[name] = (fn, description)
        return fn

    return deco


def mlp_suite(name: str, inputs: Any, tasks: list, targets: dict, sizes: list[int], **kwargs: Any) -> Suite:
    """A suite whose encoder is an MLP of ``sizes`` (stages ``fc1``, ``fc2``, ...) on flat inputs,
    with a width builder (every size times the width multiplier); ``kwargs`` go to
    :class:`~taskrel.suite.Suite` (split, truth, description, ...)."""
    from taskrel.widths import mlp_stages

    at_width = mlp_stages(inputs.shape[1], sizes)
    return Suite(name, inputs, tasks, targets, at_width(1.0), stages_at_width=at_width,
                 stage_names=[f"fc{k + 1}" for k in range(len(sizes))], **kwargs)


def _load_builtins() -> None:
    from taskrel.suites import (  # noqa: F401
        bayesnet,
        dense,
        digits,
        mnist,
        moleculeace,
        multimnist,
        planted,
        planted_many,
        qm9,
        testbeds,
        yeast,
    )


def list_suites() -> dict[str, str]:
    """Names of the registered suites and a line about each."""
    _load_builtins()
    return {k: v[1] for k, v in sorted(_REGISTRY.items())}


def get_suite(name: str, **options: Any) -> Suite:
    """Build a registered suite; ``options`` go to its builder (sizes, task lists, seeds)."""
    _load_builtins()
    if name not in _REGISTRY:
        raise TaskrelError(f"unknown suite {name!r}; built-in suites are: {', '.join(sorted(_REGISTRY))}")
    fn = _REGISTRY[name][0]
    try:
        return fn(**options)
    except TypeError as e:
        raise TaskrelError(f"suite {name!r}: bad options {sorted(options)} ({e})") from None


__all__ = ["get_suite", "list_suites", "mlp_suite", "register_suite"]
