"""``taskrel study --check FILE``: every error of a study file at once, and the runs it plans.

The errors come from the study's own :func:`taskrel.study.check_toml` (each names its TOML
path). A file without errors is planned (:func:`taskrel.study.planned_runs`): the probes' runs
(distinct over probes, since the store trains each once), and how many a store already holds.
Nothing trains.

>>> lint = lint_study(text='name = "x"\\n[suite]\\nname = "plantd"\\n')
>>> lint.errors
["study: field 'suite.name': unknown suite 'plantd'...did you mean 'planted'..."]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskrel.cli.names import did_you_mean, suites
from taskrel.errors import TaskrelError


@dataclass
class StudyLint:
    """What ``taskrel study --check`` found: the errors, or the plan of a valid file."""

    errors: list[str] = field(default_factory=list)
    name: str | None = None
    suite: str | None = None
    tasks: list[str] | None = None
    probe_runs: dict[str, int] | None = None  # probe name -> runs in its plan
    runs: int | None = None  # distinct runs over every probe
    stored: int | None = None  # of those, already in the store given
    validation_seeds: list[int] | None = None

    def lines(self) -> list[str]:
        """The report, one line each."""
        out = [f"  error: {e}" for e in self.errors]
        if self.runs is not None:
            per = ", ".join(f"{k} {v}" for k, v in self.probe_runs.items())
            held = f"; {self.stored} of them already in the store" if self.stored is not None else ""
            out.append(f"  plan: suite {self.suite}, {len(self.tasks)} tasks; {self.runs} probe runs ({per}){held}")
            if self.validation_seeds:
                out.append(f"  then validation: each compared layout trained with {len(self.validation_seeds)} seed(s) "
                           "(how many layouts depends on the probes' answer)")
        return out


def _explain(message: str) -> str:
    found = re.search(r"unknown suite '([^']*)'", message)
    if found and "did you mean" not in message:
        return message + did_you_mean(found.group(1), suites())
    return message


def lint_study(path: str | Path | None = None, store: str | Path | None = None, text: str | None = None) -> StudyLint:
    """Every error of the study file ``path`` (or its ``text``; neither: the built-in study),
    and its planned runs when it has none; ``store`` counts the runs already done."""
    from taskrel.study import check_toml, from_toml

    lint = StudyLint()
    try:
        study = from_toml(path, text=text)
        suite = study.build_suite()
    except TaskrelError:
        study = suite = None  # check_toml lists this error with every other
    lint.errors = [_explain(e) for e in check_toml(path, text=text, suite=suite)]
    if not lint.errors and study is not None and suite is not None:
        _plan(lint, study, suite, store)
    return lint


def _plan(lint: StudyLint, study: Any, suite: Any, store: str | Path | None) -> None:
    """The runs the probes plan (:func:`taskrel.study.planned_runs`), and how many ``store`` holds."""
    from taskrel.study import planned_runs

    plan = planned_runs(study, suite, store)
    lint.name, lint.suite = study.name, suite.name
    lint.tasks = list(study.task_list(suite))
    lint.probe_runs, lint.runs, lint.stored = plan["probes"], plan["runs"], plan["stored"]
    v = study.validation
    lint.validation_seeds = None if v is None else list(v.seeds)


__all__ = ["StudyLint", "lint_study"]
