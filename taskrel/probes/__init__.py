"""Probes: measurements of how tasks relate, each returning an :class:`~taskrel.Affinity`."""

from taskrel.probes.base import ProbeSettings, single_task_specs

__all__ = ["ProbeSettings", "single_task_specs"]

# gradient, lookahead and similarity probes (importing gradient registers its "gradient" callback)
from taskrel.probes.gradient import GradientProbe, per_task_gradients  # noqa: E402
from taskrel.probes.lookahead import LookaheadProbe, proposed_update  # noqa: E402
from taskrel.probes.similarity import SimilarityProbe  # noqa: E402

__all__ += ["GradientProbe", "LookaheadProbe", "SimilarityProbe", "per_task_gradients", "proposed_update"]

# transfer and pairwise probes, and group estimates from pairs
from taskrel.probes.pairwise import MeasuredGroups, PairwiseProbe, measure_groups  # noqa: E402
from taskrel.probes.transfer import TransferProbe  # noqa: E402

__all__ += ["MeasuredGroups", "PairwiseProbe", "TransferProbe", "measure_groups"]
