"""Taskonomy-style transfer: train each task alone, then start every other task from its encoder.

For each seed, every task is first trained alone (the shared single-task runs of
:func:`~taskrel.probes.base.single_task_specs`, weights kept); these are the *sources*, and
also the *from-scratch* baselines. Then for every target ``j`` and source ``i != j`` one run
trains ``j`` with its encoder started from source ``i``'s single-task encoder
(``RunSpec.warm_start``) and a fresh head:

* ``mode="finetune"``: the whole network trains (encoder and head);
* ``mode="frozen"``: the encoder stays fixed, only the new head trains (a readout of the
  source's features, linear with the default head: Taskonomy's test). A readout of another
  task's features rarely beats end-to-end training, so frozen gains are mostly negative:
  what they measure is the *ranking* of sources for a target (and the sign of outliers).

The affinity is the transfer *gain* over training the target from scratch (its single-task
run, same seed and config), in units of the target's validation *loss* by default
(``score="loss"``): ``gain = scratch_loss - transfer_loss``, positive when the source helps.
The loss is continuous where a metric such as accuracy is quantised (1/360 on a 360-example
validation set): gains on the metric tie, and a heatmap of them can be constant down a column.
``score="metric"`` uses the validation metric instead, signed so that larger is better:

* metric where higher is better (accuracy, AUC, R^2): ``gain = transfer - scratch``;
* metric where lower is better (MSE, MAE): ``gain = scratch - transfer``.

With ``gain="relative"`` the gain is divided by ``|scratch|`` (comparable across targets of
different scales). ``values[i, j]`` is the gain of target ``j`` from source ``i``; the diagonal
is 0. Seeds give mean and std (:meth:`~taskrel.Affinity.from_seeds`); the cost counts every run
used, the shared single-task runs included.

Failed runs. A task whose single-task run failed (its loss diverged) has no scratch score and
no encoder to move: its column (as target) and its row (as source) are NaN in that seed, the
transfers from it are recorded as failed (``"warm start from task 't': its source run ...
failed (why)"``), and every other entry is measured as usual. An entry no seed measured is marked missing and
``meta["failed"]`` names the task that diverged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.plans import Plan
from taskrel.probes.base import Probe, register_probe, single_task_specs
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import TrainConfig

MODES = ("finetune", "frozen")
GAINS = ("absolute", "relative")
SCORES = ("loss", "metric")


@dataclass(frozen=True)
class TransferRun:
    """One planned transfer: ``source``'s encoder warm-starts ``target`` (seed ``seed``)."""

    source: str
    target: str
    seed: int
    spec: RunSpec


@register_probe("transfer")
class TransferProbe(Probe):
    """Source -> target transfer gains (Taskonomy), one warm-started run per ordered pair.

    Parameters
    ----------
    tasks : tasks to probe (default: every task of the suite). The suite itself is not
        subset, so the runs are shared with probes over other task lists.
    mode : ``"frozen"`` (default: train only a new head on the source's fixed encoder) or
        ``"finetune"`` (train everything from the source's encoder). With enough target data
        fine-tuning re-learns what the source lacks and washes out the differences between
        sources: on the planted suite frozen transfer ranks same-cluster pairs first (AUC 1.0),
        fine-tuning less well (AUC ~0.8-0.9).
    gain : ``"absolute"`` (difference of validation scores, signed so that larger is better)
        or ``"relative"`` (that difference over ``|scratch score|``).
    score : ``"loss"`` (default: the target's validation loss) or ``"metric"`` (its
        validation metric, quantised for accuracy-like metrics).
    config, seeds : training config and seeds of every run (defaults ``TrainConfig()``, ``(0,)``).

    Attributes
    ----------
    affinity_ : :class:`~taskrel.Affinity`, ``values[source, target]`` = gain of the target.
    records_ : every run used (single-task runs first), one :class:`RunRecord` each.
    table_ : pandas DataFrame, one row per (seed, source, target): scratch, transfer, gain.
    trained_ : how many runs this ``fit`` trained (0 when the store had them all).
    failed_ : records of the runs that failed.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.runner import Runner
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> probe = TransferProbe(["c0t0", "c0t1", "unrelated"], config=TrainConfig(epochs=3), seeds=[0, 1])
    >>> runner = Runner(tempfile.mkdtemp(), progress=False)
    >>> aff = probe.fit(suite, runner).affinity_
    >>> aff.values.shape, aff.n_seeds, probe.trained_, aff.cost.runs
    ((3, 3), 2, 18, 18)
    >>> TransferProbe(["c0t0", "c0t1", "unrelated"], config=TrainConfig(epochs=3), seeds=[0, 1]).fit(suite, runner).trained_
    0
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        mode: str = "frozen",
        gain: str = "absolute",
        config: TrainConfig | None = None,
        seeds: Sequence[int] = (0,),
        score: str = "loss",
    ):
        self.tasks = tasks
        self.mode = mode
        self.gain = gain
        self.score = score
        self.config = config
        self.seeds = seeds

    # ------------------------------------------------------------------ planning
    def check(self, suite: Suite) -> None:
        if self.mode not in MODES:
            raise TaskrelError(f"transfer probe: mode must be one of {MODES}, got {self.mode!r}")
        if self.gain not in GAINS:
            raise TaskrelError(f"transfer probe: gain must be one of {GAINS}, got {self.gain!r}")
        if self.score not in SCORES:
            raise TaskrelError(f"transfer probe: score must be one of {SCORES}, got {self.score!r}")

    def plan(self, suite: Suite) -> Plan:
        """Every seed's single-task runs, then the transfer runs; ``index`` holds the single
        runs' (seed, task) and the :class:`TransferRun` of each transfer."""
        tasks, cfg = self.task_names(suite), self.train_config()
        moved_cfg = cfg.with_(freeze_encoder=True) if self.mode == "frozen" else cfg
        singles: dict[int, dict[str, RunSpec]] = {}
        transfers: list[TransferRun] = []
        for seed in self.seed_list():
            singles[seed] = single_task_specs(suite, tasks, cfg, seed)
            for src in tasks:
                for tgt in tasks:
                    if tgt == src:
                        continue
                    spec = RunSpec(
                        SharingLayout.separate([tgt], suite.n_stages),
                        moved_cfg,
                        seed,
                        warm_start=(singles[seed][src], src),
                        label=f"transfer {src}->{tgt} ({self.mode}) seed{seed}",
                    )
                    transfers.append(TransferRun(src, tgt, seed, spec))
        single_index = [(seed, t) for seed, d in singles.items() for t in d]
        specs = [s for d in singles.values() for s in d.values()] + [t.spec for t in transfers]
        return Plan(specs, {"singles": single_index, "transfers": transfers})

    # ------------------------------------------------------------------ measuring
    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, np.ndarray]:
        """Gains per seed; sets ``table_``."""
        import pandas as pd

        tasks, seeds = self.task_names(suite), self.seed_list()
        singles, transfers = plan.index["singles"], plan.index["transfers"]
        n_single = len(singles)
        scratch_of = dict(zip(singles, records[:n_single]))
        index = {t: i for i, t in enumerate(tasks)}
        seed_pos = {s: k for k, s in enumerate(seeds)}
        per_seed = np.zeros((len(seeds), len(tasks), len(tasks)))
        rows = []
        for run, rec in zip(transfers, records[n_single:]):
            scratch = _score(scratch_of[(run.seed, run.target)], run.target, self.score)
            moved = _score(rec, run.target, self.score)
            g = self._gain(suite, run.target, scratch, moved)
            per_seed[seed_pos[run.seed], index[run.source], index[run.target]] = g
            rows.append({"seed": run.seed, "source": run.source, "target": run.target,
                         "scratch": scratch, "transfer": moved, "gain": g})
        self.table_ = pd.DataFrame(rows, columns=["seed", "source", "target", "scratch", "transfer", "gain"])
        return {f"transfer-{self.mode}": per_seed}

    def meta(self) -> dict[str, Any]:
        return {"mode": self.mode, "gain": self.gain, "score": self.score, "split": "val"}

    def _gain(self, suite: Suite, target: str, scratch: float, moved: float) -> float:
        if np.isnan(scratch) or np.isnan(moved):
            return float("nan")
        higher = self.score == "metric" and suite.task(target).higher_is_better
        diff = moved - scratch if higher else scratch - moved
        if self.gain == "relative":
            return diff / max(abs(scratch), 1e-12)
        return diff


def _score(rec: RunRecord, task: str, score: str, split: str = "val") -> float:
    """The record's validation loss (or metric) of ``task``; NaN when the run failed."""
    if not rec.ok:
        return float("nan")
    return rec.loss(task, split) if score == "loss" else rec.metric(task, split)


__all__ = ["TransferProbe", "TransferRun"]
