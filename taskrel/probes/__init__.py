"""Probes: measurements of how tasks relate, each returning an :class:`~taskrel.Affinity`.

Every probe follows one protocol (:class:`~taskrel.probes.base.Probe`: ``plan`` returning a
:class:`~taskrel.plans.Plan`, ``measure`` receiving it, an optional ``follow_up`` stage,
``candidates`` (None for probes that make no table), one ``fit``) and registers itself by kind in :data:`PROBES`, the one registry of probes.
Importing this package imports every probe module, so the registry is complete, and the
training callbacks the probes attach to runs are registered by name.

>>> {"pairwise", "transfer", "gradient", "lookahead", "similarity"} <= set(PROBES)
True
>>> probe_class("pairwise").__name__
'PairwiseProbe'
"""

from taskrel.errors import TaskrelError
from taskrel.gradients import per_task_gradients
from taskrel.probes.base import (
    PROBES,
    Plan,
    Probe,
    affinity_from_seeds,
    register_probe,
    single_task_specs,
)
from taskrel.probes.calibrated import CalibratedProbe
from taskrel.probes.gradfeature import GradFeatureProbe
from taskrel.probes.gradient import GradientProbe
from taskrel.probes.lookahead import LookaheadProbe, proposed_update
from taskrel.probes.pairwise import MeasuredGroups, PairwiseProbe, measure_groups
from taskrel.probes.prediction import PredictionProbe
from taskrel.probes.similarity import SimilarityProbe
from taskrel.probes.surrogate import SurrogateProbe
from taskrel.probes.transfer import TransferProbe


def probe_class(kind: str) -> type[Probe]:
    """The probe class registered as ``kind`` (a TaskrelError listing the kinds if none)."""
    if kind not in PROBES:
        raise TaskrelError(f"unknown probe kind {kind!r}; known kinds are {sorted(PROBES)}")
    return PROBES[kind]


__all__ = [
    "PROBES",
    "CalibratedProbe",
    "GradFeatureProbe",
    "GradientProbe",
    "LookaheadProbe",
    "MeasuredGroups",
    "PairwiseProbe",
    "PredictionProbe",
    "Plan",
    "Probe",
    "SimilarityProbe",
    "SurrogateProbe",
    "TransferProbe",
    "affinity_from_seeds",
    "measure_groups",
    "per_task_gradients",
    "probe_class",
    "proposed_update",
    "register_probe",
    "single_task_specs",
]
