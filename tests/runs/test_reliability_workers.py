"""A runner that survives its workers: a killed worker's run is sent again and the others
finish; Ctrl-C with two workers stops at once (exit 130); a SIGKILLed study leaves no process;
a wait on another worker's claim is said within 5 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec, RunStore
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")

# each run reports its worker's pid into the store folder, so the test can kill it
STUDY = """
import os, sys, time
from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec
from taskrel.suites import get_suite
from taskrel.train import TrainConfig, register_callback
suite = get_suite("planted", n_examples=200)
epochs = int(sys.argv[2])
specs = [RunSpec(SharingLayout.separate([t], suite.n_stages), TrainConfig(epochs=epochs, patience=epochs, batch_size=20), seed=s)
         for s in range(2) for t in suite.task_names[:3]]
try:
    records = Runner(sys.argv[1], n_jobs=2, backend="loky", progress=False).run(suite, specs)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("trained", records.trained, "ok", sum(r.ok for r in records), flush=True)
"""


def _study(store: Path, epochs: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", STUDY, str(store), str(epochs)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _claim_pids(store: Path) -> list[int]:
    import json

    out = []
    for p in (store / "claims").glob("*.claim"):
        try:
            out.append(int(json.loads(p.read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            pass
    return out


def _wait_for_training(store: Path, proc: subprocess.Popen, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        pids = [p for p in _claim_pids(store) if p != proc.pid]
        if pids:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"no worker started training: {proc.communicate()[1][-2000:]}")


def _descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                kids.setdefault(int(fields[1]), []).append(int(d.name))
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


def test_a_killed_worker_is_replaced_and_every_run_finishes(tmp_path):
    proc = _study(tmp_path, epochs=30)
    try:
        victim = _wait_for_training(tmp_path, proc)[0]
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "ok 6" in out, (out, err[-3000:])
    lines = [ln for ln in err.splitlines() if "worker process died" in ln]
    assert lines and all("sending it to a fresh worker (retry 1 of 2)" in ln for ln in lines), err[-3000:]
    assert len(RunStore(tmp_path)) == 6 and not list((tmp_path / "claims").glob("*.claim"))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_with_two_workers_stops_within_seconds(tmp_path, sig, code):
    proc = _study(tmp_path, epochs=2000)
    try:
        workers = _wait_for_training(tmp_path, proc)
        time.sleep(0.5)
        before = len(RunStore(tmp_path, sweep=False))
        proc.send_signal(sig)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code and ("interrupted" in out) == (code == 130), (proc.returncode, err[-3000:])
    assert took < 10, f"stopping took {took:.1f} s"
    assert "stopped:" in err and "abandoned" in err, err[-2000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker trains on after Ctrl-C"
    store = RunStore(tmp_path)
    assert len(store) == before, "nothing trained after the interrupt"
    assert all(store.get(k).ok for k in store.keys()), "what was kept is whole"
    # the abandoned runs' claims belong to dead workers: the next run takes them at once
    assert all(store.claim(p.stem) is not None for p in (tmp_path / "claims").glob("*.claim"))


def test_no_process_outlives_a_sigkilled_study(tmp_path):
    proc = _study(tmp_path, epochs=2000)
    try:
        _wait_for_training(tmp_path, proc)
        family = _descendants(proc.pid)  # workers, loky's manager and resource tracker
        assert len(family) >= 2, family
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in family):
            time.sleep(0.2)
        left = [p for p in family if _alive(p)]
        assert left == [], f"still running 10 s after the study was killed: {left}"
    finally:
        for p in _descendants(proc.pid) + family:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_a_wait_on_a_live_claim_is_said_within_5_seconds(tmp_path, capsys):
    suite = get_suite("planted", n_examples=100)
    spec = RunSpec(SharingLayout.separate([suite.task_names[0]], suite.n_stages), TrainConfig(epochs=1))
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    key = runner.key(suite, spec)
    holder = runner.store.claim(key)  # another worker of this host, alive, trains it
    import threading

    def finish_later():
        time.sleep(6.5)
        runner.store.put(Runner(tmp_path / "other", n_jobs=1, progress=False).run(suite, [spec])[0])
        holder.release()

    t = threading.Thread(target=finish_later)
    t.start()
    start = time.monotonic()
    res = runner.run(suite, [spec])
    t.join()
    assert res[0].ok and res.trained == 0
    assert time.monotonic() - start >= 6
    err = capsys.readouterr().err
    waits = [ln for ln in err.splitlines() if ln.startswith("taskrel: waiting")]
    assert len(waits) == 1 and key in waits[0] and f"process {os.getpid()}" in waits[0] and "alive" in waits[0], err
    assert "is done (another worker trained it)" in err


def test_an_unreachable_dask_scheduler_is_named_within_seconds(tmp_path):
    import pytest

    pytest.importorskip("distributed")
    from taskrel.errors import TaskrelError
    from taskrel.workers import CONNECT_TIMEOUT

    suite = get_suite("planted", n_examples=100)
    specs = [RunSpec(SharingLayout.separate([t], suite.n_stages), TrainConfig(epochs=1)) for t in suite.task_names[:2]]
    start = time.monotonic()
    with pytest.raises(TaskrelError, match=r"backend 'dask': cannot reach the scheduler at 'tcp://127.0.0.1:9' within 5 s"):
        Runner(tmp_path, n_jobs=2, backend="dask", scheduler="tcp://127.0.0.1:9", progress=False).run(suite, specs)
    assert time.monotonic() - start < CONNECT_TIMEOUT + 10
