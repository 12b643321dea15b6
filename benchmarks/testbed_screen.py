"""Cheap screen of testbed variants before a full fidelity run: is grouping likely to matter?

For each variant (a suite's options), trains every subset of its tasks on one or two seeds
through the same run store and protocol functions as ``fidelity.py``, and prints JSON with
the numbers the testbed checks are made of:

* one seed: choice (validation) and score (test) come from the same seed, so the held-out
  regret is optimistic and the split-half reliability is not measured (reported as null);
  random-grouping regret and the best grouping's margins over all-separate and all-shared are
  the protocol's own arithmetic on that seed;
* two seeds or more: the first seed chooses and the others score, exactly as in
  ``fidelity.py`` (split-half reliability of one seed against the rest).

Standard errors need two scoring seeds, so a screen reports margins, not the separation check.
Use the full run's seeds (``fidelity.py`` chooses on 0,1; the committed qm9-scarce results
score on 2,3,4), so that the full run reads the screen's runs from the store.

    nice -n 10 python benchmarks/testbed_screen.py --seeds 0 --out benchmarks/results/testbed_screen_qm9-scarce.json \\
        --variants '{"desc (default)": {}, "nodesc": {"descriptors": false}, "nodesc-w16": {"descriptors": false, "width": 16}, "nodesc-w8": {"descriptors": false, "width": 8}}'

(about 3-6 min per new variant on the loaded 2-core machine; nothing for a variant already in the store).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from taskrel.store import RunStore
from taskrel.suites import get_suite

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity import CONFIGS, regime  # noqa: E402 - the benchmark's training regime
from fidelity_protocol import oracle_summary, seed_mean, testbed_checks, train_oracle  # noqa: E402


def screen_variant(suite_name: str, options: dict, seeds: list[int], store: RunStore, n_jobs: int, progress: bool,
                   tasks: list[str] | None = None, config=None) -> dict:
    """Train (or read) every subset of the variant's tasks (``tasks``: a subset of its tasks)
    on ``seeds``; the protocol's numbers."""
    t0 = time.perf_counter()
    suite = get_suite(suite_name, **options)
    tasks = list(tasks) if tasks else suite.task_names
    suite = suite.subset(tasks)
    config = config or CONFIGS[suite_name]
    choose_runs = train_oracle(suite, tasks, config, seeds[:1], store, n_jobs, progress)
    score_runs = choose_runs if len(seeds) == 1 else train_oracle(suite, tasks, config, seeds[1:], store, n_jobs, progress)
    budgets = list(range(2, len(tasks)))
    summary, _, scores, _, _, _ = oracle_summary(choose_runs, score_runs, budgets, np.random.default_rng(0))
    checks = testbed_checks(summary)
    sep = summary["separation"]
    shared_scores = seed_mean(scores)[-1]  # the last subset is all tasks together
    return {
        "options": options,
        "config": config.to_dict(),
        "tasks": tasks,
        "seeds": {"choose": seeds[:1], "score": seeds[1:] or seeds[:1]},
        "random_regret_mean": checks["random_regret_mean"]["value"],
        "random_regret_partition": summary["random_regret"]["partition"],
        "heldout_regret_mean": checks["heldout_regret_mean"]["value"],
        "heldout_is_same_seed": len(seeds) == 1,
        "split_half_reliability": None if len(seeds) == 1 else summary["split_half_reliability"],
        "best_grouping": summary["best_grouping"],
        "best": sep["best"],
        "margin_over_all_separate": sep["margin_over_all_separate"],
        "margin_over_all_shared": sep["margin_over_all_shared"],
        "z_all_separate": sep["z_all_separate"],
        "z_all_shared": sep["z_all_shared"],
        "all_shared_per_task": {t: round(float(v), 3) for t, v in zip(tasks, shared_scores)},
        "random_regret_would_pass": bool(checks["random_regret_mean"]["pass"]),
        "runs_trained_or_read": choose_runs.cost.runs + (score_runs.cost.runs if len(seeds) > 1 else 0),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="qm9-scarce")
    ap.add_argument("--variants", required=True, help='JSON: name -> suite options, e.g. \'{"w16": {"width": 16}}\'')
    ap.add_argument("--tasks", default=None, help="comma-separated subset of each variant's tasks (default: all)")
    ap.add_argument("--config", default="{}", help="JSON changes to the suite's training regime (as fidelity.py)")
    ap.add_argument("--seeds", default="0", help="first seed chooses; the rest (if any) score")
    ap.add_argument("--store", default=".taskrel/fidelity-store")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.suite not in CONFIGS:
        raise SystemExit(f"--suite: no training regime for {a.suite!r}; known: {', '.join(CONFIGS)}")
    seeds = [int(s) for s in a.seeds.split(",")]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds: listed twice in {seeds}")
    variants = json.loads(a.variants)
    store = RunStore(a.store)
    load0 = os.getloadavg()
    out = {"suite": a.suite, "command": "python benchmarks/testbed_screen.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "variants": {}}
    for name, options in variants.items():
        tasks = a.tasks.split(",") if a.tasks else None
        out["variants"][name] = screen_variant(a.suite, options, seeds, store, a.n_jobs, not a.quiet, tasks, regime(a.suite, a.config))
        print(json.dumps({name: out["variants"][name]}, default=float), flush=True)
    out["machine"] = {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load0],
                      "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1, default=float)
            f.write("\n")
    print(json.dumps({k: {m: v[m] for m in ("random_regret_mean", "margin_over_all_separate", "margin_over_all_shared", "best")}
                      for k, v in out["variants"].items()}, indent=1, default=float))
    return out


if __name__ == "__main__":
    main()
