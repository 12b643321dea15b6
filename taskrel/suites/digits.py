"""scikit-learn's bundled 8x8 digits framed as binary tasks (one-vs-rest and digit properties)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from taskrel.suite import Suite, Task
from taskrel.suites.mlp import mlp_suite
from taskrel.suites.registry import register_suite

# Properties of the digit shown: each a binary task.
PROPERTIES: dict[str, set[int]] = {
    "even": {0, 2, 4, 6, 8},
    "ge5": {5, 6, 7, 8, 9},
    "loop": {0, 6, 8, 9},  # has a closed loop
    "prime": {2, 3, 5, 7},
}
ALL_TASKS = [f"is{d}" for d in range(10)] + list(PROPERTIES)


def digit_tasks(labels: np.ndarray, tasks: Sequence[str]) -> tuple[list[Task], dict[str, np.ndarray]]:
    """Binary targets for one-vs-rest (``is3``) and property (``even``...) tasks."""
    out = {}
    for name in tasks:
        if name in PROPERTIES:
            out[name] = np.isin(labels, sorted(PROPERTIES[name])).astype(float)
        elif name.startswith("is") and name[2:].isdigit() and int(name[2:]) < 10:
            out[name] = (labels == int(name[2:])).astype(float)
        else:
            from taskrel.errors import TaskrelError

            raise TaskrelError(f"digit task {name!r} is unknown; known: {', '.join(ALL_TASKS)}")
    return [Task(n, "binary") for n in tasks], out


@register_suite("digits", "scikit-learn's 1,797 8x8 digits: 14 binary tasks (is0..is9, even, ge5, loop, prime); 3-stage MLP")
def digits_suite(tasks: Sequence[str] | None = None, width: int = 64, split_seed: int = 0) -> Suite:
    """The digits suite.

    >>> s = digits_suite(tasks=["is0", "even"])
    >>> s.inputs.shape, s.task_names, s.n_stages
    ((1797, 64), ['is0', 'even'], 3)
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    task_list, targets = digit_tasks(d.target, list(tasks) if tasks else ALL_TASKS)
    w = int(width)
    return mlp_suite("digits", X, task_list, targets, [w, w // 2, w // 4],  # every size times the width
                     split=(0.6, 0.2, 0.2), split_seed=split_seed, truth={"digit": d.target.tolist()},
                     description="scikit-learn digits (8x8), binary one-vs-rest and property tasks")
