"""The surrogate probe on a fidelity testbed, setting by setting, from the runs already stored.

``fidelity.py`` judges every probe; this script judges only :class:`SurrogateProbe`, under a
few settings of its surrogate, side by side on the same runs: the oracle's runs and the
probe's groups are read from the run store (``--store``, the one ``fidelity.py`` filled), so
nothing trains when they are there. Each setting gets the two rows ``fidelity.py`` gives the
probe: ``<name>`` (its affinity, grouped by HOA) and ``<name>-groups`` (its own group
estimates), with the same regret, Spearman and ceilings; and, per target task, the form and
penalty the surrogate chose, the least leave-one-group-out error of each form, and how many
measured groups of each size hold the task.

    nice -n 10 python benchmarks/surrogate_check.py --store /tmp/f1store --design-seeds 0,1,2,3,4,5,6,7   # ~2 min

``--design-seeds``: the probe's design is one seeded draw, and on a 7-task testbed one draw
decides a lot (regret moves by tens of points between designs), so the summary holds every
setting on each design seed and their mean.

Writes ``benchmarks/results/surrogate_check_<suite>.json`` (``--out``) and prints the rows;
``--table FILE`` prints the docs table of a result.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity import regime, score_probes  # noqa: E402 - the scoring is fidelity.py's own
from fidelity_protocol import ESTIMATE_ASSIGNED, mean_of, oracle_summary, train_oracle  # noqa: E402

from taskrel.probes.surrogate import SurrogateProbe  # noqa: E402
from taskrel.runner import Runner  # noqa: E402
from taskrel.store import RunStore  # noqa: E402
from taskrel.suites import get_suite  # noqa: E402

SETTINGS = {  # name -> SurrogateProbe parameters
    "default": {},  # SurrogateProbe's defaults (the JSON records its effects and alpha)
    "auto": {"effects": "auto"},  # form and penalty per task (the default from 2b22943 to F4)
    "mean": {"effects": "mean", "alpha": 1e-3},  # the default before commit 2b22943
    "sum": {"effects": "sum", "alpha": 1e-3},
    "mean-auto": {"effects": "mean"},
    "sum-auto": {"effects": "sum"},
}


def probe_defaults() -> dict:
    """SurrogateProbe's default ``effects`` and ``alpha``: what the ``default`` setting ran."""
    params = inspect.signature(SurrogateProbe).parameters
    return {k: params[k].default for k in ("effects", "alpha")}


def choices(probe: SurrogateProbe) -> dict:
    """Per target: chosen form and penalty, each form's least leave-one-group-out error (when
    chosen by it), and the measured groups holding the target by size (one seed's design)."""
    sur = probe.surrogate_
    out = {}
    for j, t in enumerate(sur.tasks_):
        sizes = [len(g) for g in probe.design_ if t in g]
        row = {"effects": sur.effects_[j], "alpha": float(sur.alpha_[j]),
               "groups_by_size": {str(k): sizes.count(k) for k in sorted(set(sizes))}}
        if t in sur.cv_:
            row["least_cv_error"] = {f: min(v for (g, _), v in sur.cv_[t].items() if g == f)
                                     for f in sorted({g for g, _ in sur.cv_[t]})}
        out[t] = row
    return out


def context(suite, tasks, config, choose_seeds, score_seeds, store) -> tuple[dict, dict]:
    """fidelity.py's scoring context (the oracle on both seed sets) and the oracle's summary."""
    choose_runs = train_oracle(suite, tasks, config, choose_seeds, store, 1, False)
    score_runs = train_oracle(suite, tasks, config, score_seeds, store, 1, False)
    budgets = list(range(2, len(tasks)))
    summary, _, scores, best, truth, val_scores = oracle_summary(choose_runs, score_runs, budgets, np.random.default_rng(0))
    ctx = {"truth": truth, "scores": scores, "val_scores": val_scores, "best": best, "oracle": score_runs,
           "budgets": budgets, "cost": choose_runs.cost, "ceiling": summary["split_half_reliability"],
           "oracle_regret": summary["heldout_regret"]}
    return ctx, {"heldout_regret_mean": mean_of(summary["heldout_regret"], ESTIMATE_ASSIGNED),
                 "random_regret_mean": mean_of(summary["random_regret"]), "networks": len(choose_runs.groups)}


def markdown(res: dict) -> str:
    """The docs table (docs/group-values.md) from a result of this script."""
    seeds = res["design_seeds"]
    lines = [f"| setting | regret, affinity + HOA: design {seeds[0]} / mean of {len(seeds)} designs | "
             f"regret, own group estimates: design {seeds[0]} / mean | Spearman (mean) | forms chosen (design {seeds[0]}) |",
             "| --- | --- | --- | --- | --- |"]
    for name, params in res["settings"].items():
        sm = res["summary"][name]
        forms = [c["effects"] for c in res["choices"][name].values()]
        label = ", ".join(f"{k}={v!r}" for k, v in params.items())
        if not label:  # the probe's defaults, as recorded when the JSON was made
            given = ", ".join(f"{k}={v!r}" for k, v in res.get("defaults", {}).items())
            label = f"default ({given})" if given else "default"
        lines.append(f"| {label} | {sm['affinity'][0]:.1f}% / {sm['affinity_mean']:.1f}% | {sm['groups'][0]:.1f}% / "
                     f"{sm['groups_mean']:.1f}% | {sm['spearman_mean']:.3f} | "
                     + ", ".join(f"{f} x{forms.count(f)}" for f in dict.fromkeys(forms)) + " |")
    if {"default", "auto"} <= set(res["summary"]):  # the default against the choice of form, design by design
        d, a = res["summary"]["default"], res["summary"]["auto"]
        lines += ["", "Default against effects='auto', design by design: " + "; ".join(
            f"{label} lower in {sum(x < y for x, y in zip(d[k], a[k]))}, higher in {sum(x > y for x, y in zip(d[k], a[k]))}"
            f" of {len(d[k])}" for label, k in (("affinity", "affinity"), ("own group estimates", "groups"))) + "."]
    o = res["oracle"]
    lines += ["", f"Design seeds {seeds} (`SurrogateProbe(design_seed=...)`, the same runs of the store). Oracle "
              f"(every group measured on the choice seeds): {o['heldout_regret_mean']:.1f}%; random groupings: "
              f"{o['random_regret_mean']:.1f}%. Load {res['machine']['loadavg_start'][0]} on {res['machine']['cpus']} cores."]
    return "\n".join(lines)


def score_settings(names, design_seeds, tasks, config, choose_seeds, suite, store, ctx) -> tuple[dict, dict, dict, int]:
    """Every setting on every design seed: fidelity.py's rows, their summary, the first
    design's choices per target, and the runs trained (0 when the store holds them)."""
    by_design, summary, chosen, trained = {}, {}, {}, 0
    with Runner(store, n_jobs=1, progress=False) as runner, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for ds in design_seeds:
            by_design[str(ds)] = {}
            for name in names:
                def make(name=name, ds=ds):
                    return SurrogateProbe(tasks, config=config, seeds=choose_seeds, design_seed=ds, **SETTINGS[name])
                got, _ = score_probes({name: make}, suite, runner, ctx)
                by_design[str(ds)].update(got)
                if ds == design_seeds[0]:
                    probe = make().fit(suite, runner)
                    trained += probe.trained_
                    chosen[name] = choices(probe)
    for name in names:
        aff = [by_design[str(ds)][name]["regret_mean"] for ds in design_seeds]
        own = [by_design[str(ds)][f"{name}-groups"]["regret_mean"] for ds in design_seeds]
        rho = [by_design[str(ds)][name]["spearman"] for ds in design_seeds]
        summary[name] = {"affinity": aff, "groups": own, "affinity_mean": float(np.mean(aff)),
                         "groups_mean": float(np.mean(own)), "spearman_mean": float(np.mean(rho))}
    return by_design, summary, chosen, trained


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="qm9-scarce")
    ap.add_argument("--choose-seeds", default="0,1")
    ap.add_argument("--score-seeds", default="2,3,4")
    ap.add_argument("--design-seeds", default="0", help="comma-separated design seeds of the probe (default 0, as fidelity.py)")
    ap.add_argument("--store", default=".taskrel/fidelity-store")
    ap.add_argument("--settings", default=None, help=f"comma-separated subset of {list(SETTINGS)}")
    ap.add_argument("--out", default=None)
    ap.add_argument("--table", default=None, help="print the docs table of a result JSON and stop")
    a = ap.parse_args(argv)
    if a.table:
        print(markdown(json.loads(Path(a.table).read_text())))
        return {}
    t0, load0 = time.perf_counter(), os.getloadavg()
    suite = get_suite(a.suite)
    tasks = suite.task_names
    suite = suite.subset(tasks)
    config = regime(a.suite)
    choose_seeds = [int(s) for s in a.choose_seeds.split(",")]
    design_seeds = [int(s) for s in a.design_seeds.split(",")]
    store = RunStore(a.store)
    ctx, oracle = context(suite, tasks, config, choose_seeds, [int(s) for s in a.score_seeds.split(",")], store)
    names = a.settings.split(",") if a.settings else list(SETTINGS)
    by_design, summary, chosen, trained = score_settings(names, design_seeds, tasks, config, choose_seeds, suite, store, ctx)
    out = {"benchmark": "surrogate_check", "suite": a.suite, "tasks": tasks,
           "command": "python benchmarks/surrogate_check.py " + shlex.join(sys.argv[1:] if argv is None else argv),
           "settings": {n: SETTINGS[n] for n in names}, "defaults": probe_defaults(), "design_seeds": design_seeds, "oracle": oracle,
           "summary": summary, "rows_by_design": by_design, "choices": chosen, "trained_here": trained,
           "machine": {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load0],
                       "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
           "wall_seconds": round(time.perf_counter() - t0, 1)}
    path = a.out or f"benchmarks/results/surrogate_check_{a.suite}.json"
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=float)
        f.write("\n")
    print(markdown(out))
    print(f"trained here {trained}; wrote {path}")
    return out


if __name__ == "__main__":
    main()
