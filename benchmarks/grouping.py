"""Time to the exact optimum of the task-grouping problem (Standley et al.) with taskrel's MILP.

Instances: higher-order approximation (HOA) tables from random, seeded pair tables (each
task's loss with a partner is 1 + N(0, 0.1^2), alone 1.0); every network costs 1; the budget
is a number of networks. For each size n the table holds every group up to ``max_size``
tasks (``max_size == n`` means every group: the optimum is exact over all 2^n - 1 networks;
otherwise it is exact over the groups listed and says so). Where n is small the exhaustive
dynamic programme (an independent exact method) is timed too, with the ratio of the times.

With ``--standley`` it also reproduces Standley et al.'s published selections from their
released per-network tables (``tests/data/standley2020_*``: half-size networks, selection on
validation, on the early-stopping approximation and on HOA from pairs, at budgets 1 to 5 in
steps of 0.5, scored on test) and counts how many of the 108 published numbers it matches.

Usage: ``python benchmarks/grouping.py [--quick] [--standley]``; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd

from taskrel.analysis import CandidateTable, GroupingSearch, hoa_candidates

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"

FULL = [  # (n, max_size, budget in networks)
    (10, 10, 3),
    (12, 12, 3),
    (20, 20, 5),
    (30, 6, 8),
    (40, 5, 10),
]
QUICK = [(10, 10, 3), (20, 20, 5), (30, 4, 8), (40, 3, 14)]


def instance(n: int, max_size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    tasks = [f"t{i:02d}" for i in range(n)]
    pair = {
        (a, b): {a: 1 + rng.normal(0, 0.1), b: 1 + rng.normal(0, 0.1)}
        for a, b in combinations(tasks, 2)
    }
    return hoa_candidates(tasks, {t: 1.0 for t in tasks}, pair, max_size=max_size)


def run(n: int, max_size: int, budget: float, partition: bool) -> dict:
    t0 = time.perf_counter()
    table = instance(n, max_size)
    t1 = time.perf_counter()
    gs = GroupingSearch(budget, partition=partition).fit(table)
    t2 = time.perf_counter()
    row = {
        "n": n,
        "mode": "partition" if partition else "overlap",
        "budget": budget,
        "max_size": max_size,
        "exact_over": "all groups" if max_size >= n else f"groups of size <= {max_size}",
        "n_candidates": len(table),
        "build_s": round(t1 - t0, 3),
        "milp_s": round(t2 - t1, 3),
        "total_s": round(t2 - t0, 3),
        "objective": round(gs.total_, 6),
        "n_networks": len(gs.groups_),
        "largest_group": max(len(g) for g in gs.groups_),
        "lp_bound": None if gs.lower_bound_ is None else round(gs.lower_bound_, 6),
        "networks_after_fixing": gs.stats_.get("n_fixed"),
    }
    if n <= 12:
        # naive enumeration would visit every set of at most `budget` networks
        row["naive_choices"] = sum(comb(len(table), k) for k in range(1, int(budget) + 1))
        t3 = time.perf_counter()
        ex = GroupingSearch(budget, partition=partition, solver="exhaustive").fit(table)
        t4 = time.perf_counter()
        row["exhaustive_s"] = round(t4 - t3, 3)
        row["exhaustive_over_milp"] = round((t4 - t3) / max(t2 - t1, 1e-9), 2)
        row["agree"] = bool(abs(ex.total_ - gs.total_) <= 1e-7)
    return row


def standley() -> dict:
    """Their selections re-made through GroupingSearch; differences from the published curves."""
    frame = pd.read_csv(DATA / "standley2020_network_selection.csv", comment="#")
    published = json.loads((DATA / "standley2020_published.json").read_text())
    tasks = ["t1", "t2", "t3", "t4", "t5"]
    out, matched, total = {}, 0, 0
    for setting in (1, 2, 3, 4):
        part = frame[frame["setting"] == setting].drop(columns="setting")
        tables = {split: CandidateTable.from_frame(p.drop(columns="split").reset_index(drop=True))
                  for split, p in part.groupby("split")}
        val = tables["val"]
        singles = {w: {t: val.value(t if w == 1 else f"{t}@{w:g}", t) for t in tasks}
                   for w in (1.0, 0.5)}
        pairs = {(a, b): {a: val.value(f"{a}+{b}", a), b: val.value(f"{a}+{b}", b)}
                 for a, b in combinations(tasks, 2)}
        tables["hoa"] = hoa_candidates(tasks, singles, {1.0: pairs})
        for kind, on in (("optimal", "val"), ("esa", "esa"), ("hoa", "hoa")):
            got = [GroupingSearch(b, partition=False).fit(tables[on]).score_on(tables["test"], reassign=True)
                   for b in published["budgets"]]
            want = published["curves"][str(setting)][kind]
            diff = [g - w for g, w in zip(got, want)]
            matched += int(sum(abs(d) <= 6e-6 for d in diff))
            total += len(diff)
            out[f"setting{setting}/{kind}"] = {"ours": got, "published": want}
    return {"matched_to_5_decimals": matched, "selections": total, "curves": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller tables, fewer sizes")
    parser.add_argument("--standley", action="store_true", help="also reproduce Standley et al.")
    args = parser.parse_args()
    rows = [
        run(n, max_size, budget, partition)
        for n, max_size, budget in (QUICK if args.quick else FULL)
        for partition in (False, True)
    ]
    out = {
        "benchmark": "grouping",
        "quick": args.quick,
        "machine": {"python": platform.python_version(), "processor": platform.machine(),
                    "load_before": os.getloadavg()},
        "cost": "1 per network; budget = number of networks",
        "results": rows,
        "standley": standley() if args.standley else None,
    }
    out["machine"]["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
