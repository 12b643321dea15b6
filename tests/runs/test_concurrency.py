"""Processes sharing one store: each run is trained by exactly one of them.

A run being trained is claimed (a lease kept alive by a heartbeat); a process that finds a run
claimed trains other work first and then waits for the record, instead of training it again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec, RunStore
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, time
sys.path.insert(0, {tests!r})
from test_concurrency import make_plan
from taskrel.runner import Runner
suite, specs = make_plan()
start = time.time()
records = Runner(sys.argv[1], n_jobs=int(sys.argv[2]), progress=False).run(suite, specs)
print(json.dumps({{"trained": records.trained, "ok": sum(r.ok for r in records), "seconds": time.time() - start}}))
"""


def make_plan():
    suite = get_suite("planted", n_examples=100)
    cfg = TrainConfig(epochs=2, batch_size=50)
    specs = [RunSpec(SharingLayout.separate([t], suite.n_stages), cfg, seed=s) for s in (0, 1) for t in suite.task_names[:3]]
    return suite, specs


def _start(store: Path, n_jobs: int = 1) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = SCRIPT.format(tests=str(Path(__file__).parent))
    return subprocess.Popen([sys.executable, "-c", code, str(store), str(n_jobs)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(procs):
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    return [json.loads(o[0].strip().splitlines()[-1]) for o in outs]


def test_two_processes_share_a_plan_and_train_each_run_once(tmp_path):
    """One process trains in two worker processes (loky), the other in itself."""
    suite, specs = make_plan()
    results = _finish([_start(tmp_path, n_jobs=2), _start(tmp_path, n_jobs=1)])
    assert [r["ok"] for r in results] == [len(specs), len(specs)], "each process gets every record"
    assert sum(r["trained"] for r in results) == len(specs), f"runs trained twice: {results}"
    store = RunStore(tmp_path)
    keys = set(Runner(store, progress=False).check(suite, specs))
    assert set(store.keys()) == keys and all(store.get(k).ok for k in keys)
    assert not any((tmp_path / "claims").glob("*.claim")), "every claim is released"
    leftovers = [p.name for p in (tmp_path / "runs").iterdir() if p.suffix != ".json"]
    assert leftovers == []


def test_a_claimed_run_is_waited_for_not_duplicated(tmp_path):
    suite, specs = make_plan()
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    key = runner.key(suite, specs[0])
    claim = runner.store.claim(key)  # another worker is training specs[0]
    proc = _start(tmp_path)
    try:
        deadline = time.time() + 120
        while len(runner.store) < len(specs) - 1 and time.time() < deadline:
            time.sleep(0.2)
        assert len(runner.store) == len(specs) - 1, "the other runs train while one is claimed"
        assert proc.poll() is None, "the process waits for the claimed run"
        # the holder finishes the run, stores it and releases its claim
        rec = Runner(tmp_path / "elsewhere", n_jobs=1, progress=False).run(suite, specs[:1])[0]
        runner.store.put(rec)
    finally:
        claim.release()
    (result,) = _finish([proc])
    assert result["trained"] == len(specs) - 1 and result["ok"] == len(specs)
    assert runner.store.get(key) == rec

