"""Fidelity curves on the planted suite: the held-out protocol of ``fidelity.py`` along one knob
of the regime at a time (relatedness, encoder width, label overlap, ...).

Each point of a sweep is the planted suite with one option changed from a base regime (a sweep
may move the base first: ``relatedness=0,0.9@width=32``). At each
point the oracle trains every subset of the tasks on the choice seeds and on the scoring seeds
(so the task count is kept small: 2 clusters of 2 plus the unrelated and the conflicting task
give 6 tasks, 63 subsets), and every probe is fitted on the choice seeds and judged as in
``fidelity.py``. A point records the four testbed checks and, per probe, its Spearman against
the oracle's scoring-seed pair effects (beside the split-half ceiling), its regret in partition
and overlap mode (mean over budgets, beside the oracle's own held-out regret) and its training
examples relative to the pairwise probe. Points that fail the testbed checks are kept and
marked: there the oracle itself cannot be told from noise, and a probe's numbers mean little.

    nice -n 10 python benchmarks/fidelity_curves.py --epochs 15 --sweep relatedness=0,0.5,0.9 \
        --sweep width=8,32 --sweep relatedness=0,0.5,0.9@width=32
    python benchmarks/fidelity_curves.py --table        # the Markdown table of the written JSON

Every run goes through the run store (``--store``), so a rerun trains nothing new. Writes
``benchmarks/results/fidelity_curves_planted.json`` (``--out``) and prints a compact table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

from taskrel.store import RunStore
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity import CONFIGS, run_protocol  # noqa: E402 - the protocol sits beside this script
from fidelity_protocol import mean_of  # noqa: E402

BASE = {"n_clusters": 2, "tasks_per_cluster": 2, "n_examples": 1000, "relatedness": 0.9, "width": 8}
PROBES = ["pairwise", "gradient", "lookahead", "gradient-feature"]
CHECKS = ("split_half_reliability", "heldout_regret_mean", "random_regret_mean", "best_beats_separate_and_shared_se")
OUT = "benchmarks/results/fidelity_curves_planted.json"


def parse_sweep(text: str) -> tuple[str, list, dict]:
    """``"knob=v1,v2[@opt=x,opt2=y]"`` -> (knob, values, options changed from the base for this
    sweep); values are ints, floats or ``None``.

    >>> parse_sweep("relatedness=0,0.5,0.9")
    ('relatedness', [0, 0.5, 0.9], {})
    >>> parse_sweep("label_overlap=None,1.0@width=32")
    ('label_overlap', [None, 1.0], {'width': 32})
    """
    sweep, _, at = text.partition("@")
    if "=" not in sweep:
        raise SystemExit(f"--sweep must be knob=v1,v2,...[@opt=x,...], got {text!r}")
    knob, vals = sweep.split("=", 1)
    values = [json.loads(v.strip().replace("None", "null")) for v in vals.split(",") if v.strip()]
    options = {}
    for item in filter(None, at.split(",")):
        if "=" not in item:
            raise SystemExit(f"--sweep options after @ must be opt=x, got {item!r}")
        k, v = item.split("=", 1)
        options[k.strip()] = json.loads(v.strip().replace("None", "null"))
    return knob.strip(), values, options


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(float(x), 4)


def summarise_point(checks: dict, rows: dict, probes: list[str]) -> dict:
    """The compact record of one regime point from the protocol's checks and probe rows.

    Each probe keeps its affinity's row and, where it has them, its own group estimates
    (``<name>-groups``). Regrets are means over budgets; None where no budget had a choice.

    >>> checks = {"split_half_reliability": {"value": 0.9, "pass": True}, "heldout_regret_mean": {"value": 1.0, "pass": True},
    ...           "random_regret_mean": {"value": 40.0, "pass": True},
    ...           "best_beats_separate_and_shared_se": {"value": 5.0, "pass": True}, "testbed": True}
    >>> rows = {"pairwise": {"spearman": 0.8, "spearman_ceiling": 0.9, "regret_partition": {"2": 1.0, "3": 3.0},
    ...         "regret_overlap": {"2": None, "3": 2.0}, "examples": 100, "examples_vs_pairwise": 1.0, "seconds": 5.0}}
    >>> p = summarise_point(checks, rows, ["pairwise", "gradient"])
    >>> p["testbed"], p["probes"]["pairwise"]["regret_partition"], p["probes"]["pairwise"]["regret_overlap"]
    (True, 2.0, 2.0)
    >>> p["probes"]["gradient"]
    {'error': 'not run'}
    """
    out = {"checks": {k: {"value": _num(checks[k]["value"]), "pass": bool(checks[k]["pass"])} for k in CHECKS},
           "testbed": bool(checks["testbed"]), "probes": {}}
    for name in probes:
        for row in (name, f"{name}-groups"):
            r = rows.get(row)
            if r is None:
                if row == name:
                    out["probes"][row] = {"error": "not run"}
                continue
            if "error" in r:
                out["probes"][row] = {"error": r["error"]}
                continue
            out["probes"][row] = {
                "spearman": _num(r["spearman"]), "spearman_ceiling": _num(r["spearman_ceiling"]),
                "regret_partition": _num(mean_of({"p": r["regret_partition"]})),
                "regret_overlap": _num(mean_of({"o": r["regret_overlap"]})),
                "examples": r["examples"], "examples_vs_pairwise": _num(r.get("examples_vs_pairwise")),
                "seconds": r["seconds"], "rule": r.get("rule"),
            }
    return out


def run_point(options: dict, config: TrainConfig, seeds: tuple, store: RunStore, n_jobs: int, probes, progress) -> dict:
    """One regime point: the planted suite at ``options`` through the whole protocol."""
    t0 = time.perf_counter()
    suite = get_suite("planted", **options)
    tasks = suite.task_names
    res = run_protocol(suite, tasks, config, seeds[0], seeds[1], store, n_jobs, probes=probes, progress=progress)
    point = summarise_point(res["checks"], res["rows"], probes)
    summary = res["summary"]
    point.update({
        "options": options, "tasks": tasks, "best_grouping": summary["best_grouping"],
        "oracle_heldout_regret": {m: _num(mean_of({m: c})) for m, c in summary["heldout_regret"].items()},
        "oracle_random_regret": {m: _num(mean_of({m: c})) for m, c in summary["random_regret"].items()},
        "oracle_examples_choice_seeds": res["choose_runs"].cost.examples,
        "oracle_train_seconds": round(res["choose_runs"].cost.seconds + res["score_runs"].cost.seconds, 1),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    })
    return point


def _fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def _label(sweep: dict) -> str:
    at = sweep.get("at") or {}
    return sweep["knob"] + (" (" + ", ".join(f"{k}={v}" for k, v in at.items()) + ")" if at else "")


def markdown(result: dict) -> str:
    """Two Markdown tables of a curves result: the testbed checks per point, and per probe
    Spearman / ceiling, regret partition / overlap (mean over budgets) and examples vs pairwise."""
    lines = ["| knob | value | reliability | held-out regret % | random regret % | separation (SE) | testbed |",
             "|---|---|---|---|---|---|---|"]
    for s in result["sweeps"]:
        for p in s["points"]:
            c = p["checks"]
            cell = [f"{_fmt(c[k]['value'], '.2f' if k != 'split_half_reliability' else '.3f')}{'' if c[k]['pass'] else ' ✗'}"
                    for k in CHECKS]
            lines.append(f"| {_label(s)} | {p['value']} | " + " | ".join(cell) + f" | {'yes' if p['testbed'] else 'no'} |")
    lines += ["", "| knob | value | probe | Spearman (ceiling) | regret partition % | regret overlap % | examples vs pairwise |",
              "|---|---|---|---|---|---|---|"]
    for s in result["sweeps"]:
        for p in s["points"]:
            oracle = p["oracle_heldout_regret"]
            lines.append(f"| {_label(s)} | {p['value']} | oracle (held-out) | {_fmt(p['checks']['split_half_reliability']['value'])} "
                         f"| {_fmt(oracle.get('partition'))} | {_fmt(oracle.get('overlap'))} | - |")
            for name, r in p["probes"].items():
                if "error" in r:
                    lines.append(f"| {_label(s)} | {p['value']} | {name} | error: {r['error'][:60]} | | | |")
                    continue
                lines.append(f"| {_label(s)} | {p['value']} | {name} | {_fmt(r['spearman'])} ({_fmt(r['spearman_ceiling'])}) "
                             f"| {_fmt(r['regret_partition'])} | {_fmt(r['regret_overlap'])} | {_fmt(r['examples_vs_pairwise'])} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", action="append", default=None, help="knob=v1,v2,...[@opt=x,...] (repeatable; default relatedness=0,0.5,0.9)")
    ap.add_argument("--base", default=json.dumps(BASE), help="JSON options of the planted suite shared by every point")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: fidelity.py's planted config)")
    ap.add_argument("--choose-seeds", default="0,1")
    ap.add_argument("--score-seeds", default="2,3,4")
    ap.add_argument("--store", default=".taskrel/fidelity-store")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--probes", default=",".join(PROBES))
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--table", action="store_true", help="print the Markdown table of --out and exit")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.table:
        text = markdown(json.loads(Path(a.out).read_text()))
        print(text)
        return {"table": text}
    t0, load0 = time.perf_counter(), os.getloadavg()
    seeds = ([int(s) for s in a.choose_seeds.split(",")], [int(s) for s in a.score_seeds.split(",")])
    if set(seeds[0]) & set(seeds[1]):
        raise SystemExit(f"choice seeds {seeds[0]} and scoring seeds {seeds[1]} must be disjoint")
    config = CONFIGS["planted"] if a.epochs is None else dataclasses.replace(CONFIGS["planted"], epochs=a.epochs)
    base, probes, store = json.loads(a.base), a.probes.split(","), RunStore(a.store)
    result = {"suite": "planted", "base_options": base, "config": config.to_dict(),
              "command": "python benchmarks/fidelity_curves.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "protocol": {"choose_seeds": seeds[0], "score_seeds": seeds[1], "as_in": "benchmarks/fidelity.py"},
              "probes": probes, "sweeps": [], "complete": False,
              "timing_note": "runs already in the store are read, not retrained: wall_seconds counts this "
                             "invocation; each point's oracle_train_seconds sums its runs' recorded training seconds"}
    for knob, values, at in map(parse_sweep, a.sweep or ["relatedness=0,0.5,0.9"]):
        sweep = {"knob": knob, "at": at, "points": []}
        result["sweeps"].append(sweep)
        for v in values:
            point = run_point({**base, **at, knob: v}, config, seeds, store, a.n_jobs, probes, not a.quiet)
            sweep["points"].append({"value": v, **point})
            print(f"{knob}={v}: testbed={point['testbed']} ({point['wall_seconds']} s)", file=sys.stderr, flush=True)
            result["machine"] = {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load0],
                                 "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
            result["wall_seconds"] = round(time.perf_counter() - t0, 1)
            Path(a.out).write_text(json.dumps(result, indent=1, default=float) + "\n")  # after each point: partial results survive
    result["complete"] = True
    Path(a.out).write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
