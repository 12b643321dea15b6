"""Solvers behind :class:`~taskrel.analysis.grouping.GroupingSearch` (internal).

Losses ``L`` are (networks x tasks) with ``inf`` outside the members; every solver returns the
row indices of the chosen networks or raises :class:`_Infeasible`. The exact MILP, its column
generation with reduced-cost fixing, the exhaustive dynamic programme and the beam search are
described in the module docstring of :mod:`taskrel.analysis.grouping`.

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

from taskrel.errors import TaskrelError

SOLVERS = ("milp", "exhaustive", "beam")
EPS = 1e-9
TIE = 1e-7  # objectives this close (relative to 1 + |objective|) are ties


class _Infeasible(Exception):
    pass


@dataclass
class _Problem:
    """Losses ``L`` (networks x tasks, inf outside members), membership, costs, a per-network
    objective term ``w``, the budget (None: no budget) and the mode."""

    L: np.ndarray
    mem: np.ndarray
    cost: np.ndarray
    w: np.ndarray
    budget: float | None
    partition: bool
    order: np.ndarray | None = None  # the rows' positions in the whole table (tie-breaks)

    def take(self, idx: np.ndarray) -> _Problem:
        order = np.arange(len(self.cost)) if self.order is None else self.order
        return _Problem(self.L[idx], self.mem[idx], self.cost[idx], self.w[idx], self.budget,
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
def _model(p: _Problem, keep_y=None, artificial=0.0):
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


def _solve(c, cons, G, time_limit):
    integrality = np.zeros(len(c))
    integrality[:G] = 1
    options = {"mip_rel_gap": 1e-9}
    if time_limit:
        options["time_limit"] = float(time_limit)
    res = milp(c, constraints=cons, integrality=integrality, bounds=Bounds(0, 1), options=options)
    if res.x is None:
        if res.status == 1:
            raise TaskrelError(f"grouping: the MILP hit its time limit ({res.message})")
        raise _Infeasible(res.message)
    if res.status != 0:
        raise TaskrelError(f"grouping: the MILP solver stopped early ({res.message})")
    return res.x


def _milp(p: _Problem, keep_y=None, time_limit=None, ties: bool = False,
          slack: float = 0.0) -> np.ndarray:
    """Exact MILP on these columns; returns the chosen column indices. With ``ties``, the
    choice is the lexicographic optimum of the module docstring (three solves); ``slack``
    widens "the same objective" to ``slack`` above the optimum (the cheapest choice within
    it is then taken)."""
    c, a_eq, b_eq, a_ub, b_ub = _model(p, keep_y)
    G, n = p.mem.shape
    cons = [LinearConstraint(a_eq, b_eq, b_eq)]
    if a_ub.shape[0]:
        cons.append(LinearConstraint(a_ub, -np.inf, b_ub))
    x = _solve(c, cons, G, time_limit)
    if not ties:
        return np.flatnonzero(x[:G] > 0.5)
    best = _objective(p, np.flatnonzero(x[:G] > 0.5))
    cons.append(LinearConstraint(c[None, :], -np.inf,
                                 best + max(slack, TIE * (1.0 + abs(best)))))
    spend = np.zeros(len(c))
    spend[:G] = p.cost
    x = _solve(spend, cons, G, time_limit)
    least = float(p.cost[x[:G] > 0.5].sum())
    cons.append(LinearConstraint(spend[None, :], -np.inf, least + TIE * (1.0 + abs(least))))
    order = np.arange(G) if p.order is None else p.order
    rank = np.argsort(np.argsort(order, kind="stable"), kind="stable")
    slots = np.zeros(len(c))
    slots[:G] = p.mem.sum(axis=1) + (rank + 1.0) / ((G + 1.0) * (n + 1.0))
    x = _solve(slots, cons, G, time_limit)
    return np.flatnonzero(x[:G] > 0.5)


def _price(p: _Problem, duals, chunk=16_384) -> np.ndarray:
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


def _relaxation(p: _Problem, start: np.ndarray):
    """Column generation for the LP relaxation over every network; returns (bound, duals).

    The master LP has one column per (network g, served tasks A) with cost
    ``w_g + sum_{t in A} L_tg``, rows ``sum over columns serving t = 1`` and the budget; it has
    the same optimum as the relaxation of the x/y model but only n + 1 rows. In partition mode
    A is always the whole network. Pricing picks, for each network, ``A = {t: L_tg < pi_t}``.
    """
    G, n = p.mem.shape
    big = 10.0 * (np.abs(p.L[p.mem]).max() * n + np.abs(p.w).max() + 1.0)
    start = np.unique(np.asarray(start, dtype=np.intp))
    col_g = list(start)
    col_a = [p.mem[g] for g in start]
    seen = {(int(g), a.tobytes()) for g, a in zip(col_g, col_a)}
    per_round = max(100, 50 * n)
    while True:
        served = np.array(col_a, dtype=np.float64).T
        gs = np.array(col_g, dtype=np.intp)
        c = np.concatenate([p.w[gs] + np.where(served.T > 0, p.L[gs], 0.0).sum(axis=1),
                            np.full(n, big)])
        a_eq = np.hstack([served, np.eye(n)])
        kw = {}
        if p.budget is not None:
            kw = {"A_ub": np.concatenate([p.cost[gs], np.zeros(n)])[None, :],
                  "b_ub": [p.budget]}
        res = linprog(c, A_eq=a_eq, b_eq=np.ones(n), bounds=(0, None), method="highs", **kw)
        if res.status != 0:
            raise TaskrelError(f"grouping: the LP solver failed ({res.message})")
        pi = res.eqlin.marginals
        beta = res.ineqlin.marginals[-1] if p.budget is not None else 0.0
        rc = _price(p, (pi, beta))
        neg = np.flatnonzero(rc < -1e-9 * (1.0 + abs(res.fun)))
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
        raise _Infeasible("even the linear relaxation has no solution")
    lower = float(pi.sum() + beta * (p.budget or 0.0))
    return lower, (pi, beta)


def _exact_large(p: _Problem, time_limit=None, info=None) -> np.ndarray:
    """Exact optimum over a large table: relaxation, incumbents, reduced-cost fixing, MILP.

    Any solution better than an incumbent of value ``upper`` uses only networks (and
    network-task pairs) whose reduced cost is at most ``upper - lower``. MILPs over the
    networks with reduced cost up to a growing threshold give better and better incumbents;
    once the threshold reaches ``upper - lower`` the last MILP is exact over the whole table.
    """
    lower, duals = _relaxation(p, _start_columns(p))
    rc = _price(p, duals)
    scale = 1.0 + abs(lower)
    tol = 1e-7 * scale
    best, upper, rounds = None, np.inf, 0
    steps = iter([1e-9 * scale, 1e-4 * scale, 1e-3 * scale, 1e-2 * scale, 1e-1 * scale])
    delta = next(steps)
    while True:
        rounds += 1
        small = np.flatnonzero(rc <= delta)
        if best is not None:
            small = np.union1d(small, best)
        keep_y = None
        if not p.partition:
            keep_y = (rc[small, None] + np.maximum(p.L[small] - duals[0][None, :], 0.0)) <= delta
            if best is not None:
                keep_y[np.isin(small, best)] = True
        try:
            sol = small[_milp(p.take(small), keep_y=keep_y, time_limit=time_limit)]
            value = _objective(p, sol)
            if value < upper:
                best, upper = sol, value
        except _Infeasible:
            pass
        if best is not None and delta + tol >= upper - lower:
            break
        delta = next(steps, None)
        if delta is None and best is None:  # the cheapest covering choice as the incumbent
            best = _min_cost_columns(p.mem, p.cost, p.partition)
            if p.budget is not None and p.cost[best].sum() > p.budget + EPS:
                raise _Infeasible("budget")
            upper = _objective(p, best)
        if delta is None or (best is not None and delta >= upper - lower + tol):
            delta = upper - lower + tol
    # every choice within TIE of the optimum uses only networks (and pairs) priced below this
    delta = upper - lower + 2 * tol + TIE * (1.0 + abs(upper))
    small = np.union1d(np.flatnonzero(rc <= delta), best)
    keep_y = None
    if not p.partition:
        keep_y = (rc[small, None] + np.maximum(p.L[small] - duals[0][None, :], 0.0)) <= delta
        keep_y[np.isin(small, best)] = True
    best = small[_milp(p.take(small), keep_y=keep_y, time_limit=time_limit, ties=True)]
    if info is not None:
        info.update(lower_bound=lower, incumbent=upper, n_fixed=len(small), milp_rounds=rounds)
    return best


def _objective(p: _Problem, chosen) -> float:
    if p.partition:
        return float(p.network_loss(chosen).sum())
    return float(p.w[chosen].sum() + p.L[chosen].min(axis=0).sum())


def _start_columns(p: _Problem) -> np.ndarray:
    """Singletons, each task's three best networks, and the cheapest networks."""
    G, n = p.mem.shape
    start = [np.flatnonzero(p.mem.sum(axis=1) == 1)]
    k = min(3, G)
    for t in range(n):
        start.append(np.argpartition(p.L[:, t], k - 1)[:k])
    m = min(n, G)
    start.append(np.argpartition(p.cost, m - 1)[:m])
    return np.unique(np.concatenate(start))


def _min_cost_columns(mem, cost, partition) -> np.ndarray:
    """Cheapest set of networks that covers (or partitions) the tasks, exactly."""
    zero = np.where(mem, 0.0, np.inf)
    p = _Problem(zero, mem, cost, cost, None, partition)
    try:
        if len(cost) <= 300:
            return _milp(p)
        return _exact_large(p)
    except _Infeasible:
        raise TaskrelError(
            "grouping: no choice of candidate networks partitions the tasks "
            "(each task in exactly one network)"
        ) from None


# ---------------------------------------------------------------------- exhaustive DP
def _pareto(entries):
    entries.sort(key=lambda e: (e[0], e[1]))
    out, best = [], np.inf
    for e in entries:
        if e[1] < best - EPS:
            out.append(e)
            best = e[1]
    return out


def _exhaustive(L, mem, cost, budget, partition):
    G, n = mem.shape
    if n > 12:
        raise TaskrelError(f"grouping: the exhaustive solver handles at most 12 tasks, got {n}")
    limit = np.inf if budget is None else budget + EPS
    bits = 1 << np.arange(n)
    serve: dict[int, list] = {}
    for g in range(G):
        full = int(mem[g] @ bits)
        if cost[g] > limit:
            continue
        sub = full
        while sub:
            if not partition or sub == full:
                loss = float(sum(L[g, t] for t in range(n) if sub >> t & 1))
                serve.setdefault(sub, []).append((float(cost[g]), loss, g))
            sub = (sub - 1) & full
    serve = {a: _pareto(v) for a, v in serve.items()}
    table: list[list] = [[] for _ in range(1 << n)]
    table[0] = [(0.0, 0.0, None)]
    for mask in range(1, 1 << n):
        low = mask & -mask
        rest_bits = mask ^ low
        cand = []
        sub = rest_bits
        while True:
            block = sub | low
            for c1, l1, g in serve.get(block, ()):
                for k, (c2, l2, _) in enumerate(table[mask ^ block]):
                    if c1 + c2 <= limit:
                        cand.append((c1 + c2, l1 + l2, (g, mask ^ block, k)))
            if not sub:
                break
            sub = (sub - 1) & rest_bits
        table[mask] = _pareto(cand)
    final = table[(1 << n) - 1]
    if not final:
        raise _Infeasible("no choice of networks fits")
    entry = min(final, key=lambda e: (e[1], e[0]))
    chosen, mask = set(), (1 << n) - 1
    while entry[2] is not None:
        g, mask, k = entry[2]
        chosen.add(g)
        entry = table[mask][k]
    return np.array(sorted(chosen), dtype=np.intp)


# ---------------------------------------------------------------------- beam search
def _beam(L, mem, cost, budget, partition, width):
    G, n = mem.shape
    fallback = np.where(np.isfinite(L), L, -np.inf).max(axis=0) + 1.0
    cheapest = cost.min()
    start = (frozenset(), 0.0, np.full(n, np.inf))
    states, best, best_obj, seen = [start], None, np.inf, set()
    for _ in range(G):
        children = []
        for chosen, spent, cur in states:
            ok = cost + spent <= budget + EPS
            if partition:
                ok &= ~(mem & np.isfinite(cur)[None, :]).any(axis=1)
            ok[list(chosen)] = False
            base = np.minimum(cur, fallback)
            score = np.full(G, np.inf)
            for s in range(0, G, 100_000):
                sl = slice(s, s + 100_000)
                score[sl] = np.minimum(base[None, :], L[sl]).sum(axis=1)
            score[~ok | (score >= base.sum() - EPS)] = np.inf
            k = min(width, int(np.isfinite(score).sum()))
            for g in np.argpartition(score, k - 1)[:k] if k else []:
                key = chosen | {int(g)}
                if key in seen:
                    continue
                seen.add(key)
                children.append((float(score[g]), key, spent + cost[g], np.minimum(cur, L[g])))
        if not children:
            break
        children.sort(key=lambda ch: (ch[0], ch[2]))
        states = []
        for _, key, spent, cur in children:
            covered = np.isfinite(cur).all()
            if covered and cur.sum() < best_obj - EPS:
                best, best_obj = key, cur.sum()
            if covered or budget - spent >= cheapest - EPS:
                states.append((key, spent, cur))
            if len(states) >= width:
                break
    if best is None:
        raise _Infeasible("beam search found no covering choice within the budget")
    return np.array(sorted(best), dtype=np.intp)
