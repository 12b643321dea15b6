"""Cost and effect of a conflict-aware aggregator: seconds per training step and test loss,
plain summed losses vs TorchJD aggregators, all-shared on the planted and mnist-dense suites.

    nice -n 10 python benchmarks/aggregator.py   # writes benchmarks/results/aggregator.json
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from taskrel.layout import SharingLayout
from taskrel.suites import get_suite
from taskrel.train import TrainConfig, train

CASES = {"planted": dict(n_examples=600), "mnist-dense": dict(n_examples=600)}
AGGREGATORS = (None, "upgrad", "pcgrad", "mgda")
SEEDS = (0, 1)


def main() -> None:
    load_before = os.getloadavg()
    rows = []
    for name, opts in CASES.items():
        suite = get_suite(name, **opts)
        lay = SharingLayout.shared(suite.task_names, suite.n_stages)
        for agg in AGGREGATORS:
            for seed in SEEDS:
                r = train(suite, lay, TrainConfig(epochs=3, batch_size=32, lr=3e-3, patience=100, aggregator=agg), seed=seed)
                rows.append({"suite": name, "tasks": len(suite.task_names), "aggregator": agg or "sum", "seed": seed,
                             "seconds_per_step": r.seconds / r.steps,
                             "test_loss_total": float(sum(r.loss(t, "test") for t in suite.task_names))})
                print(rows[-1], flush=True)
    summary = {}
    for name in CASES:
        for agg in AGGREGATORS:
            sel = [r for r in rows if r["suite"] == name and r["aggregator"] == (agg or "sum")]
            summary[f"{name} {agg or 'sum'}"] = {"seconds_per_step": float(np.mean([r["seconds_per_step"] for r in sel])),
                                                 "test_loss_total": float(np.mean([r["test_loss_total"] for r in sel]))}
    out = {"rows": rows, "summary": summary, "machine": platform.platform(), "cpu_count": os.cpu_count(),
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "note": "CPU, one torch thread per run, machine shared with other work (see loadavg)"}
    path = Path(__file__).parent / "results" / "aggregator.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
