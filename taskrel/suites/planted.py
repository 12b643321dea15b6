"""A synthetic suite with known truth: clusters of related tasks, an unrelated and a conflicting task.

Generative model (all seeded). Inputs ``X ~ N(0, I_d)``. Cluster ``k`` owns a latent map
``z_k = tanh(X A_k)`` (``A_k``: d x r, directions drawn at random); every task of the cluster
reads the same latent with its own weights, close to the cluster's (``v_t = v_k + spread*u_t``),
plus noise. So the tasks of a cluster need the same features: learning them together needs
fewer examples than learning each alone.

The *unrelated* task reads a latent of its own. The *conflicting* task reads cluster 0's latent
with the opposite sign, plus a strong signal of its own on other directions, at a larger scale:
trained with cluster 0 it pulls the shared features its way (its gradient opposes the
cluster's early in training, and it spends the small encoder's capacity), so it hurts.

``truth`` exposes the cluster of every task (-1 for the unrelated and conflicting tasks), which
pairs should help (same cluster) and which should hurt (the conflicting task and its cluster).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites import register_suite


@register_suite(
    "planted",
    "synthetic, known truth: K clusters of related tasks + an unrelated and a conflicting task",
)
def planted_suite(
    n_clusters: int = 3,
    tasks_per_cluster: int = 2,
    n_examples: int = 1000,
    n_features: int = 16,
    latent_dim: int = 3,
    spread: float = 0.1,
    noise: float = 0.2,
    conflict_scale: float = 2.0,
    label_fraction: float = 0.2,
    kind: str = "regression",
    seed: int = 0,
) -> Suite:
    """Build the planted suite. ``kind="binary"`` thresholds every target at its median.

    >>> s = planted_suite()
    >>> s.task_names
    ['c0t0', 'c0t1', 'c1t0', 'c1t1', 'c2t0', 'c2t1', 'unrelated', 'conflict']
    >>> s.truth["cluster"]["c1t0"], s.truth["conflict"]
    (1, {'task': 'conflict', 'opposes': 0})
    """
    if n_clusters < 1 or tasks_per_cluster < 1:
        raise TaskrelError("planted: n_clusters and tasks_per_cluster must be >= 1")
    if kind not in ("regression", "binary"):
        raise TaskrelError(f"planted: kind must be 'regression' or 'binary', got {kind!r}")
    if n_examples < 40:
        raise TaskrelError(f"planted: n_examples must be >= 40, got {n_examples}")
    rng = np.random.default_rng(seed)
    d, r = int(n_features), int(latent_dim)
    X = rng.normal(size=(n_examples, d)).astype(np.float32)

    def latent() -> np.ndarray:
        A = rng.normal(size=(d, r)) / np.sqrt(d) * 2.0
        return np.tanh(X @ A)

    def unit(m: int) -> np.ndarray:
        v = rng.normal(size=m)
        return v / np.linalg.norm(v)

    targets: dict[str, np.ndarray] = {}
    cluster: dict[str, int] = {}
    signals = []
    for k in range(n_clusters):
        z = latent()
        vk = unit(r) * np.sqrt(r)
        signals.append((z, vk))
        for i in range(tasks_per_cluster):
            v = vk + spread * rng.normal(size=r)
            name = f"c{k}t{i}"
            targets[name] = z @ v + noise * rng.normal(size=n_examples)
            cluster[name] = k
    zu = latent()
    targets["unrelated"] = zu @ (unit(r) * np.sqrt(r)) + noise * rng.normal(size=n_examples)
    cluster["unrelated"] = -1
    z0, v0 = signals[0]
    zc = latent()
    own = zc @ (unit(r) * np.sqrt(r))
    targets["conflict"] = conflict_scale * (-(z0 @ v0) + own) + noise * rng.normal(size=n_examples)
    cluster["conflict"] = -1

    if kind == "binary":
        targets = {t: (y > np.median(y)).astype(float) for t, y in targets.items()}
    else:
        targets = {t: (y - y.mean()) / y.std() * (conflict_scale if t == "conflict" else 1.0) for t, y in targets.items()}

    if not 0 < label_fraction <= 1:
        raise TaskrelError(f"planted: label_fraction must be in (0, 1], got {label_fraction}")
    for t in targets:
        # each task is labelled on its own random share of the examples (the rest missing)
        hide = rng.random(n_examples) >= label_fraction
        targets[t] = np.where(hide, np.nan, targets[t])
    names = list(targets)
    helps = [[a, b] for a in names for b in names if a != b and cluster[a] == cluster[b] >= 0]
    c0 = [t for t in names if cluster[t] == 0]
    hurts = [["conflict", t] for t in c0] + [[t, "conflict"] for t in c0]
    truth = {
        "cluster": cluster,
        "clusters": [[t for t in names if cluster[t] == k] for k in range(n_clusters)],
        "unrelated": ["unrelated"],
        "conflict": {"task": "conflict", "opposes": 0},
        "helps": helps,
        "hurts": hurts,
    }
    h = 32
    stages = [
        lambda: nn.Sequential(nn.Linear(d, h), nn.ReLU()),
        lambda: nn.Sequential(nn.Linear(h, h // 2), nn.ReLU()),
        lambda: nn.Sequential(nn.Linear(h // 2, 8), nn.ReLU()),
    ]
    return Suite(
        "planted" if kind == "regression" else "planted-binary",
        X,
        [Task(t, kind) for t in names],
        targets,
        stages,
        split=(0.5, 0.25, 0.25),
        split_seed=seed,
        stage_names=["fc1", "fc2", "fc3"],
        truth=truth,
        description="synthetic tasks in planted clusters, with an unrelated and a conflicting task",
    )
