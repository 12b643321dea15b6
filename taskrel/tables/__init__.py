"""Candidate networks and what is learned from them (floor 5, under the probes).

:class:`CandidateTable` lists candidate networks with their per-task values; it is read from
files, built from records, estimated from pair runs (:func:`hoa_candidates`) or from an
:class:`~taskrel.Affinity`. :class:`SubsetSurrogate` fits per-task effects to measured tables. Group-value models
(:mod:`taskrel.tables.group_model`: any group on demand, no enumeration) come from a fitted
estimator's ``group_model()`` (:class:`GroupValues`); :class:`CorrectedModel` lets measured
groups correct a cheap estimate; :func:`most_uncertain` proposes the groups to measure next.
The probes build these tables; the analyses (:mod:`taskrel.analysis`) search them.

>>> from taskrel.tables import CandidateTable
>>> table = CandidateTable([{"tasks": "a", "cost": 1, "a": 1.0}, {"tasks": "a+b", "cost": 1.5, "a": .9, "b": 2.0}])
>>> table.names, table.tasks
(['a', 'a+b'], ['a', 'b'])
"""

from taskrel.tables.active import most_uncertain
from taskrel.tables.candidates import CandidateTable, default_name
from taskrel.tables.combined import CorrectedModel
from taskrel.tables.formats import TableFiles
from taskrel.tables.group_model import GroupValueModel, check_model
from taskrel.tables.group_values import GroupValues
from taskrel.tables.hoa import hoa_candidates
from taskrel.tables.surrogate import (
    ExtrapolationWarning,
    IdentifiabilityWarning,
    SubsetSurrogate,
    SurrogatePrediction,
)

__all__ = [
    "CandidateTable",
    "CorrectedModel",
    "GroupValueModel",
    "GroupValues",
    "ExtrapolationWarning",
    "IdentifiabilityWarning",
    "SubsetSurrogate",
    "SurrogatePrediction",
    "TableFiles",
    "check_model",
    "default_name",
    "hoa_candidates",
    "most_uncertain",
]
