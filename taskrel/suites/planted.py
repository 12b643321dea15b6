"""A synthetic suite with known truth: clusters of related tasks, an unrelated and a conflicting task.

Generative model (all seeded). Inputs ``X ~ N(0, I_d)``. Cluster ``k`` owns a latent map
``z_k = tanh(X A_k)`` (``A_k``: d x r, directions drawn at random); every task of the cluster
reads the same latent with its own weights, ``v_t = sqrt(rho) v_k + sqrt(1 - rho) u_t`` (``v_k``,
``u_t`` random of equal norm), so that two tasks of a cluster read out with weights of expected
cosine ``rho`` = ``relatedness`` (``spread`` gives the older parametrisation), plus noise. So the tasks of a
cluster need the same features: learning them together needs fewer examples than alone.

The *unrelated* task reads a latent of its own.

The *conflicting* task (``conflict="feature"``, the default) reads cluster 0's latent through
a non-monotone map, ``cos(pi s_0)`` with ``s_0 = z_0 v_0`` standardised, plus a weaker signal of
its own, at a larger scale. No linear head turns cluster 0's features into this target: the
encoder has to build other features of the *same* input directions, and in a narrow encoder
(``width``) they displace the ones cluster 0 needs, so trained together the conflict hurts
cluster 0 (more than an unrelated partner does). ``conflict="sign"`` is the older target,
``-(s_0) + own``: its sign flip is absorbed by the conflict's own linear head, so only its
scale and its own signal compete.

Labels: each task is labelled on ``label_fraction`` of the examples (the rest missing). With
``label_overlap=None`` each task draws its own labelled rows at random; with a number in
[0, 1] that share of every task's labelled rows is one common set, and the rest are drawn
from rows no other task has labelled while there are enough.

``truth`` exposes the cluster of every task (-1 for the unrelated and conflicting tasks), which
pairs should help (same cluster) and which should hurt (the conflicting task and its cluster).
"""

from __future__ import annotations

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites.mlp import mlp_suite
from taskrel.suites.options import check_memory, check_number
from taskrel.suites.registry import register_suite

CONFLICTS = ("feature", "sign")


def _labelled(rng: np.random.Generator, n: int, n_tasks: int, fraction: float, overlap: float | None) -> list[np.ndarray]:
    """Per task, a boolean mask of its labelled rows."""
    if overlap is None:
        return [rng.random(n) < fraction for _ in range(n_tasks)]
    m = max(int(round(fraction * n)), 1)
    common = int(round(overlap * m))
    order = rng.permutation(n)
    shared, rest = order[:common], order[common:]
    masks, pos = [], 0
    for _ in range(n_tasks):
        own = m - common
        if pos + own > len(rest):  # not enough unlabelled rows left: draw from all the rest
            pick = rng.choice(rest, size=own, replace=False)
        else:
            pick, pos = rest[pos : pos + own], pos + own
        mask = np.zeros(n, dtype=bool)
        mask[shared] = True
        mask[pick] = True
        masks.append(mask)
    return masks


def _check_options(o: dict) -> None:
    """Every option by name, before anything is allocated."""
    for name in ("n_clusters", "tasks_per_cluster", "n_features", "latent_dim"):
        check_number("planted", name, o[name], low=1, integer=True)
    check_number("planted", "n_examples", o["n_examples"], low=40, integer=True)
    for name in ("spread", "noise"):
        check_number("planted", name, o[name], low=0)
    check_number("planted", "conflict_scale", o["conflict_scale"])
    check_number("planted", "seed", o["seed"], low=0, integer=True)
    if o["kind"] not in ("regression", "binary"):
        raise TaskrelError(f"planted: kind must be 'regression' or 'binary', got {o['kind']!r}")
    check_number("planted", "label_fraction", o["label_fraction"], low=0, high=1)
    if o["label_fraction"] == 0:
        raise TaskrelError("planted: option label_fraction must be in (0, 1], got 0")
    check_number("planted", "relatedness", o["relatedness"], low=0, high=1, none=True)
    check_number("planted", "label_overlap", o["label_overlap"], low=0, high=1, none=True)
    check_number("planted", "width", o["width"], low=4, integer=True)
    if o["conflict"] not in CONFLICTS:
        raise TaskrelError(f"planted: conflict must be one of {CONFLICTS}, got {o['conflict']!r}")
    n_tasks = o["n_clusters"] * o["tasks_per_cluster"] + 2
    check_memory("planted", f"n_examples={o['n_examples']:,} x {o['n_features']} features and {n_tasks} tasks",
                 8.0 * o["n_examples"] * (o["n_features"] + o["latent_dim"] * (o["n_clusters"] + 2) + 2 * n_tasks))


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
    relatedness: float | None = None,
    label_overlap: float | None = None,
    width: int = 32,
    conflict: str = "feature",
) -> Suite:
    """Build the planted suite. ``kind="binary"`` thresholds every target at its median.

    Knobs of the regime: ``relatedness`` (expected cosine of the read-out weights of two
    tasks of a cluster, in [0, 1]; None: ``spread``), ``label_overlap`` (share of labelled rows common
    to every task; None: independent draws), ``width`` (encoder widths ``width``,
    ``width/2``, ``width/4``: narrow encoders make the conflict hurt) and ``conflict``
    (``"feature"`` or the older ``"sign"``).

    >>> s = planted_suite()
    >>> s.task_names
    ['c0t0', 'c0t1', 'c1t0', 'c1t1', 'c2t0', 'c2t1', 'unrelated', 'conflict']
    >>> s.truth["cluster"]["c1t0"], s.truth["conflict"]
    (1, {'task': 'conflict', 'opposes': 0, 'kind': 'feature'})
    >>> lab = planted_suite(label_overlap=1.0).targets
    >>> bool((np.isnan(lab["c0t0"]) == np.isnan(lab["conflict"])).all())
    True
    """
    _check_options(locals())
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_examples, int(n_features))).astype(np.float32)
    targets, cluster = _planted_targets(rng, X, locals())
    if kind == "binary":
        targets = {t: (y > np.median(y)).astype(float) for t, y in targets.items()}
    else:
        targets = {t: (y - y.mean()) / y.std() * (conflict_scale if t == "conflict" else 1.0) for t, y in targets.items()}
    # each task is labelled on its own share of the examples (the rest missing)
    for t, mask in zip(list(targets), _labelled(rng, n_examples, len(targets), label_fraction, label_overlap)):
        targets[t] = np.where(mask, targets[t], np.nan)
    h = int(width)
    return mlp_suite(
        "planted" if kind == "regression" else "planted-binary", X, [Task(t, kind) for t in targets], targets,
        [h, max(h // 2, 2), max(h // 4, 1)],  # every size times the width
        split=(0.5, 0.25, 0.25), split_seed=seed, truth=_truth(cluster, n_clusters, conflict),
        description="synthetic tasks in planted clusters, with an unrelated and a conflicting task",
    )


def _planted_targets(rng: np.random.Generator, X: np.ndarray, o: dict) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The raw targets (clusters, the unrelated task, the conflicting task) and each task's
    cluster (-1: none), drawn from ``rng`` in a fixed order; ``o`` holds the suite's options."""
    n, d, r = len(X), X.shape[1], int(o["latent_dim"])

    def latent() -> np.ndarray:
        A = rng.normal(size=(d, r)) / np.sqrt(d) * 2.0
        return np.tanh(X @ A)

    def unit(m: int) -> np.ndarray:
        v = rng.normal(size=m)
        return v / np.linalg.norm(v)

    targets: dict[str, np.ndarray] = {}
    cluster: dict[str, int] = {}
    signals = []
    for k in range(o["n_clusters"]):
        z = latent()
        vk = unit(r) * np.sqrt(r)
        signals.append((z, vk))
        for i in range(o["tasks_per_cluster"]):
            rho = o["relatedness"]
            v = vk + o["spread"] * rng.normal(size=r) if rho is None else np.sqrt(rho) * vk + np.sqrt(1 - rho) * unit(r) * np.sqrt(r)
            targets[f"c{k}t{i}"] = z @ v + o["noise"] * rng.normal(size=n)
            cluster[f"c{k}t{i}"] = k
    zu = latent()
    targets["unrelated"] = zu @ (unit(r) * np.sqrt(r)) + o["noise"] * rng.normal(size=n)
    z0, v0 = signals[0]
    zc = latent()
    own = zc @ (unit(r) * np.sqrt(r))
    s0 = z0 @ v0
    if o["conflict"] == "sign":
        signal = -s0 + own
    else:
        s0 = (s0 - s0.mean()) / s0.std()
        signal = np.cos(np.pi * s0) + 0.5 * own / own.std()
    targets["conflict"] = o["conflict_scale"] * signal + o["noise"] * rng.normal(size=n)
    cluster["unrelated"] = cluster["conflict"] = -1
    return targets, cluster


def _truth(cluster: dict[str, int], n_clusters: int, conflict: str) -> dict:
    """What the suite plants: clusters, the unrelated task, the conflict, pairs that help or hurt."""
    names = list(cluster)
    c0 = [t for t in names if cluster[t] == 0]
    return {
        "cluster": cluster,
        "clusters": [[t for t in names if cluster[t] == k] for k in range(n_clusters)],
        "unrelated": ["unrelated"],
        "conflict": {"task": "conflict", "opposes": 0, "kind": conflict},
        "helps": [[a, b] for a in names for b in names if a != b and cluster[a] == cluster[b] >= 0],
        "hurts": [["conflict", t] for t in c0] + [[t, "conflict"] for t in c0],
    }
