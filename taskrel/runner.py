"""The runner: trains the runs a store lacks, side by side, and hands back every spec's record.

A :class:`Runner` owns *how* runs are trained (the store, how many at once, where, progress
and retries); probes, analyses and studies only say *what* to train (a list of
:class:`~taskrel.store.RunSpec`) and receive the records in the same order. Nobody else
derives a run's key.

Runs that wait for another (a warm start waits for its source) are queued behind it; every
other run goes into one queue. Each run trains on ``spec.config.threads`` intra-op threads
(one by default), so parallelism comes from running runs side by side (``n_jobs``).

>>> import tempfile
>>> from taskrel.suites import get_suite
>>> from taskrel.layout import SharingLayout
>>> from taskrel.store import RunSpec
>>> from taskrel.train import TrainConfig
>>> suite = get_suite("planted", n_examples=200)
>>> runner = Runner(tempfile.mkdtemp(), progress=False)
>>> specs = [RunSpec(SharingLayout.separate([t], 3), TrainConfig(epochs=2)) for t in suite.task_names[:2]]
>>> records = runner.run(suite, specs)
>>> [r.tasks for r in records], records.trained, runner.run(suite, specs).trained
([['c0t0'], ['c0t1']], 2, 0)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from taskrel.claims import ClaimWaits
from taskrel.config_checks import check_loss_weights
from taskrel.errors import TaskrelError
from taskrel.store import IDENTITY_VERSION, RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import CALLBACKS
from taskrel.workers import DaskPool, LocalPool, WorkerLost, run_spec, worker_job

BACKENDS = ("loky", "threading", "sequential", "dask")

LOST_RETRIES = 2
"""How many more times a run whose worker process died is sent to a fresh worker."""


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one).

    >>> available_cores() >= 1
    True
    """
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


class RunList(list):
    """Records aligned with the specs given to :meth:`Runner.run`, with what the call did.

    ``trained``: runs this call trained (retries included once); ``reused``: distinct runs
    read from the store; ``keys``: each spec's run key; ``failed``: keys of the distinct failed runs.
    """

    def __init__(self, records: Iterable[RunRecord] = (), keys: Sequence[str] = (), trained: int = 0, reused: int = 0):
        super().__init__(records)
        self.keys = list(keys)
        self.trained = trained
        self.reused = reused

    @property
    def failed(self) -> list[str]:
        """Keys of the distinct runs that failed, in plan order."""
        return list(dict.fromkeys(r.key for r in self if not r.ok))

    def ok(self) -> list[RunRecord]:
        return [r for r in self if r.ok]

    def unique(self) -> list[RunRecord]:
        """Each distinct run once, in plan order."""
        return list({r.key: r for r in self}.values())


# ---------------------------------------------------------------------- the runner
class Runner:
    """Trains runs through a store: ``n_jobs`` at a time, locally or on a Dask cluster.

    Parameters
    ----------
    store : a :class:`~taskrel.store.RunStore` or its directory.
    n_jobs : runs trained at once; -1 (default) = the cores available to this process.
    backend : ``"loky"`` (worker processes, default), ``"threading"``, ``"sequential"``
        (in this process) or ``"dask"`` (a dask.distributed cluster).
    scheduler : with ``backend="dask"``, the scheduler's address; None starts a local
        cluster. One client serves every :meth:`run` of this runner until :meth:`close`.
    progress : show a progress bar on stderr.
    retries : how many more times a failed run is trained before its failure stands (a
        stored failure included); 0 (default) reuses stored failures.

    A plan with a single run to train, or ``n_jobs=1``, trains in this process: no pool
    starts.
    """

    def __init__(
        self,
        store: RunStore | str | Path,
        n_jobs: int = -1,
        backend: str = "loky",
        scheduler: str | None = None,
        progress: bool = True,
        retries: int = 0,
    ):
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
            raise TaskrelError(f"runner: n_jobs must be >= 1 or -1 (the cores available), got {n_jobs!r}")
        if backend not in BACKENDS:
            raise TaskrelError(f"runner: unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if scheduler is not None and backend != "dask":
            raise TaskrelError(f"runner: a scheduler ({scheduler!r}) needs backend='dask', got backend={backend!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise TaskrelError(f"runner: retries must be an integer >= 0, got {retries!r}")
        self.store = store if isinstance(store, RunStore) else RunStore(store)  # checked first: a refused runner leaves no folder
        self.n_jobs = n_jobs
        self.backend = backend
        self.scheduler = scheduler
        self.progress = progress
        self.retries = retries
        self._pool: Any = None

    @property
    def workers(self) -> int:
        """Runs trained at once (``n_jobs`` with -1 resolved)."""
        return available_cores() if self.n_jobs == -1 else self.n_jobs

    def __repr__(self) -> str:
        return (f"Runner({str(self.store.path)!r}, n_jobs={self.n_jobs}, backend={self.backend!r}, "
                f"scheduler={self.scheduler!r}, retries={self.retries})")

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Shut down the Dask client (or local cluster) this runner started, if any."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------ planning
    def check(self, suite: Suite, specs: Sequence[RunSpec]) -> list[str]:
        """Check every spec against the suite before anything trains; their keys."""
        keys = []
        for spec in specs:
            if not isinstance(spec, RunSpec):
                raise TaskrelError(f"plan: {spec!r} is not a RunSpec")
            suite.check_tasks(spec.layout.tasks)
            spec.layout.with_stages(suite.n_stages)
            check_loss_weights(spec.config, suite.task_names)
            for name, _ in spec.probes:
                if name not in CALLBACKS:
                    raise TaskrelError(f"plan: unknown training callback {name!r}; registered: {sorted(CALLBACKS)}")
            keys.append(spec.key(suite))
        return keys

    def key(self, suite: Suite, spec: RunSpec) -> str:
        """The store key of ``spec`` on ``suite``."""
        return self.check(suite, [spec])[0]

    def run(self, suite: Suite, specs: Iterable[RunSpec], desc: str = "runs") -> RunList:
        """Train the specs the store lacks; return every spec's record, in the order given (a
        run that fails is recorded with its reason and the others go on)."""
        return self.run_all([(suite, specs)], desc)[0]

    def run_all(self, jobs: Iterable[tuple[Suite, Iterable[RunSpec]]], desc: str = "runs") -> list[RunList]:
        """Train the runs of several suites (for example one suite built at several widths) in
        one queue: ``jobs`` is ``[(suite, specs), ...]``; one :class:`RunList` per job, each
        aligned with its specs (its ``trained`` and ``reused`` count that job's runs). Every
        spec is checked against its suite before anything trains; a run two jobs share trains once.

        >>> import tempfile
        >>> from taskrel.suites import get_suite
        >>> from taskrel.layout import SharingLayout
        >>> from taskrel.train import TrainConfig
        >>> suite = get_suite("planted", n_examples=100)
        >>> spec = RunSpec(SharingLayout.separate(["c0t0"], 3), TrainConfig(epochs=1))
        >>> runner = Runner(tempfile.mkdtemp(), progress=False)
        >>> full, half = runner.run_all([(suite, [spec]), (suite.at_width(0.5), [spec])])
        >>> full.trained, half.trained, full.keys != half.keys
        (1, 1, True)
        """
        jobs = [(suite, list(specs)) for suite, specs in jobs]
        keyed = [self.check(suite, specs) for suite, specs in jobs]
        records: dict[str, RunRecord] = {}
        todo: dict[str, RunSpec] = {}
        suites: dict[str, Suite] = {}
        for (suite, specs), keys in zip(jobs, keyed):
            for key, spec in zip(keys, specs):
                if key in records or key in todo:
                    continue
                rec = self.store.get(key)
                if rec is not None and (rec.ok or not self.retries):
                    records[key] = rec
                else:
                    todo[key], suites[key] = spec, suite
        reused = set(records)
        if todo and not reused:
            self._say_if_older_store()
        sources = {key: spec.source_key(suites[key]) for key, spec in todo.items()}
        for key, spec in todo.items():
            src = sources[key]
            if src is not None and src not in records and src not in todo and self.store.get(src) is None:
                raise TaskrelError(f"plan: the warm-start source {src} of {spec.label or key} is neither stored nor in the plan")
        trained = self._train(suites, todo, sources, records, desc)
        return [RunList([records[k] for k in keys], keys, len(trained.intersection(keys)), len(reused.intersection(keys)))
                for keys in keyed]

    def _say_if_older_store(self) -> None:
        """One line when the store's runs were keyed by an older taskrel (never reused, never misread)."""
        if getattr(self, "_store_checked", False):
            return
        self._store_checked = True
        for key in self.store.keys()[:20]:
            rec = self.store.get(key)
            if rec is not None and rec.spec.get("identity") != IDENTITY_VERSION:
                print(f"taskrel: the store {str(self.store.path)!r} holds runs keyed by an older taskrel "
                      f"(run identity {rec.spec.get('identity', 1)}, now {IDENTITY_VERSION}); they are kept "
                      "but not reused, so these runs train again", file=sys.stderr)
                return

    # ------------------------------------------------------------------ training
    def _train(self, suites: dict[str, Suite], todo: dict[str, RunSpec], sources: dict[str, str | None],
               records: dict[str, RunRecord], desc: str) -> set[str]:
        """Train ``todo`` (each run on its suite in ``suites``) into ``records``; the keys trained here."""
        if not todo:
            return set()
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"taskrel {desc}", unit="run", disable=not self.progress,
                   file=sys.stderr, dynamic_ncols=True)
        attempts = dict.fromkeys(todo, 0)
        trained: set[str] = set()
        try:
            with _sigterm_as_exit():
                for key, rec, fresh in self._results(suites, todo, sources, attempts, lambda m: bar.write(m, file=sys.stderr)):
                    if fresh:
                        trained.add(key)
                    if not rec.ok and attempts[key] <= self.retries:
                        continue  # queued again by _results
                    records[key] = rec
                    if not rec.ok:
                        bar.write(f"taskrel: run {rec.label or key} failed: {rec.error}", file=sys.stderr)
                    bar.update(1)
        finally:
            bar.close()
        return trained

    def _results(self, suites: dict[str, Suite], todo: dict[str, RunSpec], sources: dict[str, str | None], attempts: dict[str, int],
                 say: Callable[[str], None]):
        """Yield ``(key, record, trained)`` as runs finish; a run is sent once its source is done,
        at most ``workers`` at a time (so an interrupt has little to cancel). A run whose worker
        died is sent again (:data:`LOST_RETRIES`); an interrupt stops every worker at once."""
        callbacks = {name: CALLBACKS[name] for spec in todo.values() for name, _ in spec.probes}
        local = self.backend == "sequential" or (self.backend != "dask" and (self.workers == 1 or len(todo) == 1))
        pool = None if local else self._open_pool()
        q = _Queue(todo, sources, attempts)
        waits = ClaimWaits(self.store.path / "claims", {k: s.label or k for k, s in todo.items()}, say)
        parent = (os.getpid(), socket.gethostname()) if self.scheduler is None else None
        try:
            while q.waiting or q.running or q.busy:
                for key in q.ready():
                    if pool is not None and len(q.running) >= self.workers:
                        break
                    spec = q.start(key)
                    if pool is None:
                        rec, fresh = run_spec(suites[key], spec, self.store, callbacks, self.retries > 0)
                        yield from self._finish(q, key, rec, fresh, None, waits)
                    else:
                        q.running[pool.submit(suites[key], spec, str(self.store.path), callbacks, self.retries > 0, parent, self.store.lease)] = key
                if pool is not None and q.running:
                    fut, out = pool.next_done(list(q.running), timeout=1.0 if q.busy else None)
                    if fut is None:
                        pass  # nothing finished; a wait on another worker's claim may be due to be said
                    elif isinstance(out, WorkerLost):
                        yield from self._lost(suites, q, fut, out, pool, say, waits)
                    else:
                        yield from self._finish(q, q.running[fut], None if out[0] is None else RunRecord.from_dict(out[0]), out[1], fut, waits)
                elif q.busy and not q.running and not q.ready():  # only runs other workers train are left
                    q.pause_and_retry_busy()
                waits.say()
        except BaseException:  # Ctrl-C, SIGTERM, or the caller stopped iterating
            if pool is not None and (q.running or q.waiting):
                pool.abort(list(q.running))
                if isinstance(pool, LocalPool):  # its executor is gone; a Dask client stays until close()
                    self._pool = None
                say(f"taskrel: stopped: {len(q.running)} running run(s) abandoned and {len(q.waiting) + len(q.busy)} not started; "
                    "finished runs are kept in the store")
            raise

    def _finish(self, q: _Queue, key: str, rec: RunRecord | None, fresh: bool, handle: Any, waits: ClaimWaits):
        q.running.pop(handle, None)
        if rec is None:  # another worker holds the run's claim
            q.attempts[key] -= 1
            q.busy[key] = q.todo[key]
            waits.begin(key)
            return
        waits.end(key)
        if not rec.ok and q.attempts[key] <= self.retries:
            q.waiting[key] = q.todo[key]
        else:
            q.done.add(key)
        yield key, rec, fresh

    def _lost(self, suites: dict[str, Suite], q: _Queue, fut: Any, lost: WorkerLost, pool: Any, say: Callable[[str], None], waits: ClaimWaits):
        """A run whose worker process died: sent again to a fresh worker, or after
        :data:`LOST_RETRIES` tries an environment failure (not stored: tried again next time)."""
        key = q.running.pop(fut)
        spec = q.todo[key]
        q.lost[key] += 1
        pool.renew()
        name = spec.label or key
        if q.lost[key] <= LOST_RETRIES:
            q.attempts[key] -= 1
            q.waiting[key] = spec
            say(f"taskrel: a worker process died ({lost.reason}) while training run {name}; "
                f"sending it to a fresh worker (retry {q.lost[key]} of {LOST_RETRIES})")
            return
        rec = RunRecord(key, spec.identity(suites[key]), "error", label=spec.label,
                        error=f"its worker process died {q.lost[key]} times ({lost.reason})")
        yield from self._finish(q, key, rec, False, None, waits)

    def _open_pool(self):
        if self._pool is None:
            pool = DaskPool(self.scheduler, self.workers) if self.backend == "dask" else LocalPool(self.backend, self.workers)
            self._pool = pool.bind(worker_job)
        return self._pool


class _Queue:
    """The runs of one :meth:`Runner.run`: waiting, running (future -> key), claimed by another
    worker (busy), done; tries per run and worker deaths per run."""

    def __init__(self, todo: dict[str, RunSpec], sources: dict[str, str | None], attempts: dict[str, int]):
        self.todo, self.sources, self.attempts = todo, sources, attempts
        self.waiting = dict(todo)
        self.running: dict[Any, str] = {}
        self.busy: dict[str, RunSpec] = {}
        self.done: set[str] = set()
        self.lost = dict.fromkeys(todo, 0)
        self.pause = 0.05

    def ready(self) -> list[str]:
        src = self.sources
        return [k for k in self.waiting if src[k] is None or src[k] not in self.todo or src[k] in self.done]

    def start(self, key: str) -> RunSpec:
        self.attempts[key] += 1
        return self.waiting.pop(key)

    def pause_and_retry_busy(self) -> None:
        time.sleep(self.pause)
        self.pause = min(self.pause * 2, 1.0)
        self.waiting.update(self.busy)
        self.busy.clear()


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """While runs train in the main thread of a process that would die of SIGTERM, raise
    ``SystemExit(143)`` instead: claims are released and workers stopped, as on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def as_runner(runner: Runner | RunStore | str | Path, **kwargs: Any) -> Runner:
    """A :class:`Runner` as given, or one around a store (``kwargs``: its settings)."""
    if isinstance(runner, Runner):
        return runner
    if isinstance(runner, (RunStore, str, Path)):
        return Runner(runner, **kwargs)
    raise TaskrelError(f"expected a Runner, a RunStore or a store directory, got {type(runner).__name__}")


__all__ = ["BACKENDS", "RunList", "Runner", "as_runner", "available_cores", "run_spec"]
