"""Pilot for the moleculeace study's gradient probe: which batch and probe interval read the
sparse tasks reproducibly.

For each setting ``name:batch:every:lr`` it fits :class:`taskrel.probes.GradientProbe` (no
lookahead) on the full moleculeace suite with the study's other training settings (``epochs``,
``patience 4``, ``rows = "labelled"``) on two seeds, one run at a time on one thread, and reports
how well the two seeds agree: the correlation of their per-seed cosine matrices (upper
triangles) and the ARI between the hierarchical clusterings (automatic k) of each seed's matrix;
with the number of clusters, the clusters of the mean, each run's training seconds and steps,
and the mean test loss of each joint run. There is no truth on a real suite: agreement between
seeds is what a pilot can check. Runs go through ``--store``, so the study reuses them when its
settings match.

    nice -n 10 python benchmarks/moleculeace_pilot.py --store /tmp/store --out benchmarks/results/moleculeace_pilot.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

from taskrel.affinity import Affinity
from taskrel.analysis.cluster import TaskClustering
from taskrel.files import atomic_write_text
from taskrel.probes import GradientProbe
from taskrel.runner import Runner
from taskrel.store import RunStore
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

SETTINGS = "A:128:10:0.002,B:2048:1:0.005"


def clustering(tasks: list[str], values: np.ndarray) -> TaskClustering:
    return TaskClustering(method="hierarchical").fit(Affinity(list(tasks), values, measure="gradient-cosine"))


def pilot(suite, store: str, name: str, batch: int, every: int, lr: float, epochs: int, seeds: list[int]) -> dict:
    cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=lr, patience=4, rows="labelled")
    t = time.perf_counter()
    p = GradientProbe(every=every, lookahead=False, config=cfg, seeds=seeds)
    p.fit(suite, Runner(RunStore(store), n_jobs=1, progress=False))
    fit = time.perf_counter() - t
    aff, iu = p.affinity_, np.triu_indices(len(p.affinity_.tasks), 1)
    labels = [clustering(aff.tasks, aff.per_seed[s]).labels_ for s in range(len(seeds))]
    mean = clustering(aff.tasks, aff.values)
    return {"name": name, "batch": batch, "every": every, "epochs": epochs, "lr": lr, "fit_s": round(fit, 1),
            "run_seconds": [round(r.seconds, 1) for r in p.records_], "steps": [r.steps for r in p.records_],
            "seed_corr": float(np.corrcoef(aff.per_seed[0][iu], aff.per_seed[1][iu])[0, 1]),
            "seed_ari": float(adjusted_rand_score(labels[0], labels[1])), "k_per_seed": [int(len(set(lab))) for lab in labels],
            "k_mean": int(mean.n_clusters_), "clusters": mean.clusters_,
            "offdiag_mean": float(aff.values[iu].mean()), "offdiag_sd": float(aff.values[iu].std()),
            "test_loss_mean": [float(np.mean([r.loss(t, "test") for t in aff.tasks])) for r in p.records_]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default=SETTINGS, help="name:batch:every:lr, comma separated")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    if len(seeds) < 2:
        raise SystemExit("--seeds: give at least two seeds (the pilot compares them)")
    load0 = os.getloadavg()
    t = time.perf_counter()
    suite = get_suite("moleculeace", fp_bits=512)
    out = {"command": "python benchmarks/moleculeace_pilot.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "cpus": os.cpu_count(), "threads": 1, "build_seconds": round(time.perf_counter() - t, 1), "settings": []}
    for spec in a.settings.split(","):
        name, batch, every, lr = spec.split(":")
        row = pilot(suite, a.store, name, int(batch), int(every), float(lr), a.epochs, seeds)
        out["settings"].append(row)
        print(json.dumps(row), flush=True)
    out["loadavg"] = {"start": [round(x, 2) for x in load0], "end": [round(x, 2) for x in os.getloadavg()]}
    if a.out:
        atomic_write_text(a.out, json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
