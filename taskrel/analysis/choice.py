"""What a chosen set of networks means: who serves whom, the objective, its interval, and
how likely it beats the baselines (the fitted attributes of
:class:`~taskrel.analysis.GroupingSearch`), and its objective on another table.

>>> from taskrel.tables import CandidateTable
>>> t = CandidateTable([{"tasks": "a", "cost": 1, "a": 0.5}, {"tasks": "b", "cost": 1, "b": 0.4},
...                     {"tasks": "a+b", "cost": 1, "a": 0.3, "b": 0.45}])
>>> d = describe_choice(t, [0, 2])
>>> d["networks_"], d["assignment_"], round(d["total_"], 2)
(['a+b'], {'a': 'a+b', 'b': 'a+b'}, 0.75)
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from taskrel.errors import TaskrelError
from taskrel.tables.candidates import CandidateTable


def describe_choice(table: CandidateTable, chosen, robust: float = 0.0) -> dict:
    """The fitted attributes (``chosen_``, ``networks_``, ... ``p_beats_``) of a choice;
    a network that serves no task is dropped."""
    L = table.losses
    if robust:  # each task is served by the network the choice was made for
        L = L + robust * np.nan_to_num(table.sem)
    chosen = np.sort(np.asarray(chosen, dtype=np.intp))
    at = serve(L, chosen)
    chosen = chosen[np.isin(np.arange(len(chosen)), at)]  # none that serves nothing
    at = serve(L, chosen)
    sign = -1.0 if table.higher_is_better else 1.0
    cols = np.arange(table.n_tasks)
    networks_ = [table.name(g) for g in chosen]
    groups_ = [table.group(g) for g in chosen]
    assignment_ = {t: networks_[at[i]] for i, t in enumerate(table.tasks)}
    served_ = {name: tuple(t for t in table.tasks if assignment_[t] == name)
                for name in networks_}
    total_ = float(sign * table.losses[chosen[at], cols].sum())
    cost_ = float(table.cost[chosen].sum())
    higher_is_better_ = table.higher_is_better
    objective_ = table.objective
    sem = table.sem
    total_sem_ = None if sem is None else float(
        np.sqrt((sem[chosen[at], cols] ** 2).sum()))
    p_beats_ = {name: _p_beats(table, chosen[at], rows)
                for name, rows in _baselines(table).items()}
    return {"chosen_": chosen, "networks_": networks_, "groups_": groups_,
            "assignment_": assignment_, "served_": served_, "total_": total_, "cost_": cost_,
            "higher_is_better_": higher_is_better_, "objective_": objective_,
            "total_sem_": total_sem_, "p_beats_": p_beats_}


def score_choice(assignment: dict, networks: list, table: CandidateTable,
                 reassign: bool = False) -> float:
    """The objective of a choice on another table (see ``GroupingSearch.score_on``)."""
    if not isinstance(table, CandidateTable):
        raise TaskrelError(f"grouping: expected a CandidateTable, got {type(table).__name__}")
    missing = set(assignment) - set(table.tasks)
    if missing:
        raise TaskrelError(f"grouping: task(s) {sorted(missing)} are not in the other table")
    absent = [n for n in networks if n not in set(table.names)]
    if absent:
        raise TaskrelError(f"grouping: chosen network(s) {absent} are not in the other table")
    rows = {name: table.index(name) for name in networks}
    sign = -1.0 if table.higher_is_better else 1.0
    total = 0.0
    for t, name in assignment.items():
        c = table.tasks.index(t)
        if reassign:
            vals = [sign * table.values[r, c] for r in rows.values() if table.members[r, c]]
            total += sign * min(vals)
        else:
            total += float(table.values[rows[name], c])
    return total


def serve(L: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """For each task, the position in ``chosen`` of its best network (first on ties)."""
    return np.argmin(L[chosen], axis=0)


def _baselines(table: CandidateTable) -> dict[str, np.ndarray | None]:
    """Rows serving each task in all-separate and all-shared: the widest such networks."""
    size = table.members.sum(axis=1)
    order = np.lexsort((np.arange(len(table)), -table.width))  # widest first, then earliest
    sep = np.full(table.n_tasks, -1)
    for r in order[size[order] == 1][::-1]:
        sep[np.flatnonzero(table.members[r])[0]] = r
    full = order[size[order] == table.n_tasks]
    return {"all-separate": sep if (sep >= 0).all() else None,
            "all-shared": np.full(table.n_tasks, full[0]) if len(full) else None}


def _p_beats(table: CandidateTable, mine: np.ndarray, base: np.ndarray | None) -> float | None:
    """P(choice's objective better than the baseline's), normal with independent values."""
    if base is None or table.sem is None:
        return None
    cols = np.arange(table.n_tasks)
    L, sem = table.losses, table.sem
    diff = float((L[base, cols] - L[mine, cols]).sum())
    other = mine != base
    var = float((sem[mine, cols][other] ** 2 + sem[base, cols][other] ** 2).sum())
    if var <= 0:
        return 1.0 if diff > 0 else 0.0
    return float(stats.norm.cdf(diff / np.sqrt(var)))
