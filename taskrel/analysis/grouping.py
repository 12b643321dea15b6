"""Which networks to train: the task-grouping problem of Standley et al. (2020).

Given a :class:`~taskrel.analysis.candidates.CandidateTable`, choose a set of candidate networks
whose total cost is at most ``budget`` such that every task is in at least one chosen network;
each task is then *served* by the chosen network that is best for it, and the objective is the
sum over tasks of the served values (losses minimised, or scores maximised). In *partition*
mode each task must be in exactly one chosen network.

Solvers (``GroupingSearch(solver=...)``):

* ``"milp"`` (exact): binary ``x_g`` (network g chosen), ``y_tg`` (task t served by g) with
  ``y_tg <= x_g``, ``sum_g y_tg = 1``, ``sum_g cost_g x_g <= budget`` (partition mode also
  ``sum_{g ∋ t} x_g = 1``), solved by HiGHS through ``scipy.optimize.milp`` with a zero gap
  tolerance. Large tables (for example every group of 20 tasks, about a million networks)
  are solved exactly without building the full model: column generation solves the linear
  relaxation over the whole table (pricing is one vectorised pass), a restricted MILP gives
  an incumbent, and every network whose reduced cost exceeds the gap between incumbent and
  relaxation is provably absent from any better solution and is dropped (reduced-cost
  fixing); the MILP over what remains is the exact optimum over the whole table.
* ``"exhaustive"`` (exact, small n only): dynamic programming over the sets of tasks that each
  network serves, with Pareto lists of (cost, objective); at most 12 tasks.
* ``"beam"`` (heuristic): beam search adding one network at a time; for huge tables.

Exact always means exact over the *table given*: a table built with ``max_size`` only holds
groups up to that size.
"""


from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from taskrel.analysis._grouping_solvers import (
    SOLVERS,
    _beam,
    _exact_large,
    _exhaustive,
    _Infeasible,
    _milp,
    _min_cost_columns,
    _Problem,
)
from taskrel.analysis.candidates import CandidateTable
from taskrel.errors import TaskrelError


# ---------------------------------------------------------------------- the estimator
def _check_budget(budget) -> float:
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise TaskrelError(f"grouping: budget must be a number, got {budget!r}") from None
    if not np.isfinite(b) or b <= 0:
        raise TaskrelError(f"grouping: budget must be a positive number, got {budget!r}")
    return b


class GroupingSearch:
    """Choose networks to train under a cost budget (module docstring for the problem).

    Parameters
    ----------
    budget : the most the chosen networks may cost in total (same units as the table's costs).
    solver : ``"milp"`` (exact), ``"exhaustive"`` (exact, at most 12 tasks) or ``"beam"``.
    partition : each task in exactly one chosen network (default: networks may overlap and
        each task is served by its best chosen network).
    beam_width : states kept per step by the beam solver.
    time_limit : seconds for each MILP solve (``None``: no limit; a solve that hits it raises).
    column_generation : ``"auto"`` (for tables over ``direct_limit`` networks), True or False.
    direct_limit : table size up to which the MILP is built over every network directly.

    Attributes
    ----------
    groups_ : chosen networks, tuples of task names.
    assignment_ : task -> the chosen network (tuple) that serves it.
    total_ : the objective: sum of served values (losses, or scores if higher is better).
    cost_ : total cost of the chosen networks.
    chosen_ : row indices of the chosen networks in the table.
    lower_bound_ : with column generation, the linear-relaxation bound (in loss terms).
    stats_ : solver statistics (``n_candidates``; with column generation also
        ``lower_bound``, ``incumbent`` and ``n_fixed``, the networks left after fixing).

    Examples
    --------
    >>> table = CandidateTable([
    ...     {"tasks": "a", "cost": 1, "a": 0.5}, {"tasks": "b", "cost": 1, "b": 0.4},
    ...     {"tasks": "c", "cost": 1, "c": 0.9},
    ...     {"tasks": "a+b", "cost": 1, "a": 0.3, "b": 0.45},
    ...     {"tasks": "b+c", "cost": 1, "b": 0.5, "c": 0.6}])
    >>> gs = GroupingSearch(budget=2).fit(table)
    >>> gs.groups_, round(gs.total_, 2), gs.cost_
    ([('a', 'b'), ('b', 'c')], 1.3, 2.0)
    >>> gs.assignment_["b"]
    ('a', 'b')
    >>> GroupingSearch(budget=2, partition=True).fit(table).groups_
    [('a',), ('b', 'c')]
    """

    def __init__(
        self,
        budget: float,
        solver: str = "milp",
        partition: bool = False,
        beam_width: int = 8,
        time_limit: float | None = None,
        column_generation: bool | str = "auto",
        direct_limit: int = 300,
    ):
        self.budget = budget
        self.solver = solver
        self.partition = partition
        self.beam_width = beam_width
        self.time_limit = time_limit
        self.column_generation = column_generation
        self.direct_limit = direct_limit

    def fit(self, table: CandidateTable) -> GroupingSearch:
        """Solve the grouping problem on ``table``; returns ``self``."""
        if not isinstance(table, CandidateTable):
            raise TaskrelError(
                f"grouping: expected a CandidateTable, got {type(table).__name__}"
            )
        budget = _check_budget(self.budget)
        if self.solver not in SOLVERS:
            raise TaskrelError(
                f"grouping: unknown solver {self.solver!r}; use one of {', '.join(SOLVERS)}"
            )
        if self.solver == "beam" and (not isinstance(self.beam_width, int) or self.beam_width < 1):
            raise TaskrelError(f"grouping: beam_width must be a positive integer, got "
                               f"{self.beam_width!r}")
        uncovered = [t for t, m in zip(table.tasks, table.members.any(axis=0)) if not m]
        if uncovered:
            raise TaskrelError(f"grouping: task {uncovered[0]!r} is in no candidate network")
        L = table.losses
        self.lower_bound_ = None
        self.stats_: dict[str, float] = {"n_candidates": len(table)}
        try:
            chosen = self._solve(_Problem(L, table.members, table.cost, np.zeros(len(table)),
                                          budget, bool(self.partition)))
        except _Infeasible:
            minimal = minimal_cost(table, partition=self.partition)
            raise TaskrelError(
                f"grouping: budget {budget:g} is below the cheapest choice of networks that "
                f"{'partitions' if self.partition else 'covers'} every task (minimal feasible "
                f"cost {minimal:g})"
            ) from None
        self.lower_bound_ = self.stats_.get("lower_bound")
        self._store(table, L, chosen)
        return self

    def _solve(self, p: _Problem) -> np.ndarray:
        if self.solver == "exhaustive":
            return _exhaustive(p.L, p.mem, p.cost, p.budget, p.partition)
        if self.solver == "beam":
            return _beam(p.L, p.mem, p.cost, p.budget, p.partition, self.beam_width)
        large = len(p.cost) > self.direct_limit
        if self.column_generation != "auto":
            large = bool(self.column_generation)
        if not large:
            return _milp(p, time_limit=self.time_limit)
        return _exact_large(p, self.time_limit, self.stats_)

    def _store(self, table: CandidateTable, L: np.ndarray, chosen: np.ndarray) -> None:
        L = L[chosen]
        sign = -1.0 if table.higher_is_better else 1.0
        self.chosen_ = np.asarray(chosen, dtype=np.intp)
        self.groups_ = [table.group(g) for g in self.chosen_]
        serve = np.argmin(L, axis=0)
        self.assignment_ = {t: self.groups_[serve[i]] for i, t in enumerate(table.tasks)}
        self.total_ = float(sign * L[serve, np.arange(table.n_tasks)].sum())
        self.cost_ = float(table.cost[self.chosen_].sum())
        self.higher_is_better_ = table.higher_is_better

    def score_on(self, table: CandidateTable, reassign: bool = False) -> float:
        """The objective of the fitted choice on another table (select on one, score on another).

        Each task keeps the network that served it in ``fit`` unless ``reassign`` is True, in
        which case it takes its best chosen network in ``table``. Every chosen network must be
        in ``table``.

        >>> val = CandidateTable([{"tasks": "a", "cost": 1, "a": 1.0},
        ...                       {"tasks": "a+b", "cost": 1, "a": 0.5, "b": 0.5}])
        >>> test = CandidateTable([{"tasks": "a", "cost": 1, "a": 0.2},
        ...                        {"tasks": "a+b", "cost": 1, "a": 0.6, "b": 0.7}])
        >>> gs = GroupingSearch(budget=1).fit(val)
        >>> round(gs.score_on(test), 2)
        1.3
        """
        if not hasattr(self, "groups_"):
            raise TaskrelError("grouping: call fit before score_on")
        if not isinstance(table, CandidateTable):
            raise TaskrelError(f"grouping: expected a CandidateTable, got {type(table).__name__}")
        missing = set(self.assignment_) - set(table.tasks)
        if missing:
            raise TaskrelError(f"grouping: task(s) {sorted(missing)} are not in the other table")
        rows = {g: table.find(g) for g in self.groups_}
        total = 0.0
        for t, g in self.assignment_.items():
            if reassign:
                vals = [table.value(h, t) for h in self.groups_ if t in h]
                total += max(vals) if table.higher_is_better else min(vals)
            else:
                total += float(table.values[rows[g], table.tasks.index(t)])
        return total


def minimal_cost(table: CandidateTable, partition: bool = False) -> float:
    """The least budget for which some choice covers (or partitions) every task.

    >>> t = CandidateTable([{"tasks": "a", "cost": 2, "a": 1}, {"tasks": "b", "cost": 2, "b": 1},
    ...                     {"tasks": "a+b", "cost": 3, "a": 1, "b": 1}])
    >>> minimal_cost(t)
    3.0
    """
    chosen = _min_cost_columns(table.members, table.cost, partition)
    return float(table.cost[chosen].sum())


def pareto_front(
    table: CandidateTable, budgets: Iterable[float], **search: object
) -> pd.DataFrame:
    """Solve for each budget: columns budget, cost, objective, groups (``"a+b"`` strings).

    Budgets below the minimal feasible cost give a row with NaN cost and objective. Extra
    keyword arguments go to :class:`GroupingSearch`.

    >>> table = CandidateTable([{"tasks": "a", "cost": 1, "a": 0.5},
    ...     {"tasks": "b", "cost": 1, "b": 0.4}, {"tasks": "a+b", "cost": 1.5, "a": .3, "b": .3}])
    >>> pareto_front(table, [1, 1.5, 2])[["budget", "cost", "objective"]]
       budget  cost  objective
    0     1.0   NaN        NaN
    1     1.5   1.5        0.6
    2     2.0   1.5        0.6
    """
    rows = []
    for b in budgets:
        b = _check_budget(b)
        try:
            gs = GroupingSearch(budget=b, **search).fit(table)
            rows.append({"budget": b, "cost": gs.cost_, "objective": gs.total_,
                         "groups": ["+".join(g) for g in gs.groups_]})
        except TaskrelError as e:
            if "below the cheapest" not in str(e):
                raise
            rows.append({"budget": b, "cost": np.nan, "objective": np.nan, "groups": None})
    return pd.DataFrame(rows, columns=["budget", "cost", "objective", "groups"])

