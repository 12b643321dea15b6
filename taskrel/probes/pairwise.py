"""Standley-style pairs: train every pair of tasks jointly, and every task alone.

For each seed, every task is trained alone (the shared single-task runs) and every pair
``{a, b}`` is trained with one shared encoder (``SharingLayout.shared([a, b])``, a head each).
The affinity of source ``s`` on target ``t`` is the relative change of ``t``'s validation
*loss* when trained with ``s`` instead of alone::

    values[s, t] = (L_alone(t) - L_with(t | s)) / L_alone(t)      (> 0: s helps t)

so the row is the source (the partner), the column the target. Seeds give mean and std.

*Cheap* mode (``cheap={"epochs_fraction": f, "data_fraction": d}``) trains every run, the
single-task ones included, for ``ceil(f * epochs)`` epochs on a fraction ``d`` of the training
split: Standley's early-stopping approximation. Its cost is recorded in the affinity, so its
fidelity per unit of compute can be compared with the full probe.

Group estimates: :meth:`PairwiseProbe.candidates` turns the single and pair losses into a
:class:`~taskrel.tables.CandidateTable` of every group by Standley's higher-order
approximation, and :func:`measure_groups` trains given groups for real and tables their
measured losses (validation and test), to check an estimate or score a chosen grouping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from taskrel.affinity import Cost
from taskrel.base import check_is_fitted
from taskrel.errors import TaskrelError
from taskrel.plans import Plan
from taskrel.probes.base import (
    Probe,
    check_seeds,
    cost_of,
    group_spec,
    nan_mean_std,
    register_probe,
    single_task_specs,
)
from taskrel.runner import Runner, as_runner
from taskrel.store import RunRecord, RunStore
from taskrel.suite import Suite
from taskrel.tables import CandidateTable, hoa_candidates
from taskrel.train import TrainConfig

CHEAP_KEYS = ("epochs_fraction", "data_fraction")
GroupCost = float | Mapping[int, float] | Callable[[tuple[str, ...]], float] | str


def cheap_config(config: TrainConfig, cheap: Mapping[str, float] | None) -> TrainConfig:
    """The config of a cheap probe: fewer epochs and/or a fraction of the training data.

    >>> cheap_config(TrainConfig(epochs=40), {"epochs_fraction": 0.25}).epochs
    10
    >>> cheap_config(TrainConfig(), {"data_fraction": 0.5}).data_fraction
    0.5
    """
    if not cheap:
        return config
    if not isinstance(cheap, Mapping):
        raise TaskrelError(f"pairwise probe: cheap must be None or a dict with {CHEAP_KEYS}, got {cheap!r}")
    unknown = sorted(set(cheap) - set(CHEAP_KEYS))
    if unknown:
        raise TaskrelError(f"pairwise probe: unknown cheap option(s) {unknown}; known are {list(CHEAP_KEYS)}")
    changes: dict[str, Any] = {}
    for k in CHEAP_KEYS:
        if k in cheap:
            f = cheap[k]
            if not isinstance(f, (int, float)) or not 0 < f <= 1:
                raise TaskrelError(f"pairwise probe: cheap {k} must be in (0, 1], got {f!r}")
    if "epochs_fraction" in cheap:
        changes["epochs"] = max(1, math.ceil(cheap["epochs_fraction"] * config.epochs))
    if "data_fraction" in cheap:
        changes["data_fraction"] = float(cheap["data_fraction"]) * config.data_fraction
    return config.with_(**changes)


@register_probe("pairwise")
class PairwiseProbe(Probe):
    """Pairwise joint-training affinity (Standley et al., 2020), with group estimates.

    Parameters
    ----------
    tasks : tasks to probe (default: every task of the suite; the suite is not subset, so the
        runs are shared with other probes).
    cheap : None for full training, or ``{"epochs_fraction": f, "data_fraction": d}`` (either
        key optional): every run, single-task runs included, trains on the cheap config.
    config : the training config of every run (default ``TrainConfig()``).
    seeds : the seeds (default ``(0,)``).

    Attributes
    ----------
    affinity_ : :class:`~taskrel.Affinity`; ``values[source, target]`` = relative drop of the
        target's validation loss when trained with the source (positive = helps).
    single_loss_ : ``{seed: {split: {task: loss}}}`` of the single-task runs (NaN = failed).
    pair_loss_ : ``{seed: {split: {(a, b): {a: loss, b: loss}}}}`` of the pair runs.
    records_ : every run used; ``trained_`` : runs this ``fit`` trained; ``failed_`` : failed
        records; ``config_`` : the config the runs used (the cheap one in cheap mode).

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.runner import Runner
    >>> from taskrel.suites import get_suite
    >>> suite = get_suite("planted", n_examples=300)
    >>> runner = Runner(tempfile.mkdtemp(), progress=False)
    >>> probe = PairwiseProbe(["c0t0", "c0t1", "c1t0"], config=TrainConfig(epochs=4), seeds=[0, 1])
    >>> probe = probe.fit(suite, runner)
    >>> probe.affinity_.values.shape, probe.trained_, probe.affinity_.cost.runs
    ((3, 3), 12, 12)
    >>> table = probe.candidates()
    >>> len(table), table.value(("c0t0",), "c0t0") == probe.mean_single_loss()["c0t0"]
    (7, True)
    >>> cheap = PairwiseProbe(["c0t0", "c0t1", "c1t0"], cheap={"epochs_fraction": 0.5},
    ...                       config=TrainConfig(epochs=4), seeds=[0, 1]).fit(suite, runner)
    >>> cheap.config_.epochs, cheap.affinity_.cost.steps < probe.affinity_.cost.steps
    (2, True)
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        cheap: Mapping[str, float] | None = None,
        config: TrainConfig | None = None,
        seeds: Sequence[int] = (0,),
    ):
        self.tasks = tasks
        self.cheap = cheap
        self.config = config
        self.seeds = seeds

    def train_config(self) -> TrainConfig:
        return cheap_config(super().train_config(), self.cheap)

    def plan(self, suite: Suite) -> Plan:
        """The single-task and pair runs, seed by seed, without training; ``index`` holds the
        (seed, group) of each."""
        tasks, cfg = self.task_names(suite), self.train_config()
        index, specs = [], []
        for seed in self.seed_list():
            for t, spec in single_task_specs(suite, tasks, cfg, seed).items():
                index.append((seed, (t,)))
                specs.append(spec)
            for a, b in combinations(tasks, 2):
                index.append((seed, (a, b)))
                specs.append(group_spec(suite, (a, b), cfg, seed))
        return Plan(specs, index)

    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, np.ndarray]:
        """Relative loss changes per seed; sets ``single_loss_`` and ``pair_loss_``."""
        tasks, seeds = self.task_names(suite), self.seed_list()
        idx = {t: i for i, t in enumerate(tasks)}
        self.single_loss_ = {s: {"val": {}, "test": {}} for s in seeds}
        self.pair_loss_ = {s: {"val": {}, "test": {}} for s in seeds}
        for (seed, group), rec in zip(plan.index, records):
            for sp in ("val", "test"):
                if len(group) == 1:
                    self.single_loss_[seed][sp][group[0]] = record_loss(rec, group[0], sp)
                else:
                    self.pair_loss_[seed][sp][group] = {t: record_loss(rec, t, sp) for t in group}
        per_seed = np.zeros((len(seeds), len(tasks), len(tasks)))
        for k, seed in enumerate(seeds):
            alone = self.single_loss_[seed]["val"]
            for (a, b), with_ in self.pair_loss_[seed]["val"].items():
                per_seed[k, idx[b], idx[a]] = relative_gain(alone[a], with_[a])
                per_seed[k, idx[a], idx[b]] = relative_gain(alone[b], with_[b])
        return {"pairwise-cheap" if self.cheap else "pairwise": per_seed}

    def meta(self) -> dict[str, Any]:
        return {"cheap": dict(self.cheap) if self.cheap else None, "split": "val"}

    # ------------------------------------------------------------------ group estimates
    def mean_single_loss(self, split: str = "val", tasks: Sequence[str] | None = None) -> dict[str, float]:
        """Each task's single-task loss (of ``tasks``, default all), mean over the seeds that finished."""
        check_is_fitted(self, "affinity_", "fit(suite, runner)")
        return {t: _nanmean([self.single_loss_[s][split][t] for s in self.single_loss_], t) for t in (self.tasks_ if tasks is None else tasks)}

    def mean_pair_loss(self, split: str = "val", tasks: Sequence[str] | None = None) -> dict[tuple[str, str], dict[str, float]]:
        """Each pair's per-task losses (pairs within ``tasks``, default all), mean over the seeds that finished."""
        check_is_fitted(self, "affinity_", "fit(suite, runner)")
        seeds = list(self.pair_loss_)
        out = {}
        for pair in self.pair_loss_[seeds[0]][split]:
            if tasks is not None and not set(pair) <= set(tasks):
                continue
            out[pair] = {t: _nanmean([self.pair_loss_[s][split][pair][t] for s in seeds], f"{t} with {pair}") for t in pair}
        return out

    def candidates(self, max_size: int | None = None, split: str = "val", cost: GroupCost = 1.0,
                   tasks: Sequence[str] | None = None):
        """Every group up to ``max_size`` with HOA-estimated per-task losses (groups of
        ``tasks`` only, when given: for example the tasks whose runs did not all fail).

        Standley's higher-order approximation (:func:`taskrel.tables.hoa_candidates`): the
        loss of ``t`` in group ``G`` is the mean of its pair losses with the other members;
        singletons have their single-task loss. Losses are means over seeds on ``split``.
        ``cost`` is per network: a number (default 1: the table counts networks), a dict
        size -> cost, or a function of the group's task tuple.
        """
        check_is_fitted(self, "affinity_", "fit(suite, runner)")
        if split not in ("val", "test"):
            raise TaskrelError(f"pairwise probe: split must be 'val' or 'test', got {split!r}")
        if isinstance(cost, str):
            raise TaskrelError("pairwise probe: estimated networks have no runs; cost must be a number, dict or function")
        unknown = [t for t in (tasks or []) if t not in self.tasks_]
        if unknown:
            raise TaskrelError(f"pairwise probe: unknown task(s) {unknown}; tasks are {self.tasks_}")
        tasks = self.tasks_ if tasks is None else [t for t in self.tasks_ if t in set(tasks)]
        return hoa_candidates(tasks, self.mean_single_loss(split, tasks), self.mean_pair_loss(split, tasks),
                              max_size=max_size, cost=cost)


def record_loss(rec: RunRecord, task: str, split: str) -> float:
    """A task's loss on a split in a run's record; NaN when the run failed."""
    return rec.loss(task, split) if rec.ok else float("nan")


def relative_gain(alone: float, with_: float) -> float:
    """``(alone - with_) / |alone|``: the relative drop of a loss (> 0: the partner helps); NaN
    when either is not finite.

    >>> relative_gain(2.0, 1.5), relative_gain(2.0, float("nan"))
    (0.25, nan)
    """
    if not (math.isfinite(alone) and math.isfinite(with_)):
        return float("nan")
    return (alone - with_) / max(abs(alone), 1e-12)


def _seed_std(values: list[float]) -> float:
    std = nan_mean_std(values)[1]
    return 0.0 if np.isnan(std) else float(std)


def _nanmean(values: list[float], what: str) -> float:
    mean, _, count = nan_mean_std(values)
    if count == 0:
        raise TaskrelError(f"pairwise probe: every seed's run failed for {what}")
    return float(mean)


# ====================================================================== measured groups
@dataclass
class MeasuredGroups:
    """Groups trained for real: per-split candidate tables of their mean per-task losses.

    ``val`` and ``test`` are :class:`~taskrel.tables.CandidateTable` (losses, means over
    seeds; select on ``val``, score on ``test``), ``std`` maps split -> {group: {task: std
    over seeds (ddof=1; 0 with one seed)}},
    ``records`` are the runs and ``cost`` their compute.
    """

    val: Any
    test: Any
    std: dict[str, dict[tuple[str, ...], dict[str, float]]] = field(default_factory=dict)
    records: list[RunRecord] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    trained: int = 0

    def table(self, split: str = "val"):
        if split not in ("val", "test"):
            raise TaskrelError(f"measured groups: split must be 'val' or 'test', got {split!r}")
        return self.val if split == "val" else self.test


def measure_groups(
    groups: Iterable[Sequence[str]],
    suite: Suite,
    runner: Runner | RunStore,
    cost: GroupCost = 1.0,
    config: TrainConfig | None = None,
    seeds: Sequence[int] = (0,),
) -> MeasuredGroups:
    """Train each group (one shared encoder per group) for every seed; table the losses.

    The one place that trains groups over seeds. A singleton group is the shared single-task
    run, and a pair is the same run the pairwise probe trains (same config and seed), so
    nothing already in the store trains again. ``runner`` trains (a store gets a default
    runner); ``config`` (default ``TrainConfig()``) and ``seeds`` (default ``(0,)``) say what
    to train. ``cost`` per network: a number (default 1: one network
    per group), a dict size -> cost, a function of the group's task tuple, or
    ``"parameters"`` (the trained model's parameter count).

    >>> import tempfile
    >>> from taskrel.suites import get_suite
    >>> suite = get_suite("planted", n_examples=300)
    >>> runner = Runner(tempfile.mkdtemp(), progress=False)
    >>> m = measure_groups([["c0t0", "c0t1"], ["c0t0"], ["c0t1"]], suite, runner, config=TrainConfig(epochs=3))
    >>> len(m.val), m.trained, m.test.value(("c0t0", "c0t1"), "c0t0") > 0
    (3, 3, True)
    """
    config = config if config is not None else TrainConfig()
    seeds = check_seeds(seeds, "measure groups")
    groups = [tuple(suite.check_tasks(list(g))) for g in groups]
    if not groups:
        raise TaskrelError("measure groups: no groups given")
    tasks = list(dict.fromkeys(t for g in groups for t in g))
    specs = [group_spec(suite, g, config, seed) for g in groups for seed in seeds]
    own = not isinstance(runner, Runner)
    runner = as_runner(runner)
    try:
        res = runner.run(suite, specs, desc="groups")
    finally:
        if own:
            runner.close()
    by_group = {g: res[i * len(seeds):(i + 1) * len(seeds)] for i, g in enumerate(groups)}
    tables, std = {}, {}
    for split in ("val", "test"):
        rows, std[split] = [], {}
        for g in groups:
            recs = by_group[g]
            values = {t: _nanmean([record_loss(r, t, split) for r in recs], f"{t} in group {'+'.join(g)}") for t in g}
            std[split][g] = {t: _seed_std([record_loss(r, t, split) for r in recs]) for t in g}
            rows.append({"tasks": list(g), "cost": _group_cost(cost, g, recs), "values": values})
        tables[split] = CandidateTable(rows, tasks=tasks)
    records = res.unique()
    return MeasuredGroups(tables["val"], tables["test"], std, records, cost_of(records), res.trained)


def _group_cost(cost: GroupCost, group: tuple[str, ...], recs: list[RunRecord]) -> float:
    if cost == "parameters":
        ok = [r.n_parameters for r in recs if r.ok]
        if not ok:
            raise TaskrelError(f"measure groups: every run of group {'+'.join(group)} failed; no parameter count")
        return float(ok[0])
    if isinstance(cost, str):
        raise TaskrelError(f"measure groups: cost must be a number, dict, function or 'parameters', got {cost!r}")
    if callable(cost):
        return float(cost(group))
    if isinstance(cost, Mapping):
        if len(group) not in cost:
            raise TaskrelError(f"measure groups: cost has no entry for groups of size {len(group)}")
        return float(cost[len(group)])
    return float(cost)


__all__ = ["MeasuredGroups", "PairwiseProbe", "cheap_config", "measure_groups", "record_loss", "relative_gain"]
