"""What every estimator of taskrel shares, in the scikit-learn manner: the constructor stores
its parameters unchanged, ``get_params`` / ``set_params`` read and write them, the repr shows
the ones that differ from their defaults, and :func:`clone` makes a fresh, unfitted copy.

>>> class Demo(Estimator):
...     def __init__(self, alpha=1.0, tasks=None):
...         self.alpha = alpha
...         self.tasks = tasks
>>> d = Demo(alpha=2.0)
>>> d, d.get_params(), clone(d, tasks=["a"])
(Demo(alpha=2.0), {'alpha': 2.0, 'tasks': None}, Demo(alpha=2.0, tasks=['a']))
>>> d.set_params(beta=1)
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: Demo: unknown parameter 'beta'; parameters are ['alpha', 'tasks']
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from taskrel.errors import TaskrelError

E = TypeVar("E", bound="Estimator")


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


class Estimator:
    """Parameters in the constructor; learned attributes end in ``_``."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The constructor's parameters and their values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self: E, **params: Any) -> E:
        """Set constructor parameters; an unknown one is a TaskrelError naming it."""
        known = self._param_names()
        for name, value in params.items():
            if name not in known:
                raise TaskrelError(f"{type(self).__name__}: unknown parameter {name!r}; parameters are {known}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = []
        for name, value in self.get_params().items():
            d = defaults.get(name, inspect.Parameter.empty)
            same = d is not inspect.Parameter.empty and (d is value or (type(d) is type(value) and _equal(d, value)))
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def clone(estimator: Any, **changes: Any) -> Any:
    """A new, unfitted estimator of the same class with the same parameters (and ``changes``).

    Works for any class that stores its constructor's parameters under their own names.
    """
    names = [n for n in inspect.signature(type(estimator).__init__).parameters if n != "self" and hasattr(estimator, n)]
    return type(estimator)(**{**{n: getattr(estimator, n) for n in names}, **changes})


def check_is_fitted(estimator: Any, attributes: str | tuple[str, ...] | list[str] | None = None,
                    hint: str = "fit") -> None:
    """Refuse to use ``estimator`` before it was fitted: a TaskrelError naming what to call.

    Parameters
    ----------
    estimator : object
        Any estimator whose learned attributes end in ``_``.
    attributes : str or sequence of str, optional
        The learned attribute(s) that ``fit`` sets; every one must be present. By default any public attribute ending in ``_``
        counts as a sign of fitting.
    hint : str, default "fit"
        How to fit it, shown in the message (e.g. ``"fit(suite, runner)"``).

    Raises
    ------
    TaskrelError
        When a named attribute is missing (or, by default, no learned attribute exists).

    Examples
    --------
    >>> class Mean(Estimator):
    ...     def fit(self, x):
    ...         self.mean_ = sum(x) / len(x)
    ...         return self
    >>> m = Mean()
    >>> check_is_fitted(m, "mean_")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: Mean is not fitted (no mean_): call fit first
    >>> check_is_fitted(m.fit([1, 3]), "mean_")
    >>> m.mean_
    2.0
    """
    name = type(estimator).__name__
    if attributes is None:
        learned = [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
        if not learned:
            raise TaskrelError(f"{name} is not fitted (no learned attribute): call {hint} first")
        return
    wanted = [attributes] if isinstance(attributes, str) else list(attributes)
    missing = [a for a in wanted if not hasattr(estimator, a)]
    if missing:
        raise TaskrelError(f"{name} is not fitted (no {', '.join(missing)}): call {hint} first")


__all__ = ["Estimator", "check_is_fitted", "clone"]
