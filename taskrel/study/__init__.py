"""Studies: :class:`Study` composes probes, analyses and validation; ``fit`` fills ``result_``
with a :class:`StudyResult`. A study file (TOML) describes one: ``Study.from_toml(path)``.

>>> study = Study.from_toml()          # the built-in default study (digits)
>>> study.suite_name(), list(study.named_probes())[:1]
('digits', ['pairwise'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskrel.base import clone
from taskrel.study.checks import check_study, planned_runs
from taskrel.study.result import StudyResult, find_result, safe_name, study_folder
from taskrel.study.running import as_study, run_study
from taskrel.study.study import Clustering, Grouping, Study, Validation, check_toml
from taskrel.study.toml import to_toml
from taskrel.suite import Suite


def from_toml(path: str | Path | None = None, text: str | None = None) -> Study:
    """:meth:`Study.from_toml`.

    >>> study = from_toml(text='name = "x"\\n[suite]\\nname = "planted"\\n[probes.gradient]\\nseeds = 2')
    >>> list(study.named_probes()), study.named_probes()["gradient"].seeds
    (['gradient'], [0, 1])
    """
    return Study.from_toml(path, text)


def from_tables(data: dict[str, Any], source: str = "") -> Study:
    """The Study of a study file already parsed into tables (``tomllib.loads``)."""
    from taskrel.study.toml import first_error, parse_tables

    study, errors = parse_tables(data, Study, source)
    if errors:
        raise first_error(errors)
    return study


def validate_study(study: Study | str | Path | None, suite: Any = None) -> Suite:
    """Check a study against its suite before anything trains; returns the suite."""
    study = as_study(study)
    suite = suite if suite is not None else study.build_suite()
    check_study(study, suite)
    return suite


def load_study(path=None) -> Study:
    """The former name of :func:`from_toml` for a file (None: the built-in default study)."""
    return from_toml(path)


def parse_study(data, source: str = "") -> Study:
    """The former name of :func:`from_toml` for a file's text (or its parsed tables)."""
    return from_toml(text=data) if isinstance(data, str) else from_tables(data, source)


def study_from_spec(study: Study) -> Study:
    """Former step from a parsed file to its Study; the file now parses to the Study itself."""
    return study


__all__ = [
    "Clustering",
    "Grouping",
    "Study",
    "StudyResult",
    "Validation",
    "as_study",
    "check_toml",
    "clone",
    "find_result",
    "from_tables",
    "from_toml",
    "load_study",
    "parse_study",
    "planned_runs",
    "run_study",
    "safe_name",
    "study_from_spec",
    "study_folder",
    "to_toml",
    "validate_study",
]
