"""Candidate networks for the grouping search (Standley et al., 2020).

A :class:`CandidateTable` lists candidate networks: each a set of tasks trained together, a
cost (any positive number: inference time, parameters, networks) and, for each member task,
its value in that network: a loss (lower is better, the default) or a score
(``higher_is_better=True``).

Tables come from records, a DataFrame, CSV or JSON (one row per network), or are estimated:

* :meth:`CandidateTable.from_affinity`: every group of up to ``max_size`` tasks; member ``t``
  of group ``G`` gains ``mean(values[s, t] for s in G - {t})`` (the mean affinity onto ``t``
  from its group mates; a singleton gains 0). Without ``base_loss`` the table holds these
  gains as scores; with it, the loss ``base_loss[t] - gain``.
* :func:`hoa_candidates`: Standley's higher-order approximation: the loss of ``t`` in ``G`` is
  the mean of its losses in the pairs ``{t, s}``, ``s`` in ``G - {t}``; a singleton has its
  single-task loss.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from itertools import combinations
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError

MAX_ENUMERATED = 5_000_000
CostSpec = float | Mapping[int, float] | Callable[[tuple[str, ...]], float]


def _split_tasks(value: Any, row: int) -> list[str]:
    if isinstance(value, str):
        names = [p.strip() for p in value.split("+")]
    elif isinstance(value, Iterable):
        names = [str(p).strip() for p in value]
    else:
        raise TaskrelError(f"candidates: row {row}: tasks must be 'a+b' or a list, got {value!r}")
    if not names or any(not p for p in names):
        raise TaskrelError(f"candidates: row {row}: empty task name in network {value!r}")
    if len(set(names)) != len(names):
        raise TaskrelError(f"candidates: row {row}: a task is repeated in network {value!r}")
    return names


class CandidateTable:
    """Candidate networks with their cost and per-task values.

    Parameters
    ----------
    records : iterable of dicts, one per network: ``tasks`` ("a+b" or a list), ``cost``, and
        the member values either under ``values`` (a dict task -> value) or as keys named
        after the tasks.
    tasks : all task names (default: the members in order of appearance).
    higher_is_better : values are scores to maximise instead of losses to minimise.

    Examples
    --------
    >>> table = CandidateTable([
    ...     {"tasks": "a", "cost": 1, "a": 0.5},
    ...     {"tasks": "b", "cost": 1, "b": 0.4},
    ...     {"tasks": "a+b", "cost": 1, "values": {"a": 0.3, "b": 0.45}},
    ... ])
    >>> len(table), table.tasks, table.value(("a", "b"), "a")
    (3, ['a', 'b'], 0.3)
    >>> table.to_frame().loc[2, "tasks"]
    'a+b'
    """

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]],
        tasks: list[str] | None = None,
        higher_is_better: bool = False,
    ):
        records = list(records)
        groups = []
        for r, rec in enumerate(records):
            if not isinstance(rec, Mapping) or "tasks" not in rec:
                raise TaskrelError(f"candidates: row {r}: a record needs a 'tasks' field")
            groups.append(_split_tasks(rec["tasks"], r))
        if tasks is None:
            tasks = list(dict.fromkeys(t for g in groups for t in g))
        tasks = [str(t) for t in tasks]
        index = {t: i for i, t in enumerate(tasks)}
        members = np.zeros((len(records), len(tasks)), dtype=bool)
        values = np.full((len(records), len(tasks)), np.nan)
        cost = np.empty(len(records))
        for r, (rec, group) in enumerate(zip(records, groups)):
            vals = rec.get("values", rec)
            if "cost" not in rec:
                raise TaskrelError(f"candidates: network {'+'.join(group)}: 'cost' is missing")
            cost[r] = _number(rec["cost"], f"network {'+'.join(group)}: cost")
            for t in group:
                if t not in index:
                    raise TaskrelError(
                        f"candidates: network {'+'.join(group)}: unknown task {t!r}; "
                        f"tasks are {tasks}"
                    )
                if not isinstance(vals, Mapping) or t not in vals or _missing(vals[t]):
                    raise TaskrelError(
                        f"candidates: network {'+'.join(group)}: value missing for member {t!r}"
                    )
                members[r, index[t]] = True
                values[r, index[t]] = _number(vals[t], f"network {'+'.join(group)}: value of {t!r}")
        self._set(tasks, members, cost, values, bool(higher_is_better))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        tasks: list[str],
        members: np.ndarray,
        cost: np.ndarray,
        values: np.ndarray,
        higher_is_better: bool = False,
        check_duplicates: bool = True,
    ) -> CandidateTable:
        """Build from a boolean membership matrix (networks x tasks), costs and values.

        ``values`` outside the members are ignored (stored as NaN). ``check_duplicates=False``
        skips the search for repeated networks (for tables known to hold each group once).

        >>> t = CandidateTable.from_arrays(["a", "b"], [[1, 0], [1, 1]], [1, 2], [[3, 0], [2, 1]])
        >>> t.groups
        [('a',), ('a', 'b')]
        """
        self = cls.__new__(cls)
        members = np.asarray(members, dtype=bool)
        values = np.where(members, np.asarray(values, dtype=np.float64), np.nan)
        self._set([str(t) for t in tasks], members, np.asarray(cost, dtype=np.float64), values,
                  bool(higher_is_better), check_duplicates)
        return self

    def _set(self, tasks, members, cost, values, higher_is_better, check_duplicates=True) -> None:
        if len(set(tasks)) != len(tasks):
            raise TaskrelError(f"candidates: duplicate task names in {tasks}")
        g, n = members.shape if members.ndim == 2 else (0, 0)
        if members.ndim != 2 or n != len(tasks) or cost.shape != (g,) or values.shape != (g, n):
            raise TaskrelError(
                f"candidates: shapes do not agree: members {members.shape}, cost {cost.shape}, "
                f"values {values.shape}, {len(tasks)} tasks"
            )
        if g == 0:
            raise TaskrelError("candidates: the table has no networks")
        sizes = members.sum(axis=1)
        if (sizes == 0).any():
            raise TaskrelError(f"candidates: network {int(np.argmin(sizes))} has no tasks")
        for r in np.flatnonzero(~np.isfinite(cost) | (cost <= 0))[:1]:
            raise TaskrelError(
                f"candidates: network {self._name(tasks, members[r])}: cost must be a positive "
                f"number, got {cost[r]}"
            )
        bad = members & ~np.isfinite(values)
        for r, c in np.argwhere(bad)[:1]:
            raise TaskrelError(
                f"candidates: network {self._name(tasks, members[r])}: value of {tasks[c]!r} "
                f"is {values[r, c]} (NaN or missing)"
            )
        if check_duplicates:
            packed = np.packbits(members, axis=1)
            _, first, counts = np.unique(packed, axis=0, return_index=True, return_counts=True)
        if check_duplicates and (counts > 1).any():
            dup = first[np.argmax(counts > 1)]
            raise TaskrelError(
                f"candidates: network {self._name(tasks, members[dup])} is listed more than once"
            )
        self.tasks = list(tasks)
        self.members = members
        self.cost = cost
        self.values = values
        self.higher_is_better = higher_is_better

    @staticmethod
    def _name(tasks, row) -> str:
        return "+".join(t for t, m in zip(tasks, row) if m)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, higher_is_better: bool = False) -> CandidateTable:
        """One row per network: ``tasks``, ``cost``, then one column per task (NaN = not a member).

        >>> df = pd.DataFrame({"tasks": ["a", "b", "a+b"], "cost": [1, 1, 1.5],
        ...                    "a": [0.5, None, 0.3], "b": [None, 0.4, 0.35]})
        >>> CandidateTable.from_frame(df).cost.tolist()
        [1.0, 1.0, 1.5]
        """
        for col in ("tasks", "cost"):
            if col not in frame.columns:
                raise TaskrelError(f"candidates: column {col!r} is missing from the table")
        task_cols = [str(c) for c in frame.columns if c not in ("tasks", "cost")]
        records = []
        for _, row in frame.iterrows():
            rec = {"tasks": row["tasks"], "cost": row["cost"]}
            rec["values"] = {c: row[c] for c in task_cols if not _missing(row[c])}
            records.append(rec)
        return cls(records, tasks=task_cols or None, higher_is_better=higher_is_better)

    @classmethod
    def from_csv(cls, path: str | Path, higher_is_better: bool = False) -> CandidateTable:
        """Read :meth:`from_frame`'s layout from a CSV file."""
        try:
            frame = pd.read_csv(path)
        except FileNotFoundError:
            raise TaskrelError(f"candidates: file {str(path)!r} does not exist") from None
        return cls.from_frame(frame, higher_is_better=higher_is_better)

    @classmethod
    def from_json(cls, path: str | Path, higher_is_better: bool = False) -> CandidateTable:
        """Read a JSON list of records (see the class docstring) from a file."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise TaskrelError(f"candidates: file {str(path)!r} does not exist") from None
        except json.JSONDecodeError as e:
            raise TaskrelError(f"candidates: {str(path)!r} is not valid JSON ({e})") from None
        if isinstance(data, dict):
            higher_is_better = bool(data.get("higher_is_better", higher_is_better))
            data = data.get("networks")
        if not isinstance(data, list):
            raise TaskrelError(f"candidates: {str(path)!r} must hold a list of networks")
        return cls(data, higher_is_better=higher_is_better)

    @classmethod
    def from_affinity(
        cls,
        affinity: Affinity,
        base_loss: Mapping[str, float] | None = None,
        max_size: int | None = None,
        cost: CostSpec = 1.0,
    ) -> CandidateTable:
        """Every group of up to ``max_size`` tasks scored from an affinity (module docstring).

        >>> aff = Affinity(["a", "b", "c"], [[0, .4, 0], [.2, 0, .1], [0, 0, 0]])
        >>> t = CandidateTable.from_affinity(aff, max_size=2)
        >>> t.higher_is_better, t.value(("a", "b"), "b"), t.value(("a",), "a")
        (True, 0.4, 0.0)
        >>> CandidateTable.from_affinity(aff, base_loss={"a": 1, "b": 1, "c": 1}).value(
        ...     ("a", "b", "c"), "b")
        0.8
        """
        if not isinstance(affinity, Affinity) or affinity.is_staged:
            raise TaskrelError("candidates: from_affinity needs a plain (n x n) taskrel Affinity")
        tasks = list(affinity.tasks)
        onto = np.array(affinity.values, dtype=np.float64)
        np.fill_diagonal(onto, 0.0)
        if base_loss is None:
            return _enumerate(tasks, np.zeros(len(tasks)), onto, max_size, cost, True)
        base = _per_task(base_loss, tasks, "base_loss")
        table = _enumerate(tasks, np.zeros(len(tasks)), onto, max_size, cost, True)
        table.values = np.where(table.members, base[None, :] - table.values, np.nan)
        table.higher_is_better = False
        return table

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.cost)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def groups(self) -> list[tuple[str, ...]]:
        """Each network's tasks (in table task order)."""
        return [self.group(i) for i in range(len(self))]

    def group(self, i: int) -> tuple[str, ...]:
        """The tasks of network ``i`` (in table task order)."""
        return tuple(t for t, m in zip(self.tasks, self.members[i]) if m)

    @property
    def losses(self) -> np.ndarray:
        """Values as losses to minimise (scores negated), ``inf`` outside the members."""
        out = -self.values if self.higher_is_better else self.values.copy()
        out[~self.members] = np.inf
        return out

    def find(self, group: Iterable[str]) -> int:
        """Row index of the network with exactly these tasks (TaskrelError if absent)."""
        names = list(group)
        row = np.zeros(self.n_tasks, dtype=bool)
        for t in names:
            if t not in self.tasks:
                raise TaskrelError(f"candidates: unknown task {t!r}; tasks are {self.tasks}")
            row[self.tasks.index(t)] = True
        hits = np.flatnonzero((self.members == row).all(axis=1))
        if not len(hits):
            raise TaskrelError(f"candidates: no network {'+'.join(names)} in the table")
        return int(hits[0])

    def value(self, group: Iterable[str], task: str) -> float:
        """The value of ``task`` in the network ``group``."""
        r = self.find(group)
        c = self.tasks.index(task) if task in self.tasks else -1
        if c < 0 or not self.members[r, c]:
            raise TaskrelError(f"candidates: {task!r} is not a member of {'+'.join(group)}")
        return float(self.values[r, c])

    def to_frame(self) -> pd.DataFrame:
        """One row per network: ``tasks`` ("a+b"), ``cost``, then one column per task."""
        frame = pd.DataFrame(self.values, columns=self.tasks)
        frame.insert(0, "cost", self.cost)
        frame.insert(0, "tasks", ["+".join(g) for g in self.groups])
        return frame

    def __repr__(self) -> str:
        kind = "scores" if self.higher_is_better else "losses"
        return f"CandidateTable({len(self)} networks, {self.n_tasks} tasks, {kind})"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _number(v: Any, what: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise TaskrelError(f"candidates: {what} is not a number: {v!r}") from None
    if not math.isfinite(x):
        raise TaskrelError(f"candidates: {what} is {x} (NaN or inf is not allowed)")
    return x


def _per_task(mapping: Mapping[str, float], tasks: list[str], what: str) -> np.ndarray:
    out = np.empty(len(tasks))
    for i, t in enumerate(tasks):
        if t not in mapping:
            raise TaskrelError(f"candidates: {what} has no value for task {t!r}")
        out[i] = _number(mapping[t], f"{what}[{t!r}]")
    extra = set(mapping) - set(tasks)
    if extra:
        raise TaskrelError(f"candidates: {what} names unknown task(s) {sorted(extra)}")
    return out


def _costs(cost: CostSpec, tasks: list[str], idx: np.ndarray) -> np.ndarray:
    size = idx.shape[1]
    if callable(cost):
        out = np.array([float(cost(tuple(tasks[i] for i in row))) for row in idx])
    elif isinstance(cost, Mapping):
        if size not in cost:
            raise TaskrelError(f"candidates: cost has no entry for networks of size {size}")
        out = np.full(len(idx), float(cost[size]))
    else:
        out = np.full(len(idx), float(cost))
    if not np.isfinite(out).all() or (out <= 0).any():
        raise TaskrelError(f"candidates: costs of size-{size} networks must be positive numbers")
    return out


def _groups_by_size(n: int, max_size: int):
    """Yield (k, member indices (count, k)) for k = 1..max_size, each row sorted."""
    if n <= 24 and max_size > 3:
        masks = np.arange(1, 1 << n, dtype=np.int64)
        bits = ((masks[:, None] >> np.arange(n)) & 1).astype(bool)
        size = bits.sum(axis=1)
        for k in range(1, max_size + 1):
            sel = bits[size == k]
            yield k, np.nonzero(sel)[1].reshape(-1, k)
        return
    for k in range(1, max_size + 1):
        yield k, np.array(list(combinations(range(n), k)), dtype=np.intp).reshape(-1, k)


def _enumerate(tasks, single, onto, max_size, cost, higher_is_better) -> CandidateTable:
    """Every group up to ``max_size``; member t of G gets mean(onto[s, t], s in G - {t})."""
    n = len(tasks)
    max_size = n if max_size is None else max_size
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 1:
        raise TaskrelError(f"candidates: max_size must be a positive integer, got {max_size!r}")
    max_size = min(int(max_size), n)
    total = sum(comb(n, k) for k in range(1, max_size + 1))
    if total > MAX_ENUMERATED:
        raise TaskrelError(
            f"candidates: {n} tasks with max_size={max_size} make {total} networks (more than "
            f"{MAX_ENUMERATED}); pass a smaller max_size"
        )
    members = np.zeros((total, n), dtype=bool)
    values = np.full((total, n), np.nan)
    costs = np.empty(total)
    row = 0
    for k, idx in _groups_by_size(n, max_size):
        m = len(idx)
        rows = np.arange(row, row + m)
        members[rows[:, None], idx] = True
        costs[rows] = _costs(cost, tasks, idx)
        if k == 1:
            values[rows, idx[:, 0]] = single[idx[:, 0]]
        else:
            for start in range(0, m, 50_000):
                sl = idx[start : start + 50_000]
                sub = onto[sl[:, :, None], sl[:, None, :]].sum(axis=1) / (k - 1)
                values[rows[start : start + 50_000, None], sl] = sub
        row += m
    return CandidateTable.from_arrays(tasks, members, costs, values, higher_is_better,
                                      check_duplicates=False)


def hoa_candidates(
    tasks: list[str],
    single_loss: Mapping[str, float],
    pair_loss: Mapping[tuple[str, str], Mapping[str, float]],
    max_size: int | None = None,
    cost: CostSpec = 1.0,
) -> CandidateTable:
    """Standley's higher-order approximation: every group's per-task loss from pair runs.

    ``pair_loss[(a, b)] = {a: loss of a trained with b, b: loss of b trained with a}`` for
    every pair. The loss of ``t`` in group ``G`` (size >= 2) is the mean of its pair losses with
    the other members; a singleton has ``single_loss[t]``. ``cost`` is one number for every
    network, a dict size -> cost, or a function of the group's task tuple. Groups of every size
    up to ``max_size`` (default: all tasks) are listed; beyond a few million networks, pass
    ``max_size``.

    >>> t = hoa_candidates(["a", "b", "c"], {"a": 1, "b": 1, "c": 1},
    ...     {("a", "b"): {"a": .8, "b": 1.1}, ("a", "c"): {"a": .6, "c": .9},
    ...      ("b", "c"): {"b": .7, "c": 1.0}})
    >>> len(t), t.value(("a", "b", "c"), "a")
    (7, 0.7)
    """
    tasks = [str(t) for t in tasks]
    if len(set(tasks)) != len(tasks) or not tasks:
        raise TaskrelError(f"hoa: task names must be distinct and non-empty, got {tasks}")
    single = _per_task(single_loss, tasks, "single_loss")
    index = {t: i for i, t in enumerate(tasks)}
    onto = np.full((len(tasks), len(tasks)), np.nan)
    np.fill_diagonal(onto, 0.0)
    for key, losses in pair_loss.items():
        if not isinstance(key, tuple) or len(key) != 2 or key[0] == key[1]:
            raise TaskrelError(f"hoa: pair key must be a tuple of two tasks, got {key!r}")
        a, b = key
        for t in (a, b):
            if t not in index:
                raise TaskrelError(f"hoa: pair {key!r}: unknown task {t!r}; tasks are {tasks}")
            if not isinstance(losses, Mapping) or t not in losses:
                raise TaskrelError(f"hoa: pair {key!r}: loss of {t!r} is missing")
        ia, ib = index[a], index[b]
        if not np.isnan(onto[ib, ia]):
            raise TaskrelError(f"hoa: pair {a!r}+{b!r} is given more than once")
        onto[ib, ia] = _number(losses[a], f"pair {key!r}: loss of {a!r}")
        onto[ia, ib] = _number(losses[b], f"pair {key!r}: loss of {b!r}")
    missing = np.argwhere(np.isnan(onto))
    if len(missing) and (max_size is None or max_size >= 2):
        i, j = missing[0]
        raise TaskrelError(f"hoa: no pair loss for {tasks[i]!r}+{tasks[j]!r}")
    return _enumerate(tasks, single, np.nan_to_num(onto), max_size, cost, False)
