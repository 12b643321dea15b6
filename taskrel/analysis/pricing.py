"""Asking a group-value model about groups: cached evaluation, pair seeds, heuristic pricing.

The column generation of :mod:`taskrel.analysis.colgen` needs, for dual prices ``pi`` of the
tasks and a cost term ``size_cost[k]`` per network of ``k`` tasks, groups with a negative
*reduced cost* ``rc(g) = sum_{t in g} (loss_t(g) - pi_t) + size_cost[|g|]``, where
``loss_t(g)`` is the model's value of ``t`` in ``g`` (negated for scores). A model with its
own ``price`` answers that itself (:mod:`taskrel.tables.group_model`); otherwise
:func:`local_search` searches for such groups: from many seeds at once, each step tries every
removal of a member and the most promising additions (ranked by the pair predictions), one
batched ``predict_members`` call per step for all seeds, and moves each seed to its best
improving neighbour until none improves. It is a heuristic: a group it misses may exist, so
a bound that relies on it is not proven.

>>> import numpy as np
>>> class Planted:  # tasks 0-2 help each other; alone each loses 1
...     tasks, higher_is_better = ["a", "b", "c", "d"], False
...     def predict_members(self, members):
...         m = np.asarray(members, dtype=bool)
...         mates = (m[:, :3].sum(1, keepdims=True) - 1).clip(0)
...         v = np.where(np.arange(4) < 3, 1.0 - 0.2 * mates, 1.0 + 0.1 * (m.sum(1, keepdims=True) - 1))
...         return np.where(m, v, np.nan), np.where(m, 0.0, np.nan)
>>> oracle = ModelOracle(Planted())
>>> found = local_search(oracle, np.full(4, 0.9), np.zeros(5), 1, 4, np.eye(4, dtype=bool))
>>> found[0].astype(int).tolist()
[1, 1, 1, 0]
"""

from __future__ import annotations

import numpy as np

from taskrel.errors import TaskrelError

CHUNK_CELLS = 4_000_000  # cells (rows x tasks) per predict_members call


class ModelOracle:
    """A group-value model's answers as losses (to minimise), cached by group.

    ``losses(members)`` gives the (m, n) member losses (``inf`` outside each group) and
    ``totals(members)`` their sums; ``rows`` counts the groups the model was asked about
    and ``calls`` its ``predict_members`` calls.
    """

    def __init__(self, model):
        self.model = model
        self.n = len(model.tasks)
        self.sign = -1.0 if model.higher_is_better else 1.0
        self.rows = 0
        self.calls = 0
        self._cache: dict[bytes, float] = {}

    def losses(self, members: np.ndarray) -> np.ndarray:
        members = np.asarray(members, dtype=bool)
        out = np.empty(members.shape)
        step = max(1, CHUNK_CELLS // max(self.n, 1))
        for s in range(0, len(members), step):
            m = members[s:s + step]
            values, _ = self.model.predict_members(m)
            values = np.asarray(values, dtype=np.float64)
            if values.shape != m.shape:
                raise TaskrelError(f"grouping: the model's predict_members returned shape "
                                   f"{values.shape} for {m.shape} groups")
            bad = m & ~np.isfinite(values)
            if bad.any():
                r, t = np.argwhere(bad)[0]
                raise TaskrelError(f"grouping: the model predicts {values[r, t]} for task "
                                   f"{self.model.tasks[t]!r} in a group of {int(m[r].sum())}; "
                                   "a group-value model must give finite values")
            out[s:s + step] = np.where(m, self.sign * values, np.inf)
            self.calls += 1
            self.rows += len(m)
        return out

    def totals(self, members: np.ndarray) -> np.ndarray:
        """Sum of member losses of each group, from the cache where it was asked before."""
        members = np.asarray(members, dtype=bool)
        keys = [np.packbits(r).tobytes() for r in members]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        if todo:
            L = self.losses(members[todo])
            for i, v in zip(todo, np.where(np.isfinite(L), L, 0.0).sum(axis=1)):
                self._cache[keys[i]] = float(v)
        return np.array([self._cache[k] for k in keys])


def pair_gains(oracle: ModelOracle, singles: np.ndarray) -> np.ndarray:
    """``gain[s, t]``: how much task ``s`` lowers ``t``'s loss when the two share a network
    (``singles`` are the tasks' losses alone). Every pair is asked once, in chunks."""
    n = oracle.n
    ii, jj = np.triu_indices(n, 1)
    gain = np.zeros((n, n))
    step = max(1, CHUNK_CELLS // max(n, 1))
    for s in range(0, len(ii), step):
        a, b = ii[s:s + step], jj[s:s + step]
        m = np.zeros((len(a), n), dtype=bool)
        rows = np.arange(len(a))
        m[rows, a] = m[rows, b] = True
        L = oracle.losses(m)
        gain[a, b] = singles[b] - L[rows, b]
        gain[b, a] = singles[a] - L[rows, a]
    return gain


def dendrogram_groups(gain: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Every node of an average-linkage dendrogram of the pair gains, as membership rows
    (n leaves and n - 1 merges), and the linkage matrix."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    n = gain.shape[0]
    sym = (gain + gain.T) / 2.0
    dist = sym.max() - sym
    np.fill_diagonal(dist, 0.0)
    nodes = [np.eye(n, dtype=bool)[i] for i in range(n)]
    if n < 2:
        return nodes, np.zeros((0, 4))
    Z = linkage(squareform(dist, checks=False), method="average")
    for a, b, _, _ in Z:
        nodes.append(nodes[int(a)] | nodes[int(b)])
    return nodes, Z


def reduced_costs(oracle: ModelOracle, members, pi, size_cost) -> np.ndarray:
    members = np.asarray(members, dtype=bool)
    return oracle.totals(members) - members @ pi + size_cost[members.sum(axis=1)]


def local_search(oracle: ModelOracle, pi: np.ndarray, size_cost: np.ndarray, min_size: int,
                 max_size: int, seeds: np.ndarray, gain: np.ndarray | None = None,
                 shortlist: int = 24, max_steps: int | None = None,
                 clock=None) -> list[np.ndarray]:
    """Groups of low reduced cost, by best-improvement local search from every seed at once.

    Returns the distinct local optima, lowest reduced cost first. ``gain`` (pair gains) ranks
    the additions tried at each step (``shortlist`` per seed); without it every task is tried.
    A ``clock`` (:class:`~taskrel.analysis.search_clock.SearchClock`) stops it when time is up.
    """
    S = np.array(seeds, dtype=bool, copy=True)
    rc = reduced_costs(oracle, S, pi, size_cost)
    active = np.ones(len(S), dtype=bool)
    steps = max_steps if max_steps is not None else 2 * max_size + 4
    for _ in range(steps):
        if clock is not None and clock.expired():
            break
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        owner, flips = _neighbours(S[idx], pi, gain, min_size, max_size, shortlist)
        if not len(owner):
            break
        cand = S[idx][owner].copy()
        cand[np.arange(len(owner)), flips] ^= True
        crc = reduced_costs(oracle, cand, pi, size_cost)
        best = np.full(len(idx), np.inf)
        pick = np.full(len(idx), -1)
        order = np.lexsort((crc, owner))
        first = np.r_[True, owner[order][1:] != owner[order][:-1]]
        best[owner[order][first]] = crc[order][first]
        pick[owner[order][first]] = order[first]
        better = best < rc[idx] - 1e-12 * (1.0 + np.abs(rc[idx]))
        moved = idx[better]
        S[moved] = cand[pick[better]]
        rc[moved] = best[better]
        active[idx[~better]] = False
    _, keep = np.unique(np.packbits(S, axis=1), axis=0, return_index=True)
    keep = keep[np.argsort(rc[keep], kind="stable")]
    return [S[i] for i in keep]


def _neighbours(S, pi, gain, min_size, max_size, shortlist):
    """(owner, task) of every move tried: removals, and the best-ranked additions."""
    size = S.sum(axis=1)
    owners, flips = [], []
    rem_o, rem_t = np.nonzero(S & (size > min_size)[:, None])
    owners.append(rem_o)
    flips.append(rem_t)
    can_add = size < max_size
    if can_add.any():
        if gain is None:
            score = np.broadcast_to(pi, S.shape).copy()
        else:
            score = pi[None, :] + S.astype(np.float64) @ (gain + gain.T)
        score = np.where(S | ~can_add[:, None], -np.inf, score)
        k = min(shortlist, S.shape[1])
        top = np.argpartition(-score, k - 1, axis=1)[:, :k]
        o = np.repeat(np.arange(len(S)), k)
        t = top.ravel()
        ok = np.isfinite(score[o, t])
        owners.append(o[ok])
        flips.append(t[ok])
    return np.concatenate(owners), np.concatenate(flips)
