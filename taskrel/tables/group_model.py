"""Group-value models: anything that answers "what would each task's value be in group S?".

At many tasks no table of every group can be built. A *group-value model* answers any group on
demand, so the grouping search can ask it for new groups (column generation) instead of
enumerating them. The contract, in losses or scores as the model says:

* ``tasks`` : list of task names (the columns of every membership matrix).
* ``higher_is_better`` : True when values are scores to maximise, False for losses.
* ``predict_members(members)`` : ``members`` is a boolean (m, n) matrix, one row per group;
  returns ``(values, std)``, two (m, n) float arrays with each member's estimated value and
  its standard error, NaN outside the group. A task alone (a row with one member) is its
  single-task value.
* optionally ``price(weights, size_cost, max_size, n_groups)`` : the model's own search for the
  groups a column-generation step wants: groups ``g`` (at most ``max_size`` tasks) with the
  smallest ``sum_{t in g} (sign * v_t(g) - weights[t]) + size_cost[len(g)]`` where ``sign`` is
  -1 for scores and +1 for losses, ``weights`` is an (n,) array (the dual prices of the tasks)
  and ``size_cost`` an array indexed by group size (the cost term of a network of that size).
  Returns a boolean (k, n) membership matrix, k <= ``n_groups``, best first. A model that can
  solve this exactly (sum-of-effects models: a quadratic binary program) says so with
  ``price_exact = True``; the search then proves optimality from it. Without ``price`` the
  search prices by heuristic search over ``predict_members``. ``price`` may also take the
  keywords ``min_size`` (the smallest group wanted) and ``time_limit`` (seconds it may use);
  the search passes them only to a ``price`` whose signature names them.
* optionally ``quadratic_form(weights, size_cost)`` : for models whose reduced cost is a
  quadratic in membership (an affinity's HOA values, sum-of-effects): a function ``form(k)``
  giving ``(const, lin (n,), Q (n, n))`` for groups of ``k`` tasks, from which the search
  proves a bound (:mod:`taskrel.analysis.pricing_bound`) even where its pricing is heuristic.

Fitted estimators give the contract through their ``group_model()``
(:class:`~taskrel.tables.GroupValues`): :class:`~taskrel.tables.SubsetSurrogate`, the surrogate
and gradient-feature probes, and :class:`~taskrel.tables.CorrectedModel` (measured groups
correcting a cheap estimate); an :class:`~taskrel.Affinity` becomes one through
:class:`~taskrel.analysis.AffinityGroupModel`. :func:`check_model` checks an object against
the contract.

>>> import numpy as np
>>> class Additive:
...     tasks, higher_is_better = ["a", "b"], False
...     def predict_members(self, members):
...         m = np.asarray(members, dtype=bool)
...         v = np.where(m, 1.0 - 0.1 * (m.sum(1, keepdims=True) - 1), np.nan)
...         return v, np.where(m, 0.01, np.nan)
>>> check_model(Additive()) is None
True
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from taskrel.errors import TaskrelError


@runtime_checkable
class GroupValueModel(Protocol):
    """The contract of a group-value model (module docstring)."""

    tasks: list[str]
    higher_is_better: bool

    def predict_members(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(m, n) boolean membership -> ((m, n) values, (m, n) standard errors), NaN outside."""
        ...


def check_model(model, what: str = "group-value model") -> None:
    """Refuse, by name, an object that does not meet the contract (checked on the singles)."""
    for attr in ("tasks", "higher_is_better", "predict_members"):
        if not hasattr(model, attr):
            raise TaskrelError(f"{what}: {type(model).__name__} has no {attr!r}; a group-value model "
                               "needs tasks, higher_is_better and predict_members(members)")
    n = len(model.tasks)
    if n == 0:
        raise TaskrelError(f"{what}: no tasks")
    eye = np.eye(n, dtype=bool)
    values, std = model.predict_members(eye)
    values, std = np.asarray(values, dtype=float), np.asarray(std, dtype=float)
    if values.shape != (n, n) or std.shape != (n, n):
        raise TaskrelError(f"{what}: predict_members of {n} groups returned shapes {values.shape} and "
                           f"{std.shape}, expected ({n}, {n}) each")
    if not np.all(np.isnan(values[~eye])):
        raise TaskrelError(f"{what}: predict_members must give NaN outside each group")
