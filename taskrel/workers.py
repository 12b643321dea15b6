"""Where a :class:`~taskrel.runner.Runner` sends runs: local worker processes or threads, or a
Dask cluster. Each pool runs one job function (``bind``) on the arguments it is given and
hands back finished futures one at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskrel.errors import TaskrelError


class LocalPool:
    """Worker processes (loky, reused between calls) or threads."""

    def __init__(self, backend: str, workers: int):
        if backend == "threading":
            from concurrent.futures import ThreadPoolExecutor

            self.executor = ThreadPoolExecutor(workers)
            self.owned = True
        else:
            from joblib.externals.loky import get_reusable_executor

            self.executor = get_reusable_executor(max_workers=workers)
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
        self.suites: dict[int, Any] = {}

    job: Callable[..., Any]

    def bind(self, job: Callable[..., Any]):
        """Use ``job(suite, *args)`` for every submitted run; returns the pool."""
        self.job = job
        return self

    def submit(self, suite: Any, *args: Any):
        if id(suite) not in self.suites:  # send a suite's data to the cluster once
            self.suites[id(suite)] = (suite, self.client.scatter(suite, broadcast=True))
        return self.client.submit(self.job, self.suites[id(suite)][1], *args, pure=False)

    def next_done(self, futures: list):
        from dask.distributed import wait

        done = wait(futures, return_when="FIRST_COMPLETED").done
        fut = next(iter(done))
        return fut, fut.result()

    def close(self) -> None:
        cluster = getattr(self.client, "cluster", None)
        self.client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["DaskPool", "LocalPool"]
