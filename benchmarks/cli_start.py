"""Start time of the ``taskrel`` command: this checkout against a baseline revision, side by side.

Each command runs as a fresh ``python -m taskrel ...`` process (what a user waits for after
pressing Enter), the two versions interleaved over repeats so that changes in machine load hit
both alike; the median wall time of each is reported with the load average. The goal (issue 25)
is < 1 s for ``taskrel --help``, ``taskrel <cmd> --help`` and ``taskrel suites``.

The baseline is extracted with ``git archive REV`` into a temporary folder and run with
``PYTHONPATH`` pointing at it; the checkout itself runs the same way.

    python benchmarks/cli_start.py [--baseline 04f24ee] [--repeats 5] [--out benchmarks/results/cli_start.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [["--help"], ["study", "--help"], ["probe", "--help"], ["group", "--help"], ["suites"]]
# the baseline's `taskrel suites` built every suite (43 s reported in issue 25); its names-only
# form is --no-tasks, which both versions accept
BASELINE_ALSO = [["suites", "--no-tasks"]]


def extract(rev: str, into: Path) -> Path:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "taskrel"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def timed(code_root: Path, argv: list[str], timeout: float, cwd: Path) -> float | None:
    """Seconds of one ``python -m taskrel ARGV`` run of the code under ``code_root``, from a neutral
    folder (``-m`` puts the working folder first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "taskrel", *argv], env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{code_root}: taskrel {' '.join(argv)} failed ({done.returncode}): {done.stderr[-500:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="04f24ee", help="git revision to compare with (default: the last commit before the lazy CLI)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a run counts as failed")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as here:
        base = extract(args.baseline, Path(tmp))
        where = Path(here)
        for argv in COMMANDS + BASELINE_ALSO:
            now, then = [], []
            for _ in range(args.repeats):  # interleaved: load drifts hit both alike
                now.append(timed(ROOT, argv, args.timeout, where))
                then.append(timed(base, argv, args.timeout, where))
            med = [statistics.median([t for t in ts if t is not None]) if any(t is not None for t in ts) else None for ts in (now, then)]
            rows.append({"command": "taskrel " + " ".join(argv), "seconds": med[0], "baseline_seconds": med[1],
                         "baseline_timeouts": sum(t is None for t in then), "ratio": (med[1] / med[0]) if None not in med else None,
                         "all_seconds": now, "all_baseline_seconds": then, "goal_met": med[0] is not None and med[0] < 1.0})
            print(json.dumps({k: rows[-1][k] for k in ("command", "seconds", "baseline_seconds")}), file=sys.stderr)
    out = {"benchmark": "cli_start", "baseline": args.baseline, "repeats": args.repeats, "timeout_s": args.timeout,
           "load_before": load_before, "load_after": os.getloadavg(), "cpus": os.cpu_count(),
           "python": platform.python_version(), "rows": rows}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
