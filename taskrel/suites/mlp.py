"""The builder of the MLP suites: an encoder of fully connected stages on flat inputs.

>>> import numpy as np
>>> from taskrel.suite import Task
>>> x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
>>> s = mlp_suite("toy", x, [Task("a", "regression")], {"a": x[:, 0]}, [8, 4])
>>> s.stage_names
['fc1', 'fc2']
"""

from __future__ import annotations

from typing import Any

from taskrel.suite import Suite
from taskrel.widths import mlp_stages


def mlp_suite(name: str, inputs: Any, tasks: list, targets: dict, sizes: list[int], **kwargs: Any) -> Suite:
    """A suite whose encoder is an MLP of ``sizes`` (stages ``fc1``, ``fc2``, ...) on flat inputs,
    with a width builder (every size times the width multiplier); ``kwargs`` go to
    :class:`~taskrel.suite.Suite` (split, truth, description, ...)."""
    at_width = mlp_stages(inputs.shape[1], sizes)
    return Suite(name, inputs, tasks, targets, at_width(1.0), stages_at_width=at_width,
                 stage_names=[f"fc{k + 1}" for k in range(len(sizes))], **kwargs)


__all__ = ["mlp_suite"]
