"""Run a plan: train the runs the store lacks, in parallel, recording failures without stopping.

>>> import tempfile
>>> from taskrel.suites import get_suite
>>> from taskrel.layout import SharingLayout
>>> from taskrel.store import RunSpec, RunStore
>>> from taskrel.train import TrainConfig
>>> suite = get_suite("planted", n_examples=200)
>>> store = RunStore(tempfile.mkdtemp())
>>> plan = [RunSpec(SharingLayout.separate([t], 3), TrainConfig(epochs=2)) for t in suite.task_names[:2]]
>>> done = execute(suite, plan, store, progress=False)
>>> done.trained, execute(suite, plan, store, progress=False).trained
(2, 0)
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskrel.errors import RunFailed, TaskrelError
from taskrel.layout import SharingLayout, build_model
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import CALLBACKS, train

BACKENDS = ("loky", "threading", "sequential", "dask")


@dataclass
class PlanResult:
    """What a plan gave: the record of every spec (by key), and what was trained or reused."""

    records: dict[str, RunRecord] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # in plan order
    trained: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)

    def __getitem__(self, i: int) -> RunRecord:
        return self.records[self.keys[i]]

    def ok(self) -> list[RunRecord]:
        return [self.records[k] for k in self.keys if self.records[k].ok]


def _warm_state(store: RunStore, source_key: str, task: str):
    rec = store.get(source_key)
    if rec is None or not rec.ok:
        raise RunFailed(f"warm start: source run {source_key} is missing or failed")
    layout = SharingLayout.from_dict({"schema": 1, "kind": "taskrel.SharingLayout", **rec.spec["layout"]})
    return layout, store.load_weights(source_key)


def run_spec(suite: Suite, spec: RunSpec, store: RunStore, threads: int | None = None) -> RunRecord:
    """Train one spec and write its record (failed or not) into the store."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    key = spec.key(suite.fingerprint())
    identity = spec.identity(suite.fingerprint())
    try:
        if any(name not in CALLBACKS for name, _ in spec.probes):
            import taskrel.probes  # noqa: F401  (a fresh worker process: register the probes' callbacks)
        callbacks = [CALLBACKS[name](**dict(params)) for name, params in spec.probes]
        for cb, (name, _) in zip(callbacks, spec.probes):
            cb.name = name
        warm = None
        if spec.warm_start:
            src_layout, state = _warm_state(store, *spec.warm_start)
            src = build_model(src_layout, suite)
            src.load_state_dict(state)
            warm = src.encoder_state(spec.warm_start[1])
        res = train(suite, spec.layout, spec.config, spec.seed, callbacks, warm, keep_state=spec.keep_weights)
    except RunFailed as e:
        rec = RunRecord(key, identity, "failed", error=e.reason, failed_step=e.step, label=spec.label)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a user's module may raise anything; record it, go on
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        rec = RunRecord(key, identity, "failed", error=tb, label=spec.label)
    else:
        if spec.keep_weights and res.state is not None:
            store.save_weights(key, res.state)
        rec = RunRecord(
            key,
            identity,
            "ok",
            metrics=res.metrics,
            history=res.history,
            steps=res.steps,
            examples=res.examples,
            seconds=res.seconds,
            n_parameters=res.n_parameters,
            best_epoch=res.best_epoch,
            extras=res.extras,
            label=spec.label,
        )
    store.put(rec)
    return rec


def _job(suite: Suite, spec: RunSpec, store_path: str, threads: int) -> tuple[str, dict[str, Any]]:
    rec = run_spec(suite, spec, RunStore(store_path), threads)
    return rec.key, rec.to_dict()


def _check_plan(suite: Suite, specs: Sequence[RunSpec]) -> None:
    for spec in specs:
        if not isinstance(spec, RunSpec):
            raise TaskrelError(f"plan: {spec!r} is not a RunSpec")
        suite.check_tasks(spec.layout.tasks)
        spec.layout.with_stages(suite.n_stages)
        for name, _ in spec.probes:
            if name not in CALLBACKS:
                raise TaskrelError(f"plan: unknown probe callback {name!r}; known: {sorted(CALLBACKS)}")


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
) -> PlanResult:
    """Train the specs the store lacks (``n_jobs`` at a time) and return every spec's record.

    A run that fails is recorded with its reason; the plan goes on. Specs with a warm start run
    after their source. ``backend="dask"`` sends runs to a dask.distributed scheduler (its
    address in ``scheduler``, or a local cluster when None).
    """
    specs = list(specs)
    _check_plan(suite, specs)
    if backend not in BACKENDS:
        raise TaskrelError(f"execute: unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if n_jobs == 0 or n_jobs < -1:
        raise TaskrelError(f"execute: n_jobs must be >= 1 or -1, got {n_jobs}")
    fp = suite.fingerprint()
    result = PlanResult()
    todo: dict[str, RunSpec] = {}
    for spec in specs:
        key = spec.key(fp)
        result.keys.append(key)
        if key in result.records or key in todo:
            continue
        rec = store.get(key)
        if rec is not None and (rec.ok or not retry_failed):
            result.records[key] = rec
            result.reused += 1
        else:
            todo[key] = spec
    # waves: a warm-started run waits for its source
    waves: list[dict[str, RunSpec]] = []
    pending = dict(todo)
    done = set(result.records)
    while pending:
        wave = {k: s for k, s in pending.items() if not s.warm_start or s.warm_start[0] in done}
        if not wave:
            missing = sorted({s.warm_start[0] for s in pending.values()})
            raise TaskrelError(f"plan: warm-start sources {missing} are neither stored nor in the plan")
        waves.append(wave)
        done |= set(wave)
        pending = {k: s for k, s in pending.items() if k not in wave}

    bar = _progress(len(todo), desc, progress)
    try:
        for wave in waves:
            for key, rec in _run_wave(suite, wave, store, n_jobs, backend, scheduler):
                result.records[key] = rec
                result.trained += 1
                if not rec.ok:
                    result.failed.append(key)
                    bar.write(f"taskrel: run {rec.label or key} failed: {rec.error}", file=sys.stderr)
                bar.update(1)
    finally:
        bar.close()
    for key in result.keys:
        if key not in result.records:  # pragma: no cover - defensive
            raise RuntimeError(f"run {key} produced no record")
    return result


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"taskrel {desc}", unit="run", disable=not enabled or total == 0, file=sys.stderr, dynamic_ncols=True)


def _run_wave(suite: Suite, wave: dict[str, RunSpec], store: RunStore, n_jobs: int, backend: str, scheduler: str | None):
    if n_jobs == 1 and backend != "dask" or backend == "sequential":
        for spec in wave.values():
            rec = run_spec(suite, spec, store)
            yield rec.key, rec
        return
    from joblib import Parallel, delayed, parallel_config

    cores = os.cpu_count() or 1
    workers = cores if n_jobs == -1 else n_jobs
    threads = max(cores // max(workers, 1), 1)
    jobs = (delayed(_job)(suite, spec, str(store.path), threads) for spec in wave.values())
    ctx: Any = contextlib.nullcontext()
    client = None
    if backend == "dask":
        try:
            from dask.distributed import Client
        except ImportError:
            raise TaskrelError("backend 'dask' needs dask.distributed: pip install 'taskrel[dask]'") from None
        client = Client(scheduler) if scheduler else Client(processes=True, n_workers=max(workers, 1), threads_per_worker=1, host="127.0.0.1", dashboard_address=None)
        ctx = parallel_config(backend="dask")
    try:
        with ctx:
            par = Parallel(n_jobs=n_jobs, backend=None if backend == "dask" else backend, return_as="generator_unordered")
            for key, d in par(jobs):
                yield key, RunRecord.from_dict(d)
    finally:
        if client is not None:
            client.close()
