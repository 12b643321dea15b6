"""Candidate networks and what is learned from them (floor 5, under the probes).

:class:`CandidateTable` lists candidate networks with their per-task values; it is read from
files, built from records, estimated from pair runs (:func:`hoa_candidates`) or from an
:class:`~taskrel.Affinity`. :class:`SubsetSurrogate` fits per-task effects to measured tables.
The probes build these tables; the analyses (:mod:`taskrel.analysis`) search them.

>>> from taskrel.tables import CandidateTable
>>> table = CandidateTable([{"tasks": "a", "cost": 1, "a": 1.0}, {"tasks": "a+b", "cost": 1.5, "a": .9, "b": 2.0}])
>>> table.names, table.tasks
(['a', 'a+b'], ['a', 'b'])
"""

from taskrel.tables.candidates import CandidateTable, default_name, hoa_candidates
from taskrel.tables.surrogate import (
    ExtrapolationWarning,
    IdentifiabilityWarning,
    SubsetSurrogate,
    SurrogatePrediction,
)
from taskrel.tables.table_files import TableFiles

__all__ = [
    "CandidateTable",
    "ExtrapolationWarning",
    "IdentifiabilityWarning",
    "SubsetSurrogate",
    "SurrogatePrediction",
    "TableFiles",
    "default_name",
    "hoa_candidates",
]
