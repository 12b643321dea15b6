"""Fidelity per compute: do cheap probes find the groupings that training every subset finds?

The oracle trains every subset of the tasks (2^n - 1 networks) for several seeds, so the true
best grouping at each budget is known (on the held-out test split). Each probe is then run on
its own seeds (so it cannot reuse the oracle's runs) and judged by:

* compute: its training examples and seconds, relative to the oracle's;
* Spearman: rank agreement of its affinity with the oracle's pair effects (the relative change
  of a task's validation loss when trained with one other task, over the oracle's seeds);
* regret at each budget (number of networks): the oracle test loss of the grouping the probe
  recommends, minus the oracle's best at that budget, in % of the best. Each task is served by
  its best chosen network (the oracle knows every network's test loss). A random choice of
  networks at the same budget is the floor to beat; the oracle's own choice made on validation
  losses ("oracle-val") is the ceiling: it shows how much regret seed noise alone causes.

Probes with their own group estimates (pairwise: Standley's higher-order approximation) are
judged twice: on those estimates ("pairwise-hoa") and on their affinity alone.

Runs are cached in a run store (``--store``), so a second run of the script trains nothing.

    python benchmarks/fidelity.py               # digits, 8 tasks, 3 seeds each (~10 min, 2 cores)
    python benchmarks/fidelity.py --suite mnist --tasks is0,is1,is2,is3,is4,is5,even,ge5
    python benchmarks/fidelity.py --quick       # 5 tasks, fewer epochs: a smoke run

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import numpy as np

from taskrel.affinity import Affinity
from taskrel.analysis import CandidateTable, GroupingSearch
from taskrel.probes.base import ProbeSettings
from taskrel.probes.gradient import GradientProbe
from taskrel.probes.lookahead import LookaheadProbe
from taskrel.probes.pairwise import PairwiseProbe, measure_groups
from taskrel.probes.similarity import SimilarityProbe
from taskrel.probes.transfer import TransferProbe
from taskrel.store import RunStore
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

TASKS = ["is1", "is3", "is5", "is7", "is8", "is9", "even", "ge5"]  # the default study's


def oracle_pair_effects(val: CandidateTable, tasks: list[str]) -> Affinity:
    n = len(tasks)
    v = np.zeros((n, n))
    for i, s in enumerate(tasks):
        for j, t in enumerate(tasks):
            if i != j:
                alone = val.value((t,), t)
                v[i, j] = (alone - val.value(tuple(sorted((s, t), key=tasks.index)), t)) / alone
    return Affinity(tasks, v, measure="oracle pair effects")


def served_loss(groups, test: CandidateTable, tasks) -> float:
    """Oracle loss of a choice of networks: each task served by its best chosen network."""
    return float(sum(min(test.value(g, t) for g in groups if t in g) for t in tasks))


def regret_row(table: CandidateTable, budget: int, test, tasks, best) -> float | None:
    try:
        gs = GroupingSearch(budget=budget).fit(table)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        print(f"grouping failed at budget {budget}: {e}", file=sys.stderr)
        return None
    return 100.0 * (gs.score_on(test, reassign=True) - best) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="digits")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--oracle-seeds", type=int, default=3)
    ap.add_argument("--probe-seeds", type=int, default=3)
    ap.add_argument("--store", default="runs-fidelity")
    ap.add_argument("--n-jobs", type=int, default=-1)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    tasks = a.tasks.split(",")
    epochs = a.epochs
    if a.quick:
        tasks, epochs = tasks[:5], 8
    suite = get_suite(a.suite, tasks=tasks) if a.suite in ("digits", "mnist") else get_suite(a.suite).subset(tasks)
    store = RunStore(a.store)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, patience=5)
    oracle_settings = ProbeSettings(cfg, seeds=list(range(a.oracle_seeds)), n_jobs=a.n_jobs, progress=not a.quiet)
    subsets = [c for k in range(1, len(tasks) + 1) for c in itertools.combinations(tasks, k)]
    t0 = time.perf_counter()
    oracle = measure_groups(subsets, suite, store, oracle_settings)
    val, test = oracle.val, oracle.test
    truth = oracle_pair_effects(val, tasks)
    n = len(tasks)
    budgets = list(range(1, n))
    best = {b: GroupingSearch(budget=b).fit(test).total_ for b in budgets}
    rng = np.random.default_rng(0)
    random_regret = {}
    cands = [tuple(g) for g in test.groups]
    for b in budgets:
        vals = []
        while len(vals) < 200:
            groups = [cands[i] for i in rng.choice(len(cands), size=b, replace=False)]
            if {t for g in groups for t in g} == set(tasks):
                vals.append(100.0 * (served_loss(groups, test, tasks) - best[b]) / best[b])
        random_regret[b] = float(np.mean(vals))

    probe_settings = ProbeSettings(cfg, seeds=list(range(100, 100 + a.probe_seeds)), n_jobs=a.n_jobs, progress=not a.quiet)
    probes = {
        "pairwise": lambda: PairwiseProbe(tasks, settings=probe_settings),
        "pairwise-cheap": lambda: PairwiseProbe(tasks, cheap={"epochs_fraction": 0.3}, settings=probe_settings),
        "transfer": lambda: TransferProbe(tasks, mode="frozen", settings=probe_settings),
        "gradient": lambda: GradientProbe(tasks, every=5, settings=probe_settings),
        "lookahead": lambda: LookaheadProbe(tasks, every=5, settings=probe_settings),
        "similarity": lambda: SimilarityProbe(tasks, settings=probe_settings),
    }
    rows = {"oracle-val": {
        "examples_vs_oracle": 1.0, "seconds_vs_oracle": 1.0, "runs": oracle.cost.runs, "spearman": 1.0,
        "regret_pct": {b: regret_row(val, b, test, tasks, best[b]) for b in budgets},
    }}
    for name, make in probes.items():
        try:
            p = make().fit(suite, store)
        except Exception as e:  # noqa: BLE001 - one probe failing is reported, the rest go on
            rows[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        aff = p.affinity_
        flat = aff.stage(aff.values.shape[0] - 1) if aff.is_staged else aff
        tables = {name: CandidateTable.from_affinity(flat)}
        if hasattr(p, "candidates"):
            tables[f"{name}-hoa"] = p.candidates()
        for row, table in tables.items():
            rows[row] = {
                "examples_vs_oracle": aff.cost.examples / oracle.cost.examples,
                "seconds_vs_oracle": aff.cost.seconds / oracle.cost.seconds,
                "runs": aff.cost.runs,
                "spearman": flat.agreement(truth)["spearman"],
                "regret_pct": {b: regret_row(table, b, test, tasks, best[b]) for b in budgets},
            }
    out = {
        "suite": suite.name,
        "tasks": tasks,
        "epochs": epochs,
        "oracle": {
            "networks": len(subsets),
            "seeds": a.oracle_seeds,
            "runs": oracle.cost.runs,
            "examples": oracle.cost.examples,
            "seconds": round(oracle.cost.seconds, 1),
            "best_test_loss_by_budget": best,
        },
        "random_regret_pct": random_regret,
        "probes": rows,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
