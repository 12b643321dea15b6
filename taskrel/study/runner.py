"""Run a study: probes, analyses and validation, in order, every run through the store.

A rerun of a study (after a crash, or with more seeds) reuses every stored run: the store
decides what trains. The analyses are cheap and are simply computed again.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.store import RunStore
from taskrel.study.result import StudyResult, safe_name
from taskrel.study.spec import Study, probe_class, validate_study


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"taskrel study: {msg}", file=sys.stderr, flush=True)


def _error_text(e: BaseException) -> str:
    if isinstance(e, TaskrelError):
        return str(e)
    return traceback.format_exception_only(type(e), e)[-1].strip()


def run_study(
    study: Study | str | Path | None,
    store: RunStore | str | Path,
    out: str | Path | None = None,
    n_jobs: int = 1,
    quiet: bool = False,
    suite: Any = None,
    backend: str = "loky",
    device: str | None = None,
    report: bool = True,
) -> StudyResult:
    """Run ``study`` with the runs in ``store``; write the result and report into ``out``.

    ``study`` is a :class:`Study`, the path of a study file, or None for the default study.
    ``suite`` replaces the study's named suite (a user's own :class:`~taskrel.suite.Suite`).
    ``out`` defaults to ``<store>/studies/<study name>``. A probe that fails entirely is
    recorded in the result's ``errors`` and the study goes on; so does an analysis.

    Returns the :class:`StudyResult` (also saved as ``study_result.json`` in ``out`` and in the
    store's ``studies/<name>/``).
    """
    t_start = time.perf_counter()
    if not isinstance(study, Study):
        from taskrel.study.spec import load_study

        study = load_study(study)
    store = store if isinstance(store, RunStore) else RunStore(store)
    suite = validate_study(study, suite)
    tasks = study.task_list(suite)
    if device:
        study.train = {**study.train, "device": device}
    folder = store.path / "studies" / safe_name(study.name)
    out = Path(out) if out is not None else folder
    result = StudyResult(
        study=study.to_dict(),
        suite={**suite.summary(), "tasks": [suite.task(t).to_dict() for t in tasks], "fingerprint": suite.fingerprint()},
        tasks=tasks,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    ctx = _Context(study, suite, tasks, store, n_jobs, quiet, backend, result)
    _say(quiet, f"{study.name!r}: suite {suite.name}, {len(tasks)} tasks, store {store.path}")

    t0 = time.perf_counter()
    fitted = ctx.run_probes()
    result.seconds["probes"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    from taskrel.study import analyses

    analyses.run_all(ctx, fitted)
    result.seconds["analyses"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if study.validation is not None and result.layouts:
        from taskrel.study.validate import validate

        ctx.guard("validation", lambda: validate(ctx))
    result.seconds["validation"] = time.perf_counter() - t0
    result.failed_runs = failed_runs(store, suite.fingerprint(), tasks)
    result.seconds["total"] = time.perf_counter() - t_start

    result.save(folder)
    if out.resolve() != folder.resolve():
        result.save(out)
    if report:
        from taskrel.report import write_report

        write_report(result, out)
        _say(quiet, f"report written to {out / 'report.html'}")
    return result


class _Context:
    """What the parts of a study share while it runs."""

    def __init__(self, study, suite, tasks, store, n_jobs, quiet, backend, result):
        self.study: Study = study
        self.suite = suite
        self.tasks: list[str] = tasks
        self.store: RunStore = store
        self.n_jobs = n_jobs
        self.quiet = quiet
        self.backend = backend
        self.result: StudyResult = result

    def settings(self, seeds: Sequence[int], overrides: dict[str, Any] | None = None):
        from taskrel.probes.base import ProbeSettings

        return ProbeSettings(
            config=self.study.train_config(overrides),
            seeds=list(seeds),
            n_jobs=self.n_jobs,
            backend=self.backend,
            progress=not self.quiet,
        )

    def guard(self, part: str, fn) -> Any:
        """Run one part; on failure record it and go on (KeyboardInterrupt still stops)."""
        try:
            return fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            msg = _error_text(e)
            self.result.errors.append({"part": part, "error": msg})
            _say(self.quiet, f"{part} failed: {msg} (the study goes on)")
            return None

    # ---------------------------------------------------------------- probes
    def run_probes(self) -> dict[str, Any]:
        fitted: dict[str, Any] = {}
        for spec in self.study.probes:
            _say(self.quiet, f"probe {spec.name} ({spec.kind}, seeds {spec.seeds})")
            t0 = time.perf_counter()
            probe = self.guard(f"probe {spec.name}", lambda spec=spec: self._fit_probe(spec))
            info: dict[str, Any] = {"kind": spec.kind, "seeds": spec.seeds, "params": spec.params,
                                    "seconds": time.perf_counter() - t0}
            if probe is None:
                info["error"] = self.result.errors[-1]["error"]
            else:
                fitted[spec.name] = probe
                aff: Affinity = probe.affinity_
                self.result.affinities[spec.name] = aff.to_dict()
                info["cost"] = {"steps": aff.cost.steps, "examples": aff.cost.examples,
                                "seconds": aff.cost.seconds, "runs": aff.cost.runs}
                info["measure"] = aff.measure
                traj = getattr(probe, "trajectory_", None)
                if traj is not None:
                    self.result.trajectories[spec.name] = _trajectory(traj)
            self.result.probes[spec.name] = info
        return fitted

    def _fit_probe(self, spec) -> Any:
        cls = probe_class(spec.kind)
        settings = self.settings(spec.seeds, spec.train)
        try:
            probe = cls(tasks=list(self.tasks), settings=settings, **spec.params)
        except TypeError as e:
            raise TaskrelError(f"probe {spec.name!r}: bad parameters {sorted(spec.params)} ({e})") from None
        probe.fit(self.suite, self.store)
        if not isinstance(getattr(probe, "affinity_", None), Affinity):
            raise TaskrelError(f"probe {spec.name!r}: fit gave no affinity_")
        return probe


def _trajectory(frame) -> dict[str, list]:
    """Gradient cosines over training, one row per (seed, step, pair), source < target."""
    import pandas as pd

    df = pd.DataFrame(frame)
    need = {"seed", "step", "source", "target", "cosine"}
    if not need <= set(df.columns):
        return {}
    order = {t: i for i, t in enumerate(dict.fromkeys(df["source"]))}
    df = df[[order[s] < order.get(t, -1) for s, t in zip(df["source"], df["target"])]]
    return {c: df[c].tolist() for c in ("seed", "step", "source", "target", "cosine")}


def failed_runs(store: RunStore, fingerprint: str, tasks: Sequence[str]) -> list[dict[str, Any]]:
    """Failed records of this suite whose tasks are among the study's."""
    keep = set(tasks)
    out = []
    for rec in store.records():
        if rec.ok or rec.spec.get("suite") != fingerprint or not set(rec.tasks) <= keep:
            continue
        out.append({"key": rec.key, "label": rec.label, "tasks": rec.tasks, "seed": rec.spec.get("seed"),
                    "error": rec.error, "step": rec.failed_step})
    return out


def accepts(fn, name: str) -> bool:
    """Whether callable ``fn`` takes a keyword ``name``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def layout_of_groups(blocks: Sequence[Sequence[str]], tasks: Sequence[str], n_stages: int) -> SharingLayout:
    """Flat groups as a layout, tasks kept in the study's order."""
    order = {t: i for i, t in enumerate(tasks)}
    blocks = sorted((sorted(b, key=order.__getitem__) for b in blocks), key=lambda b: order[b[0]])
    return SharingLayout.groups(blocks, n_stages)
