"""TAG lookahead affinity (Fifty et al. 2021): how a step on one task changes another's loss.

At a probe step with shared parameters ``theta`` and batch ``B``, for every source task ``i``
the shared parameters take a step on task ``i``'s gradient alone, ``theta_i = theta -
delta_i``, and every target's loss is measured again:

    Z(i -> j) = 1 - L_j(theta_i, B) / L_j(theta, B)

positive when a step on ``i`` lowers ``j``'s loss. Task heads and every other parameter stay as
they are. Task ``i``'s gradient is scaled by its loss weight, as in the training step.

* ``step="plain"`` (default, TAG's definition): ``delta_i = eta * g_i``, with ``eta`` the
  optimizer's learning rate at that step unless given.
* ``step="optimizer"``: ``delta_i`` is the step the run's optimizer would take on ``g_i`` alone
  with its current state (:func:`taskrel.gradients.proposed_update`). With Adam the stored
  moments make up most of every source's step, so Z then mostly measures the shared momentum.

Stochastic layers (dropout, ...): with ``randomness="same"`` (default) the loss before the step
and every loss after it are computed in training mode from one random state, so every shifted
model sees the same dropout masks as the base and Z measures the step, not the draw of the
masks; ``randomness="eval"`` computes them all in eval mode instead. ``holdout`` measures the
losses on rows of the probe batch that the gradients did not see.

``values[i, j]`` of :class:`LookaheadProbe` is ``Z(i -> j)`` averaged over probe steps. The maths
is in :mod:`taskrel.gradients`, shared with the gradient probe and
:class:`taskrel.AffinityTracker`.

Failed runs: as for the gradient probe (the same joint run), a run whose loss diverged on one
task is trained again without it; that task's entries are NaN, marked missing, and
``meta["replaced"]`` records the replacement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from taskrel.gradients import proposed_update
from taskrel.plans import Plan
from taskrel.probes.base import register_probe
from taskrel.probes.gradient import LookaheadOptions, TrajectoryProbe
from taskrel.probes.trajectory import absent, block_mean
from taskrel.store import RunRecord, RunStore
from taskrel.suite import Suite
from taskrel.train import TrainConfig


@register_probe("lookahead")
class LookaheadProbe(TrajectoryProbe):
    """TAG inter-task affinity: ``values[i, j]`` = mean of ``Z(i -> j)`` over probe steps.

    Uses the same stored all-shared run as :class:`~taskrel.probes.GradientProbe` with the same
    ``every``, ``method``, config, seeds and options (the run computes both).

    Parameters
    ----------
    tasks, every, method, window, phase, trajectory, config, seeds : as for
        :class:`~taskrel.probes.GradientProbe`.
    step, eta, holdout, randomness : see :class:`~taskrel.probes.gradient.LookaheadOptions`
        (defaults: TAG's plain step with the optimizer's learning rate, the same batch, the
        same random state for every loss).

    Attributes
    ----------
    affinity_ : the lookahead affinity (mean over probe steps; mean/std over seeds).
    trajectory_ : DataFrame with columns seed, step, source, target, lookahead.
    records_ : the stored runs used.

    The cost counts the training, the per-task gradients and the shifted forward passes
    (``n`` per probe step); ``meta`` splits the seconds.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> probe = LookaheadProbe(suite.task_names[:3], every=5, config=TrainConfig(epochs=2, lr=3e-3, batch_size=32))
    >>> probe = probe.fit(suite, RunStore(tempfile.mkdtemp()))
    >>> probe.affinity_.measure, probe.affinity_.values.shape
    ('lookahead', (3, 3))
    >>> bool(probe.affinity_.values[0, 0] > 0)   # a step on a task lowers its own loss
    True
    """

    cost_parts = ("gradient", "lookahead")

    def __init__(self, tasks: Sequence[str] | None = None, every: int = 10, method: str = "batched", window: tuple[int, int] | None = None, config: TrainConfig | None = None, seeds: Sequence[int] = (0,), step: str = "plain", eta: float | None = None, holdout: float = 0.0, randomness: str = "same", trajectory: str = "summary", phase: str = "all"):
        self.tasks = tasks
        self.phase = phase
        self.trajectory = trajectory
        self.step = step
        self.eta = eta
        self.holdout = holdout
        self.randomness = randomness
        self.window = window
        self.every = every
        self.method = method
        self.config = config
        self.seeds = seeds

    def options(self) -> LookaheadOptions:
        return LookaheadOptions(self.step, self.eta, self.holdout, self.randomness)

    def check(self, suite: Suite) -> None:
        super().check(suite)
        self.options()

    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, np.ndarray]:
        """Per seed, ``Z(i -> j)`` averaged over the probe steps in the window."""
        import pandas as pd

        n = len(self.task_names(suite))
        trs, rows = self.trajectories(suite, records, "lookahead")
        per_seed = [np.full((n, n), np.nan) if tr is None else absent(block_mean(tr, "lookahead"), tr) for tr in trs]
        self.trajectory_ = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["seed", "step", "source", "target", "lookahead"])
        return {"lookahead": np.stack(per_seed)}


__all__ = ["LookaheadOptions", "LookaheadProbe", "proposed_update"]
