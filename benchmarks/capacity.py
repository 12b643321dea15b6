"""Capacity as a search dimension: a planted study that chooses groups and widths together.

Six tasks of the planted suite (two clusters of two, the unrelated and the conflicting task);
the pairwise probe (2 seeds) is measured at widths 0.5 and 1 (single and pair runs on
``suite.at_width(w)``), one HOA table holds every group at both widths, priced in parameters
relative to the width-1 all-shared network, and the grouping search picks groups and widths
under the budget. The validation (3 seeds, test split) trains the recommendation, all-shared,
all-separate, and both width-matched baselines (all-shared and all-separate at the width whose
parameter count is nearest the recommendation's).

Reported: the recommendation (with widths), each layout's parameter count and mean total
test loss, and per-seed paired differences of the recommendation against every other layout.

Usage: ``python benchmarks/capacity.py [--store DIR] [--out benchmarks/results/capacity.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from taskrel.analysis import GroupingSearch
from taskrel.probes import PairwiseProbe
from taskrel.runner import Runner
from taskrel.study import Grouping, Study, Validation
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

TASKS = ["c0t0", "c0t1", "c1t0", "c1t1", "unrelated", "conflict"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    suite = get_suite("planted", n_examples=1000)
    config = TrainConfig(epochs=args.epochs)
    study = Study(probes=[PairwiseProbe(seeds=[0, 1])],
                  grouping=Grouping(GroupingSearch(budget=args.budget), budgets=[0.5, 1, 1.5, 2, 3, 4],
                                    widths=[0.5, 1.0], cost="params"),
                  validation=Validation(seeds=[0, 1, 2], front=False), tasks=TASKS, config=config,
                  clustering=None, branched=False, verbose=False)
    store = args.store or tempfile.mkdtemp(prefix="taskrel-capacity-")
    runner = Runner(store, n_jobs=1, progress=False)
    result = study.fit(suite, runner).result_
    runner.close()
    totals: dict[str, dict[int, float]] = {}
    params: dict[str, int] = {}
    for r in result.validation:
        if r["status"] != "ok":
            continue
        totals.setdefault(r["layout"], {}).setdefault(r["seed"], 0.0)
        totals[r["layout"]][r["seed"]] += r["test_loss"]
        params[r["layout"]] = r["n_parameters"]
    rec = totals.get("recommended", {})
    layouts = {}
    for name, per_seed in totals.items():
        seeds = sorted(set(per_seed) & set(rec))
        diff = [rec[s] - per_seed[s] for s in seeds]
        layouts[name] = {
            "layout": result.layout(name).describe() if name in result.layouts else None,
            "n_parameters": params[name], "mean_total_test_loss": float(np.mean(list(per_seed.values()))),
            "recommended_minus_this": {"mean": float(np.mean(diff)), "sd": float(np.std(diff, ddof=1)) if len(diff) > 1 else None,
                                        "per_seed": diff},
            **{k: result.layouts[name][k] for k in ("width", "target_parameters", "relative_difference")
               if k in result.layouts.get(name, {})},
        }
    out = {
        "what": "planted (n_examples=1000), 6 tasks, widths [0.5, 1], cost params, pairwise 2 seeds, validation 3 seeds",
        "command": "python benchmarks/capacity.py",
        "budget": args.budget, "epochs": args.epochs,
        "front": [{k: row.get(k) for k in ("budget", "cost", "objective", "networks")} for row in result.grouping["front"]],
        "capacity": result.grouping.get("capacity"),
        "recommended": result.layout("recommended").describe(),
        "layouts": layouts,
        "errors": result.errors,
        "seconds": time.perf_counter() - t0,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_at_start": load_start,
                    "load_at_end": os.getloadavg()},
    }
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
