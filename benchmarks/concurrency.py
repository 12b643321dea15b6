"""Two processes on one run store with the same plan: how many runs each trains, and how long.

Claims (a lease per run being trained) should make the two processes train disjoint work: the
sum of runs trained equals the plan's size (no run trained twice), and both get every record.

    python benchmarks/concurrency.py [--runs 16] [--epochs 5] [--out benchmarks/results/concurrency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import json, sys, time
from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec
from taskrel.suites import get_suite
from taskrel.train import TrainConfig
runs, epochs = int(sys.argv[2]), int(sys.argv[3])
suite = get_suite("planted", n_examples=300)
cfg = TrainConfig(epochs=epochs, batch_size=32)
specs = [RunSpec(SharingLayout.separate([t], suite.n_stages), cfg, seed=s)
         for s in range(runs // len(suite.task_names) + 1) for t in suite.task_names][:runs]
start = time.time()
records = Runner(sys.argv[1], n_jobs=1, progress=False).run(suite, specs)
print(json.dumps({"trained": records.trained, "ok": sum(r.ok for r in records), "seconds": time.time() - start}))
"""


def _launch(store: Path, runs: int, epochs: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", WORKER, str(store), str(runs), str(epochs)], env=env, stdout=subprocess.PIPE, text=True)


def _wait(procs: list[subprocess.Popen]) -> list[dict]:
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {outs}")
    return [json.loads(o.strip().splitlines()[-1]) for o in outs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "concurrency.json"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        (alone,) = _wait([_launch(Path(tmp) / "alone", args.runs, args.epochs)])
        alone_wall = time.time() - t0
        t0 = time.time()
        pair = _wait([_launch(Path(tmp) / "shared", args.runs, args.epochs) for _ in range(2)])
        pair_wall = time.time() - t0
    trained = [p["trained"] for p in pair]
    result = {
        "plan_runs": args.runs,
        "epochs": args.epochs,
        "one_process": {"trained": alone["trained"], "wall_seconds": round(alone_wall, 1)},
        "two_processes": {"trained_each": trained, "trained_total": sum(trained), "duplicated": sum(trained) - args.runs,
                          "records_each": [p["ok"] for p in pair], "wall_seconds": round(pair_wall, 1)},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "command": "python benchmarks/concurrency.py " + " ".join(sys.argv[1:]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
