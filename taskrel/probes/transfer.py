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
run, same seed and config), on the target's validation metric, signed so that larger is
better for the target:

* metric where higher is better (accuracy, AUC, R^2): ``gain = transfer - scratch``;
* metric where lower is better (MSE, MAE): ``gain = scratch - transfer``.

With ``gain="relative"`` the gain is divided by ``|scratch|`` (comparable across targets of
different scales). ``values[i, j]`` is the gain of target ``j`` from source ``i``; the diagonal
is 0. Seeds give mean and std (:meth:`~taskrel.Affinity.from_seeds`); the cost counts every run
used, the shared single-task runs included.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.execute import PlanResult, execute
from taskrel.layout import SharingLayout
from taskrel.probes.base import ProbeSettings, check_probe_tasks, cost_of, single_task_specs
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite

MODES = ("finetune", "frozen")
GAINS = ("absolute", "relative")


@dataclass(frozen=True)
class TransferRun:
    """One planned transfer: ``source``'s encoder warm-starts ``target`` (seed ``seed``)."""

    source: str
    target: str
    seed: int
    spec: RunSpec


def affinity_over_seeds(
    tasks: list[str], per_seed: np.ndarray, what: str, **kwargs
) -> Affinity:
    """Mean and std over seeds of per-seed matrices in which a failed run left NaN.

    With no NaN this is :meth:`Affinity.from_seeds`. Otherwise each entry is averaged over
    the seeds that have it (``meta["missing"]`` lists the entries short of a seed); an entry
    that no seed has raises a :class:`TaskrelError` naming it.

    >>> a = affinity_over_seeds(["x", "y"], np.array([[[0, 1], [2, 0]], [[0, np.nan], [4, 0]]]), "demo")
    >>> a.values.tolist(), a.meta["missing"]
    ([[0.0, 1.0], [3.0, 0.0]], [['x', 'y', 1]])
    """
    ps = np.asarray(per_seed, dtype=np.float64)
    bad = np.isnan(ps)
    if not bad.any():
        return Affinity.from_seeds(tasks, ps, **kwargs)
    count = (~bad).sum(axis=0)
    if (count == 0).any():
        i, j = np.argwhere(count == 0)[0]
        raise TaskrelError(
            f"{what}: no seed has a successful run for source {tasks[i]!r} -> target "
            f"{tasks[j]!r}; see the failed runs in the store"
        )
    mean = np.nanmean(ps, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # entries left with one seed
        spread = np.nanstd(ps, axis=0, ddof=1)
    std = np.where(count > 1, spread, 0.0)
    meta = dict(kwargs.pop("meta", {}) or {})
    meta["missing"] = [
        [tasks[i], tasks[j], int(ps.shape[0] - count[i, j])]
        for i, j in np.argwhere(count < ps.shape[0])
    ]
    return Affinity(
        tasks, mean, std=np.nan_to_num(std), n_seeds=ps.shape[0], meta=meta, **kwargs
    )


class TransferProbe:
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
    gain : ``"absolute"`` (difference of validation metrics, signed by the metric's
        direction) or ``"relative"`` (that difference over ``|scratch metric|``).
    settings : config, seeds and parallelism (:class:`~taskrel.probes.ProbeSettings`).

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
    >>> from taskrel.store import RunStore
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> settings = ProbeSettings(TrainConfig(epochs=3), seeds=[0, 1], progress=False)
    >>> probe = TransferProbe(["c0t0", "c0t1", "unrelated"], settings=settings)
    >>> store = RunStore(tempfile.mkdtemp())
    >>> aff = probe.fit(suite, store).affinity_
    >>> aff.values.shape, aff.n_seeds, probe.trained_, aff.cost.runs
    ((3, 3), 2, 18, 18)
    >>> TransferProbe(["c0t0", "c0t1", "unrelated"], settings=settings).fit(suite, store).trained_
    0
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        mode: str = "frozen",
        gain: str = "absolute",
        settings: ProbeSettings | None = None,
    ):
        self.tasks = tasks
        self.mode = mode
        self.gain = gain
        self.settings = settings

    # ------------------------------------------------------------------ planning
    def _check(self, suite: Suite) -> tuple[list[str], ProbeSettings]:
        if self.mode not in MODES:
            raise TaskrelError(f"transfer probe: mode must be one of {MODES}, got {self.mode!r}")
        if self.gain not in GAINS:
            raise TaskrelError(f"transfer probe: gain must be one of {GAINS}, got {self.gain!r}")
        settings = self.settings if self.settings is not None else ProbeSettings()
        if not isinstance(settings, ProbeSettings):
            raise TaskrelError(f"transfer probe: settings must be a ProbeSettings, got {settings!r}")
        return check_probe_tasks(suite, self.tasks), settings

    def plan(self, suite: Suite) -> tuple[dict[int, dict[str, RunSpec]], list[TransferRun]]:
        """The single-task specs (per seed, per task) and the transfer runs, without training."""
        tasks, settings = self._check(suite)
        fp = suite.fingerprint()
        cfg = settings.config
        if self.mode == "frozen":
            cfg = cfg.with_(freeze_encoder=True)
        singles: dict[int, dict[str, RunSpec]] = {}
        transfers: list[TransferRun] = []
        for seed in settings.seeds:
            singles[seed] = single_task_specs(suite, tasks, settings.config, seed)
            for src in tasks:
                src_key = singles[seed][src].key(fp)
                for tgt in tasks:
                    if tgt == src:
                        continue
                    spec = RunSpec(
                        SharingLayout.separate([tgt], suite.n_stages),
                        cfg,
                        seed,
                        warm_start=(src_key, src),
                        label=f"transfer {src}->{tgt} ({self.mode}) seed{seed}",
                    )
                    transfers.append(TransferRun(src, tgt, seed, spec))
        return singles, transfers

    # ------------------------------------------------------------------ fitting
    def fit(self, suite: Suite, store: RunStore) -> TransferProbe:
        """Train what the store lacks, then compute the gains. Returns ``self``."""
        import pandas as pd

        tasks, settings = self._check(suite)
        singles, transfers = self.plan(suite)
        specs = [s for seed in settings.seeds for s in singles[seed].values()]
        specs += [t.spec for t in transfers]
        res: PlanResult = execute(
            suite, specs, store, desc="transfer probe", **settings.execute_kwargs()
        )
        fp = suite.fingerprint()
        index = {t: i for i, t in enumerate(tasks)}
        seed_pos = {s: k for k, s in enumerate(settings.seeds)}
        per_seed = np.zeros((len(settings.seeds), len(tasks), len(tasks)))
        rows = []
        for run in transfers:
            scratch_rec = res.records[singles[run.seed][run.target].key(fp)]
            rec = res.records[run.spec.key(fp)]
            scratch = _metric(scratch_rec, run.target)
            moved = _metric(rec, run.target)
            g = self._gain(suite, run.target, scratch, moved)
            per_seed[seed_pos[run.seed], index[run.source], index[run.target]] = g
            rows.append(
                {"seed": run.seed, "source": run.source, "target": run.target,
                 "scratch": scratch, "transfer": moved, "gain": g}
            )
        self.records_ = [res.records[k] for k in dict.fromkeys(res.keys)]
        self.failed_ = [r for r in self.records_ if not r.ok]
        self.trained_ = res.trained
        self.table_ = pd.DataFrame(rows, columns=["seed", "source", "target", "scratch", "transfer", "gain"])
        self.affinity_ = affinity_over_seeds(
            tasks,
            per_seed,
            "transfer probe",
            measure=f"transfer-{self.mode}",
            cost=cost_of(self.records_),
            meta={
                "probe": "transfer",
                "mode": self.mode,
                "gain": self.gain,
                "split": "val",
                "seeds": list(settings.seeds),
                "config": settings.config.to_dict(),
                "failed": [[r.label or r.key, r.error] for r in self.failed_],
            },
        )
        return self

    def _gain(self, suite: Suite, target: str, scratch: float, moved: float) -> float:
        if np.isnan(scratch) or np.isnan(moved):
            return float("nan")
        diff = moved - scratch if suite.task(target).higher_is_better else scratch - moved
        if self.gain == "relative":
            return diff / max(abs(scratch), 1e-12)
        return diff

    def __repr__(self) -> str:
        return f"TransferProbe(tasks={self.tasks!r}, mode={self.mode!r}, gain={self.gain!r})"


def _metric(rec: RunRecord, task: str, split: str = "val") -> float:
    """The record's validation metric of ``task``; NaN when the run failed."""
    return rec.metric(task, split) if rec.ok else float("nan")


__all__ = ["TransferProbe", "TransferRun", "affinity_over_seeds"]
