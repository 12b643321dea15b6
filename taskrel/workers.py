"""Where a :class:`~taskrel.runner.Runner` sends runs: local worker processes or threads, or a
Dask cluster. Each pool runs one job function (``bind``) on the arguments it is given and
hands back finished futures one at a time.

A fresh worker process spends seconds before its first run can start: importing torch and
taskrel, then (inside the first ``torch.optim`` constructor) torch's compile machinery, about
800 modules. Two settings keep that cost to once per worker:

* :data:`IDLE_TIMEOUT`: local worker processes are kept this long between runs (loky retires
  an idle worker after 10 s by default, so a study whose analysis between two waves of runs
  took longer paid every worker's start-up again);
* :func:`warm_worker` runs in every local worker as it starts, and on every Dask worker when
  a client connects, so a worker's first run costs what its later runs cost.

Workers never outlive the study that started them (see
:func:`taskrel.claims.exit_with_parent`), however long :data:`IDLE_TIMEOUT` is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskrel.errors import TaskrelError

IDLE_TIMEOUT = 300.0
"""Seconds a local worker process may idle before it is retired (loky's own default: 10)."""

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
            self.executor = get_reusable_executor(max_workers=workers, timeout=timeout, initializer=warm_worker if warm else None)
            self.owned = False

    job: Callable[..., Any]

    def bind(self, job: Callable[..., Any]):
        """Use ``job(suite, *args)`` for every submitted run; returns the pool."""
        self.job = job
        return self

    def submit(self, *args: Any):
        return self.executor.submit(self.job, *args)

    def next_done(self, futures: list):
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        fut = next(iter(done))
        return fut, fut.result()

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
            self.client = Client(scheduler)
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

    def next_done(self, futures: list):
        """The first finished future and its result; ``(future, (None, False))`` for a cancelled one.

        A run's task is cancelled when an input it needs is gone from the cluster: the suite is
        scattered once to every worker, but Dask's active memory manager drops the copies it
        deems surplus, so a worker that dies can take the last one along (measured: a SIGKILLed
        worker cancelled every queued run). The run has not finished: it is sent again
        (``(None, False)`` tells the runner to try it later), and with it the suite.
        """
        from concurrent.futures import CancelledError

        from dask.distributed import wait

        try:
            done = wait(futures, return_when="FIRST_COMPLETED").done
        except CancelledError:
            done = {f for f in futures if f.cancelled()}
        fut = next(iter(done))
        if fut.cancelled():
            self.suites.clear()
            return fut, (None, False)
        return fut, fut.result()

    def close(self) -> None:
        self.warming.clear()
        cluster = getattr(self.client, "cluster", None)
        self.client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["DaskPool", "IDLE_TIMEOUT", "LocalPool", "WARM_WORKERS", "warm_worker"]
