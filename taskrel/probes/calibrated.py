"""A one-run probe given a calibrated zero by a handful of measured pairs.

Gradient cosine, lookahead, CKA and frozen transfer have no calibrated zero: nothing in them
says how much a task gains from a partner compared with training alone, so their group scores
use TAG's no-singleton rule and can never advise keeping a task alone. :class:`CalibratedProbe`
fits such a probe, trains a few pairs (and the single-task runs of their tasks) on a cheap
config, measures each pair's relative gains (as :class:`~taskrel.probes.PairwiseProbe` does:
``(L_alone - L_with) / L_alone`` on the validation loss) and maps the probe's values onto them
with :meth:`taskrel.Affinity.calibrate` (a least-squares line). The result is a
``"relative-gain"`` affinity, scored into groups by HOA like the pairwise probe's.

The pairs are chosen from the probe's own reading so that the line is fitted across its
range: the pairs it rates highest and lowest (symmetrised), alternately. The cost of the
affinity is the probe's plus the calibration runs'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.probes.base import Probe, ProbeSettings, cost_of, single_task_specs
from taskrel.probes.pairwise import cheap_config, pair_spec, record_loss, relative_gain
from taskrel.runner import Runner
from taskrel.store import RunStore
from taskrel.suite import Suite


def extreme_pairs(affinity: Affinity, k: int) -> list[tuple[str, str]]:
    """The ``k`` unordered pairs the affinity rates highest and lowest (symmetrised), taken
    alternately from the top and the bottom, each pair in the affinity's task order.

    >>> a = Affinity(["a", "b", "c", "d"], [[0, .9, .1, 0], [.9, 0, 0, 0], [.1, 0, 0, -.5], [0, 0, -.5, 0]])
    >>> extreme_pairs(a, 3)
    [('a', 'b'), ('c', 'd'), ('a', 'c')]
    """
    tasks = list(affinity.tasks)
    sym = (affinity.values + affinity.values.T) / 2
    pairs = sorted(combinations(range(len(tasks)), 2), key=lambda p: (-sym[p], p))
    out, lo, hi = [], 0, len(pairs) - 1
    while len(out) < k and lo <= hi:
        out.append(pairs[lo])
        lo += 1
        if len(out) < k and lo <= hi:
            out.append(pairs[hi])
            hi -= 1
    return [(tasks[i], tasks[j]) for i, j in out]


class CalibratedProbe(Probe):
    """A probe without a calibrated zero, calibrated against ``pairs`` measured pairs.

    Parameters
    ----------
    base : the probe to calibrate (an unfitted :class:`~taskrel.probes.base.Probe`, e.g.
        :class:`~taskrel.probes.GradientProbe`); it is fitted on the same runner.
    pairs : how many task pairs to train (2 or more; each gives two entries of the line).
    cheap : the cheap config of the calibration runs (as the pairwise probe's ``cheap``;
        default ``{"epochs_fraction": 0.3}``, None: the full config).
    seeds : seeds of the calibration runs (default: the base probe's first seed).
    settings : a :class:`~taskrel.probes.ProbeSettings` for the calibration runs' config and
        seeds (default: the base probe's config).

    Attributes
    ----------
    affinity_ : the calibrated :class:`~taskrel.Affinity` (``"relative-gain"``; ``meta``
        ``["calibrated"]`` holds the line: slope, intercept, pairs, correlation).
    base_ : the fitted base probe; ``pairs_`` : the pairs trained; ``measured_`` :
        ``{(source, target): relative gain}`` of the calibration runs (mean over seeds).

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.probes import GradientProbe
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> tasks = ["c0t0", "c0t1", "c1t0", "conflict"]
    >>> base = GradientProbe(tasks, config=TrainConfig(epochs=2), seeds=[0], every=2)
    >>> probe = CalibratedProbe(base, pairs=2).fit(suite, tempfile.mkdtemp())
    >>> probe.affinity_.calibration, len(probe.pairs_), len(probe.measured_)
    ('relative-gain', 2, 4)
    >>> probe.affinity_.cost.runs == probe.base_.affinity_.cost.runs + 2 + len({t for p in probe.pairs_ for t in p})
    True
    """

    kind = "calibrated"

    def __init__(self, base: Probe | None = None, pairs: int = 3, cheap: Mapping[str, float] | None = None,
                 seeds: Sequence[int] | None = None, settings: ProbeSettings | None = None):
        self.base = base
        self.pairs = pairs
        self.cheap = cheap
        self.seeds = seeds
        self.settings = settings

    def _check_params(self) -> None:
        if not isinstance(self.base, Probe) or isinstance(self.base, CalibratedProbe):
            raise TaskrelError(f"calibrated probe: base must be an (uncalibrated) taskrel probe, got {self.base!r}")
        if isinstance(self.pairs, bool) or not isinstance(self.pairs, (int, np.integer)) or self.pairs < 2:
            raise TaskrelError(f"calibrated probe: pairs must be an integer >= 2 (a line needs two pairs), got {self.pairs!r}")

    def _calibration_config(self):
        base_cfg = self.settings.config if self.settings is not None else self.base.train_config()
        return cheap_config(base_cfg, {"epochs_fraction": 0.3} if self.cheap is None else self.cheap or None)

    def _calibration_seeds(self) -> list[int]:
        if self.seeds is not None:
            return [int(s) for s in self.seeds]
        if self.settings is not None:
            return [int(self.settings.seeds[0])]
        return [int(self.base.seed_list()[0])]

    def fit(self, suite: Suite, runner: Runner | RunStore | str | Path) -> CalibratedProbe:
        """Fit the base probe, train the calibration pairs on the same runner, calibrate."""
        self._check_params()
        tasks = self.base.task_names(suite)
        n_pairs = len(tasks) * (len(tasks) - 1) // 2
        if self.pairs > n_pairs:
            raise TaskrelError(f"calibrated probe: pairs={self.pairs}, but {len(tasks)} tasks have only {n_pairs} pairs")
        cfg, seeds = self._calibration_config(), self._calibration_seeds()
        own = not isinstance(runner, Runner)
        runner = self._runner(runner)
        try:
            self.base_ = self.base.fit(suite, runner)
            aff = self.base_.affinity_
            if aff.is_staged:
                aff = aff.stage(aff.values.shape[0] - 1)
            if aff.calibration != "uncalibrated":
                raise TaskrelError(f"calibrated probe: the base affinity {aff.measure!r} is {aff.calibration!r}; "
                                   f"only an uncalibrated one needs measured pairs")
            self.pairs_ = extreme_pairs(aff, int(self.pairs))
            needed = sorted({t for p in self.pairs_ for t in p}, key=tasks.index)
            plan = []
            for seed in seeds:
                plan += [((t,), seed, s) for t, s in single_task_specs(suite, needed, cfg, seed).items()]
                plan += [(p, seed, pair_spec(suite, p, cfg, seed)) for p in self.pairs_]
            records = list(runner.run(suite, [s for _, _, s in plan], desc="calibrated probe (pairs)"))
        finally:
            if own:
                runner.close()
        self.records_ = records
        self.failed_ = [r for r in records if not r.ok]
        gains: dict[tuple[str, str], list[float]] = {}
        for seed in seeds:
            alone = {g[0]: record_loss(r, g[0], "val") for (g, s, _), r in zip(plan, records) if s == seed and len(g) == 1}
            for (g, s, _), r in zip(plan, records):
                if s == seed and len(g) == 2:
                    a, b = g
                    gains.setdefault((b, a), []).append(relative_gain(alone[a], record_loss(r, a, "val")))
                    gains.setdefault((a, b), []).append(relative_gain(alone[b], record_loss(r, b, "val")))
        self.measured_ = {k: float(np.nanmean(v)) for k, v in gains.items() if np.isfinite(v).any()}
        if len(self.measured_) < 3:
            reason = self.failed_[0].error if self.failed_ else "too few finite gains"
            raise TaskrelError(f"calibrated probe: {len(self.measured_)} measured gains, a line needs 3; {reason}")
        cal = aff.calibrate(self.measured_)
        cal.cost = aff.cost + cost_of(records)
        cal.meta["calibrated"].update({"pairs_trained": [list(p) for p in self.pairs_], "seeds": seeds, "config": cfg.to_dict()})
        self.tasks_ = tasks
        self.config_ = cfg
        self.affinity_ = cal
        self.affinities_ = {cal.measure: cal}
        return self

    def meta(self) -> dict[str, Any]:
        return {"base": self.base.kind if isinstance(self.base, Probe) else None, "pairs": self.pairs}


__all__ = ["CalibratedProbe", "extreme_pairs"]
