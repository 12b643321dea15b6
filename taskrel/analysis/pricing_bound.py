"""Proven pricing for quadratic reduced costs, and the Lagrangian bound it gives.

Column generation (:mod:`taskrel.analysis.colgen`) proves nothing while its pricing is a
heuristic: a group of negative reduced cost may have been missed. For a model whose reduced
cost is, group size by group size, a quadratic function of the membership vector ``z``
(an :class:`~taskrel.analysis.AffinityGroupModel`, whose members gain the mean of their
mates' affinities; any sum- or mean-of-effects model)::

    rc_k(z) = const_k + lin_k . z + sum_{s < t} Q_k[s, t] z_s z_t,   sum_t z_t = k

:func:`certify` bounds ``min rc_k`` from below for every size ``k``, and returns the groups it
met on the way (the columns a heuristic missed):

* **row bound** (cheap, always): ``sum_{s<t} Q z_s z_t = 1/2 sum_t z_t sum_{s != t} Q[t, s]
  z_s``, and each inner sum is at least the sum of the ``k - 1`` smallest entries of row
  ``t``; so ``rc_k >= const_k +`` the sum of the ``k`` smallest ``lin[t] + 1/2 *
  (k - 1 smallest of Q[t])``;
* **enumeration** where a size has at most ``enumerate_up_to`` groups (exact);
* **branch and bound** (:mod:`taskrel.analysis.group_branch`) otherwise, for the sizes the
  row bound leaves below zero: exact, or a proof that the size has no group below ``-tol``,
  when it finishes in its time, and a valid bound when it does not;
* **MILP** where branch and bound did not finish. Small groups (``k <=
  n / 3``): the products ``y_st`` linearised (``y_st <= z_s``, ``y_st <= z_t``) with the
  reformulation rows ``sum_s y_st = (k - 1) z_t``, which make ``y`` the product at binary
  ``z``. Large groups: Glover's compact form, ``w_t`` standing for ``z_t r_t`` with ``r_t =
  sum_s Q[t, s] z_s``: ``w_t >= L_t z_t`` and ``w_t >= r_t - U_t (1 - z_t)``, where ``L_t``
  is the sum of row ``t``'s ``k - 1`` smallest entries and ``U_t`` of its ``k`` largest
  (measured on a planted affinity at 100 tasks, the first proves small sizes fastest, the
  second gives far tighter bounds on large ones within seconds). HiGHS's dual bound is valid
  even when the solve stops at its time limit, and its best group is a column.

:func:`lagrangian_bound` turns the size bounds into a bound on the integer optimum: for the
restricted master's value ``v`` and any solution ``x`` of the full problem, ``c.x >= v +
sum_k min(0, b_k) X_k`` where ``X_k`` is the number of chosen networks of ``k`` tasks; the
least of the right side over ``sum_k k X_k <= n`` and ``sum_k cost_k X_k <= budget`` is a
small LP.

>>> Q = np.array([[0, -2.0, 0], [-2.0, 0, 1.0], [0, 1.0, 0]])
>>> form = lambda k: (0.0, np.array([0.5, 0.5, -0.2]), Q)
>>> cert = certify(form, 3, 1, 3, time_limit=5)
>>> cert.bounds.round(2).tolist(), cert.exact, cert.groups[0].astype(int).tolist()
([-0.2, -1.0, -0.2], True, [1, 1, 0])
>>> round(lagrangian_bound(2.0, cert.bounds, 1, np.array([np.inf, 1, 1, 1]), 2.0, 3), 6)  # 2 - 1.5
0.5
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import combinations
from math import comb

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from taskrel.analysis.group_branch import least_group
from taskrel.tables.pricing import Form, group_cost

ENUMERATE_UP_TO = 20_000  # groups of one size listed (exact) before branch and bound
MILP_SECONDS = 0.5  # the least time one size's MILP is given while time is left


@dataclass
class Certificate:
    """What :func:`certify` proved: ``bounds[i]`` is a lower bound on the least reduced cost
    of a group of ``min_size + i`` tasks (``exact_sizes[i]`` where it is settled: attained,
    or proven to be at least ``-tol``), ``groups`` the best groups met (membership rows,
    lowest reduced cost first) with their ``costs``."""

    min_size: int
    bounds: np.ndarray
    exact_sizes: np.ndarray
    groups: np.ndarray
    costs: np.ndarray
    how: dict
    forms: dict = field(default_factory=dict, repr=False)
    tries: dict = field(default_factory=dict, repr=False)

    @property
    def exact(self) -> bool:
        return bool(self.exact_sizes.all())

    @property
    def least(self) -> float:
        return float(self.bounds.min())

    def settle(self, i: int, seconds: float, n: int, keep: int, enumerate_up_to: int,
               tol: float = 0.0) -> float:
        """Bound size ``min_size + i`` by listing its groups, else by branch and bound and,
        if that does not finish, a MILP (``seconds`` for both); returns the least reduced
        cost of the groups met (inf if none)."""
        k = self.min_size + i
        const, lin, Q = self.forms[k]
        if comb(n, k) <= enumerate_up_to:
            self.bounds[i], g, c = _enumerate(const, lin, Q, n, k, keep)
            self.exact_sizes[i] = True
            self._add(g, c)
            self.how["enumerated"] += 1
            return float(c[0])
        self.tries[i] = self.tries.get(i, 0) + 1
        bound, g, done = least_group(const, lin, Q, k, tol, 0.6 * seconds)
        self.bounds[i] = max(self.bounds[i], bound)
        c = np.inf if g is None else group_cost(const, lin, Q, g)
        if g is not None:
            self._add(g[None, :], np.array([c]))
        if done:  # exact, or proven to be at least -tol
            self.exact_sizes[i] = True
            self.how["branched"] += 1
            return c
        bound, g, proven = milp_bound(const, lin, Q, n, k, 0.4 * seconds)
        self.how["milp"] += 1
        self.how["milp_proven"] += proven
        self.bounds[i] = max(self.bounds[i], bound)
        if g is None:
            return c
        c_milp = group_cost(const, lin, Q, g)
        self._add(g[None, :], np.array([c_milp]))
        if proven:
            self.bounds[i], self.exact_sizes[i] = c_milp, True
        return min(c, c_milp)

    def _add(self, rows, costs) -> None:
        rows = np.concatenate([self.groups.reshape(-1, rows.shape[1]), rows])
        costs = np.concatenate([self.costs, costs])
        order = np.argsort(costs, kind="stable")
        self.groups, self.costs = rows[order], costs[order]


def row_bound(const: float, lin: np.ndarray, Q: np.ndarray, k: int) -> float:
    """A lower bound on ``min rc_k`` from each row's ``k - 1`` smallest entries (module
    docstring); exact for ``k <= 1``."""
    n = len(lin)
    if k <= 1:
        return float(const + np.sort(lin)[:k].sum())
    off = np.where(np.eye(n, dtype=bool), np.inf, Q)
    part = np.partition(off, k - 2, axis=1)[:, :k - 1].sum(axis=1)
    per = lin + 0.5 * part
    return float(const + np.partition(per, k - 1)[:k].sum())


def _enumerate(const, lin, Q, n: int, k: int, keep: int):
    """Every group of ``k`` tasks; past ``n / 2`` listed by the ``n - k`` tasks left out
    (``rc(all - J) = const + sum lin - sum_J lin + P - sum_{t in J} R_t + P_J``, with ``P``
    the sum over all pairs, ``R_t`` row ``t``'s sum and ``P_J`` the pairs inside ``J``), so
    the work is that of the smaller side."""
    j = min(k, n - k)
    idx = np.array(list(combinations(range(n), j)), dtype=np.intp).reshape(-1, j) if j else \
        np.zeros((1, 0), dtype=np.intp)
    cost = lin[idx].sum(axis=1)
    if j > 1:
        a, b = np.triu_indices(j, 1)
        cost = cost + Q[idx[:, a], idx[:, b]].sum(axis=1)
    if j < k:  # idx are the tasks left out
        off = np.where(np.eye(n, dtype=bool), 0.0, Q)
        rows = off.sum(axis=1)
        cost = lin.sum() + np.triu(off, 1).sum() - lin[idx].sum(axis=1) - rows[idx].sum(axis=1) \
            + (cost - lin[idx].sum(axis=1))
    cost = const + cost
    best = np.argsort(cost, kind="stable")[:keep]
    out = np.zeros((len(best), n), dtype=bool)
    out[np.arange(len(best))[:, None], idx[best]] = True
    if j < k:
        out = ~out
    return float(cost[best[0]]), out, cost[best]


def milp_bound(const, lin, Q, n: int, k: int, time_limit: float):
    """(dual bound, best group or None, proven) of ``min rc_k`` by a linearised MILP."""
    if 3 * k > n:
        return _solve(*_glover(lin, Q, n, k), const, n, k, time_limit)
    return _solve(*_products(lin, Q, n, k), const, n, k, time_limit)


def _glover(lin, Q, n: int, k: int):
    """Glover's form over (z, w): objective, constraint matrix, row bounds, variable bounds."""
    off = np.where(np.eye(n, dtype=bool), np.inf, Q)
    srt = np.sort(off, axis=1)[:, :n - 1]
    low, high = srt[:, :k - 1].sum(axis=1), srt[:, n - 1 - min(k, n - 1):].sum(axis=1)
    q = np.where(np.eye(n, dtype=bool), 0.0, Q)
    eye = np.eye(n)
    A = np.vstack([np.hstack([-np.diag(low), eye]),  # w_t - L_t z_t >= 0
                   np.hstack([-q - np.diag(high), eye]),  # w_t - r_t - U_t z_t >= -U_t
                   np.r_[np.ones(n), np.zeros(n)][None, :]])  # sum_t z_t = k
    lo = np.r_[np.zeros(n), -high, [k]]
    hi = np.r_[np.full(2 * n, np.inf), [k]]
    var = Bounds(np.r_[np.zeros(n), np.full(n, -np.inf)], np.r_[np.ones(n), np.full(n, np.inf)])
    return np.r_[lin, np.full(n, 0.5)], sparse.csr_matrix(A), lo, hi, var


def _products(lin, Q, n: int, k: int):
    """The linearised products with reformulation rows, over (z, y)."""
    a, b = np.triu_indices(n, 1)
    p = len(a)
    r = np.arange(p)
    ones = np.ones(p)
    upper = sparse.vstack([  # y_ab - z_a <= 0 and y_ab - z_b <= 0
        sparse.coo_matrix((np.r_[ones, -ones], (np.r_[r, r], np.r_[n + r, a])), shape=(p, n + p)),
        sparse.coo_matrix((np.r_[ones, -ones], (np.r_[r, r], np.r_[n + r, b])), shape=(p, n + p))])
    # sum_{s != t} y_st - (k - 1) z_t = 0 for every t, and sum_t z_t = k
    rlt = sparse.coo_matrix((np.r_[ones, ones, np.full(n, -(k - 1.0)), np.ones(n)],
                             (np.r_[a, b, np.arange(n), np.full(n, n)],
                              np.r_[n + r, n + r, np.arange(n), np.arange(n)])),
                            shape=(n + 1, n + p))
    A = sparse.vstack([upper, rlt]).tocsr()
    lo = np.r_[np.full(2 * p, -np.inf), np.zeros(n), [k]]
    hi = np.r_[np.zeros(2 * p), np.zeros(n), [k]]
    return np.r_[lin, Q[a, b]], A, lo, hi, Bounds(0, 1)


def _solve(c, A, lo, hi, var, const, n: int, k: int, time_limit: float):
    integrality = np.r_[np.ones(n), np.zeros(len(c) - n)]
    res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=integrality,
               bounds=var, options={"time_limit": max(time_limit, 0.05), "mip_rel_gap": 1e-9})
    bound = getattr(res, "mip_dual_bound", None)
    bound = -np.inf if bound is None or not np.isfinite(bound) else float(bound) + const
    group = None if res.x is None else res.x[:n] > 0.5
    if group is not None and group.sum() != k:
        group = None
    return bound, group, bool(res.status == 0)


def certify(form: Form, n: int, min_size: int, max_size: int, time_limit: float,
            tol: float = 0.0, keep: int = 8, enough: int | None = None,
            enumerate_up_to: int = ENUMERATE_UP_TO) -> Certificate:
    """Lower bounds on the least reduced cost of every group size, and the best groups met.

    ``form(k)`` gives ``(const, lin, Q)`` for groups of ``k`` tasks. Sizes whose row bound is
    at least ``-tol`` are settled by it; the others, most negative row bound first, are
    enumerated (at most ``enumerate_up_to`` groups) or solved by a MILP, the time left shared
    among the sizes still to do (``time_limit`` seconds for the whole call, each MILP given at
    least ``MILP_SECONDS`` while time is left).
    With ``enough``, it stops once that many sizes gave a group below ``-tol`` (pricing: the
    sizes not reached keep their row bound, so every bound stays valid).
    """
    start = time.perf_counter()
    sizes = np.arange(int(min_size), min(int(max_size), n) + 1)
    cert = Certificate(int(min_size), np.empty(len(sizes)), sizes <= 1, np.zeros((0, n), bool),
                       np.zeros(0), {"row": 0, "enumerated": 0, "branched": 0, "milp": 0,
                        "milp_proven": 0})
    for i, k in enumerate(sizes):
        const, lin, Q = form(int(k))
        cert.forms[k] = (float(const), np.asarray(lin, dtype=float), np.asarray(Q, dtype=float))
        cert.bounds[i] = row_bound(*cert.forms[k], int(k))
        if k <= 1:
            cert.settle(i, 0.0, n, keep, enumerate_up_to=n)
            cert.how["enumerated"] -= 1
    todo = [i for i in np.argsort(cert.bounds) if cert.bounds[i] < -tol
            and not cert.exact_sizes[i]]
    hits = 0
    for j, i in enumerate(todo):
        if enough is not None and hits >= enough:
            break
        left = time_limit - (time.perf_counter() - start)
        if left <= 0.05 and comb(n, int(sizes[i])) > enumerate_up_to:
            continue
        share = max(left / (len(todo) - j), min(left, MILP_SECONDS))
        hits += cert.settle(i, share, n, keep, enumerate_up_to, tol) < -tol
    cert.how["row"] = int(len(sizes) - len(cert.tries) - cert.how["enumerated"]
                          - (sizes <= 1).sum())
    return cert


def tighten(cert: Certificate, cost_of_size: np.ndarray, budget: float, n: int,
            time_limit: float, keep: int = 8, tol: float = 0.0) -> Certificate:
    """Spend ``time_limit`` seconds where the Lagrangian bound is decided: re-solve, with
    twice the time each round, the sizes that the bound's small LP uses and that are not yet
    exact, until they all are or time is up (the bound then cannot rise further)."""
    start = time.perf_counter()
    while True:
        _, X = _lagrangian(cert.bounds, cert.min_size, cost_of_size, budget, n)
        open_ = [i for i in np.flatnonzero(X > 1e-12) if not cert.exact_sizes[i]]
        left = time_limit - (time.perf_counter() - start)
        if not open_ or left <= 0.05:
            return cert
        for i in open_:
            seconds = MILP_SECONDS * 2 ** (cert.tries.get(i, 0) + 1)
            cert.settle(i, min(seconds, left / len(open_)), n, keep, ENUMERATE_UP_TO, tol)


def _lagrangian(bounds, min_size: int, cost_of_size, budget: float, n: int):
    """(least of ``sum_k min(0, b_k) X_k``, the ``X`` attaining it) under the size and budget
    limits (module docstring)."""
    r = np.minimum(np.asarray(bounds, dtype=float), 0.0)
    X = np.zeros(len(r))
    if not (r < 0).any():
        return 0.0, X
    if not np.isfinite(r).all():
        return -np.inf, X
    sizes = np.arange(min_size, min_size + len(r))
    cost = np.asarray(cost_of_size, dtype=float)[sizes]
    ok = np.isfinite(cost)
    res = linprog(r[ok], A_ub=np.vstack([sizes[ok], cost[ok]]), b_ub=[n, budget],
                  bounds=(0, None), method="highs")
    if res.status != 0:  # sum_k X_k <= n / min_size <= n
        X[int(np.argmin(r))] = n
        return float(n * r.min()), X
    X[ok] = res.x
    return float(res.fun), X


def lagrangian_bound(value: float, bounds: np.ndarray, min_size: int, cost_of_size: np.ndarray,
                     budget: float, n: int) -> float:
    """A lower bound on the integer optimum from the master's value and the size bounds
    (module docstring); ``bounds[i]`` is for groups of ``min_size + i`` tasks."""
    return float(value + _lagrangian(bounds, min_size, cost_of_size, budget, n)[0])
