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

Exact always means exact over the *table given*, and only where ``status_`` is "optimal": one
``time_limit`` (default 60 s) bounds the whole ``fit``; when it runs out the best choice found
is returned with ``gap_`` to the best bound. Given a group-value model or a large
:class:`~taskrel.Affinity` instead of a table, the search never lists groups: column
generation (:mod:`taskrel.analysis.colgen`) asks the model for new ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from math import comb

import numpy as np
import pandas as pd

from taskrel.affinity import Affinity
from taskrel.analysis._grouping_dp import Infeasible, beam_search, exhaustive_search
from taskrel.analysis._grouping_solvers import SOLVERS, OutOfTime, Problem, exact_large, solve_milp
from taskrel.analysis.affinity_model import AffinityGroupModel
from taskrel.analysis.choice import describe_choice, score_choice, serve
from taskrel.analysis.mincost import cost_bounds, infeasible_error, minimal_cost
from taskrel.analysis.model_search import fit_model, positive_number
from taskrel.analysis.search_clock import SearchClock, check_time_limit, relative_gap
from taskrel.base import Estimator
from taskrel.errors import TaskrelError
from taskrel.tables.candidates import CandidateTable
from taskrel.tables.group_estimates import check_max_size

NOISE_LIMIT = 50_000  # networks up to which within_noise's cheapest-within-noise MILP runs
ENUMERATE_LIMIT = 20_000  # an Affinity with at most this many groups is listed as a table
__all__ = ["GroupingSearch", "SOLVERS", "cost_bounds", "minimal_cost", "pareto_front"]


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
    time_limit : seconds for the whole ``fit`` (default 60; ``None``: no limit). Every solve
        gets what is left; when it runs out the best choice found so far is returned, with
        ``status_`` and ``gap_`` saying how good it is.
    column_generation : ``"auto"`` (for tables over ``direct_limit`` networks), True or False.
    direct_limit : table size up to which the MILP is built over every network directly.
    max_size : largest group the search may form from a model or an affinity (None: any).
    network_cost : cost of one network formed from a model or an affinity: a number, or
        ``{size: cost}`` (default 1: the budget is then a number of networks).
    progress : optional callable given ``{stage, seconds, incumbent, bound, gap}`` during
        searches longer than two seconds (the same goes to the ``"taskrel"`` logger).

    ``fit`` takes a :class:`~taskrel.tables.CandidateTable`, a group-value model (the contract
    of :mod:`taskrel.tables.group_model`: column generation, :mod:`taskrel.analysis.colgen`)
    or an :class:`~taskrel.Affinity` (turned into group values by the rule for its kind:
    listed as a table when it has at most ``ENUMERATE_LIMIT`` groups, else asked as a model).

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
    lower_bound_, stats_ : the best lower bound on the objective (losses; scores negated)
        and solver statistics (``stats_["columns"]``: groups generated from a model).
    status_ : ``"optimal"`` (proven), ``"feasible"`` (finished without a proof) or
        ``"time limit"`` (stopped by ``time_limit``; the best choice found).
    gap_ : relative gap between the choice and ``lower_bound_`` (0 when proven optimal; None
        without a bound). ``bound_proven_`` is False when the bound rests on heuristic pricing.
    rule_ : how group values were made (``"table"``, or the affinity rule, or ``"model"``).
    table_ : the table searched (for a model: the groups it generated).

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
        time_limit: float | None = 60.0,
        column_generation: bool | str = "auto",
        direct_limit: int = 300,
        max_size: int | None = None,
        network_cost: float | dict = 1.0,
        progress=None,
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
        self.max_size = max_size
        self.network_cost = network_cost
        self.progress = progress

    def _check(self, table) -> tuple[float, float, float]:
        budget = positive_number(self.budget, "budget")
        check_time_limit(self.time_limit)
        if self.solver not in SOLVERS:
            raise TaskrelError(
                f"grouping: unknown solver {self.solver!r}; use one of {', '.join(SOLVERS)}"
            )
        if self.solver == "beam" and (not isinstance(self.beam_width, int) or self.beam_width < 1):
            raise TaskrelError(f"grouping: beam_width must be a positive integer, got "
                               f"{self.beam_width!r}")
        robust, noise = _check_z(self.robust, "robust"), _check_z(self.within_noise, "within_noise")
        if (robust or noise) and table is not None and table.std is None:
            raise TaskrelError("grouping: robust and within_noise need a table with std "
                               "(the spread of each value over seeds)")
        if noise and self.solver != "milp":
            raise TaskrelError("grouping: within_noise needs the 'milp' solver")
        if noise and len(table) > NOISE_LIMIT:
            raise TaskrelError(f"grouping: within_noise handles tables up to {NOISE_LIMIT} "
                               f"networks, got {len(table)}; pass a smaller max_size")
        return budget, robust, noise

    def fit(self, table) -> GroupingSearch:
        """Solve the grouping problem on a table, a group-value model or an affinity; returns
        ``self``."""
        self.stats_: dict = {}
        self.lower_bound_, self.gap_, self.bound_proven_ = None, None, True
        self.rule_ = "table"
        clock = SearchClock(self.time_limit, self.progress)
        if isinstance(table, Affinity):
            table = self._from_affinity(table)
        if isinstance(table, CandidateTable):
            return self._fit_table(table, clock)
        if hasattr(table, "predict_members"):
            self.rule_ = getattr(table, "rule", "model")
            return self._fit_model(table, clock)
        raise TaskrelError(
            f"grouping: expected a CandidateTable, a group-value model or an Affinity, got "
            f"{type(table).__name__}; build a table with CandidateTable.from_affinity(affinity, "
            "max_size=...) or pass a model with predict_members(members) (the group-value model "
            "route, taskrel.tables.group_model)")

    def _from_affinity(self, affinity: Affinity):
        """A table when the groups are few enough to list, else a group-value model."""
        model = AffinityGroupModel(affinity)
        self.rule_ = model.rule
        self.stats_["rule"] = model.rule
        n = len(model.tasks)
        top = check_max_size(self.max_size, n)
        if sum(comb(n, k) for k in range(model.min_size, top + 1)) > ENUMERATE_LIMIT:
            return model
        table = CandidateTable.from_affinity(affinity, max_size=top, cost=self.network_cost)
        self.stats_["route"] = "table from the affinity"
        return table

    def _fit_model(self, model, clock: SearchClock) -> GroupingSearch:
        budget, robust, noise = self._check(None)
        if robust or noise or not self.partition or self.solver != "milp":
            raise TaskrelError("grouping: a group-value model is searched in partition mode by "
                               "column generation only (solver='milp', robust=0, "
                               "within_noise=0); build a CandidateTable for the others")
        table, chosen, info = fit_model(model, budget, self.max_size, self.network_cost,
                                        self.allow_singletons, clock)
        self.stats_.update(info)
        self.stats_.setdefault("route", "column generation over a group-value model")
        self.table_ = table
        self.lower_bound_ = info.get("bound")
        self.bound_proven_ = bool(info.get("bound_proven"))
        self._store(table, chosen)
        mine = -self.total_ if self.higher_is_better_ else self.total_
        gap = relative_gap(mine, self.lower_bound_)
        if self.lower_bound_ is not None:  # signed: below 0 shows an unproven bound was beaten
            self.stats_["gap_vs_bound"] = (mine - self.lower_bound_) / max(abs(mine), 1e-12)
        self._status(clock, proven=self.bound_proven_ and gap is not None and gap <= 1e-9)
        if not self.bound_proven_:
            self.gap_ = None  # the bound rests on heuristic pricing: no proven gap
        return self

    def _fit_table(self, table: CandidateTable, clock: SearchClock) -> GroupingSearch:
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
        self.table_ = table
        self.stats_["n_candidates"] = len(rows)
        scale = float(table.cost[rows].max())  # costs on their own scale: tolerances relative
        p = Problem(L, table.members[rows], table.cost[rows] / scale, np.zeros(len(rows)),
                     budget / scale, bool(self.partition))
        info: dict = {}
        try:
            chosen = self._solve(p, clock, info)
            if noise:
                chosen = self._cheaper_within_noise(table, rows, p, chosen, noise, clock)
        except Infeasible:
            raise infeasible_error(table.take(rows), budget, bool(self.partition),
                                   max(clock.left(), 1.0) if clock.time_limit else 10.0) from None
        except OutOfTime:
            raise TaskrelError(f"grouping: no choice within budget {budget:g} was found in "
                               f"time_limit={self.time_limit} s; raise time_limit") from None
        self.stats_.update({k: v for k, v in info.items() if k != "mip_bound"})
        self.lower_bound_ = info.get("lower_bound", info.get("mip_bound"))
        self._store(table, rows[chosen], robust)
        self._status(clock, proven=info.get("proven", self.solver == "exhaustive"))
        if robust and self.status_ != "optimal":
            self.gap_ = None  # the bound is on the pessimistic objective, not on total_
        return self

    def _status(self, clock: SearchClock, proven: bool) -> None:
        """``status_`` and ``gap_`` from the clock and the bound (objective minimised)."""
        mine = -self.total_ if self.higher_is_better_ else self.total_
        if proven and not clock.hit:
            self.status_, self.gap_, self.lower_bound_ = "optimal", 0.0, mine
        else:
            self.gap_ = relative_gap(mine, self.lower_bound_)
            self.status_ = "time limit" if clock.hit else "feasible"
        self.stats_["seconds"] = round(clock.elapsed(), 3)

    def _solve(self, p: Problem, clock: SearchClock, info: dict) -> np.ndarray:
        if self.solver == "exhaustive":
            return exhaustive_search(p.L, p.mem, p.cost, p.budget, p.partition)
        if self.solver == "beam":
            return beam_search(p.L, p.mem, p.cost, p.budget, p.partition, self.beam_width)
        large = len(p.cost) > self.direct_limit
        if self.column_generation != "auto":
            large = bool(self.column_generation)
        if not large:
            return solve_milp(p, clock=clock, ties=True, info=info)
        return exact_large(p, clock, info)

    def _cheaper_within_noise(self, table, rows, p: Problem, chosen, z: float,
                              clock: SearchClock) -> np.ndarray:
        """The best choice at the least cost whose objective is within z standard errors."""
        serve_at = serve(p.L, chosen)
        sem = table.sem[rows[chosen[serve_at]], np.arange(table.n_tasks)]
        slack = z * float(np.sqrt((sem ** 2).sum()))
        cheap = solve_milp(p, clock=clock, ties=True, slack=slack)
        spend = float(p.cost[cheap].sum())
        self.stats_["within_noise_cost"] = spend * float(table.cost[rows].max())
        if spend >= float(p.cost[chosen].sum()) * (1 - 1e-12):
            return chosen
        at = Problem(p.L, p.mem, p.cost, p.w, spend * (1 + 1e-12), p.partition)
        return self._solve(at, clock, {})

    def _store(self, table: CandidateTable, chosen: np.ndarray, robust: float = 0.0) -> None:
        for name, value in describe_choice(table, chosen, robust).items():
            setattr(self, name, value)

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
        return score_choice(self.assignment_, self.networks_, table, reassign)


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
        b = positive_number(b, "budget")
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
