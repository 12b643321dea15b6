"""Running a study: :func:`run_study` fits a study (itself, a study file, or the built-in
default) with one :class:`~taskrel.runner.Runner` and saves its result where it belongs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.runner import Runner, as_runner
from taskrel.store import RunStore
from taskrel.study.result import StudyResult, invocation_of, study_folder
from taskrel.study.study import Study


def as_study(study: Study | str | Path | None) -> Study:
    """A :class:`Study` from itself, a study file's path, or None (the built-in default study)."""
    if isinstance(study, Study):
        return study
    return Study.from_toml(study)


def run_study(
    study: Study | str | Path | None,
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
    (``n_jobs``, ``backend``, ``scheduler``, ``retries``) trains every run of the study; a
    ``Runner`` given as ``store`` is used as it is.
    """
    study_file = study if isinstance(study, (str, Path)) else None
    study = as_study(study)
    if device:
        study = study.with_device(device)
    if quiet:
        study = study.copy_with(verbose=False)
    own = not isinstance(store, Runner)
    runner = as_runner(store, n_jobs=n_jobs, backend=backend, scheduler=scheduler, progress=not quiet, retries=retries)
    try:
        result = study.fit(suite, runner).result_
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


__all__ = ["as_study", "run_study"]
