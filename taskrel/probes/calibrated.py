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
affinity is the probe's plus the calibration runs'. In a study file::

    [probes.gradient-calibrated]
    kind = "calibrated"
    base = "gradient"
    base_params = {every = 5}
    pairs = 3
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.plans import Plan
from taskrel.probes.base import (
    PROBES,
    Probe,
    Trained,
    cost_of,
    group_spec,
    register_probe,
    single_task_specs,
)
from taskrel.probes.pairwise import cheap_config, record_loss, relative_gain
from taskrel.store import RunRecord, RunStore
from taskrel.suite import Suite
from taskrel.train import TrainConfig


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


@register_probe("calibrated")
class CalibratedProbe(Probe):
    """A probe without a calibrated zero, calibrated against ``pairs`` measured pairs.

    Parameters
    ----------
    tasks, config, seeds : as every probe's; the base probe gets them.
    base : the probe to calibrate: a registered kind (``"gradient"``, ``"lookahead"``,
        ``"similarity"``, ``"transfer"``), built with ``base_params``, or an unfitted probe
        (used as given).
    base_params : extra parameters of the base kind (e.g. ``{"every": 5}``).
    pairs : how many task pairs to train (2 or more; each gives two entries of the line).
    cheap : the cheap config of the calibration runs (as the pairwise probe's ``cheap``;
        default ``{"epochs_fraction": 0.3}``; ``{}``: the full config). They train on the
        first seed only.

    The base probe's runs are the plan (so a study's one queue trains them with the others';
    the pairs cannot be chosen before the base is measured); the calibration runs are the
    :meth:`follow_up` stage, trained by the same ``fit``.

    Attributes
    ----------
    affinity_ : the calibrated :class:`~taskrel.Affinity` (``"relative-gain"``; ``meta``
        ``["calibrated"]`` holds the line: slope, intercept, pairs, correlation, the pairs
        trained). A task whose base runs diverged keeps its entries missing and is left out
        of the pairs.
    base_ : the fitted base probe; ``pairs_`` : the pairs trained; ``measured_`` :
        ``{(source, target): relative gain}`` of the calibration runs.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.probes import GradientProbe
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> tasks = ["c0t0", "c0t1", "c1t0", "conflict"]
    >>> probe = CalibratedProbe(tasks, base="gradient", base_params={"every": 2}, pairs=2,
    ...                         config=TrainConfig(epochs=2), seeds=[0]).fit(suite, tempfile.mkdtemp())
    >>> probe.affinity_.calibration, len(probe.pairs_), len(probe.measured_)
    ('relative-gain', 2, 4)
    >>> probe.affinity_.cost.runs == probe.base_.affinity_.cost.runs + 2 + len({t for p in probe.pairs_ for t in p})
    True
    """

    def __init__(self, tasks: Sequence[str] | None = None, base: str | Probe = "gradient",
                 base_params: Mapping[str, Any] | None = None, pairs: int = 3,
                 cheap: Mapping[str, float] | None = None, config: TrainConfig | None = None,
                 seeds: Sequence[int] = (0,)):
        self.tasks = tasks
        self.base = base
        self.base_params = base_params
        self.pairs = pairs
        self.cheap = cheap
        self.config = config
        self.seeds = seeds

    # ------------------------------------------------------------------ parts
    def check(self, suite: Suite) -> None:
        if isinstance(self.pairs, bool) or not isinstance(self.pairs, (int, np.integer)) or self.pairs < 2:
            raise TaskrelError(f"calibrated probe: pairs must be an integer >= 2 (a line needs two pairs), got {self.pairs!r}")
        n = len(self.task_names(suite))
        if self.pairs > n * (n - 1) // 2:
            raise TaskrelError(f"calibrated probe: pairs={self.pairs}, but {n} tasks have only {n * (n - 1) // 2} pairs")
        self.base_probe()

    def base_probe(self) -> Probe:
        """The base probe to fit: ``base`` itself, or the registered kind built with this
        probe's tasks, config and seeds."""
        if isinstance(self.base, Probe):
            if isinstance(self.base, CalibratedProbe):
                raise TaskrelError("calibrated probe: base is already a calibrated probe")
            return self.base
        if not isinstance(self.base, str) or self.base not in PROBES or self.base == self.kind:
            raise TaskrelError(f"calibrated probe: base must be a probe kind ({', '.join(k for k in sorted(PROBES) if k != self.kind)}) "
                               f"or a probe, got {self.base!r}")
        extra = dict(self.base_params or {})
        known = PROBES[self.base]._param_names()
        bad = sorted(set(extra) - set(known) | set(extra) & {"tasks", "config", "seeds"})
        if bad:
            raise TaskrelError(f"calibrated probe: base_params {bad} are not parameters of the {self.base} probe; "
                               f"known are {sorted(set(known) - {'tasks', 'config', 'seeds'})}")
        own = {"tasks": self.tasks, "config": self.config, "seeds": self.seeds}
        return PROBES[self.base](**own, **extra)

    def calibration_config(self) -> TrainConfig:
        return cheap_config(self.train_config(), {"epochs_fraction": 0.3} if self.cheap is None else (self.cheap or None))

    def plan(self, suite: Suite) -> Plan:
        """The base probe's runs (its plan); ``index`` holds the base probe and its plan."""
        base = self.base_probe()
        base.check(suite)
        base_plan = base.plan(suite)
        return Plan(base_plan.specs, {"base": base, "plan": base_plan})

    def follow_up(self, suite: Suite, plan: Plan, trained: Trained, store: RunStore) -> Plan:
        """Measure the base probe, choose the pairs it rates highest and lowest, and plan
        their calibration runs (and their tasks' single-task runs) on the first seed;
        ``index``: the (group) of each run and the pairs."""
        base, base_plan = plan.index["base"], plan.index["plan"]
        base.conclude(suite, base_plan, trained, store)
        aff = base.affinity_.plain()
        if aff.calibration != "uncalibrated":
            raise TaskrelError(f"calibrated probe: the base affinity {aff.measure!r} is {aff.calibration!r}; "
                               f"only an uncalibrated one needs measured pairs")
        sub, left = aff.complete() if aff.missing is not None else (aff, {})
        k = min(int(self.pairs), len(sub.tasks) * (len(sub.tasks) - 1) // 2)
        if k < 2:
            raise TaskrelError(f"calibrated probe: fewer than two pairs of tasks with values to calibrate on; left out: {left}")
        pairs = extreme_pairs(sub, k)
        cfg, seed = self.calibration_config(), self.seed_list()[0]
        needed = sorted({t for p in pairs for t in p}, key=self.task_names(suite).index)
        groups = [(t,) for t in needed] + [tuple(p) for p in pairs]
        specs = list(single_task_specs(suite, needed, cfg, seed).values()) + [group_spec(suite, p, cfg, seed) for p in pairs]
        return Plan(specs, {"groups": groups, "pairs": pairs})

    def train(self, suite: Suite, runner: Any, plan: Plan, desc: str = "") -> Trained:
        """The first stage is the base probe's to train (its replacements for failed runs),
        kept for its record; the calibration runs train as every probe's."""
        if isinstance(plan.index, dict) and "base" in plan.index:
            return plan.index["base"].train(suite, runner, plan.index["plan"], desc)
        return super().train(suite, runner, plan, desc)

    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, Affinity]:
        """The base affinity mapped onto the measured pairs' relative gains (a fitted line)."""
        base = plan.index["base"]
        _, cal_records = plan.split(records)
        groups, pairs = plan.follow_up.index["groups"], plan.follow_up.index["pairs"]
        alone = {g[0]: record_loss(r, g[0], "val") for g, r in zip(groups, cal_records) if len(g) == 1}
        measured = {}
        for g, r in zip(groups, cal_records):
            if len(g) == 2:
                a, b = g
                for src, tgt in ((b, a), (a, b)):
                    gain = relative_gain(alone[tgt], record_loss(r, tgt, "val"))
                    if np.isfinite(gain):
                        measured[(src, tgt)] = gain
        if len(measured) < 3:
            failed = [r for r in cal_records if not r.ok]
            raise TaskrelError(f"calibrated probe: {len(measured)} measured gains, a line needs 3; "
                               f"{failed[0].error if failed else 'too few finite gains'}")
        aff = base.affinity_.plain()
        cal = aff.calibrate(measured)
        cal.cost = aff.cost + cost_of(cal_records)
        cal.meta.update(self.meta())
        cal.meta["calibrated"].update({"pairs_trained": [list(p) for p in pairs], "seed": self.seed_list()[0],
                                       "config": self.calibration_config().to_dict()})
        self.base_, self.pairs_, self.measured_ = base, pairs, measured
        return {cal.measure: cal}

    def meta(self) -> dict[str, Any]:
        return {"base": self.base if isinstance(self.base, str) else self.base.kind, "pairs": self.pairs}


__all__ = ["CalibratedProbe", "extreme_pairs"]
