"""Where a :class:`~taskrel.runner.Runner` sends runs, and what a worker does with one: local
worker processes or threads, or a Dask cluster. Each pool runs one job function (``bind``,
normally :func:`worker_job`) on the arguments it is given and hands back finished futures one
at a time; a future whose worker process died comes back as :class:`WorkerLost` (the runner
sends its run again), and :meth:`LocalPool.abort` stops everything at once (Ctrl-C).

A fresh worker process spends seconds before its first run can start: importing torch and
taskrel, then (inside the first ``torch.optim`` constructor) torch's compile machinery, about
800 modules. Two settings keep that cost to once per worker:

* :data:`IDLE_TIMEOUT`: local worker processes are kept this long between runs (loky retires
  an idle worker after 10 s by default, so a study whose analysis between two waves of runs
  took longer paid every worker's start-up again);
* :func:`warm_worker` runs in every local worker as it starts, and on every Dask worker when
  a client connects, so a worker's first run costs what its later runs cost.

Workers never outlive the study that started them (see
:func:`exit_with_parent`), however long :data:`IDLE_TIMEOUT` is.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskrel.claims import DEFAULT_LEASE
from taskrel.errors import RunFailed, TaskrelError, is_environment_failure
from taskrel.layout import SharingLayout, build_model
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import CALLBACKS, train

IDLE_TIMEOUT = 300.0
"""Seconds a local worker process may idle before it is retired (loky's own default: 10)."""

CONNECT_TIMEOUT = 5.0
"""Seconds to reach a Dask scheduler before its address is refused by name (no silent wait)."""

WARM_WORKERS = True
"""Whether workers import what a run needs as they start (:func:`warm_worker`)."""


def warm_worker() -> None:
    """Import what a training run needs, so that a worker's first run is not slower than the rest.

    Builds one tiny optimizer: torch imports its compile machinery (dynamo, sympy) the first
    time an optimizer is constructed in a process.

    >>> warm_worker()
    >>> import sys
    >>> "torch._dynamo" in sys.modules and "taskrel.train" in sys.modules
    True
    """
    import torch

    import taskrel.train  # noqa: F401  (the training loop and what it imports)

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


# ---------------------------------------------------------------------- one run (in a worker or in the study)
def _warm_state(store: RunStore, source_key: str, task: str = "?"):
    """The layout and weights of a warm start's source run; a RunFailed naming the task whose
    encoder was to be moved, the source run, and why it cannot be used."""
    rec = store.get(source_key)
    if rec is None:
        raise RunFailed(f"warm start from task {task!r}: its source run {source_key} is not in the store")
    if not rec.ok:
        raise RunFailed(f"warm start from task {task!r}: its source run {rec.label or source_key} failed ({rec.error or 'no reason stored'})")
    layout = SharingLayout.from_dict({"schema": 1, "kind": "taskrel.SharingLayout", **rec.spec["layout"]})
    return layout, store.load_weights(source_key)


def _callbacks(spec: RunSpec, factories: dict[str, Callable[..., Any]]) -> list:
    out = []
    for name, params in spec.probes:
        cb = factories[name](**dict(params))
        cb.name = name
        out.append(cb)
    return out


def _train_record(suite: Suite, spec: RunSpec, store: RunStore, callbacks: dict[str, Callable[..., Any]]) -> RunRecord:
    """Train one spec; its record: ``ok``, ``failed`` (a result) or ``error`` (the environment)."""
    key, identity = spec.key(suite), spec.identity(suite)
    try:
        cbs = _callbacks(spec, callbacks)
        warm = None
        if spec.warm_start:
            src_layout, state = _warm_state(store, spec.source_key(suite), spec.warm_start[1])
            src = build_model(src_layout, suite)
            src.load_state_dict(state)
            warm = src.encoder_state(spec.warm_start[1])
        res = train(suite, spec.layout, spec.config, spec.seed, cbs, warm, keep_state=spec.keep_weights)
    except RunFailed as e:
        return RunRecord(key, identity, "failed", error=e.reason, failed_step=e.step, failed_task=e.task, label=spec.label)
    except Exception as e:  # a user's module may raise anything; record it, go on
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        return RunRecord(key, identity, "error" if is_environment_failure(e) else "failed", error=tb, label=spec.label)
    sha = store.save_weights(key, res.state) if spec.keep_weights and res.state is not None else None
    return RunRecord(
        key, identity, "ok", metrics=res.metrics, history=res.history, steps=res.steps,
        examples=res.examples, seconds=res.seconds, n_parameters=res.n_parameters,
        best_epoch=res.best_epoch, extras=res.extras, label=spec.label, weights_sha256=sha,
    )


def run_spec(
    suite: Suite,
    spec: RunSpec,
    store: RunStore,
    callbacks: dict[str, Callable[..., Any]] | None = None,
    retry_failed: bool = False,
) -> tuple[RunRecord | None, bool]:
    """Train one spec under a claim on its run and store its record: ``(record, trained)``.

    ``(None, False)`` while another worker holds the run's claim; a record another worker
    stored meanwhile comes back with ``trained`` False. A failure of the environment (status
    ``"error"``: device, memory, missing module) comes back but is not stored.
    ``callbacks`` maps the callback names the spec asks for to their classes (resolved by
    the caller from :data:`taskrel.train.CALLBACKS`, and pickled by reference to a worker).
    """
    cbs = callbacks if callbacks is not None else CALLBACKS
    return store.train_once(spec.key(suite), lambda: _train_record(suite, spec, store, cbs), lambda r: r.ok or not retry_failed)


def worker_job(
    suite: Suite, spec: RunSpec, store_path: str, callbacks: dict[str, Any], retry_failed: bool = False,
    parent: tuple[int, str] | None = None, lease: float = DEFAULT_LEASE,
) -> tuple[dict[str, Any] | None, bool]:
    """A worker's job: train one run into the store at ``store_path``; its record as data.

    ``parent`` (pid, host) is the study's process: the worker exits when it dies.
    """
    if parent is not None:
        exit_with_parent(*parent)
    rec, trained = run_spec(suite, spec, RunStore(store_path, lease, sweep=False), callbacks, retry_failed)
    return (None if rec is None else rec.to_dict()), trained


# ---------------------------------------------------------------------- worker lifetime
_watching: set[int] = set()


def exit_with_parent(pid: int, host: str | None = None, every: float = 1.0) -> None:
    """In a worker process: exit as soon as process ``pid`` (the study) is gone.

    Does nothing in the study's own process or on another host. Idempotent per ``pid``. A
    study killed with SIGKILL otherwise leaves its pool's workers running for minutes.
    """
    if pid == os.getpid() or pid in _watching or (host is not None and host != socket.gethostname()):
        return
    _watching.add(pid)

    def watch() -> None:
        while True:
            time.sleep(every)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - alive, owned by someone else
                pass

    threading.Thread(target=watch, name="taskrel-parent-watch", daemon=True).start()


@dataclass
class WorkerLost:
    """What :meth:`LocalPool.next_done` gives for a run whose worker process died (killed, out of
    memory, a crash in native code): ``reason`` in a few words. The run did not finish."""

    reason: str


def _lost_reason(e: BaseException) -> str:
    text = str(e)
    codes = text[text.find("{"):text.find("}") + 1] if "{" in text else ""
    return f"{type(e).__name__}{' ' + codes if codes else ''}"


class LocalPool:
    """Worker processes (loky, reused between calls) or threads.

    ``idle_timeout``: seconds an idle worker process lives (None: :data:`IDLE_TIMEOUT`);
    ``warm``: run :func:`warm_worker` in each worker process as it starts (None:
    :data:`WARM_WORKERS`).
    """

    def __init__(self, backend: str, workers: int, idle_timeout: float | None = None, warm: bool | None = None):
        if backend == "threading":
            from concurrent.futures import ThreadPoolExecutor

            self.executor = ThreadPoolExecutor(workers)
            self.owned = True
        else:
            from joblib.externals.loky import get_reusable_executor

            timeout = IDLE_TIMEOUT if idle_timeout is None else idle_timeout
            warm = WARM_WORKERS if warm is None else warm
            self._settings = {"max_workers": workers, "timeout": timeout, "initializer": warm_worker if warm else None}
            self.executor = get_reusable_executor(**self._settings)
            self.owned = False

    job: Callable[..., Any]

    def bind(self, job: Callable[..., Any]):
        """Use ``job(suite, *args)`` for every submitted run; returns the pool."""
        self.job = job
        return self

    def submit(self, *args: Any):
        return self.executor.submit(self.job, *args)

    def next_done(self, futures: list, timeout: float | None = None):
        """The first finished future and its result, or :class:`WorkerLost` when its worker died;
        ``(None, None)`` when none finished within ``timeout`` seconds.

        A dead worker breaks loky's executor (every run in flight fails with it); the next
        :meth:`submit` gets a fresh one.
        """
        from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, wait

        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        if not done:
            return None, None
        fut = next(iter(done))
        try:
            return fut, fut.result()
        except BrokenExecutor as e:  # loky's TerminatedWorkerError and BrokenProcessPool
            return fut, WorkerLost(_lost_reason(e))

    def renew(self) -> None:
        """A working executor again after a worker died (loky hands out a fresh one)."""
        if not self.owned:
            from joblib.externals.loky import get_reusable_executor

            self.executor = get_reusable_executor(**self._settings)

    def abort(self, futures: list) -> None:
        """Stop at once: cancel the queued runs and end the running ones (worker processes are
        killed; threads cannot be, and finish their run). Nothing half-written is kept: records
        and weights are written atomically, and a killed worker's claim is taken over at once."""
        for f in futures:
            f.cancel()
        if self.owned:
            self.executor.shutdown(wait=False, cancel_futures=True)
        else:
            self.executor.shutdown(wait=False, kill_workers=True)

    def close(self) -> None:
        if self.owned:
            self.executor.shutdown()


class DaskPool:
    """A dask.distributed client: to ``scheduler``, or to a local cluster it starts."""

    def __init__(self, scheduler: str | None, workers: int):
        try:
            from dask.distributed import Client
        except ImportError:
            raise TaskrelError("backend 'dask' needs dask.distributed: pip install 'taskrel[dask]'") from None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as e:
                raise TaskrelError(f"backend 'dask': cannot reach the scheduler at {scheduler!r} within {CONNECT_TIMEOUT:g} s "
                                   f"({type(e).__name__}); check the address and that the scheduler is running") from None
        else:
            self.client = Client(processes=True, n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None)
        self.warming: list = []
        if WARM_WORKERS:  # a task per worker, queued ahead of the first runs (kept until close)
            self.warming = [self.client.submit(warm_worker, pure=False, workers=[w])
                            for w in self.client.scheduler_info().get("workers", {})]
        self.suites: dict[int, Any] = {}

    job: Callable[..., Any]

    def bind(self, job: Callable[..., Any]):
        """Use ``job(suite, *args)`` for every submitted run; returns the pool."""
        self.job = job
        return self

    def submit(self, suite: Any, *args: Any):
        if id(suite) not in self.suites:  # send a suite's data to the cluster once
            # a fresh key each time (hash=False): a suite sent again after its copy was lost never
            # shares a key with the cancelled one (under load the cancel could reach the new copy)
            self.suites[id(suite)] = (suite, self.client.scatter(suite, broadcast=True, hash=False))
        return self.client.submit(self.job, self.suites[id(suite)][1], *args, pure=False)

    def next_done(self, futures: list, timeout: float | None = None):
        """The first finished future and its result; ``(future, (None, False))`` for a cancelled
        one; ``(None, None)`` when none finished within ``timeout`` seconds.

        A run's task is cancelled when an input it needs is gone from the cluster: the suite is
        scattered once to every worker, but Dask's active memory manager drops the copies it
        deems surplus, so a worker that dies can take the last one along (measured: a SIGKILLed
        worker cancelled every queued run). The run has not finished: it is sent again
        (``(None, False)`` tells the runner to try it later), and with it the suite.
        """
        from concurrent.futures import CancelledError

        from dask.distributed import wait

        try:
            done = wait(futures, timeout=timeout, return_when="FIRST_COMPLETED").done
        except CancelledError:
            done = {f for f in futures if f.cancelled()}
        except TimeoutError:
            return None, None
        fut = next(iter(done))
        if fut.cancelled():
            self.suites.clear()
            return fut, (None, False)
        return fut, fut.result()

    def renew(self) -> None:
        """Nothing to do: the cluster replaces its workers and sends their runs again."""

    def abort(self, futures: list) -> None:
        """Cancel every run sent and not finished (Ctrl-C)."""
        self.client.cancel(futures)

    def close(self) -> None:
        self.warming.clear()
        cluster = getattr(self.client, "cluster", None)
        self.client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["CONNECT_TIMEOUT", "DaskPool", "exit_with_parent", "IDLE_TIMEOUT", "LocalPool", "WARM_WORKERS", "WorkerLost", "run_spec", "warm_worker", "worker_job"]
