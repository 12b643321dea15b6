"""Screen of planted-many: does the planted grouping beat all-separate and all-shared?

For each number of tasks, builds ``planted-many`` with the given options and trains, on every
seed, three groupings with taskrel's own run specs and training loop (one network per group,
``taskrel.plans.group_spec``; a group of one is the task's single-task run, so the planted
grouping's singletons are the all-separate runs): the planted grouping (every cluster
together, every unrelated and harmful task alone), all-separate and all-shared.

Scores follow the fidelity protocol: each task's test loss on a seed is divided by its
single-task test loss averaged over the seeds (a task alone scores 1 on average); a
grouping's score on a seed is the mean of its tasks' normalised losses. ``harm`` checks the
truth's other claim: a harmful task hurts the cluster it opposes more than an unrelated task. Comparisons are paired
over seeds: ``d = baseline - planted`` per seed, its mean, its standard error (std over seeds,
ddof 1, / sqrt(seeds)) and ``z = mean / SE``; the goal is z > 3 against both baselines.

    nice -n 10 python benchmarks/many_screen.py --n-tasks 24,48,96 --seeds 0,1,2 \\
        --out benchmarks/results/screen_many.json

``train_seconds`` sums the runs' own training times (stored in their records, so a rerun that
reads the runs from the store reports the times of the runs that trained them);
``wall_seconds`` is this invocation's time, small when the runs are read.

Prints one JSON line per number of tasks and writes the whole JSON (with the load average at
start and end) to ``--out``.
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
from taskrel.plans import group_spec
from taskrel.runner import Runner
from taskrel.store import RunStore
from taskrel.suites import get_suite
from taskrel.suites.planted_many import TRAIN
from taskrel.train import TrainConfig


def groupings(suite) -> dict[str, list[list[str]]]:
    tasks = suite.task_names
    return {"planted": suite.truth["groups"], "all_separate": [[t] for t in tasks], "all_shared": [list(tasks)]}


def test_losses(suite, groups: list[list[str]], config: TrainConfig, seeds: list[int], store: RunStore,
                n_jobs: int) -> tuple[np.ndarray, dict]:
    """(seeds, tasks) test losses of a grouping, and what its runs cost."""
    tasks = suite.task_names
    specs = [group_spec(suite, g, config, s) for s in seeds for g in groups]
    with Runner(store, n_jobs=n_jobs, progress=False) as runner:
        recs = runner.run(suite, specs, desc="screen")
    out = np.full((len(seeds), len(tasks)), np.nan)
    seconds = []
    for k, rec in enumerate(recs):
        si, gi = divmod(k, len(groups))
        seconds.append(rec.seconds)
        if rec.ok:
            for t in groups[gi]:
                out[si, tasks.index(t)] = rec.loss(t, "test")
    return out, {"runs": len(specs), "trained_now": recs.trained, "read_from_store": recs.reused, "failed": len(recs.failed), "train_seconds": round(float(sum(seconds)), 1),
                 "max_run_seconds": round(float(max(seconds)), 2)}


def paired(base: np.ndarray, planted: np.ndarray) -> dict:
    d = base - planted
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    z = float(d.mean() / se) if se > 0 else float("nan")
    return {"per_seed": [round(float(x), 4) for x in d], "mean": round(float(d.mean()), 4), "se": round(se, 4), "z": round(z, 2)}


def harm_check(suite, config: TrainConfig, seeds: list[int], store: RunStore, n_jobs: int, alone: np.ndarray) -> dict:
    """Does a harmful task hurt the cluster it opposes more than an unrelated partner does?

    For each harmful task h opposing cluster k: cluster k trained with h, and with the first
    unrelated task u; the cluster's mean normalised test loss in each, paired over seeds
    (``d = with_h - with_u``: > 0 when h hurts more)."""
    tasks, t = suite.task_names, suite.truth
    if not t["unrelated"]:
        return {}
    u, out = t["unrelated"][0], {}
    for h, k in t["harmful"].items():
        members = t["clusters"][k]
        idx = [tasks.index(x) for x in members]
        with_h, _ = test_losses(suite, [[*members, h]], config, seeds, store, n_jobs)
        with_u, _ = test_losses(suite, [[*members, u]], config, seeds, store, n_jobs)
        a = np.mean(with_h[:, idx] / alone[None, idx], axis=1)
        b = np.mean(with_u[:, idx] / alone[None, idx], axis=1)
        out[h] = {"cluster": k, "with_harmful": [round(float(x), 4) for x in a],
                  "with_unrelated": [round(float(x), 4) for x in b], "harmful_minus_unrelated": paired(a, b)}
    return out


def screen(n_tasks: int, options: dict, config: TrainConfig, seeds: list[int], store: RunStore, n_jobs: int,
           harm: bool = True) -> dict:
    t0 = time.perf_counter()
    suite = get_suite("planted-many", n_tasks=n_tasks, **options)
    build = time.perf_counter() - t0
    losses, costs = {}, {}
    for name, groups in groupings(suite).items():
        losses[name], costs[name] = test_losses(suite, groups, config, seeds, store, n_jobs)
    alone = np.nanmean(losses["all_separate"], axis=0)
    score = {k: np.nanmean(v / alone[None, :], axis=1) for k, v in losses.items()}  # (seeds,) mean normalised loss
    per_kind = {}
    for kind, members in (("clustered", [t for t in suite.task_names if suite.truth["cluster"][t] >= 0]),
                          ("harmful", list(suite.truth["harmful"])), ("unrelated", suite.truth["unrelated"])):
        idx = [suite.task_names.index(t) for t in members]
        per_kind[kind] = {k: round(float(np.nanmean(v[:, idx] / alone[None, idx])), 3) for k, v in losses.items()} if idx else {}
    return {
        "n_tasks": n_tasks,
        "options": options,
        "clusters": [len(c) for c in suite.truth["clusters"]],
        "n_examples": int(len(suite.inputs)),
        "build_seconds": round(build, 3),
        "score": {k: [round(float(x), 4) for x in v] for k, v in score.items()},
        "planted_vs_all_separate": paired(score["all_separate"], score["planted"]),
        "planted_vs_all_shared": paired(score["all_shared"], score["planted"]),
        "normalised_by_kind": per_kind,
        "harm": harm_check(suite, config, seeds, store, n_jobs, alone) if harm else None,
        "costs": costs,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-tasks", default="24")
    ap.add_argument("--options", default="{}", help="JSON: planted-many options (besides n_tasks)")
    ap.add_argument("--config", default="{}", help="JSON: changes to the training regime (planted_many.TRAIN)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--store", default=".taskrel/many-screen-store")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-harm", action="store_true", help="skip the check that harmful tasks hurt more than unrelated ones")
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    config = TrainConfig(**{**TRAIN, **json.loads(a.config)})
    store = RunStore(a.store)
    load0 = os.getloadavg()
    out = {"command": "python benchmarks/many_screen.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "config": config.to_dict(), "seeds": seeds, "rows": []}
    for n in (int(x) for x in a.n_tasks.split(",")):
        row = screen(n, json.loads(a.options), config, seeds, store, a.n_jobs, not a.no_harm)
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
    out["machine"] = {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load0],
                      "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
    if a.out:
        atomic_write_text(a.out, json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
