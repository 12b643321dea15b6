"""Auxiliary tasks for one primary task: which other tasks help it most.

:func:`rank_auxiliaries` reads the ranking straight off an affinity matrix (no training).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError


def rank_auxiliaries(affinity: Affinity, primary: str) -> pd.DataFrame:
    """Rank every other task by its effect on ``primary``, best first.

    The effect of source ``s`` on the primary is ``affinity.values[s, primary]`` (the column of
    the primary; larger is better for the primary). Ties are broken by the smaller std, then by
    name.

    Returns a DataFrame with columns ``source``, ``affinity`` and ``std`` (spread over seeds).

    >>> aff = Affinity(["a", "b", "c"], [[0, 0.1, 0], [0.5, 0, 0], [-0.2, 0.3, 0]])
    >>> rank_auxiliaries(aff, "a")
      source  affinity  std
    0      b       0.5  0.0
    1      c      -0.2  0.0
    """
    if not isinstance(affinity, Affinity):
        raise TaskrelError(
            f"auxiliary: expected a taskrel Affinity, got {type(affinity).__name__}"
        )
    if affinity.is_staged:
        raise TaskrelError("auxiliary: affinity is per-stage; rank from one stage (.stage(k))")
    if primary not in affinity.tasks:
        raise TaskrelError(
            f"auxiliary: unknown primary task {primary!r}; tasks are {affinity.tasks}"
        )
    if affinity.n_tasks < 2:
        raise TaskrelError(f"auxiliary: primary {primary!r} is the only task; nothing to rank")
    j = affinity.index(primary)
    rows = [
        (t, float(affinity.values[i, j]), float(affinity.std[i, j]))
        for i, t in enumerate(affinity.tasks)
        if i != j
    ]
    rows.sort(key=lambda r: (-r[1], r[2], r[0]))
    frame = pd.DataFrame(rows, columns=["source", "affinity", "std"])
    frame["affinity"] = frame["affinity"].astype(np.float64)
    return frame


# Greedy forward selection with real training runs, which tries candidates in the order of
# rank_auxiliaries: taskrel.analysis.selection.GreedyAuxiliarySelection.
