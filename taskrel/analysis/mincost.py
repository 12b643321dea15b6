"""The least budget at which some choice of networks partitions (or covers) every task.

Every study asks this before it searches, so it must be quick at any size. It is computed in
three steps, each only when the one before did not settle it:

1. **Closed form.** Any partition (or cover) needs at least ``ceil(n / K)`` networks of at most
   ``K`` tasks, each costing at least the cheapest network ``c_min``, and at least ``n`` times
   the least cost per task: the larger of the two is a lower bound. A greedy choice (least cost
   per newly covered task, larger networks first on ties) gives an upper bound. When they meet
   (for example unit costs and a table holding every group up to size ``K``: the answer is
   ``ceil(n / K)`` networks) the answer is exact without any solver.
2. **Linear-programming bound** from the relaxation over the whole table.
3. **MILP** with a time limit (one budget for the whole call); exact only when proven.

Costs are compared relative to their own scale, so a table whose costs are all 1e-6 gets the
same answer, times 1e-6, as one whose costs are 1.

>>> from taskrel.tables import CandidateTable
>>> t = CandidateTable([{"tasks": "a", "cost": 2, "a": 1}, {"tasks": "b", "cost": 2, "b": 1},
...                     {"tasks": "a+b", "cost": 3, "a": 1, "b": 1}])
>>> minimal_cost(t)
3.0
>>> b = cost_bounds(t)
>>> b.lower, b.upper, b.exact, b.how
(3.0, 3.0, True, 'closed form')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from taskrel.analysis._grouping_dp import Infeasible, greedy_cover
from taskrel.analysis._grouping_solvers import OutOfTime, Problem, exact_large, solve_milp
from taskrel.analysis.search_clock import SearchClock
from taskrel.errors import TaskrelError
from taskrel.tables.candidates import CandidateTable

DIRECT = 300  # tables up to this many networks go straight to one MILP


@dataclass
class CostBounds:
    """The least feasible cost: ``lower <= optimum <= upper``; ``chosen`` rows reach
    ``upper``; ``exact`` when proven (``how`` says by what)."""

    lower: float
    upper: float | None
    chosen: np.ndarray | None
    exact: bool
    how: str


def _covered(table: CandidateTable) -> None:
    free = ~table.members.any(axis=0)
    if free.any():
        t = table.tasks[int(np.flatnonzero(free)[0])]
        raise TaskrelError(f"grouping: task {t!r} is in no candidate network; add a network "
                           "that holds it (a singleton at least)")


def cost_bounds(table: CandidateTable, partition: bool = True,
                time_limit: float | None = 10.0, clock: SearchClock | None = None) -> CostBounds:
    """Lower and upper bounds on the least feasible cost (module docstring for the steps).

    Parameters
    ----------
    table : the candidate networks.
    partition : each task in exactly one network (else: at least one).
    time_limit : seconds for the MILP step (ignored when ``clock`` is given).
    clock : a :class:`~taskrel.analysis.search_clock.SearchClock` shared with a search.

    Examples
    --------
    >>> from taskrel.tables import hoa_candidates
    >>> t = hoa_candidates(list("abcde"), {x: 1.0 for x in "abcde"}, {}, max_size=1)
    >>> cost_bounds(t).upper
    5.0
    """
    if not isinstance(table, CandidateTable):
        raise TaskrelError(f"grouping: minimal_cost needs a CandidateTable, got "
                           f"{type(table).__name__}")
    _covered(table)
    mem = table.members
    scale = float(table.cost.max())
    c = table.cost / scale
    n = table.n_tasks
    size = mem.sum(axis=1)
    lower = max(n * float((c / np.maximum(size, 1)).min()), math.ceil(n / size.max()) * c.min())
    chosen = greedy_cover(mem, c, bool(partition))
    upper = None if chosen is None else float(c[chosen].sum())
    if upper is not None and upper <= lower * (1 + 1e-9):
        return CostBounds(lower * scale, upper * scale, chosen, True, "closed form")
    clock = clock if clock is not None else SearchClock(time_limit)
    p = Problem(np.where(mem, 0.0, np.inf), mem, c, c, None, bool(partition))
    info: dict = {}
    how = "MILP"
    try:
        if len(c) <= DIRECT:
            best = solve_milp(p, clock=clock, info=info)
        else:
            best = exact_large(p, clock=clock, info=info)
        value = float(c[best].sum())
        if upper is None or value < upper:
            chosen, upper = best, value
    except Infeasible:
        if chosen is None:
            raise TaskrelError("grouping: no choice of candidate networks "
                               f"{'partitions' if partition else 'covers'} the tasks (each "
                               "task in exactly one network); add singletons or smaller "
                               "networks") from None
    except OutOfTime:
        how = "greedy (MILP stopped on the time limit)"
    proven = info.get("proven", False) and how == "MILP"
    if info.get("lower_bound") is not None:
        lower = max(lower, float(info["lower_bound"]))
    if proven:
        lower = upper
    return CostBounds(lower * scale, None if upper is None else upper * scale, chosen,
                      bool(proven), how if proven else how + ", not proven")


def minimal_cost(table: CandidateTable, partition: bool = True,
                 time_limit: float | None = 10.0) -> float:
    """The least budget for which some choice partitions (or covers) every task.

    Exact in closed form or when the MILP proves it within ``time_limit`` seconds; otherwise
    the cost of the best choice found (an upper bound: every budget at or above it is
    feasible). :func:`cost_bounds` gives both bounds and says which.

    >>> t = CandidateTable([{"tasks": "a", "cost": 2, "a": 1}, {"tasks": "b", "cost": 2, "b": 1},
    ...                     {"tasks": "a+b", "cost": 3, "a": 1, "b": 1}])
    >>> minimal_cost(t)
    3.0
    """
    bounds = cost_bounds(table, partition, time_limit)
    if bounds.upper is None:
        raise TaskrelError(f"grouping: no choice of networks that "
                           f"{'partitions' if partition else 'covers'} every task was found "
                           f"within time_limit={time_limit}; raise time_limit")
    return float(bounds.upper)


def infeasible_error(table: CandidateTable, budget: float, partition: bool,
                     time_limit: float | None) -> TaskrelError:
    """The error for a budget no choice fits: "below the cheapest choice" only when proven."""
    bounds = cost_bounds(table, partition, time_limit)
    what = "partitions" if partition else "covers"
    if bounds.exact or budget < bounds.lower * (1 - 1e-9):
        low = bounds.upper if bounds.exact else bounds.lower
        return TaskrelError(f"grouping: budget {budget:g} is below the cheapest choice of "
                            f"networks that {what} every task (minimal feasible cost {low:g})")
    return TaskrelError(f"grouping: no choice of networks within budget {budget:g} {what} "
                        f"every task; the minimal feasible cost is between {bounds.lower:g} "
                        f"and {bounds.upper}")
