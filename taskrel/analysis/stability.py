"""How stable a clustering of tasks is over the seeds of an affinity, seeds with gaps included.

Every per-seed matrix is clustered again with the number of clusters of the mean matrix, and
the clusterings are compared (adjusted Rand index, co-assignment). A seed in which some runs
failed has NaN at the entries they would have measured: it is clustered on the tasks whose
entries it has (the task with the most NaN entries is dropped first, as
:func:`~taskrel.affinity_missing.complete_tasks` does), two seeds are compared on the tasks
both clustered, and a seed left with too few tasks is not used; ``skipped`` says which and why.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from taskrel.affinity import Affinity
from taskrel.affinity_missing import complete_tasks
from taskrel.analysis.cluster import TaskClustering
from taskrel.base import Estimator
from taskrel.errors import TaskrelError


def _check(affinity: Affinity) -> int:
    if not isinstance(affinity, Affinity):
        raise TaskrelError(f"stability: expected a taskrel Affinity, got {type(affinity).__name__}")
    if affinity.per_seed is None:
        raise TaskrelError(
            f"stability: affinity {affinity.measure!r} has no per-seed matrices (per_seed is "
            "None); build it with Affinity.from_seeds or measure with several seeds"
        )
    if affinity.is_staged:
        raise TaskrelError("stability: affinity is per-stage; take .stage(k) first")
    if affinity.missing is not None:
        gone = sorted({affinity.tasks[int(i)] for i in np.argwhere(affinity.missing).reshape(-1)})
        raise TaskrelError(f"stability: affinity {affinity.measure!r} has entries no seed measured (tasks {gone}); "
                           "take .complete() first")
    seeds = affinity.per_seed.shape[0]
    if seeds < 2:
        raise TaskrelError(f"stability: needs at least 2 seeds, affinity has {seeds}")
    return seeds


def _seed_labels(affinity: Affinity, s: int, k: int, method: str, kwargs: dict[str, Any]) -> tuple[np.ndarray | None, str]:
    """One seed's labels over every task (-1 where it lacks values), or None and why not."""
    tasks, m = list(affinity.tasks), affinity.per_seed[s]
    holes = np.isnan(m)
    keep, left = complete_tasks(tasks, holes) if holes.any() else (tasks, {})
    if len(keep) < max(k, 2):
        return None, (f"seed {s}: values for {len(keep)} task(s) only, fewer than the {max(k, 2)} needed "
                      f"(no value for {', '.join(left)})")
    idx = [tasks.index(t) for t in keep]
    one = Affinity(keep, m[np.ix_(idx, idx)], measure=f"{affinity.measure}[{s}]")
    row = np.full(len(tasks), -1)
    row[idx] = TaskClustering(method=method, n_clusters=k, **kwargs).fit(one).labels_
    return row, (f"seed {s}: clustered without {', '.join(left)} (no value)" if left else "")


def _ari(a: np.ndarray, b: np.ndarray) -> float | None:
    from sklearn.metrics import adjusted_rand_score

    both = (a >= 0) & (b >= 0)
    return float(adjusted_rand_score(a[both], b[both])) if both.sum() >= 2 else None


class ClusterStability(Estimator):
    """How stable a clustering is over the seeds of an affinity: every per-seed matrix is
    clustered again with the number of clusters of the mean matrix, and the clusterings compared.

    Parameters
    ----------
    method : the clustering method of :class:`~taskrel.analysis.TaskClustering`.
    n_clusters : the number of clusters; None: the number chosen on the mean matrix, so that
        every seed makes the same number of clusters.
    clustering_params : further parameters of :class:`~taskrel.analysis.TaskClustering`
        (for example ``{"linkage": "average", "random_state": 0}``).

    Attributes
    ----------
    coassignment_ : DataFrame; ``coassignment_.loc[a, b]`` is the share of seeds in which a
        and b are in the same cluster (of the seeds that clustered both; NaN when none did).
    mean_ari_ : the mean adjusted Rand index over all pairs of seed clusterings (each pair on
        the tasks both clustered).
    mean_ari_vs_mean_ : the mean ARI of each seed's clustering against the clustering of the
        mean matrix (``reference_``, its labels).
    n_clusters_ : the number of clusters every seed made.
    labels_ : per-seed labels (seeds x tasks, -1 for a task a seed could not cluster).
    seeds_used_ : the seeds (positions in ``per_seed``) clustered; ``skipped_`` : ``{seed
        position: why}`` for the others and for seeds clustered without some task.

    A seed with NaN entries (failed runs) is clustered on the tasks whose values it has;
    fewer than two usable seeds is an error saying why.

    Examples
    --------
    >>> block = np.kron(np.eye(2), np.ones((2, 2)))
    >>> aff = Affinity.from_seeds(["a", "b", "c", "d"], [block, block + 0.01, block * 0.9])
    >>> st = ClusterStability(n_clusters=2).fit(aff)
    >>> st.mean_ari_, float(st.coassignment_.loc["a", "b"]), float(st.coassignment_.loc["a", "c"])
    (1.0, 1.0, 0.0)
    >>> gap = block * 0.9
    >>> gap[0, 2] = gap[2, 0] = np.nan           # seed 2 has no value for the pair a, c
    >>> ps = np.stack([block, block + 0.01, gap])
    >>> st = ClusterStability(n_clusters=2).fit(Affinity(["a", "b", "c", "d"], np.nanmean(ps, 0), per_seed=ps))
    >>> st.labels_[2].tolist(), st.seeds_used_, st.skipped_
    ([0, 0, -1, 1], [0, 1, 2], {2: 'seed 2: clustered without c (no value)'})
    """

    def __init__(self, method: str = "hierarchical", n_clusters: int | None = None,
                 clustering_params: dict[str, Any] | None = None):
        self.method = method
        self.n_clusters = n_clusters
        self.clustering_params = clustering_params

    def fit(self, affinity: Affinity) -> ClusterStability:
        """Cluster the mean matrix and every seed's; compare them. Returns ``self``."""
        seeds = _check(affinity)
        kwargs = dict(self.clustering_params or {})
        ref = TaskClustering(method=self.method, n_clusters=self.n_clusters, **kwargs).fit(affinity)
        k = ref.n_clusters_
        n = affinity.n_tasks
        lab = np.full((seeds, n), -1)
        used, skipped = [], {}
        for s in range(seeds):
            row, why = _seed_labels(affinity, s, k, self.method, kwargs)
            if why:
                skipped[s] = why
            if row is not None:
                lab[s], used = row, used + [s]
        if len(used) < 2:
            raise TaskrelError(f"stability: only {len(used)} of {seeds} seeds can be clustered: " + "; ".join(skipped.values()))
        same, both = np.zeros((n, n)), np.zeros((n, n))
        for row in lab[used]:
            ok = row >= 0
            both += ok[:, None] & ok[None, :]
            same += (row[:, None] == row[None, :]) & ok[:, None] & ok[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            co = np.where(both > 0, same / np.maximum(both, 1), np.nan)
        pair = [x for a, b in combinations(used, 2) if (x := _ari(lab[a], lab[b])) is not None]
        vs_mean = [x for s in used if (x := _ari(np.asarray(ref.labels_), lab[s])) is not None]
        self.coassignment_ = pd.DataFrame(co, index=list(affinity.tasks), columns=list(affinity.tasks))
        self.mean_ari_ = float(np.mean(pair)) if pair else float("nan")
        self.mean_ari_vs_mean_ = float(np.mean(vs_mean))
        self.n_clusters_, self.labels_, self.reference_ = k, lab, ref.labels_
        self.seeds_used_, self.skipped_ = used, skipped
        return self


def cluster_stability(
    affinity: Affinity, method: str = "hierarchical", n_clusters: int | None = None, **kwargs: Any
) -> ClusterStability:
    """``ClusterStability(method, n_clusters, kwargs).fit(affinity)``: extra keyword arguments
    are parameters of :class:`~taskrel.analysis.TaskClustering`.

    >>> block = np.kron(np.eye(2), np.ones((2, 2)))
    >>> cluster_stability(Affinity.from_seeds(["a", "b", "c", "d"], [block, block + 0.01]), n_clusters=2).mean_ari_
    1.0
    """
    return ClusterStability(method, n_clusters, kwargs or None).fit(affinity)


__all__ = ["ClusterStability", "cluster_stability"]
