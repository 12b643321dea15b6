"""Size of a gradient-probe record: the compact summary (default) against the full trajectory.

For n = 24 and 96 tasks (planted suites: clusters of two tasks, plus the unrelated and the
conflicting task), one tiny all-shared training run with the gradient callback (cosines and
TAG lookahead every ``--every`` steps) is stored with ``trajectory="summary"`` and with
``trajectory="full"``, and the record files' sizes are compared (the summary keeps at most 8
blocks of sums, so its size does not grow with the probe steps; the full one grows by about
two n x n matrices per probe step). Prints one JSON document: per n, the probe steps, both
sizes in bytes, the ratio, the full record's bytes per probe step, and both sizes extrapolated
to 1,000 probe steps (the full one linearly; the summary to its 8 blocks and the longer list of
probed steps). The load average
(``os.getloadavg``) is recorded, since others share the cores.

    python benchmarks/trajectory_size.py [--tasks 24 96] [--every 1] [--epochs 1] [--out benchmarks/results/trajectory_size.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from taskrel.probes.gradient import gradient_run_specs
from taskrel.runner import Runner
from taskrel.suites import get_suite
from taskrel.train import TrainConfig


def record_bytes(store_dir: Path) -> int:
    """Bytes of the stored record files (JSON) in a store holding one run."""
    return sum(p.stat().st_size for p in store_dir.rglob("*.json"))


def one(n_tasks: int, every: int, epochs: int, n_examples: int) -> dict:
    suite = get_suite("planted", n_clusters=(n_tasks - 2) // 2, tasks_per_cluster=2, n_examples=n_examples)
    assert len(suite.task_names) == n_tasks, suite.task_names
    cfg = TrainConfig(epochs=epochs, batch_size=64, threads=1)
    row: dict = {"n_tasks": n_tasks, "every": every, "epochs": epochs, "n_examples": n_examples}
    for keep in ("summary", "full"):
        with tempfile.TemporaryDirectory() as d:
            spec = gradient_run_specs(suite, suite.task_names, every, cfg, [0], trajectory=keep)[0]
            t0 = time.perf_counter()
            with Runner(d, progress=False) as runner:
                rec = runner.run(suite, [spec])[0]
            assert rec.ok, rec.error
            ex = rec.extras["gradient"]
            row[f"{keep}_bytes"] = record_bytes(Path(d))
            row[f"{keep}_seconds"] = round(time.perf_counter() - t0, 2)
            row["probe_steps"] = len(ex["steps"])
            if keep == "summary":
                row["blocks"] = len(ex["blocks"])
                row["summary_bytes_per_block"] = round(len(json.dumps(ex["blocks"])) / len(ex["blocks"]))
            else:  # the per-step part of the full record: cosine, norms and lookahead of every step
                per_step = sum(len(json.dumps(ex[k])) for k in ("cosine", "norms", "lookahead"))
                row["full_bytes_per_probe_step"] = round(per_step / row["probe_steps"])
    row["ratio_full_to_summary"] = round(row["full_bytes"] / row["summary_bytes"], 2)
    extra = row["full_bytes_per_probe_step"] * (1000 - row["probe_steps"])
    row["full_bytes_at_1000_probe_steps"] = row["full_bytes"] + extra
    # at most 8 blocks whatever the steps; the list of probed steps grows by a few bytes a step
    row["summary_bytes_at_1000_probe_steps"] = (row["summary_bytes"] + row["summary_bytes_per_block"] * (8 - row["blocks"])
                                                + len(json.dumps(list(range(1000)))) - len(json.dumps(list(range(row["probe_steps"])))))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, nargs="+", default=[24, 96])
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--examples", type=int, default=1200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    rows = [one(n, args.every, args.epochs, args.examples) for n in args.tasks]
    doc = {"benchmark": "trajectory_size", "rows": rows, "load_average_start": round(load0, 2),
           "load_average_end": round(os.getloadavg()[0], 2), "cores": os.cpu_count(), "python": platform.python_version(),
           "torch": torch.__version__,
           "note": "bytes of the stored record JSON of one gradient-probe run (cosine + lookahead); "
                   "the summary holds at most 8 blocks whatever the steps"}
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
