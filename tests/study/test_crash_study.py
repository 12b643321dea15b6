"""A study killed with SIGKILL mid-plan resumes: no finished run trains again, same affinities."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from taskrel.store import RunStore
from taskrel.study import run_study

STUDY = """
name = "crash"
[suite]
name = "planted"
options = { n_examples = 400 }
tasks = ["c0t0", "c0t1", "c1t0", "conflict"]
[train]
epochs = 15
patience = 15
batch_size = 16
lr = 0.003
[probes.pairwise]
seeds = [0, 1]
"""


def test_killed_study_resumes_to_the_same_answer(tmp_path):
    f = tmp_path / "crash.toml"
    f.write_text(STUDY)
    whole = run_study(f, tmp_path / "whole", tmp_path / "out-whole", quiet=True, n_jobs=1)

    store_dir = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = [sys.executable, "-m", "taskrel", "study", str(f), "--store", str(store_dir), "--out", str(tmp_path / "out-k"), "--n-jobs", "1", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = store_dir / "runs"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and (not runs.exists() or len(list(runs.glob("*.json"))) < 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    total = len(RunStore(tmp_path / "whole"))  # probes, then validation of the advice
    assert 4 <= len(before) < total, f"the kill must land mid-plan ({len(before)} of {total} runs)"

    resumed = run_study(f, store_dir, tmp_path / "out-k", quiet=True, n_jobs=1)
    after = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert len(after) == total
    assert all(after[k] == v for k, v in before.items()), "a finished run was trained again"
    assert len(RunStore(store_dir)) == total
    a, b = whole.affinity("pairwise"), resumed.affinity("pairwise")
    assert a.tasks == b.tasks
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.std, b.std)
