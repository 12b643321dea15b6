"""Exact pricing for group-value models whose values are quadratic in membership.

The column-generation search asks a group-value model for the groups ``g`` (at most
``max_size`` tasks) with the smallest reduced cost (:mod:`taskrel.tables.group_model`). For a
sum- or mean-of-effects model and a fixed group size ``k``, every member's value is its base
plus a sum of its mates' effects, so the reduced cost of ``g`` is a quadratic function of its
membership vector ``z``::

    cost_k(z) = const_k + sum_t lin_k[t] z_t + sum_{s < t} Q_k[s, t] z_s z_t,   sum_t z_t = k

:func:`price_quadratic` minimises it for every size: by enumerating every group of that size
when there are few (exact, and it returns the true best ``n_groups``), otherwise by a MILP with
linearised products (``y_st >= z_s + z_t - 1``, ``y_st <= z_s``, ``y_st <= z_t``; HiGHS via
:func:`scipy.optimize.milp`) under one time limit for the whole call. It says whether every
size was solved to proven optimality.

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
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix, vstack

from taskrel.errors import TaskrelError

ENUMERATE_UP_TO = 50_000  # groups of one size enumerated before a MILP is used instead
Form = Callable[[int], tuple[float, np.ndarray, np.ndarray]]


def _enumerate(const, lin, Q, n: int, k: int, keep: int) -> list[tuple[float, tuple[int, ...]]]:
    idx = np.array(list(combinations(range(n), k)), dtype=np.intp).reshape(-1, k)
    cost = const + lin[idx].sum(1)
    if k > 1:
        a, b = np.triu_indices(k, 1)
        cost = cost + Q[idx[:, a], idx[:, b]].sum(1)
    best = np.argsort(cost, kind="stable")[:keep]
    return [(float(cost[i]), tuple(int(x) for x in idx[i])) for i in best]


def _milp(const, lin, Q, n: int, k: int, time_limit: float) -> tuple[list[tuple[float, tuple[int, ...]]], bool]:
    a, b = np.triu_indices(n, 1)
    use = Q[a, b] != 0
    a, b, q = a[use], b[use], Q[a, b][use]
    p = len(q)
    c = np.concatenate([lin, q])
    rows = np.arange(p)
    # y - z_a <= 0 ; y - z_b <= 0 ; z_a + z_b - y <= 1 (only the bound the objective pushes against is needed)
    up = coo_matrix((np.r_[np.ones(p), -np.ones(p)], (np.r_[rows, rows], np.r_[n + rows, a])), shape=(p, n + p))
    up2 = coo_matrix((np.r_[np.ones(p), -np.ones(p)], (np.r_[rows, rows], np.r_[n + rows, b])), shape=(p, n + p))
    low = coo_matrix((np.r_[np.ones(p), np.ones(p), -np.ones(p)], (np.r_[rows, rows, rows], np.r_[a, b, n + rows])),
                     shape=(p, n + p))
    size = coo_matrix((np.ones(n), (np.zeros(n, dtype=int), np.arange(n))), shape=(1, n + p))
    A = vstack([up, up2, low, size]).tocsr()
    lo = np.r_[np.full(2 * p, -np.inf), np.full(p, -np.inf), [k]]
    hi = np.r_[np.zeros(2 * p), np.ones(p), [k]]
    res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=np.r_[np.ones(n), np.zeros(p)],
               bounds=Bounds(0, 1), options={"time_limit": max(time_limit, 0.01)})
    if res.x is None:
        return [], False
    z = res.x[:n] > 0.5
    g = tuple(int(i) for i in np.nonzero(z)[0])
    zf = z.astype(float)
    cost = const + float(lin @ zf) + float(zf @ np.triu(Q, 1) @ zf)
    return [(cost, g)], bool(res.status == 0)


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
    for k in range(int(min_size), min(int(max_size), n) + 1):
        const, lin, Q = form(k)
        lin, Q = np.asarray(lin, dtype=float), np.asarray(Q, dtype=float)
        if comb(n, k) <= ENUMERATE_UP_TO:
            found += _enumerate(float(const), lin, Q, n, k, int(n_groups))
            continue
        left = time_limit - (time.perf_counter() - start)
        got, proven = _milp(float(const), lin, Q, n, k, left / max(min(max_size, n) - k + 1, 1))
        found += got
        exact &= proven
    found.sort(key=lambda x: x[0])
    out = np.zeros((min(len(found), int(n_groups)), n), dtype=bool)
    for r, (_, g) in enumerate(found[: len(out)]):
        out[r, list(g)] = True
    return out, exact


__all__ = ["ENUMERATE_UP_TO", "effects_form", "price_quadratic"]
