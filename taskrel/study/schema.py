"""The schema of study result files, and reading each field of a result from the plain form
any readable schema stored.

- schema 1: written before checksums and the stored decision;
- schema 2: a SHA-256 checksum; every part a plain dict, the validation a list of row objects;
- schema 3 (written now): the same plain forms, the validation as one list per column.

A field read here becomes its typed part (:mod:`taskrel.study.findings`,
:mod:`taskrel.study.validated`), whatever schema stored it.
"""

from __future__ import annotations

from typing import Any

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.study.findings import (
    AuxiliaryRanking,
    Clustering,
    FailedRun,
    GroupingFront,
    Invocation,
    ProbeSummary,
    Problem,
    Stability,
    Trajectory,
)
from taskrel.study.validated import StudyLayout, ValidationRow, validation_cost

RESULT_SCHEMA = 3
READABLE_SCHEMAS = (1, 2, 3)


def check_schema(d: Any) -> int:
    """The schema of a result's plain form; a TaskrelError for anything this taskrel cannot read.

    >>> check_schema({"study": {}, "tasks": [], "schema": 2})
    2
    """
    if not isinstance(d, dict) or "study" not in d or "tasks" not in d:
        raise TaskrelError("study result: not a taskrel study result (fields 'study' and 'tasks' missing)")
    schema = d.get("schema", RESULT_SCHEMA)
    if schema not in READABLE_SCHEMAS:
        raise TaskrelError(f"study result: schema {schema!r} is not supported (this taskrel reads "
                           f"{', '.join(map(str, READABLE_SCHEMAS))}); rerun the study with this version")
    return int(schema)


def _rows(v: Any) -> list[ValidationRow]:
    if isinstance(v, dict):  # schema 3: one list per column
        v = [dict(zip(v, values)) for values in zip(*v.values())]
    return [ValidationRow.from_dict(r) for r in v]


def _optional(cls: Any) -> Any:
    return lambda v: None if v is None else cls.from_dict(v)


def _each(cls: Any) -> Any:
    return lambda v: {k: cls.from_dict(x) for k, x in v.items()}


READERS = {
    "affinities": lambda v: {k: a if isinstance(a, Affinity) else Affinity.from_dict(a) for k, a in v.items()},
    "probes": _each(ProbeSummary), "trajectories": _each(Trajectory), "clustering": _optional(Clustering), "stability": _optional(Stability),
    "auxiliary": lambda v: [AuxiliaryRanking.from_dict(x) for x in v], "grouping": _optional(GroupingFront),
    "layouts": _each(StudyLayout), "validation": _rows, "failed_runs": lambda v: [FailedRun.from_dict(x) for x in v],
    "validation_cost": validation_cost, "errors": lambda v: [Problem.from_dict(x) for x in v],
    "invocation": lambda v: Invocation.from_dict(v or {}),
}


def read_field(name: str, value: Any) -> Any:
    """A study result's field ``name`` as its typed part, from its plain form (any schema) or
    from the part itself (returned as it is).

    >>> read_field("validation", {"layout": ["x"], "seed": [0], "task": ["a"], "test_loss": [1.0],
    ...                           "test_metric": [None], "val_loss": [None], "n_parameters": [3], "status": ["ok"]})
    [ValidationRow(layout='x', seed=0, task='a', test_loss=1.0, test_metric=None, val_loss=None, n_parameters=3, status='ok')]
    """
    reader = READERS.get(name)
    return value if reader is None else reader(value)


__all__ = ["READABLE_SCHEMAS", "READERS", "RESULT_SCHEMA", "check_schema", "read_field"]
