"""``execute``: the older spelling of :meth:`taskrel.runner.Runner.run`, kept for scripts.

>>> import tempfile
>>> from taskrel.suites import get_suite
>>> from taskrel.layout import SharingLayout
>>> from taskrel.store import RunSpec, RunStore
>>> from taskrel.train import TrainConfig
>>> suite = get_suite("planted", n_examples=200)
>>> store = RunStore(tempfile.mkdtemp())
>>> plan = [RunSpec(SharingLayout.separate([t], 3), TrainConfig(epochs=2)) for t in suite.task_names[:2]]
>>> execute(suite, plan, store, progress=False).trained, execute(suite, plan, store, progress=False).trained
(2, 0)
"""

from __future__ import annotations

from collections.abc import Iterable

from taskrel.runner import BACKENDS, RunList, Runner, run_spec
from taskrel.store import RunSpec, RunStore
from taskrel.suite import Suite


def execute(
    suite: Suite,
    specs: Iterable[RunSpec],
    store: RunStore,
    n_jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    progress: bool = True,
    retry_failed: bool = False,
    desc: str = "runs",
) -> RunList:
    """Train the specs the store lacks and return every spec's record, in order.

    The same as ``Runner(store, n_jobs, backend, scheduler, progress, retries=int(retry_failed))
    .run(suite, specs)``; the records list also has ``trained``, ``reused`` and ``failed``.
    """
    with Runner(store, n_jobs, backend, scheduler, progress, retries=int(retry_failed)) as runner:
        return runner.run(suite, specs, desc)


__all__ = ["BACKENDS", "RunList", "execute", "run_spec"]
