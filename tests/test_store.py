import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskrel.execute import execute
from taskrel.layout import SharingLayout
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.train import TrainConfig

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import plan_script  # noqa: E402


def _spawn(store, size="full"):
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    return subprocess.Popen([sys.executable, str(HERE / "plan_script.py"), str(store), size], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def small():
    return plan_script.make_suite()


def test_sigkill_then_resume_trains_only_the_rest(tmp_path, small):
    planted = small
    specs = plan_script.plan(planted)
    proc = _spawn(tmp_path)
    store = RunStore(tmp_path)
    deadline = time.time() + 120
    while len(store) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = set(store.keys())
    assert 3 <= len(finished) < len(specs), "the kill must land mid-plan"
    # no half-written record survives a kill
    assert all(store.get(k) is not None for k in finished)
    res = execute(planted, specs, store, progress=False)
    assert res.reused == len(finished)
    assert res.trained == len(specs) - len(finished)
    assert len(store) == len(specs)
    again = execute(planted, specs, store, progress=False)
    assert again.trained == 0


def test_resumed_results_equal_uninterrupted(tmp_path, small):
    planted = small
    specs = plan_script.plan(planted)[:3]
    a = execute(planted, specs, RunStore(tmp_path / "a"), progress=False)
    b_store = RunStore(tmp_path / "b")
    execute(planted, specs[:1], b_store, progress=False)
    b = execute(planted, specs, b_store, progress=False)
    assert b.trained == 2
    assert [r.metrics for r in a.ok()] == [r.metrics for r in b.ok()]


def test_two_processes_one_store(tmp_path):
    procs = [_spawn(tmp_path, "small"), _spawn(tmp_path, "small")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    store = RunStore(tmp_path)
    suite = plan_script.make_suite()
    keys = {s.key(suite.fingerprint()) for s in plan_script.plan(suite, (0,))}
    assert set(store.keys()) == keys
    assert all(store.get(k).ok for k in keys)
    leftovers = [p for p in (tmp_path / "runs").iterdir() if p.suffix != ".json"]
    assert leftovers == []


def test_corrupt_record_is_reported_and_rerun(tmp_path, planted):
    store = RunStore(tmp_path)
    spec = RunSpec(SharingLayout.separate(planted.task_names[:1], 3), TrainConfig(epochs=2))
    first = execute(planted, [spec], store, progress=False)[0]
    p = tmp_path / "runs" / f"{first.key}.json"
    d = json.loads(p.read_text())
    d["metrics"]["val"][planted.task_names[0]]["loss"] = 0.0  # tampered: checksum no longer matches
    p.write_text(json.dumps(d))
    with pytest.warns(UserWarning, match="failed its checksum"):
        assert store.get(first.key) is None
    assert (tmp_path / "corrupt" / p.name).exists()
    again = execute(planted, [spec], store, progress=False)
    assert again.trained == 1 and again[0].metrics == first.metrics
    p.write_text("{not json")
    with pytest.warns(UserWarning):
        assert store.get(first.key) is None


def test_failed_run_recorded_and_plan_goes_on(tmp_path, planted):
    store = RunStore(tmp_path)
    ok = RunSpec(SharingLayout.separate(planted.task_names[:1], 3), TrainConfig(epochs=2))
    bad = RunSpec(SharingLayout.separate(planted.task_names[1:2], 3), TrainConfig(epochs=2, lr=1e30, optimizer="sgd", momentum=0))
    res = execute(planted, [bad, ok], store, progress=False)
    assert res[0].status == "failed" and "loss became" in res[0].error and res[0].failed_step is not None
    assert res[1].ok and res.failed == [res.keys[0]]
    # failures are kept, not retried unless asked
    assert execute(planted, [bad], store, progress=False).trained == 0
    assert execute(planted, [bad], store, progress=False, retry_failed=True).trained == 1


def test_weights_round_trip_weights_only(tmp_path, planted):
    store = RunStore(tmp_path)
    spec = RunSpec(SharingLayout.separate(planted.task_names[:1], 3), TrainConfig(epochs=2), keep_weights=True)
    rec = execute(planted, [spec], store, progress=False)[0]
    state = store.load_weights(rec.key)
    assert all(hasattr(v, "shape") for v in state.values())
    assert RunRecord.from_dict(rec.to_dict()) == rec


def test_parallel_equals_sequential(tmp_path, small):
    planted = small
    specs = plan_script.plan(planted)[:4]
    seq = execute(planted, specs, RunStore(tmp_path / "seq"), progress=False)
    par = execute(planted, specs, RunStore(tmp_path / "par"), n_jobs=2, progress=False)
    assert [r.metrics for r in seq.ok()] == [r.metrics for r in par.ok()]


def test_bad_run_keys_cannot_escape(tmp_path):
    store = RunStore(tmp_path)
    from taskrel.errors import TaskrelError

    with pytest.raises(TaskrelError, match="bad run key"):
        store.get("../../etc/passwd")
