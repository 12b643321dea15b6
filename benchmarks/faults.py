"""Fault injection on whole `taskrel study` invocations (the CLI), as issue 26's sweep did them.

Scenarios, each over ``--trials`` trials, against one clean run of the same study:

* ``kill_worker``: SIGKILL one worker process of ``--n-jobs 2`` while it trains; the study must
  exit 0 with every run stored, each with the clean run's numbers.
* ``ctrl_c``: SIGINT to the study with ``--n-jobs 2`` while it trains: its exit code, seconds to
  exit, runs stored after the signal; then a resume must complete with the clean numbers.
* ``sigkill``: SIGKILL the study while its workers train: seconds until none of its processes
  (workers, loky's manager and resource tracker) is left.
* ``dead_claim``: the issue's repro, a claim with an hour's lease left by a process that exited;
  then the study: its seconds against the clean run's (it must not wait for the lease).

    python benchmarks/faults.py [--trials 2] [--out benchmarks/results/faults.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDY = """
name = "tiny"
[suite]
name = "planted"
options = { n_examples = 300 }
tasks = ["c0t0", "c0t1", "c1t0"]
[train]
epochs = 8
patience = 8
batch_size = 16
[probes.pairwise]
seeds = [0, 1]
"""
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def _start(study: Path, store: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "taskrel", "study", str(study), "--store", str(store), "--out", str(out), "--n-jobs", "2", "--quiet"]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _metrics(store: Path) -> dict[str, object]:
    out = {}
    for p in (store / "runs").glob("*.json"):
        d = json.loads(p.read_text())
        out[d["key"]] = d.get("metrics")
    return out


def _worker_pids(store: Path, study_pid: int) -> list[int]:
    pids = []
    for p in (store / "claims").glob("*.claim") if (store / "claims").is_dir() else []:
        try:
            pid = int(json.loads(p.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            continue
        if pid != study_pid:
            pids.append(pid)
    return pids


def _wait_training(store: Path, proc: subprocess.Popen, min_runs: int = 1, timeout: float = 300) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        runs = len(list((store / "runs").glob("*.json"))) if (store / "runs").is_dir() else 0
        pids = _worker_pids(store, proc.pid)
        if pids and runs >= min_runs:
            return pids
        time.sleep(0.05)
    return []


def _descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if f[0] != "Z":
                kids.setdefault(int(f[1]), []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_worker(study: Path, d: Path, clean: dict) -> dict:
    proc = _start(study, d / "S", d / "O")
    pids = _wait_training(d / "S", proc)
    if pids:
        os.kill(pids[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=900)
    got = _metrics(d / "S")
    return {"killed": bool(pids), "exit": proc.returncode, "runs": len(got), "identical": got == clean,
            "lines": [ln for ln in err.splitlines() if "worker process died" in ln][:4]}


def ctrl_c(study: Path, d: Path, clean: dict) -> dict:
    proc = _start(study, d / "S", d / "O")
    _wait_training(d / "S", proc, min_runs=2)
    at_signal = len(_metrics(d / "S"))
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    proc.communicate(timeout=900)
    took = time.monotonic() - sent
    after = len(_metrics(d / "S"))
    resume = _start(study, d / "S", d / "O")
    resume.communicate(timeout=900)
    return {"exit": proc.returncode, "seconds_to_exit": round(took, 2), "runs_at_signal": at_signal,
            "runs_stored_after_signal": after - at_signal, "resume_exit": resume.returncode,
            "resume_identical": _metrics(d / "S") == clean}


def sigkill(study: Path, d: Path, clean: dict) -> dict:
    proc = _start(study, d / "S", d / "O")
    _wait_training(d / "S", proc)
    family = _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < 60 and any(_alive(p) for p in family):
        time.sleep(0.1)
    left = [p for p in family if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    return {"processes": len(family), "seconds_until_none_left": round(time.monotonic() - killed, 2), "left_after_60s": len(left)}


def dead_claim(study: Path, d: Path, clean: dict, key: str, clean_seconds: float) -> dict:
    code = "import sys, os, taskrel; c = taskrel.RunStore(sys.argv[1], lease=3600).claim(sys.argv[2]); os._exit(0)"
    subprocess.run([sys.executable, "-c", code, str(d / "S"), key], env=ENV, check=True)
    start = time.monotonic()
    proc = _start(study, d / "S", d / "O")
    proc.communicate(timeout=900)
    return {"exit": proc.returncode, "seconds": round(time.monotonic() - start, 1), "clean_seconds": round(clean_seconds, 1),
            "identical": _metrics(d / "S") == clean}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    res: dict = {"load_start": os.getloadavg()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        study = t / "tiny.toml"
        study.write_text(STUDY)
        start = time.monotonic()
        proc = _start(study, t / "clean" / "S", t / "clean" / "O")
        proc.communicate(timeout=900)
        clean_seconds = time.monotonic() - start
        clean = _metrics(t / "clean" / "S")
        res["clean"] = {"exit": proc.returncode, "runs": len(clean), "seconds": round(clean_seconds, 1)}
        key = sorted(clean)[0]
        for name, fn in (("kill_worker", kill_worker), ("ctrl_c", ctrl_c), ("sigkill", sigkill)):
            res[name] = []
            for i in range(args.trials):
                d = t / f"{name}{i}"
                res[name].append(fn(study, d, clean))
                print(name, res[name][-1], file=sys.stderr, flush=True)
        res["dead_claim"] = [dead_claim(study, t / f"dead{i}", clean, key, clean_seconds) for i in range(args.trials)]
    res["load_end"] = os.getloadavg()[0]
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
