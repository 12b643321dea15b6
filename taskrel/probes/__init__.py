"""Probes: measurements of how tasks relate, each returning an :class:`~taskrel.Affinity`.

Importing this package registers the training callbacks the probes attach to runs (a fresh
worker process imports it before it trains a run that names one).
"""

from taskrel.probes.base import ProbeSettings, single_task_specs
from taskrel.probes.gradient import GradientProbe, per_task_gradients
from taskrel.probes.lookahead import LookaheadProbe, proposed_update
from taskrel.probes.pairwise import MeasuredGroups, PairwiseProbe, measure_groups
from taskrel.probes.similarity import SimilarityProbe
from taskrel.probes.transfer import TransferProbe

__all__ = [
    "GradientProbe",
    "LookaheadProbe",
    "MeasuredGroups",
    "PairwiseProbe",
    "ProbeSettings",
    "SimilarityProbe",
    "TransferProbe",
    "measure_groups",
    "per_task_gradients",
    "proposed_update",
    "single_task_specs",
]
