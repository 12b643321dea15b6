"""A fitted estimator seen through the group-value contract (:mod:`taskrel.tables.group_model`).

Fitted objects keep their constructor parameters as given (scikit-learn idiom), so a probe's
``tasks`` may be None and a surrogate's ``higher_is_better`` may be "take the table's". The
search needs the fitted answers: :class:`GroupValues` holds them (``tasks``,
``higher_is_better``), forwards ``predict_members`` and, where the estimator has one, its exact
``price``, and says which estimator it is (``estimator``) and what its measurements cost
(``cost``). Every fitted group-value estimator in taskrel gives one with ``group_model()``.

>>> import numpy as np
>>> def predict(members):
...     m = np.asarray(members, dtype=bool)
...     return np.where(m, 1.0, np.nan), np.where(m, 0.1, np.nan)
>>> gv = GroupValues(["a", "b"], False, predict, estimator="constant")
>>> gv.predict_members([[True, True]])[0].tolist(), gv.price_exact, gv.estimator
([[1.0, 1.0]], False, 'constant')
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from taskrel.affinity import Cost
from taskrel.errors import TaskrelError


def check_members(members, n: int, what: str) -> np.ndarray:
    """``members`` as a boolean (m, n) matrix with no empty row, or a TaskrelError naming ``what``."""
    m = np.asarray(members)
    if m.ndim != 2 or m.shape[1] != n:
        raise TaskrelError(f"{what}: members must be a boolean (groups, {n}) matrix, got shape {m.shape}")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise TaskrelError(f"{what}: members must hold True/False (or 0/1) only")
        m = m.astype(bool)
    empty = np.nonzero(~m.any(1))[0]
    if len(empty):
        raise TaskrelError(f"{what}: row {int(empty[0])} of members is an empty group")
    return m


class GroupValues:
    """The group-value contract over a fitted estimator.

    Parameters
    ----------
    tasks : the task names (columns of every membership matrix).
    higher_is_better : True for scores, False for losses.
    predict : ``members -> (values, std)`` of the estimator (NaN outside each group).
    price : the estimator's own pricing (``price(weights, size_cost, max_size, n_groups)``) or
        None; ``price_exact`` : whether ``price`` proves optimality (read when asked, so an
        estimator may report a pricing solve that ran out of time).
    estimator : a name for reports; ``cost`` : what measuring its inputs cost.
    meta : anything else a report may show (the chosen forms, penalties, seeds).
    """

    def __init__(self, tasks, higher_is_better: bool, predict: Callable, price: Callable | None = None,
                 price_exact: bool | Callable[[], bool] = False, estimator: str = "", cost: Cost | None = None,
                 meta: dict[str, Any] | None = None):
        self.tasks = [str(t) for t in tasks]
        self.higher_is_better = bool(higher_is_better)
        self._predict = predict
        self._price = price
        self._exact = price_exact
        self.estimator = estimator
        self.cost = cost or Cost()
        self.meta = dict(meta or {})
        if price is not None:
            self.price = self._price_call

    def predict_members(self, members) -> tuple[np.ndarray, np.ndarray]:
        """(m, n) boolean membership -> ((m, n) values, (m, n) standard errors), NaN outside."""
        return self._predict(check_members(members, len(self.tasks), self.estimator or "group values"))

    def _price_call(self, weights, size_cost, max_size, n_groups: int = 1, *, min_size: int = 1,
                    time_limit: float | None = None) -> np.ndarray:
        return self._price(weights, size_cost, max_size, n_groups, min_size=min_size, time_limit=time_limit)

    @property
    def price_exact(self) -> bool:
        """True when the estimator's pricing proves optimality (always False without ``price``)."""
        if self._price is None:
            return False
        return bool(self._exact() if callable(self._exact) else self._exact)

    def __repr__(self) -> str:
        return f"GroupValues({self.estimator or 'estimator'}, {len(self.tasks)} tasks)"


__all__ = ["GroupValues", "check_members"]
