"""Missing entries of an affinity: entries no run measured, and the tasks that remain complete.

A probe whose runs failed for some task still gives its affinity: an entry that no seed
measured is NaN and *marked missing* (``Affinity(..., missing=mask)``). NaN is accepted only
where it is marked, so an accidental NaN is still an error. The analyses need complete
matrices: :func:`complete_tasks` drops, greedily, the task with the most missing entries (ties:
the task listed last, so the tasks a user lists first are kept) until none is missing, and
says why each task was left out, with the stored reason of its failed runs where one names it.

>>> mask = np.zeros((3, 3), dtype=bool)
>>> mask[2, :2] = mask[:2, 2] = True          # task "c": no pair with it was measured
>>> complete_tasks(["a", "b", "c"], mask)
(['a', 'b'], {'c': 'no successful run for 4 of its 4 affinity entries'})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskrel.errors import TaskrelError


def check_missing(values: np.ndarray, missing: Any, tasks: list[str], measure: str = "") -> tuple[np.ndarray, np.ndarray | None]:
    """The values (marked entries set to NaN, in a copy) and the mask of missing entries (None
    when none is missing); an unmarked NaN or any inf is an error naming the entry.

    ``missing``: None (nothing missing), True (every NaN entry is missing), or a boolean
    array of the values' shape.

    >>> check_missing(np.array([[0, np.nan], [1, 0]]), True, ["a", "b"])[1].tolist()
    [[False, True], [False, False]]
    >>> check_missing(np.array([[0, np.nan], [1, 0]]), None, ["a", "b"])
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: affinity: value for source 'a' -> target 'b' is nan (NaN or inf is not allowed; mark entries no run measured with missing=)
    """
    if missing is None or missing is False:
        mask = np.zeros(values.shape, dtype=bool)
    elif missing is True:
        mask = np.isnan(values)
    else:
        mask = np.asarray(missing)
        if mask.dtype != bool or mask.shape != values.shape:
            raise TaskrelError(f"affinity {measure}: missing must be None, True or a boolean mask of shape "
                               f"{values.shape}, got {mask.dtype} of shape {mask.shape}")
    bad = ~np.isfinite(values) & ~mask
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise TaskrelError(
            f"affinity: value for source {tasks[idx[-2]]!r} -> target {tasks[idx[-1]]!r} is {values[idx]} "
            "(NaN or inf is not allowed; mark entries no run measured with missing=)"
        )
    if not mask.any():
        return values, None
    return np.where(mask, np.nan, values), mask


def missing_entries(mask: np.ndarray | None, tasks: list[str], stages: list[str] | None = None) -> list[list[Any]]:
    """The marked entries as ``[source, target]`` (``[stage, source, target]`` per stage).

    >>> missing_entries(np.array([[False, True], [False, False]]), ["a", "b"])
    [['a', 'b']]
    """
    if mask is None:
        return []
    out = []
    for idx in np.argwhere(mask):
        names = [tasks[int(idx[-2])], tasks[int(idx[-1])]]
        out.append(names if mask.ndim == 2 else [int(idx[0]), *names])
    return out


def mask_of_entries(entries: Sequence[Sequence[Any]] | None, tasks: list[str], shape: tuple[int, ...]) -> np.ndarray | None:
    """The inverse of :func:`missing_entries` (an entry naming an unknown task is an error)."""
    if not entries:
        return None
    pos = {t: i for i, t in enumerate(tasks)}
    mask = np.zeros(shape, dtype=bool)
    for e in entries:
        e = list(e)
        if len(e) != len(shape) or any(t not in pos for t in e[-2:]):
            raise TaskrelError(f"affinity: missing entry {e!r} does not name {'a stage and ' if len(shape) == 3 else ''}"
                               f"two of the tasks {tasks}")
        mask[(*(int(x) for x in e[:-2]), pos[e[-2]], pos[e[-1]])] = True
    return mask


def task_mask(mask: np.ndarray | None, n: int) -> np.ndarray:
    """An (n, n) mask: an entry missing at any stage is missing."""
    if mask is None:
        return np.zeros((n, n), dtype=bool)
    return mask.any(axis=0) if mask.ndim == 3 else mask


def failure_reason(task: str, failures: Sequence[Mapping[str, Any]]) -> str | None:
    """The stored reason a task's runs failed: a run whose loss of ``task`` diverged, else its
    own single-task run, else any failed run holding it (None when no failure names it).

    >>> failure_reason("b", [{"tasks": ["a", "b"], "failed_task": "b", "error": "training loss of task 'b' became inf"}])
    "diverged: training loss of task 'b' became inf"
    """
    for test in (lambda f: f.get("failed_task") == task, lambda f: list(f.get("tasks") or []) == [task],
                 lambda f: task in (f.get("tasks") or [])):
        hit = next((f for f in failures if isinstance(f, Mapping) and test(f)), None)
        if hit is not None:
            what = "diverged" if hit.get("failed_task") == task else "failed"
            return f"{what}: {hit.get('error')}"
    return None


def complete_tasks(tasks: list[str], mask: np.ndarray | None, failures: Sequence[Mapping[str, Any]] = (),
                   where: str = "") -> tuple[list[str], dict[str, str]]:
    """The tasks whose entries remain complete, and why each other task was left out.

    Greedy: while any entry among the kept tasks is missing, drop the kept task with the most
    missing entries (its row and column; ties: the task listed last). A reason names the
    stored failure of the task's runs (``failures``: dicts with ``tasks``, ``failed_task``,
    ``error``) where one names it, and how many of its entries no run measured (``where``
    adds, for example, the probe). The kept list may be empty.
    """
    n = len(tasks)
    full = task_mask(mask, n)
    keep = list(range(n))
    left: dict[str, str] = {}
    while keep:
        sub = full[np.ix_(keep, keep)]
        counts = sub.sum(axis=0) + sub.sum(axis=1) - np.diag(sub)
        if counts.max() == 0:
            break
        worst = max(range(len(keep)), key=lambda k: (int(counts[k]), k))
        i = keep.pop(worst)
        total = int(full[i].sum() + full[:, i].sum() - full[i, i])
        entries = 2 * (n - 1) + int(full[i, i])
        why = f"no successful run for {total} of its {entries} affinity entries{where}"
        stored = failure_reason(tasks[i], failures)
        left[tasks[i]] = f"{stored}; {why}" if stored else why
    return [tasks[i] for i in keep], left


def complete_over(affinities: Mapping[str, Any], tasks: list[str]) -> tuple[list[str], dict[str, str]]:
    """:func:`complete_tasks` over several affinities at once (an entry missing in any of them
    is missing), restricted to ``tasks``; reasons name the probes whose entries are missing.

    ``affinities``: name -> :class:`~taskrel.affinity.Affinity` (per-stage ones by every stage).
    """
    n = len(tasks)
    pos = {t: i for i, t in enumerate(tasks)}
    full = np.zeros((n, n), dtype=bool)
    failures: list[Mapping[str, Any]] = []
    by: dict[str, list[str]] = {}
    for name, aff in affinities.items():
        m = task_mask(aff.missing, aff.n_tasks)
        failures += [f for f in aff.meta.get("failed") or [] if isinstance(f, Mapping)]
        idx = [(pos[t], k) for k, t in enumerate(aff.tasks) if t in pos]
        for a, i in idx:
            for b, j in idx:
                if m[i, j]:
                    full[a, b] = True
                    for t in {tasks[a], tasks[b]}:
                        by.setdefault(t, []).append(name)
    keep, left = complete_tasks(tasks, full, failures)
    for t in left:
        probes = ", ".join(dict.fromkeys(by.get(t, [])))
        left[t] += f" (probe {probes})" if probes else ""
    return keep, left


__all__ = ["check_missing", "complete_over", "complete_tasks", "failure_reason", "mask_of_entries",
           "missing_entries", "task_mask"]
