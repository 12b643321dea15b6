"""The probe protocol: a probe says what it needs trained and what it makes of the records.

Every probe is a :class:`Probe`. It states:

* :meth:`Probe.plan` ``(suite) -> Plan``: the runs it needs (``plan.specs``; nothing trains)
  and its own index of them (``plan.index``);
* :meth:`Probe.measure` ``(suite, plan, records, store) -> {measure: per-seed matrices}``: what
  it reads from the records, which arrive aligned with ``plan.specs``. A failed run leaves NaN;
* optionally :meth:`Probe.follow_up` ``(suite, plan, trained, store) -> Plan | None``: a second
  stage chosen from the first stage's runs (the calibrated probe's pairs), trained by the
  same ``fit``; ``measure`` then receives ``plan.then(second)`` and the records of both;
* :meth:`Probe.candidates`: a :class:`~taskrel.tables.CandidateTable` of group values, or None
  for a probe that makes no table (the default).

:meth:`Probe.fit` is written once, here: it plans (once), has a :class:`~taskrel.runner.Runner`
train what the store lacks, measures, and averages over seeds with :func:`affinity_from_seeds`
(one NaN-aware mean, one ``ddof``), recording ``records_``, ``failed_``, ``trained_``, the cost
and ``affinity_``. Failed runs never block the others: an entry no seed measured is NaN, marked
missing in the affinity, and ``meta["failed"]`` lists every failed run with its tasks, the
task that diverged and the stored reason (:meth:`~taskrel.affinity.Affinity.complete` gives
the tasks that remain complete); a probe may train a replacement for a failed run
(:meth:`Probe.replacement`, :mod:`taskrel.probes.partial`). A probe none of whose runs gave a
value is an error. Probes are scikit-learn style estimators: parameters in the constructor,
``get_params`` / ``set_params``, learned attributes ending in ``_``, ``fit`` returns ``self``.
Each probe class registers itself by its ``kind`` (:data:`PROBES`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from taskrel.affinity import Affinity, Cost
from taskrel.base import Estimator
from taskrel.errors import TaskrelError
from taskrel.plans import Plan, check_seeds, group_spec, single_task_specs
from taskrel.probes.partial import replace_failed
from taskrel.runner import Runner, as_runner
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import TrainConfig

PROBES: dict[str, type[Probe]] = {}


def register_probe(kind: str):
    """Class decorator: register a probe class under ``kind`` (the name studies use)."""

    def deco(cls: type[Probe]) -> type[Probe]:
        cls.kind = kind
        PROBES[kind] = cls
        return cls

    return deco


def cost_of(records: Iterable[RunRecord]) -> Cost:
    """Total compute of some runs (each counted once)."""
    seen: dict[str, RunRecord] = {r.key: r for r in records}
    c = Cost()
    for r in seen.values():
        c = c + Cost(r.steps, r.examples, r.seconds, 1)
    return c


def check_probe_tasks(suite: Suite, tasks: Sequence[str] | None, minimum: int = 2) -> list[str]:
    names = suite.check_tasks(tasks) if tasks is not None else suite.task_names
    if len(names) < minimum:
        raise TaskrelError(f"probe: needs at least {minimum} tasks, got {names}")
    return names


def nan_mean_std(per_seed: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std (ddof=1) over axis 0 ignoring NaN, and how many values each entry has.

    An entry with one value has std 0; one with none is NaN in both.

    >>> m, s, c = nan_mean_std([[1.0, np.nan], [3.0, np.nan]])
    >>> m.tolist()[0], round(float(s[0]), 3), c.tolist(), bool(np.isnan(m[1]))
    (2.0, 1.414, [2, 0], True)
    """
    ps = np.asarray(per_seed, dtype=np.float64)
    count = np.sum(~np.isnan(ps), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # entries with fewer than two values
        mean = np.nanmean(ps, axis=0)
        std = np.nanstd(ps, axis=0, ddof=1)
    std = np.where(count > 1, std, np.where(count == 1, 0.0, np.nan))
    return mean, std, count


def affinity_from_seeds(tasks: list[str], per_seed: Any, what: str = "probe", **kwargs: Any) -> Affinity:
    """The affinity of per-seed matrices in which a failed run left NaN: the mean over the
    seeds each entry has (:func:`nan_mean_std`); ``meta["missing"]`` lists the entries short
    of a seed, with how many seeds they lack. An entry no seed has is NaN, marked missing in
    the affinity (``what`` names the probe in errors).

    >>> a = affinity_from_seeds(["x", "y"], np.array([[[0, 1], [2, 0]], [[0, np.nan], [4, 0]]]), "demo")
    >>> a.values.tolist(), a.meta["missing"], a.missing
    ([[0.0, 1.0], [3.0, 0.0]], [['x', 'y', 1]], None)
    >>> b = affinity_from_seeds(["x", "y"], np.array([[[0, np.nan], [2, 0]]]), "demo")
    >>> b.missing.tolist(), b.complete()[1]
    ([[False, True], [False, False]], {'y': 'no successful run for 1 of its 2 affinity entries'})
    """
    ps = np.asarray(per_seed, dtype=np.float64)
    if ps.ndim not in (3, 4) or ps.shape[0] < 1:
        raise TaskrelError(f"{what}: per-seed matrices must have shape (seeds, [stages,] n, n), got {ps.shape}")
    mean, std, count = nan_mean_std(ps)
    meta = dict(kwargs.pop("meta", None) or {})
    short = np.argwhere(count < ps.shape[0])
    if len(short) or np.isnan(ps).any():
        meta["missing"] = [[tasks[i[-2]], tasks[i[-1]], int(ps.shape[0] - count[tuple(i)])] for i in short]
    none = count == 0
    return Affinity(tasks, mean, std=std, n_seeds=ps.shape[0], per_seed=ps, meta=meta,
                    missing=none if none.any() else None, **kwargs)


def failure_list(records: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """The failed runs as plain data: ``run`` (label or key), ``tasks``, ``failed_task`` (the
    task whose loss diverged, when known), ``step`` and ``error`` (the stored reason)."""
    return [{"run": r.label or r.key, "tasks": r.tasks, "failed_task": r.failed_task, "step": r.failed_step,
             "error": r.error} for r in records if not r.ok]


@dataclass
class Trained:
    """The records of a trained :class:`~taskrel.plans.Plan`.

    ``records`` are aligned with the plan's specs (a replacement in place of a failed run),
    ``every`` holds every distinct record used (failed ones included), ``trained`` counts the
    runs trained here and ``replaced`` lists the replacements (:mod:`taskrel.probes.partial`).
    """

    records: list[RunRecord]
    every: list[RunRecord] = field(default_factory=list)
    trained: int = 0
    replaced: list[dict[str, Any]] = field(default_factory=list)

    def __add__(self, other: Trained) -> Trained:
        seen = {r.key: r for r in self.every}
        for r in other.every:
            seen.setdefault(r.key, r)
        return Trained(self.records + other.records, list(seen.values()), self.trained + other.trained,
                       self.replaced + other.replaced)


class Probe(Estimator):
    """Base of every probe: the estimator plumbing and the one :meth:`fit`.

    A subclass defines ``__init__`` (storing its parameters unchanged, ``tasks``,
    ``config`` and ``seeds`` among them), :meth:`plan`, :meth:`measure`, and optionally
    :meth:`check`, :meth:`follow_up`, :meth:`candidates`, :meth:`meta` and :meth:`cost`.
    """

    kind: ClassVar[str] = ""
    # extra meta of some measures (for example their direction), by measure name
    measure_meta: ClassVar[dict[str, dict[str, Any]]] = {}

    # ------------------------------------------------------------------ protocol
    def check(self, suite: Suite) -> None:
        """Check the parameters against the suite (a TaskrelError naming the value); no training."""

    def plan(self, suite: Suite) -> Plan:  # pragma: no cover - interface
        """The runs this probe needs on ``suite`` (nothing trains), with its index of them."""
        raise NotImplementedError

    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, Any]:  # pragma: no cover
        """Per-seed matrices by name (the first is ``affinity_``, all are ``affinities_``; see
        :meth:`measure_name`); NaN where a run failed. A value may instead be a finished
        :class:`~taskrel.affinity.Affinity` (its cost and meta as the probe made them).

        ``records`` are aligned with ``plan.specs``. A probe may set further learned attributes.
        """
        raise NotImplementedError

    def follow_up(self, suite: Suite, plan: Plan, trained: Trained, store: RunStore) -> Plan | None:
        """A second stage chosen from the first stage's runs, or None (the default).

        ``trained``: what :meth:`train` made of ``plan`` (``trained.records`` aligned with its
        specs; the replacements and counts too). :meth:`fit` trains the second stage on the same
        runner; :meth:`measure` then receives ``plan.then(second)`` and the records of both
        stages (:meth:`~taskrel.plans.Plan.split`).
        """
        return None

    def candidates(self, max_size: int | None = None, split: str = "val", cost: Any = 1.0,
                   tasks: Sequence[str] | None = None) -> Any:
        """Group values as a :class:`~taskrel.tables.CandidateTable` (groups up to ``max_size``
        of ``tasks``, default all; ``cost`` per network), or None: this probe makes no table
        (the default; the grouping search then builds one from the affinity)."""
        return None

    def meta(self) -> dict[str, Any]:
        """What the affinity records about how it was measured (besides seeds and config)."""
        return {}

    def measure_name(self, key: str) -> str:
        """The ``measure`` of the affinity under ``key`` in :meth:`measure`'s result."""
        return key

    def cost(self, records: Sequence[RunRecord]) -> Cost:
        """The compute of the runs this probe used (each run once)."""
        return cost_of(records)

    def replacement(self, suite: Suite, spec: RunSpec, record: RunRecord) -> RunSpec | None:
        """The run to train instead of a failed one, or None (the default: its entries stay
        NaN). Probes whose one joint run holds every task return that run without the task
        that diverged (:func:`~taskrel.probes.partial.without_failed_task`); :meth:`measure`
        then reads a record holding fewer tasks (see :mod:`taskrel.probes.partial`)."""
        return None

    # ------------------------------------------------------------------ helpers
    def task_names(self, suite: Suite) -> list[str]:
        return check_probe_tasks(suite, self.tasks)

    def train_config(self) -> TrainConfig:
        cfg = self.config if self.config is not None else TrainConfig()
        if not isinstance(cfg, TrainConfig):
            raise TaskrelError(f"{self.kind} probe: config must be a TrainConfig, got {cfg!r}")
        return cfg

    def seed_list(self) -> list[int]:
        return check_seeds(self.seeds, f"{self.kind} probe")

    def train(self, suite: Suite, runner: Runner, plan: Plan, desc: str = "") -> Trained:
        """Train what the store lacks of ``plan`` on ``runner``, a replacement for each failed
        run the probe offers one for (:meth:`replacement`); the records, aligned with the plan."""
        first = runner.run(suite, plan.specs, desc=f"{self.kind} probe{desc}")
        records, every, again, replaced = replace_failed(
            lambda spec, rec: self.replacement(suite, spec, rec),
            lambda redo: runner.run(suite, redo, desc=f"{self.kind} probe (without the tasks that diverged)"),
            plan.specs, first)
        return Trained(records, every, first.trained + again, replaced)

    # ------------------------------------------------------------------ fit
    def fit(self, suite: Suite, runner: Runner | RunStore | str | Path | None = None, plan: Plan | None = None) -> Probe:
        """Train what the store lacks, then measure. Returns ``self``.

        ``runner``: a :class:`~taskrel.runner.Runner`, or a store (then a default runner).
        ``plan``: this probe's :meth:`plan` on ``suite`` when the caller already made it (a
        study plans each probe once, to check its run budget and queue its runs); None: planned
        here, once. A :meth:`follow_up` stage, if the probe has one, is trained on the same runner. Runs that failed leave NaN in their seed's matrix; an entry with at
        least one successful seed is averaged over those, an entry with none is NaN and marked
        missing (``failed_`` and ``meta["failed"]`` list the failures).
        """
        if runner is None:
            raise TaskrelError(f"{self.kind} probe: fit(suite, runner) needs a runner: a taskrel.Runner, "
                               f"a RunStore or a store directory (e.g. fit(suite, '.taskrel/store'))")
        self.task_names(suite)
        self.check(suite)
        if plan is None:
            plan = self.plan(suite)
        elif not isinstance(plan, Plan):
            raise TaskrelError(f"{self.kind} probe: fit's plan must be the Plan that {type(self).__name__}.plan(suite) "
                               f"returns (or None), got {type(plan).__name__}")
        own = not isinstance(runner, Runner)
        try:
            runner = as_runner(runner)
        except TaskrelError:
            raise TaskrelError(f"{self.kind} probe: fit needs a Runner or a RunStore, got {type(runner).__name__}") from None
        try:
            done = self.train(suite, runner, plan)
            second = self.follow_up(suite, plan, done, runner.store)
            if second is not None:
                done = done + self.train(suite, runner, second, " (follow-up)")
                plan = plan.then(second)
        finally:
            if own:
                runner.close()
        return self.conclude(suite, plan, done, runner.store)

    def conclude(self, suite: Suite, plan: Plan, done: Trained, store: RunStore) -> Probe:
        """What :meth:`fit` does once ``plan`` is trained: record the runs, measure, average
        over seeds. Returns ``self``. (A probe that builds on another one's trained plan, as the
        calibrated probe does, concludes that one with it.)"""
        tasks = self.task_names(suite)
        self.records_ = done.every
        self.failed_ = [r for r in self.records_ if not r.ok]
        self.trained_ = done.trained
        self.replaced_ = done.replaced
        self.tasks_ = tasks
        self.config_ = self.train_config()
        t0 = time.perf_counter()
        per_seed = self.measure(suite, plan, done.records, store)
        measure_seconds = time.perf_counter() - t0  # this invocation's; the runs' are their records'
        cost = self.cost(self.records_) + Cost(seconds=measure_seconds)
        meta = {"probe": self.kind, "seeds": self.seed_list(), "config": self.config_.to_dict(),
                "measure_seconds": measure_seconds,
                "failed": failure_list(self.failed_), **({"replaced": self.replaced_} if self.replaced_ else {}),
                **self.meta()}
        self.affinities_ = {}
        for name, ps in per_seed.items():
            self.affinities_[name] = ps if isinstance(ps, Affinity) else self._averaged(suite, tasks, name, ps, cost, meta)
        self.affinity_ = next(iter(self.affinities_.values()))
        return self

    def _averaged(self, suite: Suite, tasks: list[str], name: str, ps: Any, cost: Cost, meta: dict[str, Any]) -> Affinity:
        ps = np.asarray(ps, dtype=np.float64)
        if np.isnan(ps[..., ~np.eye(len(tasks), dtype=bool)]).all():  # not one pair measured
            reason = self.failed_[0].error if self.failed_ else "no probe step gave a value"
            raise TaskrelError(f"{self.kind} probe: every run failed; first reason: {reason}")
        return affinity_from_seeds(
            tasks, ps, f"{self.kind} probe", measure=self.measure_name(name), cost=cost,
            meta={**meta, **self.measure_meta.get(self.measure_name(name), {})},
            stages=list(suite.stage_names) if ps.ndim == 4 else None,
        )


__all__ = [
    "PROBES",
    "Plan",
    "Probe",
    "Trained",
    "affinity_from_seeds",
    "check_probe_tasks",
    "check_seeds",
    "cost_of",
    "failure_list",
    "group_spec",
    "nan_mean_std",
    "register_probe",
    "single_task_specs",
]
