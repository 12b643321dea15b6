"""What the many-task suites cost: build time, and one run's training time alone and all-shared.

For each suite (its default options unless given), builds it, then trains the first task alone
and all tasks in one network with the regime given (one thread, seed 0), and prints JSON:
tasks, rows per split, labels per task in the training split, build seconds, and each run's
training seconds and epochs (from taskrel's own training loop), with the load average.

    nice -n 10 python benchmarks/many_suite_costs.py --out benchmarks/results/suite_costs_many.json
    (--suites planted-many,bayesnet --merge: rerun some, keep the others' entries)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import numpy as np

from taskrel.files import atomic_write_text
from taskrel.layout import SharingLayout
from taskrel.suites import get_suite
from taskrel.suites.planted_many import TRAIN
from taskrel.train import TrainConfig, train

SUITES = {
    "planted-many": ({"n_tasks": 96}, TRAIN),
    "moleculeace": ({}, {"epochs": 20, "batch_size": 128, "lr": 0.002, "patience": 4}),
    "bayesnet": ({}, {"epochs": 30, "batch_size": 64, "lr": 0.002, "patience": 5}),
}


def cost(name: str, options: dict, regime: dict) -> dict:
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    suite = get_suite(name, **options)
    build = time.perf_counter() - t0
    cfg = TrainConfig(**regime)
    train_rows = suite.split["train"]
    labels = [int((~np.isnan(suite.targets[t][train_rows])).sum()) for t in suite.task_names]
    out = {"options": options, "config": regime, "tasks": len(suite.task_names),
           "rows": {k: int(len(v)) for k, v in suite.split.items()}, "inputs": int(suite.inputs.shape[1]),
           "train_labels_per_task": {"min": min(labels), "median": float(np.median(labels)), "max": max(labels)},
           "build_seconds": round(build, 2)}
    for what, tasks in (("alone", suite.task_names[:1]), ("all_shared", suite.task_names)):
        lay = SharingLayout.separate(tasks, suite.n_stages) if len(tasks) == 1 else SharingLayout.shared(tasks, suite.n_stages)
        r = train(suite, lay, cfg, seed=0)
        out[what] = {"train_seconds": round(r.seconds, 1), "epochs": len(r.history), "steps": r.steps}
    out["loadavg"] = {"start": [round(x, 2) for x in load0], "end": [round(x, 2) for x in os.getloadavg()]}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default=",".join(SUITES))
    ap.add_argument("--out", default=None)
    ap.add_argument("--merge", action="store_true", help="keep the other suites' entries already in --out")
    a = ap.parse_args(argv)
    out = {"command": "python benchmarks/many_suite_costs.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "cpus": os.cpu_count(), "suites": {}}
    for name in a.suites.split(","):
        if name not in SUITES:
            raise SystemExit(f"--suites: unknown {name!r}; known: {', '.join(SUITES)}")
        out["suites"][name] = cost(name, *SUITES[name])
        print(json.dumps({name: out["suites"][name]}), flush=True)
    if a.out and a.merge and os.path.exists(a.out):
        with open(a.out) as f:
            old = json.load(f)
        out["suites"] = {**old.get("suites", {}), **out["suites"]}
        out["command"] = [*([old["command"]] if isinstance(old.get("command"), str) else old.get("command", [])), out["command"]]
    if a.out:
        atomic_write_text(a.out, json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
