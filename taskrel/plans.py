"""Plans: the runs a probe needs, and the specs everyone asks for, built in one place.

A :class:`Plan` is what :meth:`taskrel.probes.Probe.plan` returns: the run specs to train
(``specs``) and the probe's own index of them (``index``: which spec is which seed, task or
pair), so that :meth:`~taskrel.probes.Probe.measure` reads the records without deriving the
plan again. The single-task run of a task and the joint run of a group are the same specs
whoever asks (probes, the greedy auxiliary selection, measured groups), so the store trains
each once.

>>> from taskrel.suites import get_suite
>>> from taskrel.train import TrainConfig
>>> suite = get_suite("planted", n_examples=100)
>>> singles = single_task_specs(suite, ["c0t0", "c0t1"], TrainConfig(), seed=0)
>>> plan = Plan(list(singles.values()), index=list(singles))
>>> len(plan), plan.index, plan.specs[0].label
(2, ['c0t0', 'c0t1'], 'single c0t0 seed0')
>>> group_spec(suite, ["c0t0"], TrainConfig(), 0) == singles["c0t0"]   # a singleton group is its single run
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.store import RunSpec
from taskrel.suite import Suite
from taskrel.train import TrainConfig


@dataclass
class Plan:
    """The runs of one probe stage, with the probe's index of them.

    Attributes
    ----------
    specs : list of RunSpec
        The runs to train, in the order the records come back.
    index : object
        Whatever the probe needs to read the records (aligned with ``specs``): for example
        ``(seed, group)`` per spec. Never re-derived by ``measure``.
    follow_up : Plan or None
        The second stage, once trained (set by :meth:`then`); ``specs`` then lists both stages.

    A Plan iterates over its specs and has their length, so ``list(plan)`` is the run list.
    """

    specs: list[RunSpec]
    index: Any = None
    follow_up: Plan | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.specs = list(self.specs)
        bad = [type(s).__name__ for s in self.specs if not isinstance(s, RunSpec)]
        if bad:
            raise TaskrelError(f"plan: specs must be RunSpec objects, got {bad[:3]}")

    def __iter__(self) -> Iterator[RunSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def then(self, second: Plan) -> Plan:
        """This plan followed by a second stage: specs of both, this plan's index, and
        ``follow_up`` the second (records of both split with :meth:`split`)."""
        return Plan(self.specs + second.specs, self.index, second)

    def split(self, records: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """Records aligned with :attr:`specs` split into the first stage's and the follow-up's.

        >>> from taskrel.suites import get_suite
        >>> suite = get_suite("planted", n_examples=100)
        >>> a = Plan([group_spec(suite, ["c0t0"], TrainConfig(), 0)])
        >>> both = a.then(Plan([group_spec(suite, ["c0t1"], TrainConfig(), 0)]))
        >>> len(both), both.split(["r1", "r2"])
        (2, (['r1'], ['r2']))
        """
        n = len(self.specs) - (len(self.follow_up.specs) if self.follow_up is not None else 0)
        return list(records[:n]), list(records[n:])


def check_seeds(seeds: Any, what: str) -> list[int]:
    """Seeds as a non-empty list of distinct integers (a TaskrelError naming ``what`` if not).

    >>> check_seeds((0, 1), "probe")
    [0, 1]
    >>> check_seeds([], "probe")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: probe: seeds must be a non-empty list of distinct integers, got []
    """
    out = list(seeds) if isinstance(seeds, Iterable) and not isinstance(seeds, str) else [seeds]
    if not out or len(set(out)) != len(out) or not all(isinstance(s, int) and not isinstance(s, bool) for s in out):
        raise TaskrelError(f"{what}: seeds must be a non-empty list of distinct integers, got {seeds}")
    return out


def single_task_specs(suite: Suite, tasks: Sequence[str], config: TrainConfig, seed: int) -> dict[str, RunSpec]:
    """The single-task run of each task: one spec per task, weights kept.

    Every probe asks for these same specs, so the store trains each single-task model once and
    the transfer, pairwise and similarity probes all reuse it.
    """
    suite.check_tasks(tasks)
    return {
        t: RunSpec(SharingLayout.separate([t], suite.n_stages), config, seed, keep_weights=True, label=f"single {t} seed{seed}")
        for t in tasks
    }


def group_spec(suite: Suite, tasks: Sequence[str], config: TrainConfig, seed: int) -> RunSpec:
    """The run of a group trained jointly (one shared encoder); a singleton is its single-task run."""
    if len(tasks) == 1:
        return single_task_specs(suite, tasks, config, seed)[tasks[0]]
    return RunSpec(SharingLayout.shared(list(tasks), suite.n_stages), config, seed, label=f"group {'+'.join(tasks)} seed{seed}")


__all__ = ["Plan", "check_seeds", "group_spec", "single_task_specs"]
