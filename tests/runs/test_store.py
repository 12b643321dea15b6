import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.train import TrainConfig

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import plan_script  # noqa: E402


def _spawn(store, size="full", lease=2.0):
    env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]))
    return subprocess.Popen([sys.executable, str(HERE / "plan_script.py"), str(store), size, str(lease)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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
    res = Runner(store, n_jobs=1, progress=False).run(planted, specs)
    assert res.reused == len(finished)
    assert res.trained == len(specs) - len(finished)
    assert len(store) == len(specs)
    again = Runner(store, n_jobs=1, progress=False).run(planted, specs)
    assert again.trained == 0


def test_resumed_results_equal_uninterrupted(tmp_path, small):
    planted = small
    specs = plan_script.plan(planted)[:3]
    a = Runner(RunStore(tmp_path / "a"), n_jobs=1, progress=False).run(planted, specs)
    b_store = RunStore(tmp_path / "b")
    Runner(b_store, n_jobs=1, progress=False).run(planted, specs[:1])
    b = Runner(b_store, n_jobs=1, progress=False).run(planted, specs)
    assert b.trained == 2
    assert [r.metrics for r in a.ok()] == [r.metrics for r in b.ok()]


def test_corrupt_record_is_reported_and_rerun(tmp_path, planted, caplog):
    store = RunStore(tmp_path)
    spec = RunSpec(SharingLayout.separate(planted.task_names[:1], 3), TrainConfig(epochs=2))
    first = Runner(store, n_jobs=1, progress=False).run(planted, [spec])[0]
    p = tmp_path / "runs" / f"{first.key}.json"
    d = json.loads(p.read_text())
    d["metrics"]["val"][planted.task_names[0]]["loss"] = 0.0  # tampered: checksum no longer matches
    p.write_text(json.dumps(d))
    with caplog.at_level(logging.WARNING, logger="taskrel.store"):
        assert store.get(first.key) is None
    assert "failed its checksum" in caplog.text and "trained again" in caplog.text
    assert list((tmp_path / "corrupt").glob(f"{p.name}.*"))
    again = Runner(store, n_jobs=1, progress=False).run(planted, [spec])
    assert again.trained == 1 and again[0].metrics == first.metrics
    p.write_text("{not json")
    assert store.get(first.key) is None
    assert "is not valid JSON" in caplog.text


def test_failed_run_recorded_and_plan_goes_on(tmp_path, planted):
    store = RunStore(tmp_path)
    ok = RunSpec(SharingLayout.separate(planted.task_names[:1], 3), TrainConfig(epochs=2))
    bad = RunSpec(SharingLayout.separate(planted.task_names[1:2], 3), TrainConfig(epochs=2, lr=1e30, optimizer="sgd", momentum=0))
    res = Runner(store, n_jobs=1, progress=False).run(planted, [bad, ok])
    assert res[0].status == "failed" and res[0].failed_step is not None
    assert res[0].error.startswith(f"training loss of task {planted.task_names[1]!r} became") and res[0].failed_task == planted.task_names[1]
    assert res[1].ok and res.failed == [res.keys[0]]
    # failures are kept, not retried unless asked
    assert Runner(store, n_jobs=1, progress=False).run(planted, [bad]).trained == 0
    assert Runner(store, n_jobs=1, progress=False, retries=1).run(planted, [bad]).trained == 1


def test_weights_round_trip_weights_only(tmp_path, planted):
    store = RunStore(tmp_path)
    spec = RunSpec(SharingLayout.separate(planted.task_names[:1], 3), TrainConfig(epochs=2), keep_weights=True)
    rec = Runner(store, n_jobs=1, progress=False).run(planted, [spec])[0]
    state = store.load_weights(rec.key)
    assert all(hasattr(v, "shape") for v in state.values())
    assert RunRecord.from_dict(rec.to_dict()) == rec


def test_parallel_equals_sequential(tmp_path, small):
    planted = small
    specs = plan_script.plan(planted)[:4]
    seq = Runner(RunStore(tmp_path / "seq"), n_jobs=1, progress=False).run(planted, specs)
    with Runner(RunStore(tmp_path / "par"), n_jobs=2, progress=False) as runner:
        par = runner.run(planted, specs)
    assert [r.metrics for r in seq.ok()] == [r.metrics for r in par.ok()]


def test_bad_run_keys_cannot_escape(tmp_path):
    store = RunStore(tmp_path)
    from taskrel.errors import TaskrelError

    with pytest.raises(TaskrelError, match="bad run key"):
        store.get("../../etc/passwd")


# ---------------------------------------------------------------------- failures, classified
def test_diverged_run_is_a_result_naming_its_task(tmp_path):
    import numpy as np
    from torch import nn

    from taskrel.runner import Runner
    from taskrel.suite import Suite, Task

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)).astype("float32")
    suite = Suite("huge", X, [Task("fine", "regression"), Task("huge", "regression")], {"fine": X[:, 0], "huge": 1e30 * X[:, 1]},
                  stages=[lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU())])
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    shared = RunSpec(SharingLayout.shared(["fine", "huge"], 1), TrainConfig(epochs=2))
    alone = RunSpec(SharingLayout.separate(["fine"], 1), TrainConfig(epochs=2))
    res = runner.run(suite, [shared, alone])
    assert res[0].status == "failed" and res[0].failed_task == "huge"
    assert "loss of task 'huge' became inf" in res[0].error
    assert res[1].ok, "one diverging task does not block the others"
    assert runner.store.get(res.keys[0]).failed_task == "huge", "a divergence is stored"
    assert runner.run(suite, [shared]).trained == 0


class _Exploding:
    """A training callback that fails as the machine would (registered only in this test)."""

    every = 1
    calls = 0

    def __init__(self, error: str = "oom"):
        self.error = error

    def on_step(self, state):
        type(self).calls += 1
        raise {"oom": MemoryError("out of memory"), "import": ModuleNotFoundError("No module named 'cupy'"),
               "bug": ValueError("a bug in the user's code")}[self.error]

    def result(self):
        return None


@pytest.mark.parametrize("error", ["oom", "import"])
def test_environment_failure_is_not_stored_and_is_retried(tmp_path, planted, monkeypatch, error):
    from taskrel.runner import Runner
    from taskrel.train import CALLBACKS

    monkeypatch.setitem(CALLBACKS, "explode", _Exploding)
    spec = RunSpec(SharingLayout.separate(planted.task_names[:1], 3), TrainConfig(epochs=1), probes=(("explode", (("error", error),)),))
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    res = runner.run(planted, [spec])
    assert res[0].status == "error" and not res[0].ok and res[0].retryable
    assert runner.store.get(res.keys[0]) is None, "the environment's failure is not the run's result"
    _Exploding.calls = 0
    retried = Runner(tmp_path, n_jobs=1, progress=False, retries=2).run(planted, [spec])
    assert _Exploding.calls == 3, "tried once, then retried twice"
    assert retried[0].status == "error" and runner.store.get(res.keys[0]) is None


def test_a_bug_in_user_code_is_stored_as_a_failure(tmp_path, planted, monkeypatch):
    from taskrel.runner import Runner
    from taskrel.train import CALLBACKS

    monkeypatch.setitem(CALLBACKS, "explode", _Exploding)
    spec = RunSpec(SharingLayout.separate(planted.task_names[:1], 3), TrainConfig(epochs=1), probes=(("explode", (("error", "bug"),)),))
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    res = runner.run(planted, [spec])
    assert res[0].status == "failed" and "a bug in the user's code" in res[0].error
    assert runner.store.get(res.keys[0]).status == "failed"


def test_environment_failures_are_classified():
    from taskrel.errors import RunFailed, is_environment_failure

    env = [MemoryError(), KeyboardInterrupt(), ImportError("x"), OSError(28, "No space left on device"),
           RuntimeError("CUDA error: invalid device ordinal"), RuntimeError("CUDA out of memory. Tried to allocate"),
           RuntimeError("Expected one of cpu, cuda, ... device type at start of device string: banana")]
    result = [RunFailed("loss became nan"), ValueError("bad"), RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
              TypeError("forward() missing 1 required positional argument")]
    assert all(is_environment_failure(e) for e in env)
    assert not any(is_environment_failure(e) for e in result)
