"""Cheap-probe check of planted-many: do gradient cosines recover the planted clusters?

For each number of tasks, fits taskrel's GradientProbe (one joint run per seed, seeds 0 and 1,
cosines every 10 steps, the suite's screened regime ``planted_many.TRAIN``), clusters the
affinity with ``TaskClustering(method="hierarchical")`` (automatic k) and prints one JSON line:
ARI against the planted clusters (each unrelated and harmful task its own cluster), the number
of clusters, the ARI when the clustering is told the true number of groups (``ari_true_k``:
is the signal in the affinity, whatever the choice of k), the mean cosine within clusters (``within``), over all pairs (``all_mean``) and
over harmful-cluster pairs (``hurts``), whether every harmful task was clustered apart from the
cluster it opposes, the seconds and the load average. A fourth argument, JSON, changes the
probe: ``every`` and any training-regime field (e.g. ``{"every": 2, "batch_size": 256}``).

    nice -n 10 python benchmarks/many_gradient_check.py 24,48,96 '{}' .taskrel/many-grad-store \
        > benchmarks/results/gradient_check_many.jsonl
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

from taskrel.analysis.cluster import TaskClustering
from taskrel.probes.gradient import GradientProbe
from taskrel.runner import Runner
from taskrel.suites import get_suite
from taskrel.suites.planted_many import TRAIN
from taskrel.train import TrainConfig


def check(n: int, opts: dict, store: str, probe: dict | None = None) -> dict:
    s = get_suite("planted-many", n_tasks=n, **opts)
    runner = Runner(store, progress=False)
    t0 = time.perf_counter()
    probe = {"every": 10, **(probe or {})}
    train = {**TRAIN, **{k: v for k, v in probe.items() if k != "every"}}
    p = GradientProbe(every=probe["every"], config=TrainConfig(**train), seeds=[0, 1]).fit(s, runner)
    aff = p.affinity_
    c = TaskClustering(method="hierarchical").fit(aff)
    truth = [s.truth["cluster"][t] if s.truth["cluster"][t] >= 0 else 100 + i for i, t in enumerate(aff.tasks)]
    v = np.asarray(aff.values)
    idx = {t: i for i, t in enumerate(aff.tasks)}
    within = np.mean([v[idx[a], idx[b]] for a, b in s.truth["helps"]])
    hurts = np.mean([v[idx[a], idx[b]] for a, b in s.truth["hurts"]])
    fixed = TaskClustering(method="hierarchical", n_clusters=len(s.truth["groups"])).fit(aff)  # k told: is the signal there?
    lab = dict(zip(aff.tasks, c.labels_))
    apart = all(lab[h] != lab[x] for h, k in s.truth["harmful"].items() for x in s.truth["clusters"][k])
    return {"n": n, "opts": opts, "probe": probe, "ari": round(adjusted_rand_score(truth, c.labels_), 3), "k": int(c.n_clusters_),
            "ari_true_k": round(adjusted_rand_score(truth, fixed.labels_), 3), "true_k": len(s.truth["groups"]),
            "within": round(float(within), 3), "all_mean": round(float(v[~np.eye(len(v), dtype=bool)].mean()), 3),
            "hurts": round(float(hurts), 3), "harmful_apart": apart,
            "seconds": round(time.perf_counter() - t0, 1), "load": [round(x, 2) for x in os.getloadavg()]}


if __name__ == "__main__":
    for n in sys.argv[1].split(","):
        probe = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
        print(json.dumps(check(int(n), json.loads(sys.argv[2]), sys.argv[3], probe)), flush=True)
