"""Built-in suites. All data ships inside installed packages: nothing is downloaded.

A new suite is one module here whose builder is decorated with
:func:`~taskrel.suites.registry.register_suite` (:func:`~taskrel.suites.mlp.mlp_suite` builds an
MLP encoder), named in ``_load_builtins`` below.

>>> sorted(list_suites())[1:5]
['digits', 'mnist', 'mnist-dense', 'mnist-scarce']
>>> get_suite("nope")
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: unknown suite 'nope'; built-in suites are: bayesnet, digits, mnist, mnist-dense, mnist-scarce, moleculeace, multimnist, planted, planted-many, qm9, qm9-scarce, yeast
"""

from __future__ import annotations

from typing import Any

from taskrel.errors import TaskrelError
from taskrel.suite import Suite
from taskrel.suites.mlp import mlp_suite
from taskrel.suites.registry import register_suite, registered_suites


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
    return {k: v[1] for k, v in registered_suites().items()}


def get_suite(name: str, **options: Any) -> Suite:
    """Build a registered suite; ``options`` go to its builder (sizes, task lists, seeds)."""
    _load_builtins()
    known = registered_suites()
    if name not in known:
        raise TaskrelError(f"unknown suite {name!r}; built-in suites are: {', '.join(known)}")
    fn = known[name][0]
    try:
        return fn(**options)
    except TypeError as e:
        raise TaskrelError(f"suite {name!r}: bad options {sorted(options)} ({e})") from None


__all__ = ["get_suite", "list_suites", "mlp_suite", "register_suite"]
