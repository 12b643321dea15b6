"""The train, validation and test split: made from fractions or given as rows, then checked
(disjoint, each row once, labels for every task in every split)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskrel.errors import TaskrelError

SPLITS = ("train", "val", "test")


def make_split(split: Any, seed: int, n: int) -> dict[str, np.ndarray]:
    """The split of ``n`` rows: index arrays per split name, checked to lie in 0..n-1, or a seeded
    random split by fractions (train, val, test).

    >>> {s: len(rows) for s, rows in make_split((0.6, 0.2, 0.2), 0, 10).items()}
    {'train': 6, 'val': 2, 'test': 2}
    """
    if isinstance(split, Mapping):
        missing = [s for s in SPLITS if s not in split]
        if missing:
            raise TaskrelError(f"split: missing {missing}; give train, val and test indices")
        out = {s: np.asarray(split[s], dtype=np.int64) for s in SPLITS}
        for s, idx in out.items():
            if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
                raise TaskrelError(f"split {s!r}: indices must be non-empty and within 0..{n - 1}")
        return out
    fr = tuple(float(f) for f in split)
    if len(fr) != 3 or min(fr) <= 0 or abs(sum(fr) - 1) > 1e-6:
        raise TaskrelError(f"split fractions must be three positive numbers summing to 1, got {split}")
    perm = np.random.default_rng(seed).permutation(n)
    a = int(round(fr[0] * n))
    b = a + int(round(fr[1] * n))
    return {"train": np.sort(perm[:a]), "val": np.sort(perm[a:b]), "test": np.sort(perm[b:])}


def check_split(split: Mapping[str, np.ndarray], n: int) -> None:
    """Splits must be disjoint (an example in two would leak into evaluation), and list each row once."""
    names = list(split)
    for a in names:
        rows, counts = np.unique(split[a], return_counts=True)
        if (counts > 1).any():
            twice = rows[counts > 1]
            raise TaskrelError(f"split: {a!r} lists {twice.size} row(s) more than once (first: row {int(twice[0])}); "
                               "list each row once")
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = np.intersect1d(split[a], split[b])
            if shared.size:
                what = "are identical" if np.array_equal(np.unique(split[a]), np.unique(split[b])) else f"share {shared.size} examples"
                raise TaskrelError(f"split: {a!r} and {b!r} {what} (first shared row {int(shared[0])}); splits must not overlap")


def labelled(y: np.ndarray) -> np.ndarray:
    """Which rows of targets ``y`` carry a label (some element not NaN).

    >>> labelled(np.array([[1.0, np.nan], [np.nan, np.nan]])).tolist()
    [True, False]
    """
    return ~np.isnan(y).reshape(len(y), -1).all(axis=1)


def check_split_labels(where: str, tasks: Sequence[Any], targets: Mapping[str, np.ndarray], split: Mapping[str, np.ndarray]) -> None:
    """Every task has labels in every split, and a binary or multiclass task at least two
    classes among its training labels (one class cannot be learned)."""
    for t in tasks:
        for s, idx in split.items():
            if not labelled(targets[t.name][idx]).any():
                raise TaskrelError(f"{where}, task {t.name!r}: no labels in the {s} split")
        if t.kind in ("binary", "multiclass"):
            y = targets[t.name][split["train"]]
            values = np.unique(y[~np.isnan(y)])
            if values.size < 2:
                raise TaskrelError(f"{where}, task {t.name!r}: its train split has one class only (every label is "
                                   f"{values[0]:g}); a {t.kind} task needs two classes among its training rows")


__all__ = ["SPLITS", "check_split", "check_split_labels", "labelled", "make_split"]
