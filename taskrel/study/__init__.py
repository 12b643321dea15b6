"""Studies: :class:`Study` composes probes, analyses and validation; ``fit`` gives a
:class:`StudyResult`. A study file (TOML) describes one: ``Study.from_toml(path)``.

>>> study = Study.from_toml()          # the built-in default study (digits)
>>> study.suite, list(study.named_probes())[:1]
('digits', ['pairwise'])
"""

from taskrel.study.context import clone
from taskrel.study.estimator import Study, Validation, study_from_spec
from taskrel.study.result import StudyResult, find_result, safe_name, study_folder
from taskrel.study.runner import as_study, run_study, validate_study
from taskrel.study.spec import ProbeSpec, StudySpec, load_study, parse_study

__all__ = [
    "ProbeSpec",
    "Study",
    "StudyResult",
    "StudySpec",
    "Validation",
    "as_study",
    "clone",
    "find_result",
    "load_study",
    "parse_study",
    "run_study",
    "safe_name",
    "study_folder",
    "study_from_spec",
    "validate_study",
]
