"""Cheap probes against a Bayesian network's structure: on the ``bayesnet`` suite, does a probe's
affinity rank the pairs of tasks that are near in the network (graph distance 1 or 2) above the
others? Prints JSON and writes it with ``--json``.

    python benchmarks/bayesnet_probes.py --json benchmarks/results/bayesnet_probes.json

Per network and probe: ``auc_near`` (ROC AUC of the affinity for near pairs against all other
pairs), ``spearman_distance`` (Spearman correlation of the affinity with minus the graph
distance, over connected pairs), ``mean_by_distance`` (mean affinity of the pairs at each
distance), ``runs`` and ``seconds`` (the probe's fit, training included). The network says which
variables carry information about which, not which tasks help each other when trained together
(docs/suites.md), so this checks that a probe reads structure, not that its grouping is good.

Probes: ``prediction`` (no runs) and ``gradient`` (one joint run per seed, read as the shipped
many-task route reads it: full-batch steps, a window of the later steps, docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from taskrel.files import atomic_write_text
from taskrel.probes.gradient import GradientProbe
from taskrel.probes.prediction import PredictionProbe
from taskrel.runner import Runner
from taskrel.suites import get_suite
from taskrel.train import TrainConfig


def probes(n_train: int) -> dict:
    full = TrainConfig(batch_size=n_train, epochs=120, patience=120, lr=3e-3)
    return {"prediction": lambda: PredictionProbe(),
            "gradient": lambda: GradientProbe(every=1, lookahead=False, window=(32, 120), config=full, seeds=(0, 1, 2))}


def scored(values: np.ndarray, tasks: list[str], distance: dict) -> dict:
    near, v, d = [], [], []
    for i, a in enumerate(tasks):
        for j in range(i + 1, len(tasks)):
            dist = distance[a][tasks[j]]
            near.append(1 <= dist <= 2)
            v.append(values[i, j])
            d.append(dist)
    near, v, d = np.array(near), np.array(v), np.array(d)
    connected = d > 0
    return {"pairs": int(len(v)), "near_pairs": int(near.sum()), "auc_near": round(float(roc_auc_score(near, v)), 3),
            "spearman_distance": round(float(spearmanr(v[connected], -d[connected])[0]), 3),
            "mean_by_distance": {int(k): round(float(v[d == k].mean()), 3) for k in sorted(set(d.tolist())) if 1 <= k <= 6}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="alarm,andes,pigs")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    for net in args.networks.split(","):
        suite = get_suite("bayesnet", network=net)
        tasks = list(suite.task_names)
        for name, make in probes(len(suite.split["train"])).items():
            with Runner(tempfile.mkdtemp(), n_jobs=1, progress=False) as runner:
                t0 = time.perf_counter()
                probe = make().fit(suite, runner)
                seconds = time.perf_counter() - t0
            aff = probe.affinity_
            rows.append({"network": net, "tasks": len(tasks), "probe": name, "runs": aff.cost.runs, "seconds": round(seconds, 1),
                         **scored(aff.values, list(aff.tasks), suite.truth["distance"])})
            print(json.dumps(rows[-1]), flush=True)
    out = {"benchmark": "bayesnet_probes", "command": "python benchmarks/bayesnet_probes.py " + " ".join(sys.argv[1:]),
           "rows": rows, "load": list(os.getloadavg())}
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
