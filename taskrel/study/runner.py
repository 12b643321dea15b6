"""``run_study``: a study file (or spec) run on a store, its result saved next to its runs.

A rerun of a study (after a crash, or with more seeds) reuses every stored run: the store
decides what trains. The analyses are cheap and are simply computed again. Writing the
report is the report module's job (``taskrel.report.write_report(result, out)``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.runner import Runner
from taskrel.store import RunStore
from taskrel.study.checks import check_study
from taskrel.study.context import clone
from taskrel.study.estimator import Study, study_from_spec
from taskrel.study.result import StudyResult, invocation_of, study_folder
from taskrel.study.spec import StudySpec, load_study


def as_study(study: Study | StudySpec | str | Path | None) -> Study:
    """A :class:`Study` from itself, a parsed study file, a study file's path, or None (the
    built-in default study)."""
    if isinstance(study, Study):
        return study
    return study_from_spec(study if isinstance(study, StudySpec) else load_study(study))


def run_study(
    study: Study | StudySpec | str | Path | None,
    store: Runner | RunStore | str | Path,
    out: str | Path | None = None,
    n_jobs: int = -1,
    quiet: bool = False,
    suite: Any = None,
    backend: str = "loky",
    device: str | None = None,
    scheduler: str | None = None,
    retries: int = 0,
) -> StudyResult:
    """Fit ``study`` with the runs in ``store``; save the result in ``out`` and in the store.

    ``suite`` replaces the study's named suite (a user's own :class:`~taskrel.suite.Suite`).
    ``out`` defaults to ``<store>/studies/<study folder>`` (:func:`~taskrel.study.result.study_folder`:
    one folder per study name). A store that cannot be written (read-only, all its runs
    finished) is only read: the result goes to ``out``. One :class:`~taskrel.runner.Runner`
    (``n_jobs``, ``backend``, ``scheduler``, ``retries``) trains every run of the study;
    a ``Runner`` given as ``store`` is used as it is.
    """
    study_file = study if isinstance(study, (str, Path)) else None
    study = as_study(study)
    if device:
        study = study.with_device(device)
    if quiet:
        study = clone(study, verbose=False)
    own = not isinstance(store, Runner)
    runner = store if isinstance(store, Runner) else Runner(store, n_jobs, backend, scheduler, not quiet, retries)
    try:
        result = study.fit(suite, runner)
    finally:
        if own:
            runner.close()
    folder = runner.store.path / "studies" / study_folder(study.name)
    result.invocation = invocation_of(study_file, runner.store.path, out if out is not None else folder)
    if out is not None:
        result.save(out)
    if out is None or Path(out).resolve() != folder.resolve():
        try:
            result.save(folder)
        except OSError as e:  # a read-only store: its runs were read, the result went to out
            if out is None:
                raise TaskrelError(f"study: cannot write the result into the store ({folder}: {e.strerror}); "
                                   "pass an output folder (--out) you can write") from None
            if not quiet:
                print(f"taskrel study: the store is not writable ({e.strerror}); the result is in {out} only",
                      file=sys.stderr)
    return result


def validate_study(spec: StudySpec, suite=None):
    """Check a study file against its suite before anything trains; returns the suite."""
    study = study_from_spec(spec)
    suite = suite if suite is not None else study.build_suite()
    check_study(study, suite)
    return suite


__all__ = ["as_study", "run_study", "validate_study"]
