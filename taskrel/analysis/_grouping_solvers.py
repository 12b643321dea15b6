"""Solvers behind :class:`~taskrel.analysis.grouping.GroupingSearch` (internal).

Losses ``L`` are (networks x tasks) with ``inf`` outside the members; every solver returns the
row indices of the chosen networks or raises :class:`Infeasible`. The exact MILP, its column
generation with reduced-cost fixing, the exhaustive dynamic programme and the beam search are
described in the module docstring of :mod:`taskrel.analysis.grouping`; the exhaustive
programme and the beam search are in :mod:`taskrel.analysis._grouping_dp`.

Every solve takes what is left of one :class:`~taskrel.analysis.search_clock.SearchClock`:
a MILP stopped by it returns its incumbent (unproven), or raises :class:`OutOfTime` if it
has none. Tie-break solves are skipped when time is short; one that fails keeps the choice
already made (never turning a feasible problem into an infeasible one).

Ties (MILP): the optimum is taken lexicographically. First the objective; among choices within
``TIE`` (1e-7, relative to 1 + |objective|) of it, the least total cost; among those, the fewest task slots (the sum of
the chosen networks' sizes), then the earliest rows (the least sum of row positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from taskrel.analysis._grouping_dp import Infeasible, beam_search, greedy_cover
from taskrel.analysis.search_clock import SearchClock
from taskrel.errors import TaskrelError

SOLVERS = ("milp", "exhaustive", "beam")
TIE = 1e-7  # objectives this close (relative to 1 + |objective|) are ties
GREEDY_CELLS = 2_000_000  # networks x tasks up to which the first incumbent is a beam search


class OutOfTime(Exception):
    pass


def _no_clock(clock: SearchClock | None) -> SearchClock:
    return clock if clock is not None else SearchClock(None)


@dataclass
class Problem:
    """Losses ``L`` (networks x tasks, inf outside members), membership, costs, a per-network
    objective term ``w``, the budget (None: no budget) and the mode."""

    L: np.ndarray
    mem: np.ndarray
    cost: np.ndarray
    w: np.ndarray
    budget: float | None
    partition: bool
    order: np.ndarray | None = None  # the rows' positions in the whole table (tie-breaks)

    def take(self, idx: np.ndarray) -> Problem:
        order = np.arange(len(self.cost)) if self.order is None else self.order
        return Problem(self.L[idx], self.mem[idx], self.cost[idx], self.w[idx], self.budget,
                        self.partition, order[idx])

    @cached_property
    def member_matrix(self) -> np.ndarray:
        return self.mem.astype(np.float64)

    @cached_property
    def _network_loss(self) -> np.ndarray:
        return self.w + np.where(self.mem, self.L, 0.0).sum(axis=1)

    def network_loss(self, sl=slice(None)) -> np.ndarray:
        """w + the sum of member losses (the whole objective of a network in partition mode)."""
        return self._network_loss[sl]


# ---------------------------------------------------------------------- the MILP model
def _model(p: Problem, keep_y=None, artificial=0.0):
    """Matrices of the model. Overlapping mode: variables [x (G), y (pairs), artificial (n)],
    cover rows ``sum_g y_tg = 1``, link rows ``y_tg - x_g <= 0``. Partition mode: variables
    [x, artificial], rows ``sum_{g ∋ t} x_g = 1`` (y is then x and is left out)."""
    G, n = p.mem.shape
    na = n if artificial else 0
    if p.partition:
        ny, yg = 0, np.zeros(0, dtype=np.intp)
        c = np.concatenate([p.network_loss(), np.full(na, artificial)])
        eg, et = np.nonzero(p.mem)
    else:
        yg, yt = np.nonzero(p.mem if keep_y is None else p.mem & keep_y)
        ny = len(yg)
        c = np.concatenate([p.w, p.L[yg, yt], np.full(na, artificial)])
        eg, et = G + np.arange(ny), yt
    ai = G + ny + np.arange(na)
    r = np.concatenate([et, np.arange(na)])
    k = np.concatenate([eg, ai])
    a_eq = sparse.csr_matrix((np.ones(len(r)), (r, k)), shape=(n, len(c)))
    lr = np.concatenate([np.arange(ny), np.arange(ny)])
    lc = np.concatenate([G + np.arange(ny), yg])
    lv = np.concatenate([np.ones(ny), -np.ones(ny)])
    if p.budget is not None:
        lr = np.concatenate([lr, np.full(G, ny)])
        lc = np.concatenate([lc, np.arange(G)])
        lv = np.concatenate([lv, p.cost])
    a_ub = sparse.csr_matrix((lv, (lr, lc)), shape=(ny + (p.budget is not None), len(c)))
    b_ub = np.zeros(a_ub.shape[0])
    if p.budget is not None:
        b_ub[-1] = p.budget
    return c, a_eq, np.ones(n), a_ub, b_ub


def _solve(c, cons, G, clock: SearchClock | None, info: dict | None = None):
    """One HiGHS MILP solve with what is left of the clock; returns (x, proven optimal)."""
    clock = _no_clock(clock)
    left = clock.left()
    if left <= 0:
        clock.hit = True
        raise OutOfTime("no time left")
    integrality = np.zeros(len(c))
    integrality[:G] = 1
    options = {"mip_rel_gap": 1e-9}
    if np.isfinite(left):
        options["time_limit"] = float(left)
    with clock.solving(f"MILP over {G} networks"):
        res = milp(c, constraints=cons, integrality=integrality, bounds=Bounds(0, 1),
                   options=options)
    if res.status == 1:
        clock.hit = True
        if res.x is None:
            raise OutOfTime(res.message)
        if info is not None:
            info["mip_bound"] = getattr(res, "mip_dual_bound", None)
        return res.x, False
    if res.x is None:
        raise Infeasible(res.message)
    if res.status != 0:
        raise TaskrelError(f"grouping: the MILP solver stopped early ({res.message})")
    return res.x, True


def solve_milp(p: Problem, keep_y=None, clock: SearchClock | None = None, ties: bool = False,
          slack: float = 0.0, info: dict | None = None) -> np.ndarray:
    """MILP on these columns; returns the chosen column indices. With ``ties``, the choice is
    the lexicographic optimum of the module docstring (three solves); ``slack`` widens "the
    same objective" to ``slack`` above the optimum (the cheapest choice within it is then
    taken). ``info["proven"]`` says whether the first solve was proven optimal and
    ``info["ties"]`` what happened to the tie-breaks."""
    info = {} if info is None else info
    c, a_eq, b_eq, a_ub, b_ub = _model(p, keep_y)
    G, n = p.mem.shape
    cons = [LinearConstraint(a_eq, b_eq, b_eq)]
    if a_ub.shape[0]:
        cons.append(LinearConstraint(a_ub, -np.inf, b_ub))
    x, info["proven"] = _solve(c, cons, G, clock, info)
    first = np.flatnonzero(x[:G] > 0.5)
    if not ties:
        return first
    if not info["proven"]:
        info["ties"] = "skipped: the objective solve stopped on the time limit"
        return first
    if clock is not None and clock.short():
        info["ties"] = "skipped: short of time"
        return first
    try:
        return _tie_breaks(p, c, cons, first, slack, clock, info)
    except (OutOfTime, Infeasible) as e:  # keep the choice made: never invent infeasibility
        info["ties"] = f"stopped: {type(e).__name__.strip('_')}"
        return first


def _tie_breaks(p: Problem, c, cons, first, slack, clock, info) -> np.ndarray:
    """Least cost, then fewest slots, among choices within TIE (or ``slack``) of ``first``."""
    G, n = p.mem.shape
    best = _objective(p, first)
    cons = cons + [LinearConstraint(c[None, :], -np.inf,
                                    best + max(slack, TIE * (1.0 + abs(best))))]
    spend = np.zeros(len(c))
    spend[:G] = p.cost
    x, _ = _solve(spend, cons, G, clock)
    chosen = np.flatnonzero(x[:G] > 0.5)
    info["ties"] = "least cost"
    if clock is not None and clock.short():
        info["ties"] = "least cost; fewest slots skipped: short of time"
        return chosen
    least = float(p.cost[chosen].sum())
    cons.append(LinearConstraint(spend[None, :], -np.inf, least + TIE * (1.0 + abs(least))))
    order = np.arange(G) if p.order is None else p.order
    rank = np.argsort(np.argsort(order, kind="stable"), kind="stable")
    slots = np.zeros(len(c))
    slots[:G] = p.mem.sum(axis=1) + (rank + 1.0) / ((G + 1.0) * (n + 1.0))
    try:
        x, _ = _solve(slots, cons, G, clock)
    except (OutOfTime, Infeasible):
        info["ties"] = "least cost; fewest slots stopped"
        return chosen
    info["ties"] = "least cost, fewest slots"
    return np.flatnonzero(x[:G] > 0.5)


def _price(p: Problem, duals, chunk=16_384) -> np.ndarray:
    """Reduced cost of every network under the LP duals (pi: cover rows, beta: budget).

    Overlapping: ``w + |beta| cost - sum_t max(0, pi_t - L_tg)`` (each y_tg priced at its
    best link dual). Partition: ``w + sum_t L_tg - sum_t pi_t + |beta| cost``.
    """
    pi, beta = duals
    if p.partition:
        return p.network_loss() - p.member_matrix @ pi - beta * p.cost
    out = p.w - beta * p.cost
    for s in range(0, len(p.cost), chunk):
        sl = slice(s, s + chunk)
        out[sl] -= np.maximum(pi[None, :] - p.L[sl], 0.0).sum(axis=1)
    return out


def _relaxation(p: Problem, start: np.ndarray, clock: SearchClock | None = None):
    """Column generation for the LP relaxation over every network.

    Returns ``(bound, duals, converged)``. The master LP has one column per (network g,
    served tasks A) with cost ``w_g + sum_{t in A} L_tg``, rows ``sum over columns serving t =
    1`` and the budget; it has the same optimum as the relaxation of the x/y model but only
    n + 1 rows. In partition mode A is always the whole network. Pricing picks, for each
    network, ``A = {t: L_tg < pi_t}``. Stopped by the clock, the bound is the Lagrangian one
    (master value plus n times the least reduced cost), still a valid lower bound.
    """
    clock = _no_clock(clock)
    G, n = p.mem.shape
    big = 10.0 * (np.abs(p.L[p.mem]).max() * n + np.abs(p.w).max() + 1.0)
    start = np.unique(np.asarray(start, dtype=np.intp))
    col_g = list(start)
    col_a = [p.mem[g] for g in start]
    seen = {(int(g), a.tobytes()) for g, a in zip(col_g, col_a)}
    per_round = max(100, 50 * n)
    while True:
        res = _master(p, col_g, col_a, big, clock)
        pi = res.eqlin.marginals
        beta = res.ineqlin.marginals[-1] if p.budget is not None else 0.0
        rc = _price(p, (pi, beta))
        neg = np.flatnonzero(rc < -1e-9 * (1.0 + abs(res.fun)))
        if len(neg) and clock.expired():
            clock.hit = True
            return float(res.fun + n * rc.min()), (pi, beta), False
        if len(neg) > per_round:
            neg = neg[np.argpartition(rc[neg], per_round)[:per_round]]
        added = 0
        for g in neg:
            a = p.mem[g] if p.partition else p.mem[g] & (p.L[g] < pi)
            key = (int(g), a.tobytes())
            if a.any() and key not in seen:
                seen.add(key)
                col_g.append(int(g))
                col_a.append(a)
                added += 1
        if not added:
            break
    if res.x[-n:].max() > 1e-7:
        raise Infeasible("even the linear relaxation has no solution")
    lower = float(pi.sum() + beta * (p.budget or 0.0))
    return lower, (pi, beta), True


def _master(p: Problem, col_g, col_a, big: float, clock: SearchClock):
    """The restricted master LP over columns (g, A), with one artificial column per task."""
    n = p.mem.shape[1]
    served = np.array(col_a, dtype=np.float64).T
    gs = np.array(col_g, dtype=np.intp)
    c = np.concatenate([p.w[gs] + np.where(served.T > 0, p.L[gs], 0.0).sum(axis=1),
                        np.full(n, big)])
    a_eq = np.hstack([served, np.eye(n)])
    kw = {}
    if p.budget is not None:
        kw = {"A_ub": np.concatenate([p.cost[gs], np.zeros(n)])[None, :], "b_ub": [p.budget]}
    if np.isfinite(clock.left()):
        kw["options"] = {"time_limit": max(clock.left(), 0.01)}
    res = linprog(c, A_eq=a_eq, b_eq=np.ones(n), bounds=(0, None), method="highs", **kw)
    if res.status == 1 and clock.expired():
        clock.hit = True
        raise OutOfTime("the LP relaxation stopped on the time limit")
    if res.status != 0:
        raise TaskrelError(f"grouping: the LP solver failed ({res.message})")
    return res


def exact_large(p: Problem, clock: SearchClock | None = None, info=None) -> np.ndarray:
    """Exact optimum over a large table: relaxation, incumbents, reduced-cost fixing, MILP.

    Any solution better than an incumbent of value ``upper`` uses only networks (and
    network-task pairs) whose reduced cost is at most ``upper - lower``. MILPs over the
    networks with reduced cost up to a growing threshold give better and better incumbents;
    once the threshold reaches ``upper - lower`` the last MILP is exact over the whole table.
    Stopped by the clock, it returns its best incumbent with ``info["proven"] = False``.
    """
    clock, info = _no_clock(clock), ({} if info is None else info)
    best, upper = _greedy_incumbent(p, clock)
    try:
        lower, duals, converged = _relaxation(p, _start_columns(p), clock)
    except OutOfTime:
        if best is None:
            raise
        info.update(lower_bound=None, incumbent=upper, proven=False, relaxation=False)
        return best
    clock.update(bound=lower, stage="LP relaxation")
    rc = _price(p, duals)
    scale = 1.0 + abs(lower)
    tol = 1e-7 * scale
    rounds, proven = 0, converged
    steps = iter([1e-9 * scale, 1e-4 * scale, 1e-3 * scale, 1e-2 * scale, 1e-1 * scale])
    delta = next(steps)
    while proven:
        rounds += 1
        small = np.flatnonzero(rc <= delta)
        if best is not None:
            small = np.union1d(small, best)
        step: dict = {}
        try:
            sol = small[solve_milp(p.take(small), keep_y=_keep(p, small, rc, duals, delta, best),
                              clock=clock, info=step)]
            value = _objective(p, sol)
            if value < upper:
                best, upper = sol, value
                clock.update(incumbent=upper, stage=f"MILP round {rounds}")
        except Infeasible:
            pass
        except OutOfTime:
            step["proven"] = False
        if not step.get("proven", True):
            proven = False
            break
        if best is not None and delta + tol >= upper - lower:
            break
        delta = next(steps, None)
        if delta is None and best is None:
            raise Infeasible("no choice within the budget")
        if delta is None or delta >= upper - lower + tol:
            delta = upper - lower + tol
    info.update(lower_bound=lower, incumbent=upper, milp_rounds=rounds, relaxation=converged)
    if not proven:
        if best is None:
            raise OutOfTime("no incumbent")
        info["proven"] = False
        return best
    # every choice within TIE of the optimum uses only networks (and pairs) priced below this
    delta = upper - lower + 2 * tol + TIE * (1.0 + abs(upper))
    small = np.union1d(np.flatnonzero(rc <= delta), best)
    try:
        final = small[solve_milp(p.take(small), keep_y=_keep(p, small, rc, duals, delta, best),
                            clock=clock, ties=True, info=info)]
    except OutOfTime:
        info["proven"] = False
        return best
    info["n_fixed"] = len(small)
    if not info["proven"] and _objective(p, final) > upper:
        return best
    return final


def _keep(p: Problem, small, rc, duals, delta, best):
    """Overlap mode: the (network, task) pairs whose reduced cost is within ``delta``."""
    if p.partition:
        return None
    keep_y = (rc[small, None] + np.maximum(p.L[small] - duals[0][None, :], 0.0)) <= delta
    if best is not None:
        keep_y[np.isin(small, best)] = True
    return keep_y


def _greedy_incumbent(p: Problem, clock: SearchClock):
    """A first incumbent, so one exists early; or (None, inf). Beam search of width 1 on
    tables up to ``GREEDY_CELLS`` cells; past that (its steps grow with the table) the
    cheapest greedy cover, whenever it fits the budget."""
    budget = np.inf if p.budget is None else p.budget
    try:
        if p.mem.size <= GREEDY_CELLS:
            L = p.L + np.where(p.mem, p.w[:, None] / np.maximum(p.mem.sum(1), 1)[:, None], 0.0)
            best = beam_search(L, p.mem, p.cost, budget, p.partition, 1)
        else:
            best = greedy_cover(p.mem, p.cost, p.partition)
            if best is None or p.cost[best].sum() > budget * (1 + 1e-9):
                return None, np.inf
    except Infeasible:
        return None, np.inf
    upper = _objective(p, best)
    clock.update(incumbent=upper, stage="greedy start")
    return best, upper


def _objective(p: Problem, chosen) -> float:
    if p.partition:
        return float(p.network_loss(chosen).sum())
    return float(p.w[chosen].sum() + p.L[chosen].min(axis=0).sum())


def _start_columns(p: Problem) -> np.ndarray:
    """Singletons, each task's three best networks, and the cheapest networks."""
    G, n = p.mem.shape
    start = [np.flatnonzero(p.mem.sum(axis=1) == 1)]
    k = min(3, G)
    for t in range(n):
        start.append(np.argpartition(p.L[:, t], k - 1)[:k])
    m = min(n, G)
    start.append(np.argpartition(p.cost, m - 1)[:m])
    return np.unique(np.concatenate(start))
