"""Automatic k at many tasks: does clustering find planted clusters of 4 to 8 tasks? Prints JSON.

    python benchmarks/clustering_scale.py            # 4 to 100 clusters (26 to 607 tasks)
    python benchmarks/clustering_scale.py --quick    # 4 and 16 clusters

Affinities are planted as gradient cosines look: symmetric, ``within`` (0.3) inside a cluster,
0 between, plus Gaussian noise (sd 0.12), one draw per size (seed 0). Rows compare
``TaskClustering`` (hierarchical, spectral and community with k chosen automatically) with the
spectral rule taskrel used before, kept here for comparison only: the eigengap of the dense
similarity rescaled to [0, 1] (``dense-eigengap``). ``ari`` is the adjusted Rand index against
the planted clusters; ``seconds`` the wall time of one fit.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

from taskrel.affinity import Affinity
from taskrel.analysis.cluster import TaskClustering, similarity_matrix


def planted(n_clusters: int, rng, within=0.3, noise=0.12):
    truth = np.repeat(np.arange(n_clusters), rng.integers(4, 9, n_clusters))
    n = len(truth)
    v = np.where(truth[:, None] == truth[None], within, 0.0) + rng.normal(0, noise, (n, n))
    v = (v + v.T) / 2
    np.fill_diagonal(v, 0)
    return Affinity([f"t{i}" for i in range(n)], v), truth


def dense_eigengap(aff: Affinity) -> np.ndarray:
    """The former spectral rule: eigengap of the normalised Laplacian of the dense similarity."""
    from sklearn.cluster import SpectralClustering

    sim = similarity_matrix(aff)
    deg = sim.sum(1)
    inv = 1 / np.sqrt(deg)
    eig = np.sort(np.linalg.eigvalsh(np.eye(len(sim)) - inv[:, None] * sim * inv[None]))
    gaps = np.diff(eig)
    k = int(np.argmax(gaps[1:]) + 2)
    return SpectralClustering(k, affinity="precomputed", random_state=0, n_init=10).fit_predict(sim)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rows = []
    for nc in (4, 16) if args.quick else (4, 16, 32, 64, 100):
        aff, truth = planted(nc, np.random.default_rng(0))
        runs = {m: (lambda m=m, aff=aff: TaskClustering(method=m).fit(aff).labels_) for m in ("hierarchical", "spectral", "community")}
        runs["dense-eigengap"] = lambda aff=aff: dense_eigengap(aff)
        for name, fit in runs.items():
            t0 = time.perf_counter()
            labels = fit()
            rows.append({"n_tasks": aff.n_tasks, "planted_clusters": nc, "method": name,
                         "clusters": int(len(set(labels.tolist()))),
                         "ari": round(float(adjusted_rand_score(truth, labels)), 3),
                         "seconds": round(time.perf_counter() - t0, 3)})
            print(json.dumps(rows[-1]), flush=True, file=__import__("sys").stderr)
    print(json.dumps({"load": os.getloadavg(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
