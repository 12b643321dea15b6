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
* **enumeration** where a size has at most ``enumerate_up_to`` groups (exact;
  :func:`~taskrel.tables.pricing.least_listed`, shared with exact pricing);
* **branch and bound** (:mod:`taskrel.analysis.group_branch`) otherwise, for the sizes the
  row bound leaves below zero: exact, or a proof that the size has no group below ``-tol``,
  when it finishes in its time, and a valid bound when it does not;
* **MILP** where branch and bound did not finish
  (:func:`~taskrel.tables.pricing.least_by_milp`, shared with exact pricing: linearised
  products for small groups, Glover's compact form for large ones). HiGHS's dual bound is
  valid even when the solve stops at its time limit, and its best group is a column.

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
from math import comb

import numpy as np
from scipy.optimize import linprog

from taskrel.analysis.group_branch import least_group
from taskrel.tables.pricing import Form, group_cost, least_by_milp, least_listed

# Groups of one size listed (exact) before branch and bound. Lower than exact pricing's limit
# (taskrel.tables.pricing.ENUMERATE_UP_TO), whose fallback is a MILP that may run out of time:
# here branch and bound, exact too, usually finishes at once (it cuts at -tol), and one group
# per size is enough.
ENUMERATE_UP_TO = 20_000
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
            self.how["enumerated"] += 1
            return self._list(i, keep)
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
        bound, g, proven = least_by_milp(const, lin, Q, k, max(0.4 * seconds, 0.05))
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

    def _list(self, i: int, keep: int) -> float:
        """Settle size ``min_size + i`` by listing its groups; returns the least reduced cost."""
        k = self.min_size + i
        costs, rows = least_listed(*self.forms[k], k, keep)
        self.bounds[i], self.exact_sizes[i] = costs[0], True
        self._add(rows, costs)
        return float(costs[0])

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
        if k <= 1:  # listed, not counted: the size needs no proof
            cert._list(i, keep)
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
