"""Candidate networks for the grouping search (Standley et al., 2020).

A :class:`CandidateTable` lists candidate networks. Each network has its own identity: a
``name`` (unique in the table), the ``tasks`` it trains, a ``width`` (its size relative to a
full network: Standley's half-size networks have width 0.5) and a ``cost`` (any positive
number: inference time, parameters, networks). Several networks may hold the same tasks, at
different widths or under different names. For each member task the table holds its value in
that network: a loss (lower is better, the default) or a score (``higher_is_better=True``),
optionally with its spread over seeds (``std``, ``n_seeds``).

A network's default name is its tasks joined by ``+`` (``"a+b"``), with ``@width`` added
when the width is not 1 (``"a+b@0.5"``).

Tables come from records, a DataFrame, CSV or JSON (one row per network), or are estimated
(:mod:`taskrel.tables.group_estimates`): :func:`hoa_candidates` (Standley's higher-order
approximation from pair runs) and :meth:`CandidateTable.from_affinity` (the rule for the
affinity's calibration). ``table.meta["rule"]`` says which rule built an estimated table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.tables.formats import TableFiles, parse_records, split_tasks
from taskrel.tables.group_estimates import (
    CostSpec,
    WidthCost,
    affinity_arrays,
)


def default_name(tasks: Iterable[str], width: float = 1.0) -> str:
    """``"a+b"``, or ``"a+b@0.5"`` for a width other than 1."""
    base = "+".join(tasks)
    return base if width == 1.0 else f"{base}@{width:g}"


class CandidateTable(TableFiles):
    """Candidate networks with identity, width, cost and per-task values (module docstring).

    Parameters
    ----------
    records : iterable of dicts, one per network: ``tasks`` ("a+b" or a list), ``cost``,
        optional ``name`` and ``width`` (default 1), the member values either under
        ``values`` (a dict task -> value) or as keys named after the tasks, and optionally
        ``std`` (a dict task -> spread over seeds).
    tasks : all task names (default: the members in order of appearance).
    higher_is_better : values are scores to maximise instead of losses to minimise.
    n_seeds : how many seeds each value is the mean of (the standard error is std/sqrt(n)).

    Examples
    --------
    >>> table = CandidateTable([
    ...     {"tasks": "a", "cost": 1, "a": 0.5},
    ...     {"tasks": "a", "width": 0.5, "cost": 0.5, "a": 0.6},
    ...     {"tasks": "b", "cost": 1, "b": 0.4},
    ...     {"tasks": "a+b", "cost": 1, "values": {"a": 0.3, "b": 0.45}},
    ... ])
    >>> len(table), table.tasks, table.names
    (4, ['a', 'b'], ['a', 'a@0.5', 'b', 'a+b'])
    >>> table.value("a@0.5", "a"), table.value(("a", "b"), "a")
    (0.6, 0.3)
    >>> table.to_frame().loc[1, "name"], float(table.width[1]), float(table.cost[1])
    ('a@0.5', 0.5, 0.5)
    """

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]],
        tasks: list[str] | None = None,
        higher_is_better: bool = False,
        n_seeds: int = 1,
    ):
        tasks, members, cost, values, width, std, names = parse_records(records, tasks)
        if all(x is None for x in names):
            names = None  # default names, from the members in table order and the width
        else:
            names = [x if x is not None else
                     default_name([t for t, m in zip(tasks, members[r]) if m], width[r])
                     for r, x in enumerate(names)]
        self._set(tasks, members, cost, values, bool(higher_is_better), names=names,
                  width=width, std=std, n_seeds=n_seeds)

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
        names: list[str] | None = None,
        width: np.ndarray | None = None,
        std: np.ndarray | None = None,
        n_seeds: int = 1,
        meta: dict[str, Any] | None = None,
    ) -> CandidateTable:
        """Build from a boolean membership matrix (networks x tasks), costs and values.

        ``values`` (and ``std``) outside the members are ignored (stored as NaN); ``names``
        default to the tasks (and width); ``width`` defaults to 1. ``check_duplicates=False``
        skips the identity check (for generated tables known to hold each network once).

        >>> t = CandidateTable.from_arrays(["a", "b"], [[1, 0], [1, 0], [1, 1]], [1, .5, 2],
        ...                                [[3, 0], [4, 0], [2, 1]], width=[1, .5, 1])
        >>> t.groups, t.names
        ([('a',), ('a',), ('a', 'b')], ['a', 'a@0.5', 'a+b'])
        """
        self = cls.__new__(cls)
        members = np.asarray(members, dtype=bool)
        values = np.where(members, np.asarray(values, dtype=np.float64), np.nan)
        if std is not None:
            std = np.where(members, np.asarray(std, dtype=np.float64), np.nan)
        width = np.ones(len(members)) if width is None else np.asarray(width, dtype=np.float64)
        self._set([str(t) for t in tasks], members, np.asarray(cost, dtype=np.float64), values,
                  bool(higher_is_better), check_duplicates, names, width, std, n_seeds, meta)
        return self

    def _set(self, tasks, members, cost, values, higher_is_better, check_duplicates=True,
             names=None, width=None, std=None, n_seeds=1, meta=None) -> None:
        if len(set(tasks)) != len(tasks):
            raise TaskrelError(f"candidates: duplicate task names in {tasks}")
        g, n = members.shape if members.ndim == 2 else (0, 0)
        width = np.ones(g) if width is None else width
        if (members.ndim != 2 or n != len(tasks) or cost.shape != (g,) or values.shape != (g, n)
                or width.shape != (g,) or (std is not None and std.shape != (g, n))):
            raise TaskrelError(
                f"candidates: shapes do not agree: members {members.shape}, cost {cost.shape}, "
                f"values {values.shape}, width {width.shape}, {len(tasks)} tasks"
            )
        if g == 0:
            raise TaskrelError("candidates: the table has no networks")
        self.tasks, self.members, self.cost, self.values = list(tasks), members, cost, values
        self.width, self.higher_is_better = width, bool(higher_is_better)
        self._names = None if names is None else [str(x) for x in names]
        self._index: dict[str, int] | None = None
        self.std = std
        self.n_seeds = int(n_seeds)
        self.meta = dict(meta or {})
        self._validate(check_duplicates)

    def _validate(self, check_duplicates: bool) -> None:
        sizes = self.members.sum(axis=1)
        if (sizes == 0).any():
            raise TaskrelError(f"candidates: network {int(np.argmin(sizes))} has no tasks")
        for what, arr in (("cost", self.cost), ("width", self.width)):
            for r in np.flatnonzero(~np.isfinite(arr) | (arr <= 0))[:1]:
                raise TaskrelError(f"candidates: network {self.name(r)}: {what} must be a "
                                   f"positive number, got {arr[r]}")
        for r, c in np.argwhere(self.members & ~np.isfinite(self.values))[:1]:
            raise TaskrelError(f"candidates: network {self.name(r)}: value of "
                               f"{self.tasks[c]!r} is {self.values[r, c]} (NaN or missing)")
        if self.std is not None:
            bad = self.members & (~np.isfinite(self.std) | (self.std < 0))
            for r, c in np.argwhere(bad)[:1]:
                raise TaskrelError(f"candidates: network {self.name(r)}: std of "
                                   f"{self.tasks[c]!r} is {self.std[r, c]} (every member "
                                   f"needs a finite, non-negative std)")
        if self.n_seeds < 1:
            raise TaskrelError(f"candidates: n_seeds must be >= 1, got {self.n_seeds}")
        if check_duplicates:
            self._check_identity()

    def _check_identity(self) -> None:
        if self._names is None:  # default names: the identity is the tasks and the width
            key = np.concatenate([np.packbits(self.members, axis=1),
                                  self.width.view(np.uint8).reshape(len(self), -1)], axis=1)
            _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
            dup = np.flatnonzero(counts[inverse.ravel()] > 1)
            keys = [self.name(r) for r in dup]
        else:
            seen: dict[str, int] = {}
            for name in self._names:
                seen[name] = seen.get(name, 0) + 1
            dup = [r for r, name in enumerate(self._names) if seen[name] > 1]
            keys = [self._names[r] for r in dup]
        if len(dup):
            rows: dict[str, list[int]] = {}
            for key_, r in zip(keys, dup):
                rows.setdefault(key_, []).append(int(r))
            clashes = "; ".join(f"{k} (rows {', '.join(map(str, v))})" for k, v in rows.items())
            raise TaskrelError(
                f"candidates: networks listed more than once: {clashes}. Give each network of "
                f"the same tasks its own 'name' or 'width'"
            )

    @classmethod
    def from_affinity(
        cls,
        affinity: Affinity,
        base_loss: Mapping[str, float] | Mapping[float, Mapping[str, float]] | None = None,
        max_size: int | None = None,
        cost: CostSpec = 1.0,
        rule: str = "auto",
        higher_is_better: bool = False,
        width_cost: WidthCost = None,
    ) -> CandidateTable:
        """Every group of up to ``max_size`` tasks scored from an affinity.

        ``rule="auto"`` takes the rule for the affinity's calibration (``"hoa"`` for relative
        gains, ``"mean-gain"`` for gains, ``"no-singleton"`` for uncalibrated scores; see
        :mod:`taskrel.tables.group_estimates`); ``table.meta["rule"]`` records it. Without
        ``base_loss`` the table holds scores (higher is better); with it (``{task: value}``,
        or ``{width: {task: value}}`` for networks of several widths) it holds values in
        the base's units, losses unless ``higher_is_better``. A network of width ``w`` costs
        ``cost`` times ``width_cost(w)`` (default: ``w``).

        >>> aff = Affinity(["a", "b", "c"], [[0, .4, 0], [.2, 0, .1], [0, 0, 0]],
        ...                measure="pairwise")
        >>> t = CandidateTable.from_affinity(aff, max_size=2)
        >>> t.meta["rule"], t.higher_is_better, t.value(("a", "b"), "b"), t.value("a", "a")
        ('hoa', True, 0.4, 0.0)
        >>> CandidateTable.from_affinity(aff, base_loss={"a": 1, "b": 2, "c": 1}).value(
        ...     "a+b+c", "b")
        1.6
        >>> cka = Affinity(["a", "b", "c"], [[1, .9, .5], [.9, 1, .4], [.5, .4, 1]],
        ...                measure="similarity-linear")
        >>> s = CandidateTable.from_affinity(cka)
        >>> s.meta["rule"], min(len(g) for g in s.groups)
        ('no-singleton', 2)
        """
        return cls.from_arrays(**affinity_arrays(affinity, base_loss, max_size, cost, rule,
                                                 higher_is_better, width_cost),
                               check_duplicates=False)

    @classmethod
    def concat(cls, tables: Iterable[CandidateTable]) -> CandidateTable:
        """One table of the networks of several (same tasks, same direction; names distinct).

        >>> a = CandidateTable([{"tasks": "a", "cost": 1, "a": 1.0}])
        >>> b = CandidateTable([{"tasks": "a", "width": .5, "cost": .5, "a": 1.2}])
        >>> CandidateTable.concat([a, b]).names
        ['a', 'a@0.5']
        """
        tables = list(tables)
        if not tables or any(not isinstance(t, CandidateTable) for t in tables):
            raise TaskrelError("candidates: concat needs one or more CandidateTables")
        first = tables[0]
        for t in tables[1:]:
            if t.tasks != first.tasks or t.higher_is_better != first.higher_is_better:
                raise TaskrelError(
                    f"candidates: concat needs the same tasks and direction; got {first.tasks} "
                    f"({first.direction}) and {t.tasks} ({t.direction})"
                )
        std = None
        if any(t.std is not None for t in tables):
            std = np.concatenate([t.std if t.std is not None else np.zeros(t.values.shape)
                                  for t in tables])
        return cls.from_arrays(
            first.tasks, np.concatenate([t.members for t in tables]),
            np.concatenate([t.cost for t in tables]), np.concatenate([t.values for t in tables]),
            first.higher_is_better, names=[n for t in tables for n in t.names],
            width=np.concatenate([t.width for t in tables]), std=std,
            n_seeds=min(t.n_seeds for t in tables), meta=first.meta,
        )

    def take(self, rows: Iterable[int]) -> CandidateTable:
        """The table of some networks (by row), identities kept."""
        rows = np.asarray(list(rows), dtype=np.intp)
        return CandidateTable.from_arrays(
            self.tasks, self.members[rows], self.cost[rows], self.values[rows],
            self.higher_is_better, False, [self.name(r) for r in rows], self.width[rows],
            None if self.std is None else self.std[rows], self.n_seeds, self.meta)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.cost)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def objective(self) -> str:
        """What the search's objective is, in words."""
        what = self.meta.get("value") or ("score" if self.higher_is_better else "loss")
        return f"total {what} over the tasks, each from the network serving it ({self.direction})"

    @property
    def names(self) -> list[str]:
        """Each network's name (its identity)."""
        if self._names is None:
            self._names = [default_name(self.group(i), self.width[i]) for i in range(len(self))]
        return self._names

    def name(self, i: int) -> str:
        """The name of network ``i``."""
        if self._names is not None:
            return self._names[i]
        return default_name(self.group(i), self.width[i])

    def index(self, name: str) -> int:
        """Row of the network called ``name`` (TaskrelError if absent)."""
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names)}
        if name not in self._index:
            raise TaskrelError(f"candidates: no network named {name!r} in the table")
        return self._index[name]

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

    @property
    def sem(self) -> np.ndarray | None:
        """Standard error of each value (``std / sqrt(n_seeds)``), None without std."""
        return None if self.std is None else self.std / math.sqrt(self.n_seeds)

    def find(self, group: Iterable[str], width: float | None = None) -> int:
        """Row of the one network with exactly these tasks (and ``width``, if given)."""
        names = [group] if isinstance(group, str) else list(group)
        row = np.zeros(self.n_tasks, dtype=bool)
        for t in names:
            if t not in self.tasks:
                raise TaskrelError(f"candidates: unknown task {t!r}; tasks are {self.tasks}")
            row[self.tasks.index(t)] = True
        hit = (self.members == row).all(axis=1)
        if width is not None:
            hit &= self.width == float(width)
        hits = np.flatnonzero(hit)
        label = "+".join(names) + ("" if width is None else f" at width {width:g}")
        if not len(hits):
            raise TaskrelError(f"candidates: no network {label} in the table")
        if len(hits) > 1:
            raise TaskrelError(f"candidates: several networks hold {label}: "
                               f"{', '.join(self.name(h) for h in hits)}; name the one you mean")
        return int(hits[0])

    def row(self, network: str | Iterable[str]) -> int:
        """Row of a network given by name, or by its tasks when they name one network."""
        if isinstance(network, str):
            if self._index is None:
                self._index = {n: i for i, n in enumerate(self.names)}
            if network in self._index:
                return self._index[network]
            return self.find(split_tasks(network, 0))
        return self.find(network)

    def value(self, network: str | Iterable[str], task: str) -> float:
        """The value of ``task`` in a network (its name, or its tasks if unambiguous)."""
        r = self.row(network)
        c = self.tasks.index(task) if task in self.tasks else -1
        if c < 0 or not self.members[r, c]:
            raise TaskrelError(f"candidates: {task!r} is not a member of {self.name(r)}")
        return float(self.values[r, c])

    def __repr__(self) -> str:
        kind = "scores" if self.higher_is_better else "losses"
        return f"CandidateTable({len(self)} networks, {self.n_tasks} tasks, {kind})"
