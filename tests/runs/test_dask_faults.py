"""A Dask worker SIGKILLed while it trains a run: the plan still finishes, the dead worker's claim
is taken over once its lease runs out, no finished run is lost or trained twice, and no nanny
or worker process outlives the cluster.

The cluster is a nanny-managed ``LocalCluster`` on loopback, started here. The run to kill
("victim") stalls in its first training step on its first attempt only, so the kill lands while
its worker holds the claim; every start and every finish of a training is logged to a file by
a callback that travels with the runs, so the test sees what each worker did. The nannies live
in this process; the worker processes (the killed one's replacement included) are its children.

The dead worker may hold the cluster's only copy of the scattered suite (Dask's active memory
manager drops surplus copies), which cancels the queued runs: the pool sends them and the suite
again. That case is also forced directly, by cancelling the suite's only copy.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import pytest

from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec, RunStore
from taskrel.suites import get_suite
from taskrel.train import Callback, TrainConfig, register_callback

distributed = pytest.importorskip("dask.distributed", reason="dask is an optional extra: pip install 'taskrel[dask]'")
cloudpickle = pytest.importorskip("cloudpickle")
psutil = pytest.importorskip("psutil")

LEASE = 2.0
MARK = "dask_fault_log"


def _log(path: str) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _append(path: str, event: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(event) + "\n").encode())  # one short write: lines never interleave
    finally:
        os.close(fd)


@register_callback(MARK)
class TrainingLog(Callback):
    """Logs the start and the finish of a training; ``stall`` s in the first step of a first attempt."""

    def __init__(self, log: str, label: str, stall: float = 0.0):
        self.log, self.label = log, label
        first = not any(e["label"] == label for e in _log(log))
        self.stall = stall if first else 0.0
        _append(log, {"event": "start", "label": label, "pid": os.getpid(), "time": time.time()})

    def on_step(self, state) -> None:
        if self.stall:
            stall, self.stall = self.stall, 0.0
            time.sleep(stall)  # holds the run's claim (its heartbeat keeps it fresh) until killed

    def result(self) -> dict:
        _append(self.log, {"event": "end", "label": self.label, "pid": os.getpid(), "time": time.time()})
        return {"pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _is_resource_tracker(proc) -> bool:
    """multiprocessing's resource tracker: one per interpreter, started with the first pool, by design
    alive until the interpreter exits."""
    try:
        return any("resource_tracker" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def _kill_when_stalled(log: str, claim, worker_pids, out: dict, deadline: float) -> None:
    """SIGKILL the worker that holds ``claim`` (a file) once the victim's training has started."""
    while time.monotonic() < deadline:
        started = [e for e in _log(log) if e["event"] == "start" and e["label"] == "victim"]
        if not started:
            time.sleep(0.05)
            continue
        try:
            out["claimed_by"] = int(json.loads(claim.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return
        out["started_in"] = started[0]["pid"]
        if out["claimed_by"] in worker_pids:
            os.kill(out["claimed_by"], signal.SIGKILL)
            out["killed"], out["at"] = out["claimed_by"], time.time()
        return


def _nap(suite, seconds: float) -> int:
    time.sleep(seconds)
    return len(suite.task_names)


def _lost_suite_is_sent_again(scheduler: str, suite) -> None:
    """A run whose scattered suite is gone (the cluster kept one copy, on a worker that died) is
    cancelled; the pool says "not done" and sends the suite again with the next run."""
    from taskrel.workers import DaskPool

    pool = DaskPool(scheduler, 2).bind(_nap)
    try:
        fut = pool.submit(suite, 30.0)
        pool.client.cancel([pool.suites[id(suite)][1]], force=True)  # the only copy of the suite is lost
        assert pool.next_done([fut]) == (fut, (None, False))
        again = pool.submit(suite, 0.0)
        assert pool.next_done([again]) == (again, len(suite.task_names))
    finally:
        pool.close()


def test_a_sigkilled_dask_worker_holding_a_claim(tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the log callback travels by value
    try:
        _sigkilled_worker(tmp_path)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _sigkilled_worker(tmp_path):
    suite = get_suite("planted", n_examples=120)
    log = str(tmp_path / "training.log")
    cfg = TrainConfig(epochs=2, batch_size=32)

    def spec(tasks, label, stall=0.0):
        params = (("label", label), ("log", log), ("stall", stall))
        return RunSpec(SharingLayout.shared(tasks, suite.n_stages), cfg, probes=((MARK, params),), label=label)

    names = suite.task_names
    # the victim comes third: most often its worker has finished a run by the time it is killed
    specs = [spec([names[0]], names[0]), spec([names[1]], names[1]), spec(names[:2], "victim", stall=60.0),
             spec([names[2]], names[2])]
    store = RunStore(tmp_path / "store", lease=LEASE)
    victim_claim = store.path / "claims" / f"{Runner(store).key(suite, specs[2])}.claim"
    killer: dict = {}
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # e.g. other tests' pools
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            workers = set(client.run(os.getpid).values())
        assert len(workers) == 2
        watch = threading.Thread(target=_kill_when_stalled, args=(log, victim_claim, workers, killer, time.monotonic() + 60),
                                 daemon=True)
        watch.start()
        with Runner(store, n_jobs=2, backend="dask", scheduler=cluster.scheduler_address, progress=False) as runner:
            records = runner.run(suite, specs)
        watch.join()
        _lost_suite_is_sent_again(cluster.scheduler_address, suite)
        cluster_procs = [p.pid for p in psutil.Process().children(recursive=True)
                         if p.pid not in before and not _is_resource_tracker(p)]
    # the kill landed on the worker that held the victim's claim
    assert killer.get("killed") == killer.get("claimed_by") == killer.get("started_in") and killer["killed"] in workers, killer
    # the plan finished: every run has its record, in the store too
    assert [r.label for r in records] == [s.label for s in specs] and all(r.ok for r in records)
    assert sorted(store.keys()) == sorted(records.keys)
    events = _log(log)
    starts = [e for e in events if e["event"] == "start" and e["label"] == "victim"]
    ends = {}
    for e in events:
        if e["event"] == "end":
            ends.setdefault(e["label"], []).append(e)
    # no finished run was trained twice (those the killed worker finished before it died included);
    # the victim finished once, in another process
    assert {label: len(v) for label, v in ends.items()} == dict.fromkeys([s.label for s in specs], 1)
    assert [s["pid"] for s in starts][0] == killer["killed"] and len(starts) == 2, starts
    assert ends["victim"][0]["pid"] != killer["killed"]
    # the claim was taken over after the kill, and without waiting for the lease to run out: its
    # owner on this host is dead (claims know their owner), so the takeover is at once
    assert 0 <= starts[1]["time"] - killer["at"] < 30, (starts[1]["time"] - killer["at"])
    assert not any(store.path.joinpath("claims").glob("*.claim")), "every claim is released"
    # no nanny or worker process outlives the cluster
    assert killer["killed"] not in cluster_procs or not _alive(killer["killed"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in cluster_procs):
        time.sleep(0.1)
    lingering = [p for p in cluster_procs if _alive(p)]
    assert not lingering, [psutil.Process(p).cmdline() for p in lingering if _alive(p)]
