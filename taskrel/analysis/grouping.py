"""Which networks to train: the task-grouping problem of Standley et al. (2020).

Given a :class:`~taskrel.tables.CandidateTable`, choose a set of candidate networks
whose total cost is at most ``budget``. In *partition* mode (the default, as in a study) each
task is in exactly one chosen network. In *overlap* mode (Standley's setting) networks may
share tasks: every task must be in at least one chosen network and is *served* by the chosen
network that is best for it. The objective is the sum over tasks of the served values (losses
minimised, or scores maximised); ``table.objective`` says it in words. Networks are referred
to by identity (their name in the table): several may hold the same tasks at different widths.

A chosen network always serves at least one task, and ``cost_`` is the cost of the chosen
networks only. Ties (MILP): among choices with the same objective (within 1e-7 relative),
the least total cost, then the fewest task slots (sum of the chosen networks' sizes), then the
earliest rows of the table. The exhaustive solver breaks ties by cost only.

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

Choices that survive noise (the table has ``std``): ``robust=z`` chooses on pessimistic values
(each loss plus ``z`` standard errors, each score minus them: the lower confidence bound of
every served value); ``within_noise=z`` takes the cheapest choice whose objective is within
``z`` standard errors of the optimum at the budget (a larger budget must earn its gain).
``p_beats_`` estimates, from the standard errors (values independent across networks), the
probability that the chosen grouping beats all-separate and all-shared.

Exact always means exact over the *table given*: a table built with ``max_size`` only holds
groups up to that size.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

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
from taskrel.base import Estimator
from taskrel.errors import TaskrelError
from taskrel.tables.candidates import CandidateTable

NOISE_LIMIT = 50_000  # networks up to which within_noise's cheapest-within-noise MILP runs


def _check_budget(budget) -> float:
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise TaskrelError(f"grouping: budget must be a number, got {budget!r}") from None
    if not np.isfinite(b) or b <= 0:
        raise TaskrelError(f"grouping: budget must be a positive number, got {budget!r}")
    return b


def _check_z(value, name: str) -> float:
    try:
        z = float(value)
    except (TypeError, ValueError):
        raise TaskrelError(f"grouping: {name} must be a number, got {value!r}") from None
    if not np.isfinite(z) or z < 0:
        raise TaskrelError(f"grouping: {name} must be a non-negative number, got {value!r}")
    return z


class GroupingSearch(Estimator):
    """Choose networks to train under a cost budget (module docstring for the problem).

    Parameters
    ----------
    budget : the most the chosen networks may cost in total (same units as the table's costs).
    solver : ``"milp"`` (exact), ``"exhaustive"`` (exact, at most 12 tasks) or ``"beam"``.
    partition : each task in exactly one chosen network (default, as in a study); False lets
        networks overlap, each task served by its best chosen network (Standley's setting).
    allow_singletons : False is TAG's rule: no task is trained alone.
    robust : standard errors by which each value is made pessimistic (needs a table std).
    within_noise : take the cheapest choice within this many standard errors of the optimum.
    beam_width : states kept per step by the beam solver.
    time_limit : seconds for each MILP solve (``None``: no limit; a solve that hits it raises).
    column_generation : ``"auto"`` (for tables over ``direct_limit`` networks), True or False.
    direct_limit : table size up to which the MILP is built over every network directly.

    Attributes
    ----------
    networks_ : names of the chosen networks; ``groups_`` their tasks, ``chosen_`` their rows.
    assignment_ : task -> name of the chosen network that serves it.
    served_ : name of each chosen network -> the tasks it serves (a partition of the tasks).
    total_ : the objective: sum of served values (losses, or scores if higher is better).
    total_sem_ : standard error of ``total_`` (None without a table std).
    cost_ : total cost of the chosen networks.
    p_beats_ : {"all-separate": p, "all-shared": p}, the estimated probability that the choice
        beats each baseline (None where the table lacks its std or the baseline's networks).
    objective_ : the objective in words.
    lower_bound_, stats_ : the linear-relaxation bound and solver statistics.

    Examples
    --------
    >>> table = CandidateTable([
    ...     {"tasks": "a", "cost": 1, "a": 0.5}, {"tasks": "b", "cost": 1, "b": 0.4},
    ...     {"tasks": "c", "cost": 1, "c": 0.9},
    ...     {"tasks": "a+b", "cost": 1, "a": 0.3, "b": 0.45},
    ...     {"tasks": "b+c", "cost": 1, "b": 0.5, "c": 0.6}])
    >>> gs = GroupingSearch(budget=2).fit(table)
    >>> gs.networks_, round(gs.total_, 2), gs.cost_
    (['a', 'b+c'], 1.6, 2.0)
    >>> over = GroupingSearch(budget=2, partition=False).fit(table)
    >>> over.networks_, over.assignment_["b"], over.served_["b+c"]
    (['a+b', 'b+c'], 'a+b', ('c',))
    >>> over
    GroupingSearch(budget=2, partition=False)
    """

    def __init__(
        self,
        budget: float,
        solver: str = "milp",
        partition: bool = True,
        allow_singletons: bool = True,
        robust: float = 0.0,
        within_noise: float = 0.0,
        beam_width: int = 8,
        time_limit: float | None = None,
        column_generation: bool | str = "auto",
        direct_limit: int = 300,
    ):
        self.budget = budget
        self.solver = solver
        self.partition = partition
        self.allow_singletons = allow_singletons
        self.robust = robust
        self.within_noise = within_noise
        self.beam_width = beam_width
        self.time_limit = time_limit
        self.column_generation = column_generation
        self.direct_limit = direct_limit

    def _check(self, table) -> tuple[float, float, float]:
        if not isinstance(table, CandidateTable):
            raise TaskrelError(f"grouping: expected a CandidateTable, got {type(table).__name__}")
        budget = _check_budget(self.budget)
        if self.solver not in SOLVERS:
            raise TaskrelError(
                f"grouping: unknown solver {self.solver!r}; use one of {', '.join(SOLVERS)}"
            )
        if self.solver == "beam" and (not isinstance(self.beam_width, int) or self.beam_width < 1):
            raise TaskrelError(f"grouping: beam_width must be a positive integer, got "
                               f"{self.beam_width!r}")
        robust, noise = _check_z(self.robust, "robust"), _check_z(self.within_noise, "within_noise")
        if (robust or noise) and table.std is None:
            raise TaskrelError("grouping: robust and within_noise need a table with std "
                               "(the spread of each value over seeds)")
        if noise and self.solver != "milp":
            raise TaskrelError("grouping: within_noise needs the 'milp' solver")
        if noise and len(table) > NOISE_LIMIT:
            raise TaskrelError(f"grouping: within_noise handles tables up to {NOISE_LIMIT} "
                               f"networks, got {len(table)}; pass a smaller max_size")
        return budget, robust, noise

    def fit(self, table: CandidateTable) -> GroupingSearch:
        """Solve the grouping problem on ``table``; returns ``self``."""
        budget, robust, noise = self._check(table)
        rows = np.arange(len(table))
        if not self.allow_singletons:
            rows = np.flatnonzero(table.members.sum(axis=1) >= 2)
            if not len(rows):
                raise TaskrelError("grouping: no network of two or more tasks in the table "
                                   "(allow_singletons=False)")
        uncovered = [t for t, m in zip(table.tasks, table.members[rows].any(axis=0)) if not m]
        if uncovered:
            raise TaskrelError(f"grouping: task {uncovered[0]!r} is in no candidate network"
                               + ("" if self.allow_singletons else " of two or more tasks"))
        L = table.losses[rows]
        if robust:
            L = L + robust * np.nan_to_num(table.sem[rows])
        self.lower_bound_ = None
        self.stats_: dict[str, float] = {"n_candidates": len(rows)}
        p = _Problem(L, table.members[rows], table.cost[rows], np.zeros(len(rows)), budget,
                     bool(self.partition))
        try:
            chosen = self._solve(p)
            if noise:
                chosen = self._cheaper_within_noise(table, rows, p, chosen, noise)
        except _Infeasible:
            minimal = minimal_cost(table.take(rows), partition=self.partition)
            raise TaskrelError(
                f"grouping: budget {budget:g} is below the cheapest choice of networks that "
                f"{'partitions' if self.partition else 'covers'} every task (minimal feasible "
                f"cost {minimal:g})"
            ) from None
        self.lower_bound_ = self.stats_.get("lower_bound")
        self._store(table, rows[chosen], robust)
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
            return _milp(p, time_limit=self.time_limit, ties=True)
        return _exact_large(p, self.time_limit, self.stats_)

    def _cheaper_within_noise(self, table, rows, p: _Problem, chosen, z: float) -> np.ndarray:
        """The best choice at the least cost whose objective is within z standard errors."""
        serve = _serve(p.L, chosen)
        sem = table.sem[rows[chosen[serve]], np.arange(table.n_tasks)]
        slack = z * float(np.sqrt((sem ** 2).sum()))
        cheap = _milp(p, time_limit=self.time_limit, ties=True, slack=slack)
        spend = float(p.cost[cheap].sum())
        self.stats_["within_noise_cost"] = spend
        if spend >= float(p.cost[chosen].sum()) - 1e-12:
            return chosen
        at = _Problem(p.L, p.mem, p.cost, p.w, spend * (1 + 1e-12) + 1e-12, p.partition)
        return self._solve(at)

    def _store(self, table: CandidateTable, chosen: np.ndarray, robust: float = 0.0) -> None:
        L = table.losses
        if robust:  # each task is served by the network the choice was made for
            L = L + robust * np.nan_to_num(table.sem)
        chosen = np.sort(np.asarray(chosen, dtype=np.intp))
        serve = _serve(L, chosen)
        chosen = chosen[np.isin(np.arange(len(chosen)), serve)]  # none that serves nothing
        serve = _serve(L, chosen)
        sign = -1.0 if table.higher_is_better else 1.0
        cols = np.arange(table.n_tasks)
        self.chosen_ = chosen
        self.networks_ = [table.name(g) for g in chosen]
        self.groups_ = [table.group(g) for g in chosen]
        self.assignment_ = {t: self.networks_[serve[i]] for i, t in enumerate(table.tasks)}
        self.served_ = {name: tuple(t for t in table.tasks if self.assignment_[t] == name)
                        for name in self.networks_}
        self.total_ = float(sign * table.losses[chosen[serve], cols].sum())
        self.cost_ = float(table.cost[chosen].sum())
        self.higher_is_better_ = table.higher_is_better
        self.objective_ = table.objective
        sem = table.sem
        self.total_sem_ = None if sem is None else float(
            np.sqrt((sem[chosen[serve], cols] ** 2).sum()))
        self.p_beats_ = {name: _p_beats(table, chosen[serve], rows)
                         for name, rows in _baselines(table).items()}

    def score_on(self, table: CandidateTable, reassign: bool = False) -> float:
        """The objective of the fitted choice on another table (select on one, score on another).

        Networks are matched by name. Each task keeps the network that served it in ``fit``
        unless ``reassign`` is True, in which case it takes its best chosen network in
        ``table`` (Standley's scoring). Every chosen network must be in ``table``.

        >>> val = CandidateTable([{"tasks": "a", "cost": 1, "a": 1.0},
        ...                       {"tasks": "a+b", "cost": 1, "a": 0.5, "b": 0.5}])
        >>> test = CandidateTable([{"tasks": "a", "cost": 1, "a": 0.2},
        ...                        {"tasks": "a+b", "cost": 1, "a": 0.6, "b": 0.7}])
        >>> gs = GroupingSearch(budget=1).fit(val)
        >>> round(gs.score_on(test), 2)
        1.3
        """
        if not hasattr(self, "networks_"):
            raise TaskrelError("grouping: call fit before score_on")
        if not isinstance(table, CandidateTable):
            raise TaskrelError(f"grouping: expected a CandidateTable, got {type(table).__name__}")
        missing = set(self.assignment_) - set(table.tasks)
        if missing:
            raise TaskrelError(f"grouping: task(s) {sorted(missing)} are not in the other table")
        absent = [n for n in self.networks_ if n not in set(table.names)]
        if absent:
            raise TaskrelError(f"grouping: chosen network(s) {absent} are not in the other table")
        rows = {name: table.index(name) for name in self.networks_}
        sign = -1.0 if table.higher_is_better else 1.0
        total = 0.0
        for t, name in self.assignment_.items():
            c = table.tasks.index(t)
            if reassign:
                vals = [sign * table.values[r, c] for r in rows.values() if table.members[r, c]]
                total += sign * min(vals)
            else:
                total += float(table.values[rows[name], c])
        return total


def _serve(L: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """For each task, the position in ``chosen`` of its best network (first on ties)."""
    return np.argmin(L[chosen], axis=0)


def _baselines(table: CandidateTable) -> dict[str, np.ndarray | None]:
    """Rows serving each task in all-separate and all-shared: the widest such networks."""
    size = table.members.sum(axis=1)
    order = np.lexsort((np.arange(len(table)), -table.width))  # widest first, then earliest
    sep = np.full(table.n_tasks, -1)
    for r in order[size[order] == 1][::-1]:
        sep[np.flatnonzero(table.members[r])[0]] = r
    full = order[size[order] == table.n_tasks]
    return {"all-separate": sep if (sep >= 0).all() else None,
            "all-shared": np.full(table.n_tasks, full[0]) if len(full) else None}


def _p_beats(table: CandidateTable, mine: np.ndarray, base: np.ndarray | None) -> float | None:
    """P(choice's objective better than the baseline's), normal with independent values."""
    if base is None or table.sem is None:
        return None
    cols = np.arange(table.n_tasks)
    L, sem = table.losses, table.sem
    diff = float((L[base, cols] - L[mine, cols]).sum())
    other = mine != base
    var = float((sem[mine, cols][other] ** 2 + sem[base, cols][other] ** 2).sum())
    if var <= 0:
        return 1.0 if diff > 0 else 0.0
    return float(stats.norm.cdf(diff / np.sqrt(var)))


def minimal_cost(table: CandidateTable, partition: bool = True) -> float:
    """The least budget for which some choice partitions (or covers) every task.

    >>> t = CandidateTable([{"tasks": "a", "cost": 2, "a": 1}, {"tasks": "b", "cost": 2, "b": 1},
    ...                     {"tasks": "a+b", "cost": 3, "a": 1, "b": 1}])
    >>> minimal_cost(t)
    3.0
    """
    chosen = _min_cost_columns(table.members, table.cost, partition)
    return float(table.cost[chosen].sum())


def pareto_front(
    table: CandidateTable, budgets: Iterable[float], score_on: CandidateTable | None = None,
    reassign: bool = False, **search: object
) -> pd.DataFrame:
    """Solve for each budget: columns budget, cost, objective, networks (names) and, with
    ``score_on``, the choice's objective on that table (``reassign`` as in
    :meth:`GroupingSearch.score_on`).

    Budgets below the minimal feasible cost give a row with NaN cost and objective. Extra
    keyword arguments go to :class:`GroupingSearch`.

    >>> table = CandidateTable([{"tasks": "a", "cost": 1, "a": 0.5},
    ...     {"tasks": "b", "cost": 1, "b": 0.4}, {"tasks": "a+b", "cost": 1.5, "a": .3, "b": .3}])
    >>> pareto_front(table, [1, 1.5, 2])[["budget", "cost", "objective", "networks"]]
       budget  cost  objective networks
    0     1.0   NaN        NaN     None
    1     1.5   1.5        0.6    [a+b]
    2     2.0   1.5        0.6    [a+b]
    """
    rows = []
    columns = ["budget", "cost", "objective", "networks"] + (["score_on"] if score_on else [])
    for b in budgets:
        b = _check_budget(b)
        try:
            gs = GroupingSearch(budget=b, **search).fit(table)
        except TaskrelError as e:
            if "below the cheapest" not in str(e):
                raise
            rows.append({"budget": b, "cost": np.nan, "objective": np.nan, "networks": None,
                         "score_on": np.nan})
            continue
        row = {"budget": b, "cost": gs.cost_, "objective": gs.total_, "networks": gs.networks_}
        if score_on is not None:
            row["score_on"] = gs.score_on(score_on, reassign=reassign)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
