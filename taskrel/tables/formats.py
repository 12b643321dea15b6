"""Reading and writing candidate tables: records, DataFrames, CSV and JSON files.

The file side of :class:`~taskrel.tables.CandidateTable` (a base class it inherits from):
one row per network with ``name``, ``tasks``, ``width``, ``cost``, one column per task and
optional ``std:<task>`` columns; JSON as a list of records or :meth:`TableFiles.to_json`'s
object.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from taskrel.errors import TaskrelError
from taskrel.files import atomic_write_text, read_json, read_text
from taskrel.tables.group_estimates import number

RESERVED = ("name", "tasks", "width", "cost")


def split_tasks(value: Any, row: int) -> list[str]:
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


def missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def parse_records(records: Iterable[Mapping[str, Any]], tasks: list[str] | None):
    """Arrays of a table from its records: (tasks, members, cost, values, width, std or None,
    names with None where a record has no name)."""
    records = list(records)
    groups = []
    for r, rec in enumerate(records):
        if not isinstance(rec, Mapping) or "tasks" not in rec:
            raise TaskrelError(f"candidates: row {r}: a record needs a 'tasks' field")
        groups.append(split_tasks(rec["tasks"], r))
    if tasks is None:
        tasks = list(dict.fromkeys(t for g in groups for t in g))
    tasks = [str(t) for t in tasks]
    index = {t: i for i, t in enumerate(tasks)}
    g, n = len(records), len(tasks)
    members = np.zeros((g, n), dtype=bool)
    values, std = np.full((g, n), np.nan), np.full((g, n), np.nan)
    cost, width = np.empty(g), np.ones(g)
    names, any_std = [], False
    for r, (rec, group) in enumerate(zip(records, groups)):
        label = str(rec.get("name") or "+".join(group))
        if "width" in rec and not missing(rec["width"]):
            width[r] = number(rec["width"], f"network {label}: width")
        names.append(None if missing(rec.get("name")) else str(rec["name"]))
        vals, spread = rec.get("values", rec), rec.get("std")
        if "cost" not in rec:
            raise TaskrelError(f"candidates: network {label}: 'cost' is missing")
        cost[r] = number(rec["cost"], f"network {label}: cost")
        for t in group:
            if t not in index:
                raise TaskrelError(f"candidates: network {label}: unknown task {t!r}; "
                                   f"tasks are {tasks}")
            if not isinstance(vals, Mapping) or t not in vals or missing(vals[t]):
                raise TaskrelError(f"candidates: network {label}: value missing for "
                                   f"member {t!r}")
            members[r, index[t]] = True
            values[r, index[t]] = number(vals[t], f"network {label}: value of {t!r}")
            if isinstance(spread, Mapping) and t in spread and not missing(spread[t]):
                std[r, index[t]] = number(spread[t], f"network {label}: std of {t!r}")
                any_std = True
    return tasks, members, cost, values, width, (std if any_std else None), names


class TableFiles:
    """Constructors from frames and files, and writers (mixed into CandidateTable)."""

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, higher_is_better: bool = False,
                   n_seeds: int = 1) -> Any:
        """One row per network: ``tasks``, ``cost``, optional ``name`` and ``width``, then one
        column per task (NaN = not a member) and optional ``std:<task>`` columns.

        >>> from taskrel.tables import CandidateTable
        >>> df = pd.DataFrame({"tasks": ["a", "b", "a+b"], "cost": [1, 1, 1.5],
        ...                    "a": [0.5, None, 0.3], "b": [None, 0.4, 0.35]})
        >>> CandidateTable.from_frame(df).cost.tolist()
        [1.0, 1.0, 1.5]
        >>> CandidateTable.from_frame(df.assign(b=[0.9, 0.4, 0.35]))
        Traceback (most recent call last):
        ...
        taskrel.errors.TaskrelError: candidates: row 1 (network 'a') has a value for task 'b', which is not in that network; leave that cell empty or add the task to the row's tasks
        """
        for col in ("tasks", "cost"):
            if col not in frame.columns:
                raise TaskrelError(f"candidates: column {col!r} is missing from the table")
        cols = [str(c) for c in frame.columns]
        task_cols = [c for c in cols if c not in RESERVED and not c.startswith("std:")]
        std_cols = [c for c in cols if c.startswith("std:")]
        records = []
        for _, row in frame.iterrows():
            rec = {k: row[k] for k in RESERVED  # a blank name or width takes its default
                   if k in frame.columns and (k in ("tasks", "cost") or not missing(row[k]))}
            rec["values"] = {c: row[c] for c in task_cols if not missing(row[c])}
            parts = [m.strip() for m in row["tasks"].split("+")] if isinstance(row["tasks"], str) else []
            members = set(parts)  # an unknown or repeated member: the table says so first
            known = bool(parts) and len(members) == len(parts) and members <= set(task_cols)
            stray = [c for c in rec["values"] if known and c not in members]
            if stray:
                raise TaskrelError(f"candidates: row {len(records) + 1} (network {row['tasks']!r}) has a value for "
                                   f"task {stray[0]!r}, which is not in that network; leave that cell empty or add "
                                   f"the task to the row's tasks")
            if std_cols:
                rec["std"] = {c[4:]: row[c] for c in std_cols if not missing(row[c])}
            records.append(rec)
        return cls(records, tasks=task_cols or None, higher_is_better=higher_is_better,
                   n_seeds=n_seeds)

    @classmethod
    def from_csv(cls, path: str | Path, higher_is_better: bool = False) -> Any:
        """Read :meth:`from_frame`'s layout from a CSV file."""
        import io

        text = read_text(path, "candidates")
        if not text.strip():
            raise TaskrelError(f"candidates: file {str(path)!r} is empty (expected a CSV table with tasks and cost columns)")
        if "\x00" in text:
            raise TaskrelError(f"candidates: file {str(path)!r} is binary, not a CSV table")
        try:
            frame = pd.read_csv(io.StringIO(text))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
            raise TaskrelError(f"candidates: {str(path)!r} is not a readable CSV table ({str(e).strip()})") from None
        return cls.from_frame(frame, higher_is_better=higher_is_better)

    @classmethod
    def from_json(cls, path: str | Path, higher_is_better: bool = False) -> Any:
        """Read a JSON list of records (class docstring), or :meth:`to_json`'s object."""
        data = read_json(path, "candidates")
        n_seeds, tasks = 1, None
        if isinstance(data, dict):
            higher_is_better = bool(data.get("higher_is_better", higher_is_better))
            n_seeds, tasks = int(data.get("n_seeds", 1)), data.get("tasks")
            data = data.get("networks")
        if not isinstance(data, list):
            raise TaskrelError(f"candidates: {str(path)!r} must hold a list of networks")
        return cls(data, tasks=tasks, higher_is_better=higher_is_better, n_seeds=n_seeds)

    def to_frame(self) -> pd.DataFrame:
        """One row per network: ``name``, ``tasks`` ("a+b"), ``width``, ``cost``, then one
        column per task (and ``std:<task>`` columns when the table has std)."""
        frame = pd.DataFrame(self.values, columns=self.tasks)
        if self.std is not None:
            for c, t in enumerate(self.tasks):
                frame[f"std:{t}"] = self.std[:, c]
        frame.insert(0, "cost", self.cost)
        frame.insert(0, "width", self.width)
        frame.insert(0, "tasks", ["+".join(g) for g in self.groups])
        frame.insert(0, "name", self.names)
        return frame

    def to_json(self, path: str | Path) -> Path:
        """Write the table as JSON (full precision) that :meth:`from_json` reads back."""
        nets = []
        for i in range(len(self)):
            g = self.group(i)
            rec = {"name": self.name(i), "tasks": list(g), "width": float(self.width[i]),
                   "cost": float(self.cost[i]),
                   "values": {t: float(self.values[i, self.tasks.index(t)]) for t in g}}
            if self.std is not None:
                rec["std"] = {t: float(self.std[i, self.tasks.index(t)]) for t in g}
            nets.append(rec)
        path = Path(path)
        atomic_write_text(path, json.dumps({"tasks": self.tasks, "higher_is_better": self.higher_is_better,
                                            "n_seeds": self.n_seeds, "networks": nets}, indent=1))
        return path
