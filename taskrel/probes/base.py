"""What probes share: settings, the single-task runs every probe reuses, and cost accounting."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from taskrel.affinity import Cost
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.store import RunRecord, RunSpec
from taskrel.suite import Suite
from taskrel.train import TrainConfig


@dataclass
class ProbeSettings:
    """How a probe runs its training: config, seeds, parallelism, progress.

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
        seeds = list(self.seeds) if isinstance(self.seeds, Iterable) else [self.seeds]
        if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
            raise TaskrelError(f"probe: seeds must be a non-empty list of distinct integers, got {self.seeds}")
        self.seeds = seeds

    def execute_kwargs(self) -> dict:
        return {
            "n_jobs": self.n_jobs,
            "backend": self.backend,
            "scheduler": self.scheduler,
            "progress": self.progress,
            "retry_failed": self.retry_failed,
        }


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


def cost_of(records: Iterable[RunRecord]) -> Cost:
    """Total compute of some runs (each counted once)."""
    seen: dict[str, RunRecord] = {r.key: r for r in records}
    c = Cost()
    for r in seen.values():
        c = c + Cost(r.steps, r.examples, r.seconds, 1)
    return c


def check_probe_tasks(suite: Suite, tasks: Sequence[str] | None, minimum: int = 2) -> list[str]:
    names = suite.check_tasks(tasks) if tasks is not None else suite.task_names
    if len(names) < minimum:
        raise TaskrelError(f"probe: needs at least {minimum} tasks, got {names}")
    return names
