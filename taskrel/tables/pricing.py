"""Exact pricing for group-value models whose values are quadratic in membership.

The column-generation search asks a group-value model for the groups ``g`` (at most
``max_size`` tasks) with the smallest reduced cost (:mod:`taskrel.tables.group_model`). For a
sum- or mean-of-effects model and a fixed group size ``k``, every member's value is its base
plus a sum of its mates' effects, so the reduced cost of ``g`` is a quadratic function of its
membership vector ``z``::

    cost_k(z) = const_k + sum_t lin_k[t] z_t + sum_{s < t} Q_k[s, t] z_s z_t,   sum_t z_t = k

:func:`price_quadratic` minimises it for every size: by enumerating every group of that size
when there are few (:func:`least_listed`: exact, and it returns the true best ``n_groups``),
otherwise by a MILP with linearised products (:func:`least_by_milp`; HiGHS via
:func:`scipy.optimize.milp`) under one time limit for the whole call, beside a greedy-and-swap
local search whose group is kept when the MILP finds none better in time. It says whether every
size was solved to proven optimality. The proven bound of column generation
(:mod:`taskrel.analysis.pricing_bound`) lists and solves one size with the same two functions.

>>> import numpy as np
>>> Q = np.array([[0, -2.0, 0], [-2.0, 0, 1.0], [0, 1.0, 0]])
>>> form = lambda k: (0.0, np.array([0.5, 0.5, -0.2]), Q)
>>> groups, exact = price_quadratic(form, 3, 3, n_groups=2)
>>> groups.astype(int).tolist(), exact
([[1, 1, 0], [0, 0, 1]], True)
"""
from __future__ import annotations

import time
from collections.abc import Callable
from itertools import combinations
from math import comb

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from taskrel.errors import TaskrelError

# Groups of one size listed before a MILP is used instead. Higher than the proven bound's limit
# (taskrel.analysis.pricing_bound), whose fallback is an exact branch and bound that often
# finishes at once; here the fallback is a MILP that may run out of time, and listing also
# gives the n_groups best groups of the size rather than one.
ENUMERATE_UP_TO = 50_000
Form = Callable[[int], tuple[float, np.ndarray, np.ndarray]]


def least_listed(const: float, lin: np.ndarray, Q: np.ndarray, k: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``keep`` groups of ``k`` tasks with the least ``cost_k``, by listing every group.

    Returns ``(costs, rows)``, best first (ties in the lexicographic order of the groups), rows
    boolean ``(m, n)``. Past ``n / 2`` the groups are listed by the ``n - k`` tasks left out
    (``cost(all - J) = const + sum lin - sum_J lin + P - sum_{t in J} R_t + P_J``, with ``P`` the
    sum over all pairs, ``R_t`` row ``t``'s sum and ``P_J`` the pairs inside ``J``), so the work is
    that of the smaller side; the caller decides how many groups are too many to list.

    >>> Q = np.array([[0, -2.0, 0], [-2.0, 0, 1.0], [0, 1.0, 0]])
    >>> costs, rows = least_listed(0.0, np.array([0.5, 0.5, -0.2]), Q, 2, keep=2)
    >>> costs.round(2).tolist(), rows.astype(int).tolist()
    ([-1.0, 0.3], [[1, 1, 0], [1, 0, 1]])
    """
    n = len(lin)
    j = min(k, n - k)
    idx = np.array(list(combinations(range(n), j)), dtype=np.intp).reshape(-1, j) if j else \
        np.zeros((1, 0), dtype=np.intp)
    if j < k:  # left-out sets in reverse lexicographic order: their groups in lexicographic order
        idx = idx[::-1]
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
    return cost[best], ~out if j < k else out


def least_by_milp(const: float, lin: np.ndarray, Q: np.ndarray, k: int, time_limit: float
                  ) -> tuple[float, np.ndarray | None, bool]:
    """``(dual bound, best group or None, proven)`` of the least ``cost_k`` by a linearised MILP.

    Small groups (``k <= n / 3``): the products ``y_st`` linearised (``y_st <= z_s``, ``y_st <=
    z_t``) with the reformulation rows ``sum_s y_st = (k - 1) z_t``, which make ``y`` the product
    at binary ``z``. Large groups: Glover's compact form, ``w_t`` standing for ``z_t r_t`` with
    ``r_t = sum_s Q[t, s] z_s``: ``w_t >= L_t z_t`` and ``w_t >= r_t - U_t (1 - z_t)``, where
    ``L_t`` is the sum of row ``t``'s ``k - 1`` smallest entries and ``U_t`` of its ``k`` largest
    (measured on a planted affinity at 100 tasks, the first proves small sizes fastest, the
    second gives far tighter bounds on large ones within seconds). HiGHS (relative gap 1e-9) runs
    for ``time_limit`` seconds; its dual bound is valid even when it stops at that limit.

    >>> Q = np.array([[0, -2.0, 0], [-2.0, 0, 1.0], [0, 1.0, 0]])
    >>> bound, group, proven = least_by_milp(0.0, np.array([0.5, 0.5, -0.2]), Q, 2, 5.0)
    >>> round(bound, 6), group.astype(int).tolist(), proven
    (-1.0, [1, 1, 0], True)
    """
    n = len(lin)
    build = _glover if 3 * k > n else _products
    c, A, lo, hi, var = build(np.asarray(lin, dtype=float), np.asarray(Q, dtype=float), n, k)
    res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=np.r_[np.ones(n), np.zeros(len(c) - n)],
               bounds=var, options={"time_limit": time_limit, "mip_rel_gap": 1e-9})
    bound = getattr(res, "mip_dual_bound", None)
    bound = -np.inf if bound is None or not np.isfinite(bound) else float(bound) + const
    group = None if res.x is None else res.x[:n] > 0.5
    if group is not None and group.sum() != k:
        group = None
    return bound, group, bool(res.status == 0)


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


def group_cost(const: float, lin: np.ndarray, Q: np.ndarray, z: np.ndarray) -> float:
    """``cost_k`` of one boolean membership row ``z``."""
    idx = np.flatnonzero(z)
    return float(const + lin[idx].sum() + np.triu(Q[np.ix_(idx, idx)], 1).sum())


def _members(z: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.flatnonzero(z))


def _local(const, lin, Q, n: int, k: int, rng: np.random.Generator, starts: int = 4) -> tuple[float, tuple[int, ...]]:
    """Greedy build then best swaps, from a few starts: a good group of k (no proof)."""
    best = (np.inf, ())
    for s in range(starts):
        z = np.zeros(n, dtype=bool)
        z[int(np.argmin(lin)) if s == 0 else int(rng.integers(n))] = True
        while z.sum() < k:  # add the task that raises the cost least
            gain = lin + Q[:, z].sum(1)
            gain[z] = np.inf
            z[int(np.argmin(gain))] = True
        for _ in range(50 * k if k < n else 0):  # swap one member out and one in while it helps
            inside, outside = np.nonzero(z)[0], np.nonzero(~z)[0]
            link = Q[:, z].sum(1)
            delta = (lin[outside][None, :] + link[outside][None, :] - Q[np.ix_(inside, outside)]
                     - (lin[inside] + link[inside])[:, None])
            i, o = np.unravel_index(int(np.argmin(delta)), delta.shape)
            if delta[i, o] >= -1e-12:
                break
            z[inside[i]], z[outside[o]] = False, True
        best = min(best, (group_cost(const, lin, Q, z), _members(z)))
    return best


def effects_form(base: np.ndarray, summed: np.ndarray, averaged: np.ndarray, weights, size_cost,
                 higher_is_better: bool) -> Form:
    """The quadratic form of a sum/mean-of-effects model's reduced cost, size by size.

    Member ``t`` of a group of ``k`` is worth ``base[t] + sum_{s in mates} (summed[s, t] +
    averaged[s, t] / (k - 1))``; the reduced cost is ``sum_t (sign * value_t - weights[t]) +
    size_cost[k]`` with ``sign`` -1 for scores and +1 for losses.
    """
    n = len(base)
    w = np.asarray(weights, dtype=float).reshape(-1)
    if w.shape != (n,) or not np.isfinite(w).all():
        raise TaskrelError(f"pricing: weights must be {n} finite numbers (one per task), got shape {w.shape}")
    sc = np.asarray(size_cost, dtype=float).reshape(-1)
    sign = -1.0 if higher_is_better else 1.0

    def form(k: int) -> tuple[float, np.ndarray, np.ndarray]:
        if k >= len(sc) or not np.isfinite(sc[k]):
            raise TaskrelError(f"pricing: size_cost has no finite entry for groups of {k} tasks (length {len(sc)})")
        C = summed + (averaged / (k - 1) if k > 1 else 0.0)
        Q = sign * (C + C.T)
        np.fill_diagonal(Q, 0.0)
        return float(sc[k]), sign * base - w, Q

    return form


def price_quadratic(form: Form, n: int, max_size: int, n_groups: int = 1, time_limit: float = 30.0,
                    min_size: int = 1) -> tuple[np.ndarray, bool]:
    """The groups of ``min_size..max_size`` tasks with the smallest quadratic cost, best first.

    ``form(k)`` gives ``(const, lin (n,), Q (n, n) symmetric)`` for groups of ``k`` tasks.
    Returns a boolean (<= n_groups, n) membership matrix and whether the best group is proven
    optimal (False when a MILP ran out of ``time_limit``, in seconds, for the whole call).
    """
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 1:
        raise TaskrelError(f"pricing: max_size must be a positive integer, got {max_size!r}")
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or n_groups < 1:
        raise TaskrelError(f"pricing: n_groups must be a positive integer, got {n_groups!r}")
    start, found, exact = time.perf_counter(), [], True
    rng = np.random.default_rng(0)
    for k in range(int(min_size), min(int(max_size), n) + 1):
        const, lin, Q = form(k)
        lin, Q = np.asarray(lin, dtype=float), np.asarray(Q, dtype=float)
        if comb(n, k) <= ENUMERATE_UP_TO:
            costs, rows = least_listed(float(const), lin, Q, k, int(n_groups))
            found += [(float(c), _members(r)) for c, r in zip(costs, rows)]
            continue
        found.append(_local(float(const), lin, Q, n, k, rng))
        left = time_limit - (time.perf_counter() - start)
        if left <= 0:
            exact = False
            continue
        seconds = max(left / max(min(max_size, n) - k + 1, 1), 0.01)
        _, g, proven = least_by_milp(float(const), lin, Q, k, seconds)
        if g is not None:
            found.append((group_cost(float(const), lin, Q, g), _members(g)))
        exact &= proven and g is not None
    found = sorted(set(found), key=lambda x: x[0])
    out = np.zeros((min(len(found), int(n_groups)), n), dtype=bool)
    for r, (_, g) in enumerate(found[: len(out)]):
        out[r, list(g)] = True
    return out, exact


__all__ = ["ENUMERATE_UP_TO", "Form", "effects_form", "group_cost", "least_by_milp", "least_listed", "price_quadratic"]
