"""The grouping search over a group-value model: checks, network costs, and the result table.

:func:`fit_model` is what :meth:`~taskrel.analysis.GroupingSearch.fit` runs when it is given
a model (:mod:`taskrel.tables.group_model`) instead of a table: it checks the model and the
size limits, runs the column generation of :mod:`taskrel.analysis.colgen`, and returns the
generated groups as a :class:`~taskrel.tables.CandidateTable` (values and standard errors
asked of the model once more, for the chosen networks' intervals) with the chosen rows.

>>> import numpy as np
>>> class Pairs:  # a and b help each other; c is best alone
...     tasks, higher_is_better = ["a", "b", "c"], False
...     def predict_members(self, members):
...         m = np.asarray(members, dtype=bool)
...         ab = (m[:, :2].all(1) & ~m[:, 2])[:, None]
...         v = np.where(ab, 0.5, 1.0) + 0.3 * (m[:, 2:3] & (m.sum(1, keepdims=True) > 1))
...         return np.where(m, v, np.nan), np.where(m, 0.01, np.nan)
>>> from taskrel.analysis.search_clock import SearchClock
>>> table, chosen, info = fit_model(Pairs(), 2, None, 1.0, True, SearchClock(10))
>>> [table.name(r) for r in chosen], info["pricing"]
(['c', 'a+b'], 'heuristic local search')
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from taskrel.analysis.colgen import check_sizes, solve_model
from taskrel.analysis.pricing import ModelOracle
from taskrel.analysis.search_clock import SearchClock
from taskrel.errors import TaskrelError
from taskrel.tables.candidates import CandidateTable
from taskrel.tables.group_estimates import check_max_size
from taskrel.tables.group_model import check_model


def costs_by_size(network_cost, n: int) -> np.ndarray:
    """``cost[k]`` of a network of ``k`` tasks (index 0 unused) from a number or a mapping."""
    out = np.full(n + 1, np.inf)
    if isinstance(network_cost, Mapping):
        for k in range(1, n + 1):
            if k in network_cost:
                out[k] = positive_number(network_cost[k], f"network_cost[{k}]")
        if not np.isfinite(out[1:]).any():
            raise TaskrelError("grouping: network_cost maps no group size from 1 to "
                               f"{n} to a cost")
        return out
    out[1:] = positive_number(network_cost, "network_cost")
    return out


def positive_number(v, what: str) -> float:
    """``v`` as a finite positive float (a TaskrelError naming ``what`` if not)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise TaskrelError(f"grouping: {what} must be a number, got {v!r}") from None
    if not np.isfinite(x) or x <= 0:
        raise TaskrelError(f"grouping: {what} must be a positive number, got {v!r}")
    return x


def fit_model(model, budget: float, max_size, network_cost, allow_singletons: bool,
              clock: SearchClock):
    """Column generation over ``model``; returns (table of generated groups, chosen rows,
    stats with ``bound`` and ``bound_proven``)."""
    check_model(model)
    n = len(model.tasks)
    top = check_max_size(max_size, n)
    low = max(1 if allow_singletons else 2, int(getattr(model, "min_size", 1)))
    if low > top:
        raise TaskrelError(f"grouping: groups of {low} or more tasks are needed (no task "
                           f"alone) but max_size is {top}")
    cost = costs_by_size(network_cost, n)
    cost[np.arange(n + 1) < low] = np.inf
    cost[np.arange(n + 1) > top] = np.inf
    scale = float(cost[np.isfinite(cost)].max())
    check_sizes(n, low, top, cost, budget)
    sol = solve_model(ModelOracle(model), budget / scale, np.minimum(cost / scale, 1e300),
                      low, top, clock)
    values, std = model.predict_members(sol.members)
    table = CandidateTable.from_arrays(
        list(model.tasks), sol.members, cost[sol.members.sum(axis=1)], values,
        higher_is_better=bool(model.higher_is_better), check_duplicates=False,
        std=np.asarray(std, dtype=np.float64),
        meta={"rule": getattr(model, "rule", "model"), "value": "asked of a group-value model"})
    info = dict(sol.stats, bound=sol.bound, bound_proven=sol.bound_proven,
                milp_proven=sol.milp_proven, min_size=low, max_size=top)
    return table, sol.chosen, info
