"""Plans: the runs everyone asks for, built in one place.

The single-task run of a task and the joint run of a group are the same specs whoever asks
(probes, the greedy auxiliary selection, measured groups), so the store trains each once.
:class:`ProbeSettings` is the older bundle of config, seeds and execution settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import TrainConfig


@dataclass
class ProbeSettings:
    """The older bundle of config, seeds and execution settings (prefer ``config=``,
    ``seeds=`` on the probe and a :class:`~taskrel.runner.Runner` given to ``fit``).

    >>> ProbeSettings(seeds=[0, 1]).seeds
    [0, 1]
    >>> ProbeSettings(seeds=[])
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: probe: seeds must be a non-empty list of distinct integers, got []
    """

    config: TrainConfig = field(default_factory=TrainConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    n_jobs: int = 1
    backend: str = "loky"
    scheduler: str | None = None
    progress: bool = True
    retry_failed: bool = False

    def __post_init__(self) -> None:
        self.seeds = check_seeds(self.seeds, "probe")

    def runner(self, store: RunStore | str | Path) -> Runner:
        """A runner on ``store`` with these execution settings."""
        return Runner(store, self.n_jobs, self.backend, self.scheduler, self.progress, int(self.retry_failed))


def check_seeds(seeds: Any, what: str) -> list[int]:
    """Seeds as a non-empty list of distinct integers (a TaskrelError naming ``what`` if not)."""
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


__all__ = ["ProbeSettings", "check_seeds", "group_spec", "single_task_specs"]
