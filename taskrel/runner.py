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

import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from taskrel.claims import DEFAULT_LEASE, exit_with_parent
from taskrel.config_checks import check_loss_weights
from taskrel.errors import RunFailed, TaskrelError, is_environment_failure
from taskrel.layout import SharingLayout, build_model
from taskrel.store import IDENTITY_VERSION, RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import CALLBACKS, train
from taskrel.workers import DaskPool, LocalPool

BACKENDS = ("loky", "threading", "sequential", "dask")


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


# ---------------------------------------------------------------------- one run
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


def _job(
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
        """Train the specs the store lacks; return every spec's record, in the order given.

        A run that fails is recorded with its reason and the others go on.
        """
        specs = list(specs)
        keys = self.check(suite, specs)
        records: dict[str, RunRecord] = {}
        todo: dict[str, RunSpec] = {}
        for key, spec in zip(keys, specs):
            if key in records or key in todo:
                continue
            rec = self.store.get(key)
            if rec is not None and (rec.ok or not self.retries):
                records[key] = rec
            else:
                todo[key] = spec
        reused = len(records)
        if todo and not reused:
            self._say_if_older_store()
        sources = {key: spec.source_key(suite) for key, spec in todo.items()}
        for key, spec in todo.items():
            src = sources[key]
            if src is not None and src not in records and src not in todo and self.store.get(src) is None:
                raise TaskrelError(f"plan: the warm-start source {src} of {spec.label or key} is neither stored nor in the plan")
        trained = self._train(suite, todo, sources, records, desc)
        return RunList([records[k] for k in keys], keys, trained, reused)

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
    def _train(self, suite: Suite, todo: dict[str, RunSpec], sources: dict[str, str | None], records: dict[str, RunRecord], desc: str) -> int:
        if not todo:
            return 0
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"taskrel {desc}", unit="run", disable=not self.progress,
                   file=sys.stderr, dynamic_ncols=True)
        attempts = dict.fromkeys(todo, 0)
        trained = 0
        try:
            for key, rec, fresh in self._results(suite, todo, sources, attempts):
                trained += fresh and attempts[key] == 1
                if not rec.ok and attempts[key] <= self.retries:
                    continue  # queued again by _results
                records[key] = rec
                if not rec.ok:
                    bar.write(f"taskrel: run {rec.label or key} failed: {rec.error}", file=sys.stderr)
                bar.update(1)
        finally:
            bar.close()
        return trained

    def _results(self, suite: Suite, todo: dict[str, RunSpec], sources: dict[str, str | None], attempts: dict[str, int]):
        """Yield ``(key, record)`` as runs finish; a run is submitted once its source is done."""
        callbacks = {name: CALLBACKS[name] for spec in todo.values() for name, _ in spec.probes}
        local = self.backend == "sequential" or (self.backend != "dask" and (self.workers == 1 or len(todo) == 1))
        pool = None if local else self._open_pool()
        waiting = dict(todo)
        running: dict[Any, str] = {}
        done: set[str] = set()
        busy: dict[str, RunSpec] = {}  # claimed by another worker: tried again after other work
        pause = 0.05
        parent = (os.getpid(), socket.gethostname()) if self.scheduler is None else None

        def ready() -> list[str]:
            return [k for k in waiting if sources[k] is None or sources[k] not in todo or sources[k] in done]

        while waiting or running or busy:
            for key in ready():
                spec = waiting.pop(key)
                attempts[key] += 1
                if pool is None:
                    rec, fresh = run_spec(suite, spec, self.store, callbacks, self.retries > 0)
                    yield from self._finish(key, rec, fresh, spec, waiting, attempts, done, running, None, busy)
                else:
                    running[pool.submit(suite, spec, str(self.store.path), callbacks, self.retries > 0, parent, self.store.lease)] = key
            if pool is not None and running:
                fut, (d, fresh) = pool.next_done(list(running))
                key = running[fut]
                rec = None if d is None else RunRecord.from_dict(d)
                yield from self._finish(key, rec, fresh, todo[key], waiting, attempts, done, running, fut, busy)
            elif busy and not running and not ready():  # only runs other workers train are left
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                waiting.update(busy)
                busy.clear()
            elif not running and waiting and not ready():  # pragma: no cover - guarded by run()
                raise TaskrelError(f"plan: runs {sorted(waiting)} wait for sources that never finish")

    def _finish(self, key, rec, fresh, spec, waiting, attempts, done, running, handle, busy):
        running.pop(handle, None)
        if rec is None:  # another worker holds the run's claim
            attempts[key] -= 1
            busy[key] = spec
            return
        if not rec.ok and attempts[key] <= self.retries:
            waiting[key] = spec
        else:
            done.add(key)
        yield key, rec, fresh

    def _open_pool(self):
        if self._pool is None:
            pool = DaskPool(self.scheduler, self.workers) if self.backend == "dask" else LocalPool(self.backend, self.workers)
            self._pool = pool.bind(_job)
        return self._pool


def as_runner(runner: Runner | RunStore | str | Path, **kwargs: Any) -> Runner:
    """A :class:`Runner` as given, or one around a store (``kwargs``: its settings)."""
    if isinstance(runner, Runner):
        return runner
    if isinstance(runner, (RunStore, str, Path)):
        return Runner(runner, **kwargs)
    raise TaskrelError(f"expected a Runner, a RunStore or a store directory, got {type(runner).__name__}")


__all__ = ["BACKENDS", "RunList", "Runner", "as_runner", "available_cores", "run_spec"]
