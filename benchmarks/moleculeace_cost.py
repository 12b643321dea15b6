"""What pairs would have cost on moleculeace: measured single-task and pair runs, extrapolated.

The pairwise probe needs 30 single-task runs and 435 pair runs per seed on the 30 MoleculeACE
targets. This script trains a handful of them with the regime of ``studies/moleculeace.toml``
(its ``[train]`` table, ``rows = "labelled"``: a run steps through the rows labelled for its
tasks) on one thread, seed 0: single-task runs of the tasks at the quantiles of their labelled
training rows, and pair runs at the quantiles of the pairs' labelled rows (rows labelled for
either task). Each kind's training seconds are fitted as ``a + b * rows`` by least squares and
summed over every single task and every pair from their exact row counts: an estimate, stated
as one, with a bracket from the slowest and fastest measured seconds per row. For the ratio the
fix makes, the median task is also trained with ``rows = "all"`` (every training row) in the
same process. Prints JSON with the load average.

    nice -n 10 python benchmarks/moleculeace_cost.py --out benchmarks/results/moleculeace_cost.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from taskrel.files import atomic_write_text
from taskrel.layout import SharingLayout
from taskrel.suites import get_suite
from taskrel.train import TrainConfig, train

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

STUDY = Path(__file__).resolve().parents[1] / "studies" / "moleculeace.toml"


def quantile_picks(values: np.ndarray, k: int) -> list[int]:
    """Indices of the entries nearest the k quantiles 0, 1/(k-1), ..., 1 of ``values`` (distinct)."""
    order = np.argsort(values, kind="stable")
    picks = [int(order[round(q * (len(order) - 1))]) for q in np.linspace(0, 1, k)]
    return list(dict.fromkeys(picks))


def timed(suite, tasks: list[str], cfg: TrainConfig, rows: int) -> dict:
    lay = SharingLayout.shared(tasks, suite.n_stages)
    r = train(suite, lay, cfg, seed=0)
    return {"tasks": tasks, "labelled_rows": rows, "train_seconds": round(r.seconds, 2), "epochs": len(r.history),
            "steps": r.steps, "examples": r.examples}


def extrapolate(measured: list[dict], all_rows: np.ndarray) -> dict:
    """Fit seconds = a + b * rows on ``measured``; sum over ``all_rows``; bracket by seconds per row."""
    x = np.array([m["labelled_rows"] for m in measured], float)
    y = np.array([m["train_seconds"] for m in measured], float)
    b, a = np.polyfit(x, y, 1)
    per_row = y / x
    return {"fit": {"intercept_s": round(float(a), 3), "seconds_per_row": round(float(b), 6)},
            "estimate_seconds": round(float(np.sum(a + b * all_rows)), 0),
            "bracket_seconds": [round(float(per_row.min() * all_rows.sum()), 0), round(float(per_row.max() * all_rows.sum()), 0)],
            "runs": int(len(all_rows))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(STUDY))
    ap.add_argument("--k", type=int, default=5, help="single-task runs and pair runs measured (each)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    study = tomllib.loads(Path(a.study).read_text())
    cfg = TrainConfig.from_dict(study.get("train", {}))
    if cfg.rows != "labelled":
        raise SystemExit(f"{a.study}: [train] rows is {cfg.rows!r}; this script measures rows = 'labelled'")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    suite = get_suite("moleculeace", **study.get("suite", {}).get("options", {}))
    build = time.perf_counter() - t0
    names = suite.task_names
    lab = np.stack([~np.isnan(suite.targets[t][suite.split["train"]]) for t in names], 1)  # (rows, tasks)
    singles = lab.sum(0)
    pairs = list(itertools.combinations(range(len(names)), 2))
    pair_rows = np.array([int((lab[:, i] | lab[:, j]).sum()) for i, j in pairs])
    single_runs = [timed(suite, [names[i]], cfg, int(singles[i])) for i in quantile_picks(singles, a.k)]
    pair_runs = [timed(suite, [names[pairs[p][0]], names[pairs[p][1]]], cfg, int(pair_rows[p])) for p in quantile_picks(pair_rows, a.k)]
    median = quantile_picks(singles, 3)[1]
    every_row = timed(suite, [names[median]], cfg.with_(rows="all"), int(len(suite.split["train"])))
    labelled_median = next(r for r in single_runs if r["tasks"] == [names[median]])
    single_est, pair_est = extrapolate(single_runs, singles.astype(float)), extrapolate(pair_runs, pair_rows.astype(float))
    out = {"command": "python benchmarks/moleculeace_cost.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "cpus": os.cpu_count(), "threads": 1, "seed": 0, "config": cfg.to_dict(), "build_seconds": round(build, 1),
           "tasks": len(names), "train_rows": int(lab.shape[0]),
           "labelled_rows_single": {"min": int(singles.min()), "median": float(np.median(singles)), "max": int(singles.max())},
           "labelled_rows_pair": {"min": int(pair_rows.min()), "median": float(np.median(pair_rows)), "max": int(pair_rows.max())},
           "single_runs": single_runs, "pair_runs": pair_runs,
           "median_task_rows_all": every_row, "rows_all_over_labelled_seconds": round(every_row["train_seconds"] / labelled_median["train_seconds"], 1),
           "estimate": {"singles": single_est, "pairs": pair_est,
                        "runs_per_seed": single_est["runs"] + pair_est["runs"],
                        "seconds_per_seed": single_est["estimate_seconds"] + pair_est["estimate_seconds"],
                        "note": "an estimate: fitted on the measured runs above, summed over every single task and pair"},
           "loadavg": {"start": [round(x, 2) for x in load0], "end": [round(x, 2) for x in os.getloadavg()]}}
    print(json.dumps(out, indent=1), flush=True)
    if a.out:
        atomic_write_text(a.out, json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
