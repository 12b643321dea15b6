"""Which groups to measure next: the ones a group-value model is least sure of.

After a first design (singles, pairs, some larger groups), each further measured group should
teach the model the most. :func:`most_uncertain` ranks a pool of candidate groups (for example
random groups, or the groups of the current best grouping) by the summed standard error of
their members' predicted values, the uncertainty of the group's total value that a choice
between groupings weighs, and returns the ``n`` highest not yet measured.

>>> import numpy as np
>>> def predict(members):
...     m = np.asarray(members, dtype=bool)
...     return np.where(m, 1.0, np.nan), np.where(m, m.sum(1, keepdims=True) * 0.1, np.nan)
>>> from taskrel.tables.group_values import GroupValues
>>> pool = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
>>> most_uncertain(GroupValues(["a", "b", "c"], False, predict), pool, 1).tolist()
[1]
"""
from __future__ import annotations

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.tables.group_values import check_members


def most_uncertain(model, pool, n: int, measured=None) -> np.ndarray:
    """Row indices of ``pool`` (a boolean (m, tasks) matrix) to measure next, most uncertain first.

    ``model`` is a group-value model; ``measured`` (optional, a boolean matrix) lists groups
    already measured, which are never proposed again. Groups whose standard error is unknown
    (NaN) rank first: nothing is known of them.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise TaskrelError(f"active choice: n must be a positive integer, got {n!r}")
    pool = check_members(pool, len(model.tasks), "active choice")
    fresh = np.ones(len(pool), dtype=bool)
    if measured is not None and len(measured):
        done = {row.tobytes() for row in check_members(measured, len(model.tasks), "active choice")}
        fresh = np.array([row.tobytes() not in done for row in pool])
    _, se = model.predict_members(pool)
    score = np.where(pool, np.asarray(se, dtype=float), 0.0)
    total = np.where(np.isnan(score).any(1), np.inf, np.nan_to_num(score).sum(1))
    order = [int(i) for i in np.argsort(-total, kind="stable") if fresh[i]]
    return np.array(order[: int(n)], dtype=int)


def random_pool(n: int, min_size: int, max_size: int, count: int, exclude, seed: int) -> np.ndarray:
    """Up to ``count`` distinct random groups of ``min_size..max_size`` of ``n`` tasks, none in
    ``exclude`` (a boolean matrix), as a boolean matrix (seeded)."""
    rng = np.random.default_rng(seed)
    seen = {row.tobytes() for row in np.asarray(exclude, dtype=bool)}
    out = []
    for _ in range(20 * count):
        row = np.zeros(n, dtype=bool)
        row[rng.choice(n, int(rng.integers(min_size, max_size + 1)), replace=False)] = True
        if row.tobytes() not in seen:
            seen.add(row.tobytes())
            out.append(row)
        if len(out) == count:
            break
    return np.array(out, dtype=bool).reshape(-1, n)


__all__ = ["most_uncertain", "random_pool"]
