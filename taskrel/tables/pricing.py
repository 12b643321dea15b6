"""Exact pricing for group-value models whose values are quadratic in membership.

The column-generation search asks a group-value model for the groups ``g`` (at most
``max_size`` tasks) with the smallest reduced cost (:mod:`taskrel.tables.group_model`). For a
sum- or mean-of-effects model and a fixed group size ``k``, every member's value is its base
plus a sum of its mates' effects, so the reduced cost of ``g`` is a quadratic function of its
membership vector ``z``::

    cost_k(z) = const_k + sum_t lin_k[t] z_t + sum_{s < t} Q_k[s, t] z_s z_t,   sum_t z_t = k

:func:`price_quadratic` minimises it for every size: by enumerating every group of that size
when there are few (exact, and it returns the true best ``n_groups``), otherwise by a MILP with
linearised products (``y_st <= z_s``, ``y_st <= z_t`` where the product lowers the cost,
``y_st >= z_s + z_t - 1`` where it raises it; HiGHS via :func:`scipy.optimize.milp`) under one
time limit for the whole call, beside a greedy-and-swap local search whose group is kept when
the MILP finds none better in time. It says whether every size was solved to proven
optimality.

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
    neg, pos = np.nonzero(q < 0)[0], np.nonzero(q > 0)[0]
    p = len(q)
    c = np.concatenate([lin, q])
    parts = []
    for side in (a, b):  # y <= z_s and y <= z_t: needed only where the objective wants y = 1 (q < 0)
        r = np.arange(len(neg))
        parts.append(coo_matrix((np.r_[np.ones(len(neg)), -np.ones(len(neg))], (np.r_[r, r], np.r_[n + neg, side[neg]])),
                                shape=(len(neg), n + p)))
    r = np.arange(len(pos))  # z_s + z_t - y <= 1: needed only where it wants y = 0 (q > 0)
    parts.append(coo_matrix((np.r_[np.ones(len(pos)), np.ones(len(pos)), -np.ones(len(pos))],
                             (np.r_[r, r, r], np.r_[a[pos], b[pos], n + pos])), shape=(len(pos), n + p)))
    parts.append(coo_matrix((np.ones(n), (np.zeros(n, dtype=int), np.arange(n))), shape=(1, n + p)))
    A = vstack(parts).tocsr()
    lo = np.r_[np.full(2 * len(neg) + len(pos), -np.inf), [k]]
    hi = np.r_[np.zeros(2 * len(neg)), np.ones(len(pos)), [k]]
    res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=np.r_[np.ones(n), np.zeros(p)],
               bounds=Bounds(0, 1), options={"time_limit": max(time_limit, 0.01)})
    if res.x is None:
        return [], False
    z = res.x[:n] > 0.5
    return [(group_cost(const, lin, Q, z), tuple(int(i) for i in np.flatnonzero(z)))], bool(res.status == 0)


def group_cost(const: float, lin: np.ndarray, Q: np.ndarray, z: np.ndarray) -> float:
    """``cost_k`` of one boolean membership row ``z``."""
    idx = np.flatnonzero(z)
    return float(const + lin[idx].sum() + np.triu(Q[np.ix_(idx, idx)], 1).sum())


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
        for _ in range(50 * k):  # swap one member out and one in while it helps
            inside, outside = np.nonzero(z)[0], np.nonzero(~z)[0]
            link = Q[:, z].sum(1)
            delta = (lin[outside][None, :] + link[outside][None, :] - Q[np.ix_(inside, outside)]
                     - (lin[inside] + link[inside])[:, None])
            i, o = np.unravel_index(int(np.argmin(delta)), delta.shape)
            if delta[i, o] >= -1e-12:
                break
            z[inside[i]], z[outside[o]] = False, True
        best = min(best, (group_cost(const, lin, Q, z), tuple(int(i) for i in np.flatnonzero(z))))
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
            found += _enumerate(float(const), lin, Q, n, k, int(n_groups))
            continue
        found.append(_local(float(const), lin, Q, n, k, rng))
        left = time_limit - (time.perf_counter() - start)
        if left <= 0:
            exact = False
            continue
        got, proven = _milp(float(const), lin, Q, n, k, left / max(min(max_size, n) - k + 1, 1))
        found += got
        exact &= proven
    found = sorted(set(found), key=lambda x: x[0])
    out = np.zeros((min(len(found), int(n_groups)), n), dtype=bool)
    for r, (_, g) in enumerate(found[: len(out)]):
        out[r, list(g)] = True
    return out, exact


__all__ = ["ENUMERATE_UP_TO", "Form", "effects_form", "group_cost", "price_quadratic"]
