"""The exhaustive dynamic programme, the beam search and a greedy cover (internal).

Solvers of :class:`~taskrel.analysis.grouping.GroupingSearch` that need no MILP: losses ``L``
are (networks x tasks) with ``inf`` outside the members; each returns the chosen rows or
raises :class:`Infeasible`. Tolerances on costs are relative to the budget (or the largest
cost), so a table whose costs are all tiny (1e-6) is treated as one whose costs are 1.
"""

from __future__ import annotations

import numpy as np

from taskrel.errors import TaskrelError

EPS = 1e-9


class Infeasible(Exception):
    pass


def _cost_eps(cost, budget=None) -> float:
    """EPS relative to the scale of the costs (and budget)."""
    scale = max(float(np.max(cost)) if len(cost) else 0.0, float(budget or 0.0))
    return EPS * (scale if scale > 0 else 1.0)


def greedy_cover(mem: np.ndarray, cost: np.ndarray, partition: bool) -> np.ndarray | None:
    """A cheap choice of rows that covers (partition mode: partitions) every task, or None.

    Repeatedly takes the row with the least cost per newly covered task (ties: the larger
    row, then the earlier); in partition mode only rows disjoint from those taken. Linear in
    the table's size times the number of rows taken.
    """
    G, n = mem.shape
    size = mem.sum(axis=1).astype(np.float64)
    fresh = size.copy()
    ok = size > 0
    covered = np.zeros(n, dtype=bool)
    chosen = []
    while not covered.all():
        ratio = np.where(ok & (fresh > 0), cost / np.maximum(fresh, 1.0), np.inf)
        best = ratio.min()
        if not np.isfinite(best):
            return None
        tied = np.flatnonzero(ratio <= best * (1 + 1e-12) + 1e-300)
        g = int(tied[np.argmax(fresh[tied])])
        chosen.append(g)
        new = mem[g] & ~covered
        covered |= mem[g]
        cols = np.flatnonzero(new)
        hit = mem[:, cols].sum(axis=1)
        fresh -= hit
        if partition:
            ok &= hit == 0
        ok[g] = False
    return np.array(sorted(chosen), dtype=np.intp)


# ---------------------------------------------------------------------- exhaustive DP
def _pareto(entries):
    entries.sort(key=lambda e: (e[0], e[1]))
    out, best = [], np.inf
    for e in entries:
        if e[1] < best - EPS:
            out.append(e)
            best = e[1]
    return out


def exhaustive_search(L, mem, cost, budget, partition):
    G, n = mem.shape
    if n > 12:
        raise TaskrelError(f"grouping: the exhaustive solver handles at most 12 tasks, got {n}")
    limit = np.inf if budget is None else budget + _cost_eps(cost, budget)
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
        raise Infeasible("no choice of networks fits")
    entry = min(final, key=lambda e: (e[1], e[0]))
    chosen, mask = set(), (1 << n) - 1
    while entry[2] is not None:
        g, mask, k = entry[2]
        chosen.add(g)
        entry = table[mask][k]
    return np.array(sorted(chosen), dtype=np.intp)


# ---------------------------------------------------------------------- beam search
def beam_search(L, mem, cost, budget, partition, width):
    G, n = mem.shape
    fallback = np.where(np.isfinite(L), L, -np.inf).max(axis=0) + 1.0
    cheapest = cost.min()
    ceps = _cost_eps(cost, budget)
    start = (frozenset(), 0.0, np.full(n, np.inf))
    states, best, best_obj, seen = [start], None, np.inf, set()
    for _ in range(G):
        children = []
        for chosen, spent, cur in states:
            ok = cost + spent <= budget + ceps
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
            if covered or budget - spent >= cheapest - ceps:
                states.append((key, spent, cur))
            if len(states) >= width:
                break
    if best is None:
        raise Infeasible("beam search found no covering choice within the budget")
    return np.array(sorted(best), dtype=np.intp)
