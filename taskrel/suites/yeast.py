"""The yeast multi-label set (2,417 genes x 103 features, 14 labels), shipped by the river package.

Needs the optional extra: ``pip install 'taskrel[studies]'``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites.mlp import mlp_suite
from taskrel.suites.registry import register_suite


def load_yeast() -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        from river.datasets import Yeast
    except ImportError:
        raise TaskrelError("suite 'yeast' needs the river package: pip install 'taskrel[studies]'") from None
    import pandas as pd

    df = pd.read_csv(Yeast().path)  # the CSV inside the installed package: no download
    labels = [c for c in df.columns if c.startswith("Class")]
    feats = [c for c in df.columns if c.startswith("Att")]
    X = df[feats].to_numpy(np.float32)
    X = (X - X.mean(0)) / X.std(0).clip(1e-6)
    return X, df[labels].to_numpy(float), labels


@register_suite("yeast", "yeast multi-label set from the river package (extra 'studies'): 14 binary tasks; 3-stage MLP")
def yeast_suite(tasks: Sequence[str] | None = None, split_seed: int = 0) -> Suite:
    """One binary task per yeast functional class (Class1..Class14)."""
    X, Y, labels = load_yeast()
    names = list(tasks) if tasks else labels
    unknown = [t for t in names if t not in labels]
    if unknown:
        raise TaskrelError(f"yeast tasks {unknown} are unknown; known: {', '.join(labels)}")
    targets = {t: Y[:, labels.index(t)] for t in names}
    return mlp_suite("yeast", X, [Task(t, "binary") for t in names], targets, [64, 32, 16], split_seed=split_seed,
                     description="yeast gene functional classes (multi-label), 103 features")
