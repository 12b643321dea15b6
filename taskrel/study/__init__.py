"""Studies: one file names a suite, probes, analyses and validation; ``run_study`` runs it.

>>> study = load_study()          # the built-in default study (digits)
>>> study.suite, [p.name for p in study.probes][:1]
('digits', ['pairwise'])
"""

from taskrel.study.result import StudyResult, find_result, safe_name
from taskrel.study.runner import run_study
from taskrel.study.spec import (
    PROBE_KINDS,
    ProbeSpec,
    Study,
    load_study,
    parse_study,
    validate_study,
)

__all__ = [
    "PROBE_KINDS",
    "ProbeSpec",
    "Study",
    "StudyResult",
    "find_result",
    "load_study",
    "parse_study",
    "run_study",
    "safe_name",
    "validate_study",
]
