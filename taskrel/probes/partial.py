"""Partial results of the probes: what a probe does when some of its runs failed.

A probe with failed runs still gives its affinity: an entry no seed measured is NaN, marked
missing (:func:`~taskrel.probes.base.affinity_from_seeds`), and the failures are listed.

Probes whose one joint run holds every task (gradient, lookahead, gradient-feature) would lose
everything to one task whose loss diverges. For them a failed run that names the task that
diverged is *replaced*: the same run (same config, seed and callbacks) is trained on the other
tasks, all sharing as before (:func:`without_failed_task`), and the probe measures the
remaining tasks from it, with NaN at every entry of the task that diverged. The replacement is
recorded (``meta["replaced"]``); its values describe the remaining tasks trained *without*
the task that diverged, which is the only joint run of them that exists. A replacement that
diverges in turn is replaced the same way, until fewer than two tasks would remain.

>>> full = place(np.array([[1.0, 0.2], [0.3, 1.0]]), ["a", "c"], ["a", "b", "c"])
>>> full.tolist()[0], bool(np.isnan(full[1]).all())
([1.0, nan, 0.2], True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.store import RunRecord, RunSpec
from taskrel.tables import CandidateTable


def without_failed_task(spec: RunSpec, record: RunRecord, minimum: int = 2) -> RunSpec | None:
    """``spec`` with every task but the one whose loss diverged in ``record`` sharing every
    stage (the rest of the spec unchanged), or None when the record names no task of the
    spec or fewer than ``minimum`` tasks would remain.

    >>> from taskrel.records import RunRecord
    >>> spec = RunSpec(SharingLayout.shared(["a", "b", "c"], 2), seed=3, label="joint")
    >>> rec = RunRecord("k", {}, "failed", error="training loss of task 'b' became inf", failed_task="b")
    >>> new = without_failed_task(spec, rec)
    >>> new.layout.tasks, new.seed, new.label
    (['a', 'c'], 3, "joint without 'b'")
    >>> without_failed_task(new, RunRecord("k", {}, "failed", failed_task="a")) is None
    True
    """
    task = record.failed_task
    tasks = [t for t in spec.layout.tasks if t != task]
    if record.ok or task is None or len(tasks) == len(spec.layout.tasks) or len(tasks) < minimum:
        return None
    return dataclasses.replace(spec, layout=SharingLayout.shared(tasks, spec.layout.n_stages),
                               label=f"{spec.label or 'run'} without {task!r}")


def replace_failed(
    replacement: Callable[[RunSpec, RunRecord], RunSpec | None],
    run: Callable[[list[RunSpec]], Any],
    specs: Sequence[RunSpec],
    records: Sequence[RunRecord],
) -> tuple[list[RunRecord], list[RunRecord], int, list[dict[str, Any]]]:
    """Train, for every failed record, the run ``replacement`` offers instead (each must hold
    fewer tasks than the one it replaces, so this ends), again for failed replacements.

    ``run`` trains a list of specs and returns their records (a :class:`~taskrel.runner.RunList`).
    Returns the records aligned with ``specs`` (replacements in place of the failed runs), every
    distinct record used (failed ones included), how many runs were trained here, and one entry
    per replacement: ``run`` (the failed run), ``failed_task``, ``by`` (the new run's label) and
    ``tasks`` (its tasks).
    """
    specs, current = list(specs), list(records)
    every = {r.key: r for r in records}
    trained, replaced = 0, []
    while True:
        redo = {}
        for i, (spec, rec) in enumerate(zip(specs, current)):
            new = None if rec.ok else replacement(spec, rec)
            if new is not None and len(new.layout.tasks) < len(spec.layout.tasks):
                redo[i] = new
        if not redo:
            return current, list(every.values()), trained, replaced
        got = run(list(redo.values()))
        trained += int(getattr(got, "trained", 0))
        for (i, new), rec in zip(redo.items(), got):
            replaced.append({"run": current[i].label or current[i].key, "failed_task": current[i].failed_task,
                             "by": new.label, "tasks": list(new.layout.tasks)})
            specs[i], current[i] = new, rec
            every.setdefault(rec.key, rec)


def run_tasks(record: RunRecord, tasks: Sequence[str]) -> list[str]:
    """The tasks of ``tasks`` that the run of ``record`` trained (in the order of ``tasks``)."""
    held = set(record.tasks) if record.spec else set(tasks)
    return [t for t in tasks if t in held]


def place(values: np.ndarray, sub: Sequence[str], tasks: Sequence[str]) -> np.ndarray:
    """An (..., n, n) array over ``tasks`` holding ``values`` (over ``sub``, a subset of them)
    and NaN at every entry of a task not in ``sub``."""
    values = np.asarray(values, dtype=np.float64)
    pos = [list(tasks).index(t) for t in sub]
    out = np.full((*values.shape[:-2], len(tasks), len(tasks)), np.nan)
    out[..., np.ix_(pos, pos)[0], np.ix_(pos, pos)[1]] = values
    return out


def restrict_candidates(table: CandidateTable, tasks: Sequence[str]) -> CandidateTable:
    """The networks of ``table`` that serve only ``tasks``, on those tasks' columns (in the
    table's order); a task the table lacks is an error.

    >>> t = CandidateTable([{"tasks": "a", "cost": 1, "a": .5}, {"tasks": "b", "cost": 1, "b": .4},
    ...                     {"tasks": "a+b", "cost": 1, "values": {"a": .3, "b": .4}}])
    >>> restrict_candidates(t, ["a"]).names
    ['a']
    """
    unknown = [t for t in tasks if t not in table.tasks]
    if unknown:
        raise TaskrelError(f"candidates: tasks {unknown} are not in the table (its tasks are {table.tasks})")
    if list(table.tasks) == list(tasks):
        return table
    cols = [c for c, t in enumerate(table.tasks) if t in set(tasks)]
    outside = np.ones(len(table.tasks), dtype=bool)
    outside[cols] = False
    rows = [r for r in range(len(table)) if not table.members[r, outside].any()]
    return CandidateTable.from_arrays(
        [table.tasks[c] for c in cols], table.members[rows][:, cols], table.cost[rows], table.values[rows][:, cols],
        table.higher_is_better, False, [table.name(r) for r in rows], table.width[rows],
        None if table.std is None else table.std[rows][:, cols], table.n_seeds, table.meta)


def unmeasured(tasks: Sequence[str], have: Sequence[str], failures: Sequence[RunRecord], what: str) -> TaskrelError | None:
    """The error for a request over ``tasks`` of which only ``have`` were measured (None when
    none is lacking): it names each task lacking and the stored reason of its failed runs."""
    lacking = [t for t in tasks if t not in set(have)]
    if not lacking:
        return None
    why = []
    for t in lacking:
        rec = next((r for r in failures if r.failed_task == t), None) or next((r for r in failures if t in r.tasks), None)
        why.append(f"{t!r} ({rec.error})" if rec is not None else repr(t))
    return TaskrelError(f"{what}: no successful run measured {', '.join(why)}; pass tasks= the others "
                        f"(measured: {list(have)})")


__all__ = ["place", "replace_failed", "restrict_candidates", "run_tasks", "unmeasured", "without_failed_task"]
