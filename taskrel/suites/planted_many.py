"""``planted-many``: a synthetic suite of up to 1,000 tasks with planted clusters and harm.

Built so that *which tasks learn together* changes the result at 24 to 100+ tasks, cheaply
(a 96-task suite builds in about a second and a single-task run trains in one or two seconds,
measured on 2 shared cores at load 10-14: benchmarks/results/suite_costs_many.json).

Generative model (all seeded by ``seed``). Inputs ``X ~ N(0, I_d)`` (``n_features`` = d).

* **Clusters.** Cluster k owns a latent map ``z_k = tanh(X A_k)`` (``A_k``: d x r random
  directions, ``r = latent_dim``), so *clusters need different features of the inputs*. Each
  task of the cluster reads that latent with its own weights
  ``v_t = sqrt(rho) v_k + sqrt(1 - rho) u_t`` (``rho = relatedness``: the expected cosine of the
  read-outs of two tasks of a cluster), plus noise.
* **Unrelated tasks** each read a latent of their own.
* **Harmful tasks.** Harmful task h *opposes* one cluster k: its target is
  ``harm_scale * (cos(pi s_k) + 0.5 own)``, with ``s_k`` cluster k's standardised signal and
  ``own`` a latent of its own. No linear head turns cluster k's features into it: a shared
  encoder must build other features of the same input directions, and being larger it pulls
  harder, so sharing with it hurts cluster k more than an unrelated partner does.

Why grouping matters in the default regime (the three mechanisms the brief asks for):

* **Few labels per task.** Each task is labelled on ``n_labelled`` of the ``n_train`` training
  rows (NaN elsewhere; the training loop leaves missing labels out). Alone, a task sees only
  those; in its cluster's network the encoder also learns the cluster's latent from its
  partners' rows. Validation and test rows are shared and fully labelled.
* **A narrow encoder** (``width`` then ``width // 2`` units): enough for one cluster's
  ``latent_dim`` features, far too few for every cluster's at once, so all-shared is squeezed.
* **Harmful tasks** pull a shared encoder the wrong way.

``label_overlap``: None draws each task's labelled rows independently; a number in [0, 1] makes
that share of every task's labelled rows one common set (the rest drawn from rows no other task
has labelled while there are enough), so 1.0 labels every task on the same rows.

``suite.truth``: ``cluster`` (task -> cluster index, -1 for unrelated and harmful tasks),
``clusters`` (lists of task names), ``unrelated``, ``harmful`` (task -> the cluster it opposes),
``helps`` (ordered pairs in one cluster), ``hurts`` (ordered pairs of a harmful task and a task
of the cluster it opposes, both ways), ``groups`` (the planted grouping: every cluster, and
every other task alone), ``labelled_rows`` (per task, its labelled training rows) and
``regime`` (the knobs).

>>> s = planted_many_suite(n_tasks=12, n_train=200, n_val=40, n_test=40)
>>> len(s.task_names), s.inputs.shape
(12, (280, 32))
>>> s.truth["harmful"], s.truth["unrelated"]
({'h0': 0}, ['u0'])
>>> sorted(len(c) for c in s.truth["clusters"])
[4, 6]
"""

from __future__ import annotations

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites.mlp import mlp_suite
from taskrel.suites.registry import register_suite

MAX_TASKS = 1000
MAX_CELLS = 50_000_000  # rows x (features + tasks): refused above this, before anything is allocated

# The training regime the defaults were screened with (benchmarks/many_screen.py); study files
# on this suite use the same numbers in their [train] table.
TRAIN = {"epochs": 60, "batch_size": 64, "lr": 0.003, "patience": 10}


def _int(name: str, value, least: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not least <= value <= most:
        raise TaskrelError(f"planted-many: {name} must be an integer in [{least}, {most}], got {value!r}")
    return int(value)


def _unit(name: str, value, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (0 < value <= 1 if low_open else 0 <= value <= 1)
    if not ok:
        raise TaskrelError(f"planted-many: {name} must be a number in {'(0' if low_open else '[0'}, 1], got {value!r}")
    return float(value)


def composition(n_tasks: int, cluster_size: tuple[int, int], n_unrelated: int | None, n_harmful: int | None,
                rng: np.random.Generator) -> tuple[list[int], int, int]:
    """Cluster sizes, number of unrelated and of harmful tasks for ``n_tasks`` tasks.

    By default one unrelated and one harmful task per 24 tasks (at least one each); the rest
    are split into clusters of sizes drawn in ``cluster_size`` (inclusive), the last ones
    adjusted so that the sizes add up.

    >>> composition(24, (4, 8), None, None, np.random.default_rng(0))[1:]
    (1, 1)
    >>> sum(composition(96, (4, 8), None, None, np.random.default_rng(0))[0])
    88
    """
    lo, hi = cluster_size
    n_u = max(1, round(n_tasks / 24)) if n_unrelated is None else n_unrelated
    n_h = max(1, round(n_tasks / 24)) if n_harmful is None else n_harmful
    rest = n_tasks - n_u - n_h
    if rest < max(lo, 2):
        raise TaskrelError(f"planted-many: n_tasks={n_tasks} leaves {rest} clustered tasks after {n_u} unrelated "
                           f"and {n_h} harmful; need at least {max(lo, 2)} (raise n_tasks or lower n_unrelated/n_harmful)")
    sizes: list[int] = []
    while rest - sum(sizes) > hi:
        sizes.append(int(rng.integers(lo, hi + 1)))
    left = rest - sum(sizes)
    sizes.append(left)
    while sizes[-1] < lo and len(sizes) > 1:  # too small a last cluster: take from the others
        donor = max(range(len(sizes) - 1), key=lambda i: sizes[i])
        if sizes[donor] <= lo:
            sizes[donor] += sizes.pop()
            break
        sizes[donor] -= 1
        sizes[-1] += 1
    return sizes, n_u, n_h


def labelled_rows(rng: np.random.Generator, n_train: int, n_tasks: int, n_labelled: int, overlap: float | None) -> list[np.ndarray]:
    """Per task, the sorted training rows it is labelled on (``n_labelled`` of ``n_train``).

    >>> rows = labelled_rows(np.random.default_rng(0), 50, 3, 10, 1.0)
    >>> [len(r) for r in rows], bool((rows[0] == rows[2]).all())
    ([10, 10, 10], True)
    """
    if overlap is None:
        return [np.sort(rng.choice(n_train, size=n_labelled, replace=False)) for _ in range(n_tasks)]
    common = int(round(overlap * n_labelled))
    order = rng.permutation(n_train)
    shared, rest = order[:common], order[common:]
    out, pos, own = [], 0, n_labelled - common
    for _ in range(n_tasks):
        if pos + own > len(rest):  # no unlabelled rows left: draw from all the rest
            pick = rng.choice(rest, size=own, replace=False)
        else:
            pick, pos = rest[pos : pos + own], pos + own
        out.append(np.sort(np.concatenate([shared, pick])))
    return out


def _targets(X: np.ndarray, rng: np.random.Generator, sizes: list[int], n_u: int, n_h: int, latent_dim: int,
             relatedness: float, noise: float, harm_scale: float) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, int]]:
    """Every task's full target (standardised), its cluster and, for harmful tasks, the cluster opposed."""
    n, d = X.shape
    r = latent_dim

    def latent() -> np.ndarray:
        return np.tanh(X @ (rng.normal(size=(d, r)) * (2.0 / np.sqrt(d))))

    def unit() -> np.ndarray:
        v = rng.normal(size=r)
        return v / np.linalg.norm(v) * np.sqrt(r)

    wide = len(str(max(len(sizes) - 1, 0)))
    targets, cluster, signals = {}, {}, []
    for k, size in enumerate(sizes):
        z, vk = latent(), unit()
        signals.append(z @ vk)
        for i in range(size):
            v = np.sqrt(relatedness) * vk + np.sqrt(1 - relatedness) * unit()
            name = f"c{k:0{wide}d}t{i}"
            targets[name], cluster[name] = z @ v + noise * rng.normal(size=n), k
    for i in range(n_u):
        targets[f"u{i}"], cluster[f"u{i}"] = latent() @ unit() + noise * rng.normal(size=n), -1
    harmful = {}
    for i in range(n_h):
        k = i % len(sizes)  # harmful tasks oppose clusters 0, 1, ... in turn
        s = (signals[k] - signals[k].mean()) / signals[k].std()
        own = latent() @ unit()
        y = np.cos(np.pi * s) + 0.5 * own / own.std() + noise * rng.normal(size=n)
        targets[f"h{i}"], cluster[f"h{i}"], harmful[f"h{i}"] = y, -1, k
    out = {}
    for t, y in targets.items():
        scale = harm_scale if t in harmful else 1.0
        out[t] = (y - y.mean()) / y.std() * scale
    return out, cluster, harmful


def _cluster_size(cluster_size) -> tuple[int, int]:
    if not (isinstance(cluster_size, (tuple, list)) and len(cluster_size) == 2):
        raise TaskrelError(f"planted-many: cluster_size must be (smallest, largest), got {cluster_size!r}")
    lo = _int("cluster_size[0]", cluster_size[0], 2, MAX_TASKS)
    return lo, _int("cluster_size[1]", cluster_size[1], lo, MAX_TASKS)


def _scales(noise, harm_scale) -> None:
    for name, v in (("noise", noise), ("harm_scale", harm_scale)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 if name == "noise" else v > 0):
            raise TaskrelError(f"planted-many: {name} must be a number {'>= 0' if name == 'noise' else '> 0'}, got {v!r}")


def _check_cells(n: int, d: int, n_tasks: int) -> None:
    if n * (d + n_tasks) > MAX_CELLS:  # before anything is allocated
        raise TaskrelError(f"planted-many: {n} rows x ({d} features + {n_tasks} tasks) is over {MAX_CELLS:,} values; "
                           "lower n_train/n_val/n_test, n_features or n_tasks")


def _masked(full: dict[str, np.ndarray], rows: list[np.ndarray], n_train: int) -> dict[str, np.ndarray]:
    """Each task's targets with its training rows other than its own labelled ones missing."""
    targets = {}
    for t, own in zip(full, rows):
        y = full[t].copy()
        keep = np.zeros(n_train, dtype=bool)
        keep[own] = True
        y[:n_train][~keep] = np.nan
        targets[t] = y
    return targets


@register_suite("planted-many", "synthetic, known truth, 6 to 1,000 tasks: clusters of related tasks, unrelated and harmful tasks; scarce labels, narrow MLP")
def planted_many_suite(
    n_tasks: int = 24,
    cluster_size: tuple[int, int] | list[int] = (4, 8),
    n_unrelated: int | None = None,
    n_harmful: int | None = None,
    relatedness: float = 0.8,
    n_labelled: int = 40,
    n_train: int = 600,
    n_val: int = 200,
    n_test: int = 400,
    label_overlap: float | None = None,
    n_features: int = 32,
    latent_dim: int = 3,
    width: int = 16,
    noise: float = 0.1,
    harm_scale: float = 4.0,
    seed: int = 0,
) -> Suite:
    """Build ``planted-many`` (module docstring): ``n_tasks`` regression tasks.

    Parameters
    ----------
    n_tasks : total number of tasks (6 to 1,000).
    cluster_size : (smallest, largest) cluster, inclusive; sizes drawn at random.
    n_unrelated, n_harmful : None: one of each per 24 tasks (at least one).
    relatedness : expected cosine of two read-outs of a cluster, in [0, 1].
    n_labelled : labelled training rows per task (of ``n_train``).
    n_train, n_val, n_test : rows of each split; val and test are fully labelled.
    label_overlap : None (independent draws) or the share of labelled rows common to all tasks.
    n_features, latent_dim : input dimension d and each latent's dimension r.
    width : encoder widths ``width`` and ``width // 2``.
    noise : noise added to each target before it is standardised.
    harm_scale : standard deviation of the harmful tasks' targets (the others 1); 4 makes the harm
        clear (docs/suites.md: at 2 it was often within 3 SE of an unrelated partner's).
    seed : seeds everything (data, composition, labels, split).

    >>> s = planted_many_suite(n_tasks=12, n_train=200, n_val=40, n_test=40, label_overlap=1.0)
    >>> bool((np.isnan(s.targets["c0t0"]) == np.isnan(s.targets["h0"])).all())
    True
    >>> planted_many_suite(n_train=10**8)
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: planted-many: n_train must be an integer in [20, 1000000], got 100000000
    """
    n_tasks = _int("n_tasks", n_tasks, 6, MAX_TASKS)
    lo, hi = _cluster_size(cluster_size)
    n_u = None if n_unrelated is None else _int("n_unrelated", n_unrelated, 0, MAX_TASKS)
    n_h = None if n_harmful is None else _int("n_harmful", n_harmful, 0, MAX_TASKS)
    rho = _unit("relatedness", relatedness)
    n_train, n_val, n_test = (_int(k, v, lo_, 1_000_000) for k, v, lo_ in (("n_train", n_train, 20), ("n_val", n_val, 10), ("n_test", n_test, 10)))
    n_labelled = _int("n_labelled", n_labelled, 2, n_train)
    overlap = None if label_overlap is None else _unit("label_overlap", label_overlap)
    d, r = _int("n_features", n_features, 2, 10_000), _int("latent_dim", latent_dim, 1, 1_000)
    w = _int("width", width, 4, 4096)
    _scales(noise, harm_scale)
    n = n_train + n_val + n_test
    _check_cells(n, d, n_tasks)
    rng = np.random.default_rng(_int("seed", seed, 0, 2**32 - 1))
    sizes, n_u, n_h = composition(n_tasks, (lo, hi), n_u, n_h, rng)
    X = rng.normal(size=(n, d)).astype(np.float32)
    full, cluster, harmful = _targets(X, rng, sizes, n_u, n_h, r, rho, float(noise), float(harm_scale))
    names = list(full)  # a task's labelled training rows (the others missing):
    targets = _masked(full, rows := labelled_rows(rng, n_train, len(names), n_labelled, overlap), n_train)
    split = {"train": np.arange(n_train), "val": np.arange(n_train, n_train + n_val), "test": np.arange(n_train + n_val, n)}
    regime = dict(n_tasks=n_tasks, cluster_size=[lo, hi], relatedness=rho, n_labelled=n_labelled, n_train=n_train,
                  label_overlap=overlap, n_features=d, latent_dim=r, width=w, noise=float(noise), harm_scale=float(harm_scale), seed=int(seed))
    return mlp_suite(
        "planted-many",
        X,
        [Task(t, "regression") for t in names],
        targets,
        [w, max(w // 2, 2)],
        split=split,
        truth=_truth(names, cluster, harmful, len(sizes), rows, regime),
        description=f"planted-many: {len(names)} tasks ({len(sizes)} clusters, {n_u} unrelated, {n_h} harmful), "
        f"{n_labelled} labels each of {n_train} train rows; shared val ({n_val}) and test ({n_test}); MLP {w}/{max(w // 2, 2)}",
    )


def _truth(names: list[str], cluster: dict[str, int], harmful: dict[str, int], n_clusters: int,
           rows: list[np.ndarray], regime: dict) -> dict:
    clusters = [[t for t in names if cluster[t] == k] for k in range(n_clusters)]
    helps = [[a, b] for c in clusters for a in c for b in c if a != b]
    hurts = [p for h, k in harmful.items() for t in clusters[k] for p in ([h, t], [t, h])]
    alone = [[t] for t in names if cluster[t] < 0]
    return {
        "cluster": dict(cluster),
        "clusters": clusters,
        "unrelated": [t for t in names if cluster[t] < 0 and t not in harmful],
        "harmful": dict(harmful),
        "helps": helps,
        "hurts": hurts,
        "groups": clusters + alone,
        "labelled_rows": {t: r.tolist() for t, r in zip(names, rows)},
        "regime": regime,
    }


__all__ = ["MAX_TASKS", "TRAIN", "composition", "labelled_rows", "planted_many_suite"]
