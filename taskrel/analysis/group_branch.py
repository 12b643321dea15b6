"""Branch and bound for the least reduced cost of a group of ``k`` tasks (quadratic values).

For ``rc(z) = const + lin . z + sum_{s<t} Q[s, t] z_s z_t`` over groups of exactly ``k``
tasks (:mod:`taskrel.analysis.pricing_bound`), :func:`least_group` adds members in a fixed
order (tasks sorted by ``lin``), depth first. At a node with members ``P`` chosen and the
tasks after the last one still open, the cost of any completion is at least the cost of
``P`` plus the *row bound* of the open tasks: each open task ``c`` costs ``lin[c] + sum_{s in
P} Q[s, c]`` plus half of its ``r - 1`` smallest entries of ``Q`` among the open tasks, and
the ``r`` cheapest of these are summed (``r`` members still to add). A node whose bound is
at least ``min(best so far, -tol)`` is cut.

It returns a lower bound on the least reduced cost that is valid even when it stops early
(the least of the best group found, every cut node's bound and every open node's parent's
bound), and it is exact, or proves the least reduced cost is at least ``-tol``, when it
finishes.
With it, ``python benchmarks/search_scale.py --bound`` proves the 100-task HOA affinity's
choice optimal at budgets 15, 20 and 30 (``docs/search.md``).

>>> import numpy as np
>>> Q = np.array([[0, -2.0, 0], [-2.0, 0, 1.0], [0, 1.0, 0]])
>>> bound, group, done = least_group(0.0, np.array([0.5, 0.5, -0.2]), Q, 2, 0.0, 5.0)
>>> round(bound, 6), group.astype(int).tolist(), done
(-1.0, [1, 1, 0], True)
"""

from __future__ import annotations

import time

import numpy as np


def _node_bound(cost: float, open_lin: np.ndarray, open_q: np.ndarray, r: int) -> float:
    """The row bound of completing a node with ``r`` more of its open tasks."""
    if len(open_lin) < r:
        return np.inf
    if r == 0:
        return cost
    per = open_lin
    if r > 1:
        per = open_lin + 0.5 * np.partition(open_q, r - 2, axis=1)[:, :r - 1].sum(axis=1)
    return float(cost + np.partition(per, r - 1)[:r].sum())


def least_group(const: float, lin: np.ndarray, Q: np.ndarray, k: int, tol: float,
                time_limit: float, node_limit: int = 2_000_000
                ) -> tuple[float, np.ndarray | None, bool]:
    """(lower bound, best group found or None, finished) for groups of ``k`` tasks; the
    bound is exact when a group below ``-tol`` was found and the search finished."""
    n = len(lin)
    order = np.argsort(lin, kind="stable")
    lin = np.asarray(lin, dtype=float)[order]
    Q = np.asarray(Q, dtype=float)[np.ix_(order, order)]
    off = np.where(np.eye(n, dtype=bool), np.inf, Q)
    best, best_members, cut = np.inf, None, np.inf
    start, nodes = time.perf_counter(), 0
    stack = [((), float(const), lin.copy(), 0, -np.inf)]  # each with its parent's bound
    while stack:
        nodes += 1
        if nodes > node_limit or (nodes % 128 == 0
                                  and time.perf_counter() - start > time_limit):
            opened = min(node[4] for node in stack)  # a parent's bound holds for its children
            return float(min(best, cut, opened)), _group(best_members, order, n), False
        members, cost, lm, s, _ = stack.pop()
        r = k - len(members)
        if r == 0:
            if cost < best:
                best, best_members = cost, members
            continue
        bound = _node_bound(cost, lm[s:], off[s:, s:], r)
        if bound >= min(best, -tol):
            cut = min(cut, bound)
            continue
        for c in range(n - r, s - 1, -1):  # the smallest next member is explored first
            stack.append(((*members, c), cost + lm[c], lm + Q[c], c + 1, bound))
    return float(min(best, cut)), _group(best_members, order, n), True


def _group(members, order: np.ndarray, n: int) -> np.ndarray | None:
    if members is None:
        return None
    out = np.zeros(n, dtype=bool)
    out[order[list(members)]] = True
    return out
