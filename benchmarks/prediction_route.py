"""The prediction probe on planted-many: does the correlation of cheap ridge predictions find the
planted clusters, at which sizes, and which of its settings? Prints one JSON row per (size, data
seed, setting) and writes them with ``--json``.

    python benchmarks/prediction_route.py --json benchmarks/results/prediction_route.json

Settings were chosen on data seeds 1, 2 and 3 (``role: "choose"``); the committed study's draw,
data seed 0, is scored only with the chosen setting (``role: "report"``). Each row clusters the
probe's affinity as the study does (``TaskClustering(method="hierarchical")``, k chosen by
silhouette) and scores it against the planted truth with ``many_route_check.scored``: ``ari``,
``k``, ``ari_true_k`` (k told), ``harmful_apart``, ``within`` (mean affinity of a cluster's
pairs), ``mean``/``sd`` (all pairs) and ``seconds`` (the probe's fit: no network trains).
The gradient-cosine route it replaced is in ``benchmarks/results/route_many.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from many_route_check import scored  # noqa: E402

from taskrel.files import atomic_write_text
from taskrel.probes.prediction import PredictionProbe  # noqa: E402
from taskrel.suites import get_suite  # noqa: E402

SETTINGS = {
    "chosen": {},
    "cka": {"similarity": "cka"},
    "val-only": {"probe_set": "val"},
}


def row(n: int, data_seed: int, name: str, role: str) -> dict:
    suite = get_suite("planted-many", n_tasks=n, seed=data_seed)
    t0 = time.perf_counter()
    aff = PredictionProbe(**SETTINGS[name]).fit(suite, tempfile.mkdtemp()).affinity_
    seconds = time.perf_counter() - t0
    return {"n": n, "data_seed": data_seed, "setting": name, "params": SETTINGS[name], "role": role,
            "seconds": round(seconds, 2), **scored(aff.values, list(aff.tasks), suite.truth)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12,24,48,96,192")
    ap.add_argument("--choose-seeds", default="1,2,3")
    ap.add_argument("--report-seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = []
    for n in sizes:
        for ds in (int(x) for x in args.choose_seeds.split(",")):
            for name in SETTINGS:
                rows.append(row(n, ds, name, "choose"))
                print(json.dumps(rows[-1]), flush=True)
        rows.append(row(n, args.report_seed, "chosen", "report"))
        print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for n in sizes:
        for name in SETTINGS:
            a = [r["ari"] for r in rows if r["n"] == n and r["setting"] == name and r["role"] == "choose"]
            summary[f"{n}/{name}"] = round(sum(a) / len(a), 3)
    out = {"benchmark": "prediction_route", "command": "python benchmarks/prediction_route.py " + " ".join(sys.argv[1:]),
           "what": __doc__.split("\n\n")[0], "mean_ari_on_choose_seeds": summary, "rows": rows,
           "load": list(os.getloadavg())}
    print(json.dumps({"mean_ari_on_choose_seeds": summary}))
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
