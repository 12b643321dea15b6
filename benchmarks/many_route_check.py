"""Score cheap-probe routes on the trajectories ``many_route_screen.py`` dumped: for each window
of probe steps (and each number of probe seeds), cluster the mean gradient cosine and score it
against planted-many's truth. Prints one JSON line per (file, seeds, window).

    python benchmarks/many_route_check.py /tmp/h7/fb120-n24.npz,/tmp/h7/fb120-n96.npz \
        --windows 0-60,0-120,16-120,32-120 --seeds 3,5 --variants mean,median

Per row: ``ari`` (hierarchical clustering, k chosen by silhouette: the study's clustering) and
``k``; ``ari_true_k`` (k told: is the signal there, whatever the choice of k); ``harmful_apart``
(no harmful task clustered with a task of the cluster it opposes); ``within`` (mean cosine of
pairs in one planted cluster), ``mean`` and ``sd`` (over all pairs); ``hurts`` (mean cosine of
each harmful task with the cluster it opposes). With ``--seeds 3`` and 5 stored seeds, the rows
for seeds 0-2 (the first three).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.metrics import adjusted_rand_score

from taskrel.affinity import Affinity
from taskrel.analysis.cluster import TaskClustering


def truth_labels(tasks: list[str], truth: dict) -> list[int]:
    return [truth["cluster"][t] if truth["cluster"][t] >= 0 else 1000 + i for i, t in enumerate(tasks)]


def centred(v: np.ndarray) -> np.ndarray:
    """Double-centred off the diagonal: each task's mean affinity with the others removed."""
    off = ~np.eye(len(v), dtype=bool)
    r = np.where(off, v, 0.0).sum(axis=1) / (len(v) - 1)
    out = v - r[:, None] - r[None, :] + r.mean()
    np.fill_diagonal(out, 1.0)
    return out


def combined(cos: np.ndarray, variant: str) -> np.ndarray:
    """One (n, n) matrix from seeds x steps x n x n cosines: their ``mean``, ``median``, the
    ``sign`` rule (1 - 2 x the share of negative cosines) or the ``centred`` mean."""
    if variant == "median":
        return np.median(cos, axis=(0, 1))
    if variant == "sign":
        return 1 - 2 * (cos < 0).mean(axis=(0, 1))
    v = cos.mean(axis=(0, 1))
    return centred(v) if variant == "centred" else v


def scored(v: np.ndarray, tasks: list[str], truth: dict) -> dict:
    aff = Affinity(tasks, v)
    c = TaskClustering(method="hierarchical").fit(aff)
    told = TaskClustering(method="hierarchical", n_clusters=len(truth["groups"])).fit(aff)
    lab = dict(zip(tasks, c.labels_))
    idx = {t: i for i, t in enumerate(tasks)}
    off = v[~np.eye(len(v), dtype=bool)]
    return {
        "ari": round(float(adjusted_rand_score(truth_labels(tasks, truth), c.labels_)), 3), "k": int(c.n_clusters_),
        "ari_true_k": round(float(adjusted_rand_score(truth_labels(tasks, truth), told.labels_)), 3), "true_k": len(truth["groups"]),
        "harmful_apart": all(lab[h] != lab[x] for h, k in truth["harmful"].items() for x in truth["clusters"][k]),
        "within": round(float(np.mean([v[idx[a], idx[b]] for a, b in truth["helps"]])), 3),
        "mean": round(float(off.mean()), 3), "sd": round(float(off.std()), 3),
        "hurts": {h: round(float(np.mean([v[idx[h], idx[x]] for x in truth["clusters"][k]])), 3) for h, k in truth["harmful"].items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files")
    ap.add_argument("--windows", default="0-120,16-120,32-120")
    ap.add_argument("--seeds", default="3")
    ap.add_argument("--variants", default="mean", help="mean, median, sign, centred (comma-separated)")
    args = ap.parse_args()
    for path in args.files.split(","):
        z = np.load(path)
        cos, tasks, truth = z["cosine"], [str(t) for t in z["tasks"]], json.loads(str(z["truth"]))
        for s in (int(x) for x in args.seeds.split(",")):
            if s > len(cos):
                continue
            for w in args.windows.split(","):
                a, b = (int(x) for x in w.split("-"))
                for variant in args.variants.split(","):
                    v = combined(cos[:s, a:b], variant)
                    print(json.dumps({"file": path, "n": len(tasks), "data_seed": truth["regime"]["seed"], "steps": int(cos.shape[1]),
                                      "seeds": s, "window": [a, min(b, int(cos.shape[1]))], "variant": variant,
                                      **scored(v, tasks, truth)}), flush=True)


if __name__ == "__main__":
    main()
