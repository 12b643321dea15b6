"""Improving a partition by moving single tasks between its groups (an incumbent polisher).

Column generation's MILP can only combine groups it has seen; at a tight budget (two networks
for a hundred tasks) the best partition needs a group *and* its complement, which pricing
rarely generates together. :func:`improve_partition` starts from a partition and repeatedly
moves one task to another group (or, where the budget allows, to a group of its own), taking
in each sweep the best improving moves that touch distinct groups; when none improves, it
tries swapping two tasks between groups (which keeps full groups full), until nothing
improves or the clock runs out. Every group it visits is asked of the model (through the cached oracle),
and the final groups can be added to the column pool.

>>> import numpy as np
>>> from taskrel.analysis.pricing import ModelOracle
>>> from taskrel.analysis.search_clock import SearchClock
>>> class Two:  # a+b help each other, c+d too; across they harm
...     tasks, higher_is_better = ["a", "b", "c", "d"], False
...     def predict_members(self, members):
...         m = np.asarray(members, dtype=bool)
...         e = np.array([[0, .2, -.1, -.1], [.2, 0, -.1, -.1], [-.1, -.1, 0, .2],
...                       [-.1, -.1, .2, 0]])
...         return np.where(m, 1 - m @ e, np.nan), np.where(m, 0.0, np.nan)
>>> start = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=bool)
>>> better = improve_partition(ModelOracle(Two()), start, np.ones(5), 2, 1, 4, SearchClock(5))
>>> sorted(np.flatnonzero(g).tolist() for g in better)
[[0, 1], [2, 3]]
"""

from __future__ import annotations

import numpy as np

from taskrel.analysis.pricing import ModelOracle
from taskrel.analysis.search_clock import SearchClock


def _totals(oracle: ModelOracle, rows: np.ndarray) -> np.ndarray:
    """Totals of groups, 0 for an empty one (never asked)."""
    out = np.zeros(len(rows))
    full = rows.any(axis=1)
    if full.any():
        out[full] = oracle.totals(rows[full])
    return out


def _cost(cost_of_size: np.ndarray, size: np.ndarray) -> np.ndarray:
    return np.where(size == 0, 0.0, cost_of_size[np.minimum(size, len(cost_of_size) - 1)])


def improve_partition(oracle: ModelOracle, groups: np.ndarray, cost_of_size: np.ndarray,
                      budget: float, min_size: int, max_size: int, clock: SearchClock,
                      max_sweeps: int = 200, gain: np.ndarray | None = None) -> np.ndarray:
    """A partition at least as good as ``groups`` (rows), within sizes and budget. With the
    pair gains ``gain``, when no single move improves, swaps of two tasks between groups
    are tried (each task with the groups it fits best and their worst-fitting members)."""
    G = np.array(groups, dtype=bool)
    n = G.shape[1]
    for _ in range(max_sweeps):
        if clock.expired():
            break
        G = G[G.any(axis=1)]
        if len(G) < budget and min_size == 1:  # a task may go alone if the budget allows
            G = np.vstack([G, np.zeros((1, n), dtype=bool)])
        moves = _best_moves(oracle, G, cost_of_size, budget, min_size, max_size)
        if not moves and gain is not None:
            G = G[G.any(axis=1)]
            moves = _best_swaps(oracle, G, gain)
        if not moves:
            break
        for t, src, dst in moves:
            G[src, t], G[dst, t] = False, True
    return G[G.any(axis=1)]


def _best_moves(oracle, G, cost_of_size, budget, min_size, max_size):
    """Improving moves (task, from, to), best first, each group touched at most once."""
    k, n = G.shape
    size = G.sum(axis=1)
    label = np.argmax(G, axis=0)
    tot = _totals(oracle, G)
    spent = float(_cost(cost_of_size, size).sum())
    eye = np.eye(n, dtype=bool)
    removed = G[label] & ~eye  # row t: t's group without t
    rem_tot = _totals(oracle, removed)
    rem_size = size[label] - 1
    ok_rem = (rem_size == 0) | (rem_size >= min_size)
    tt, hh = np.nonzero(~G.T & (size < max_size)[None, :] & ok_rem[:, None])
    if not len(tt):
        return []
    added = G[hh].copy()
    added[np.arange(len(tt)), tt] = True
    add_tot = _totals(oracle, added)
    new_cost = (spent - _cost(cost_of_size, size[label[tt]]) - _cost(cost_of_size, size[hh])
                + _cost(cost_of_size, rem_size[tt]) + _cost(cost_of_size, size[hh] + 1))
    delta = rem_tot[tt] + add_tot - tot[label[tt]] - tot[hh]
    ok = (delta < -1e-12 * (1.0 + np.abs(tot).sum())) & (new_cost <= budget * (1 + 1e-9))
    ok &= (size[hh] + 1 >= min_size)
    moves, touched, extra = [], set(), 0.0
    for i in np.flatnonzero(ok)[np.argsort(delta[ok], kind="stable")]:
        src, dst = int(label[tt[i]]), int(hh[i])
        step = new_cost[i] - spent  # moves on distinct groups change the cost independently
        if src in touched or dst in touched or spent + extra + step > budget * (1 + 1e-9):
            continue
        touched.update((src, dst))
        extra += step
        moves.append((int(tt[i]), src, dst))
    return moves


def _best_swaps(oracle, G, gain, top: int = 3):
    """Improving swaps of two tasks between groups, as pairs of moves, groups disjoint."""
    k, n = G.shape
    if k < 2:
        return []
    label = np.argmax(G, axis=0)
    tot = _totals(oracle, G)
    pull = (gain + gain.T) @ G.T.astype(np.float64)  # (n, k): fit of task t with group h
    own = pull[np.arange(n), label]
    score = np.where(G.T, -np.inf, pull)
    m = min(top, k - 1)
    targets = np.argpartition(-score, m - 1, axis=1)[:, :m]
    worst = [np.flatnonzero(G[h])[np.argsort(own[G[h]], kind="stable")[:top]] for h in range(k)]
    tt, uu = [], []
    for t in range(n):
        for h in targets[t]:
            tt += [t] * len(worst[h])
            uu += list(worst[h])
    tt, uu = np.array(tt, dtype=np.intp), np.array(uu, dtype=np.intp)
    if not len(tt):
        return []
    a, b = label[tt], label[uu]
    rows_a, rows_b = G[a].copy(), G[b].copy()
    idx = np.arange(len(tt))
    rows_a[idx, tt], rows_a[idx, uu] = False, True
    rows_b[idx, uu], rows_b[idx, tt] = False, True
    delta = _totals(oracle, rows_a) + _totals(oracle, rows_b) - tot[a] - tot[b]
    ok = np.flatnonzero(delta < -1e-12 * (1.0 + np.abs(tot).sum()))
    moves, touched = [], set()
    for i in ok[np.argsort(delta[ok], kind="stable")]:
        if int(a[i]) in touched or int(b[i]) in touched:
            continue
        touched.update((int(a[i]), int(b[i])))
        moves += [(int(tt[i]), int(a[i]), int(b[i])), (int(uu[i]), int(b[i]), int(a[i]))]
    return moves
