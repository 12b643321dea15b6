"""Gradient probe: per-task gradients on the shared parameters of one all-shared run.

One multi-task model (every task shares every encoder stage) is trained per seed with the
``"gradient"`` callback attached. Every ``every`` steps, before the update, the callback takes
each task's loss on the current batch and its gradient ``g_i`` on the shared parameters and
records the cosine of every pair, the norms and, when asked, the TAG lookahead of
:mod:`taskrel.probes.lookahead` (on the same gradients). The maths lives in
:mod:`taskrel.gradients`, shared with :class:`taskrel.AffinityTracker`. The record of the run holds the whole
trajectory as JSON, so :class:`GradientProbe` and :class:`~taskrel.probes.LookaheadProbe` with
the same settings share one stored run.

Per-task gradients come from one batched backward (``method="batched"``:
``autograd.grad(losses, params, grad_outputs=I, is_grads_batched=True)``, a vmap over the
rows of the identity) or from one backward per task (``method="loop"``); both give the same
numbers and ``benchmarks/gradient_probe.py`` times them.

The callback leaves training as it would be without it: it runs under a forked random state
and restores the model's buffers (batch-norm statistics) afterwards.

Failed runs. The one joint run per seed holds every task, so one task whose loss diverges
would lose all of them. Such a run is trained again without that task (every other task
sharing as before; :mod:`taskrel.probes.partial`), and the probe reads the remaining tasks from
it: every entry of the task that diverged (its diagonal too) is NaN, marked missing, and
``meta["replaced"]`` records the replacement. The remaining tasks' values then describe them
trained together without that task, the only joint run of them that exists. A run that fails
without naming a task (or leaves fewer than two tasks) stays NaN; a probe with no value is an
error quoting the stored reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from taskrel.affinity import Cost
from taskrel.base import check_is_fitted
from taskrel.errors import TaskrelError
from taskrel.gradients import METHODS, STEPS
from taskrel.layout import SharingLayout
from taskrel.plans import Plan
from taskrel.probes.base import Probe, register_probe
from taskrel.probes.partial import run_tasks, without_failed_task
from taskrel.probes.trajectory import (
    CALLBACK,
    PHASES,
    absent,
    block_mean,
    cost_meta,
    in_phase,
    in_window,
    long_table,
    run_cost,
    trajectory_arrays,
)
from taskrel.step import KEEP, Lookahead, ProbeLog, probe_step, undisturbed
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import Callback, StepState, TrainConfig, register_callback, task_loss

RANDOMNESS = ("same", "eval")


# ------------------------------------------------------------------ the callback
@dataclass(frozen=True)
class LookaheadOptions:
    """How the TAG lookahead of a probe run steps and where it measures.

    step : ``"plain"`` (TAG: ``theta - eta * g_i``, the default) or ``"optimizer"`` (the step
        the run's optimizer would take on ``g_i`` with its current state: Adam's moments make
        up most of it).
    eta : the plain step's size; None: the optimizer's learning rate at that step.
    holdout : fraction of each probe batch held out: gradients come from the other rows, and
        the lookahead losses (before and after each step) from these. 0: TAG's same batch.
    randomness : ``"same"`` (default): the model stays in training mode and the loss before
        and every loss after a step are computed from one random state, so dropout draws the
        same masks for all of them; ``"eval"``: they are computed in eval mode (no dropout,
        batch-norm running statistics).

    >>> LookaheadOptions(step="adam")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: lookahead: step must be one of ('plain', 'optimizer'), got 'adam'
    """

    step: str = "plain"
    eta: float | None = None
    holdout: float = 0.0
    randomness: str = "same"

    def __post_init__(self) -> None:
        if self.step not in STEPS:
            raise TaskrelError(f"lookahead: step must be one of {STEPS}, got {self.step!r}")
        if self.eta is not None and not (float(self.eta) > 0 and np.isfinite(float(self.eta))):
            raise TaskrelError(f"lookahead: eta must be a positive number or None, got {self.eta!r}")
        if not 0 <= float(self.holdout) < 1:
            raise TaskrelError(f"lookahead: holdout must be in [0, 1), got {self.holdout!r}")
        if self.randomness not in RANDOMNESS:
            raise TaskrelError(f"lookahead: randomness must be one of {RANDOMNESS}, got {self.randomness!r}")

    def params(self) -> dict[str, Any]:
        """The options as run parameters (they are part of the probe run's key)."""
        return {"step": self.step, "eta": None if self.eta is None else float(self.eta), "holdout": float(self.holdout), "randomness": self.randomness}


def _batch_losses(state: StepState, rows: slice) -> torch.Tensor:
    """Per-task losses (stacked in task order) of some rows of the step's batch."""
    out = state.model(state.x[rows])
    return torch.stack([task_loss(t, out[t.name], state.y[t.name][rows]) for t in state.tasks])


@register_callback(CALLBACK)
class GradientCallback(Callback):
    """Every ``every`` steps: per-task gradient cosines and norms (and TAG lookahead).

    Each probe step is :func:`taskrel.step.probe_step` inside :func:`taskrel.step.undisturbed`
    (the same step and guard as :class:`taskrel.AffinityTracker`), and the sequence is kept by
    a :class:`taskrel.step.ProbeLog`: a summary of a few blocks of probe steps by default,
    every step's matrices with ``trajectory="full"``. ``result()`` is plain JSON: the log
    (``tasks``, ``steps``, ``format`` and the blocks or per-step ``cosine``, ``norms``,
    ``lookahead``), ``seconds`` and ``examples`` spent by each part (``gradient``,
    ``lookahead``), and the lookahead options. ``step``, ``eta``, ``holdout`` and
    ``randomness`` are those of :class:`LookaheadOptions`; with ``holdout > 0`` the gradients
    (cosines too) come from the rows not held out.
    """

    def __init__(self, every: int = 10, lookahead: bool = True, method: str = "batched", step: str = "plain",
                 eta: float | None = None, holdout: float = 0.0, randomness: str = "same", trajectory: str = "summary"):
        if int(every) < 1:
            raise TaskrelError(f"gradient probe: every must be >= 1, got {every}")
        if method not in METHODS:
            raise TaskrelError(f"gradient probe: unknown method {method!r}; use one of {', '.join(METHODS)}")
        if trajectory not in KEEP:
            raise TaskrelError(f"gradient probe: trajectory must be one of {KEEP}, got {trajectory!r}")
        self.every = int(every)
        self.lookahead = bool(lookahead)
        self.method = method
        self.trajectory = trajectory
        self.options = LookaheadOptions(step, eta, holdout, randomness)
        self.log: ProbeLog | None = None
        self.seconds = {"gradient": 0.0, "lookahead": 0.0}
        self.examples = {"gradient": 0, "lookahead": 0}

    def _rows(self, n: int) -> tuple[slice, slice]:
        """Rows for the gradients and rows for the lookahead losses."""
        if not self.options.holdout or n < 2:
            return slice(0, n), slice(0, n)
        keep = min(max(int(round(n * (1 - self.options.holdout))), 1), n - 1)
        return slice(0, keep), slice(keep, n)

    def on_step(self, state: StepState) -> None:
        model = state.model
        params = model.shared_parameters()
        if not params:
            raise TaskrelError("gradient probe: the model has no shared parameters (use a shared layout)")
        names = [t.name for t in state.tasks]
        if self.log is None:
            self.log = ProbeLog(names, self.trajectory, lookahead=self.lookahead)
        fit_rows, look_rows = self._rows(len(state.x))
        look = None
        if self.lookahead:
            opt = self.options
            look = Lookahead(lambda: _batch_losses(state, look_rows), opt.step, opt.eta, state.optimizer,
                             torch.tensor([state.loss_weights.get(t, 1.0) for t in names]),
                             model if self.method == "batched" else None, (model, opt.randomness == "same"))
        with undisturbed(model, [state.x.device]):
            reading = probe_step(_batch_losses(state, fit_rows), params, self.method, look)
        for part in ("gradient", "lookahead"):
            self.seconds[part] += reading.seconds[part]
        self.examples["gradient"] += fit_rows.stop - fit_rows.start
        if self.lookahead:
            self.examples["lookahead"] += (look_rows.stop - look_rows.start) * (len(names) + 1)
        self.log.add(int(state.step), reading)

    def result(self) -> dict[str, Any]:
        log = self.log.to_json() if self.log is not None else {"tasks": [], "steps": [], "format": self.trajectory}
        return {
            **log,
            "every": self.every,
            "method": self.method,
            "lookahead_options": self.options.params() if self.lookahead else None,
            "seconds": self.seconds,
            "examples": self.examples,
        }


# ------------------------------------------------------------------ runs and summaries
def gradient_run_specs(
    suite: Suite, tasks: Sequence[str], every: int, config: TrainConfig, seeds: Sequence[int], method: str = "batched", lookahead: bool | LookaheadOptions = True,
    trajectory: str = "summary",
) -> list[RunSpec]:
    """One all-shared run per seed with the gradient callback (shared by both probes).

    ``lookahead``: False (cosines only), True (default :class:`LookaheadOptions`) or options.
    ``trajectory``: ``"summary"`` (a few blocks of probe steps) or ``"full"`` (every step's
    matrices; a run of its own: the choice is part of the run's key, and the summary's key is
    that of runs stored before summaries existed, which read the same).
    """
    options = lookahead_options(lookahead)
    if trajectory not in KEEP:
        raise TaskrelError(f"gradient probe: trajectory must be one of {KEEP}, got {trajectory!r}")
    keep = {"trajectory": trajectory} if trajectory == "full" else {}
    params = RunSpec.probe_params(every=int(every), lookahead=options is not None, method=method,
                                  **(options.params() if options else {}), **keep)
    return [
        RunSpec(SharingLayout.shared(list(tasks), suite.n_stages), config, seed, probes=((CALLBACK, params),), label=f"gradient probe seed{seed}")
        for seed in seeds
    ]


def lookahead_options(lookahead: bool | LookaheadOptions) -> LookaheadOptions | None:
    """None for no lookahead, the defaults for True, or the options given."""
    if isinstance(lookahead, LookaheadOptions):
        return lookahead
    if not isinstance(lookahead, bool):
        raise TaskrelError(f"gradient probe: lookahead must be True, False or a LookaheadOptions, got {lookahead!r}")
    return LookaheadOptions() if lookahead else None


class TrajectoryProbe(Probe):
    """What the gradient and lookahead probes share: one all-shared run per seed with the
    ``"gradient"`` callback, whose stored trajectory each of them reads."""

    cost_parts: tuple[str, ...] = ("gradient",)

    def options(self) -> LookaheadOptions | None:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self, suite: Suite) -> None:
        if self.method not in METHODS:
            raise TaskrelError(f"{self.kind} probe: unknown method {self.method!r}; use one of {', '.join(METHODS)}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise TaskrelError(f"{self.kind} probe: every must be an integer >= 1, got {self.every!r}")
        if self.trajectory not in KEEP:
            raise TaskrelError(f"{self.kind} probe: trajectory must be one of {KEEP}, got {self.trajectory!r}")
        if self.phase not in PHASES:
            raise TaskrelError(f"{self.kind} probe: phase must be one of {PHASES}, got {self.phase!r}")
        if self.phase != "all" and self.window is not None:
            raise TaskrelError(f"{self.kind} probe: give a window or a phase, not both")

    def plan(self, suite: Suite) -> Plan:
        """One all-shared run per seed (the same run for both probes with the same options);
        ``index``: the seeds."""
        options, seeds = self.options(), self.seed_list()
        return Plan(gradient_run_specs(suite, self.task_names(suite), self.every, self.train_config(), seeds,
                                       self.method, options if options is not None else False, self.trajectory), seeds)

    def trajectories(self, suite: Suite, records: Sequence[RunRecord], column: str):
        """Per record: its trajectory blocks (None for a failed run; ``"absent"`` marks the
        tasks a replaced run did not train) and the long table rows (each block's mean at its
        first probe step: every probe step with ``trajectory="full"``)."""
        names = self.task_names(suite)
        out, rows = [], []
        for rec in records:
            if not rec.ok:
                out.append(None)
                continue
            tr = trajectory_arrays(rec, names)
            rows.append(long_table(int(rec.spec["seed"]), tr["steps"], names, block_mean(tr, column, per_block=True), column))
            tr = in_phase(in_window(tr, self.window), self.phase)
            tr["absent"] = np.array([t not in run_tasks(rec, names) for t in names])
            out.append(tr)
        return out, rows

    def replacement(self, suite: Suite, spec: RunSpec, record: RunRecord) -> RunSpec | None:
        """The joint run without the task whose loss diverged (see :mod:`taskrel.probes.partial`)."""
        return without_failed_task(spec, record)

    def cost(self, records: Sequence[RunRecord]) -> Cost:
        return sum((run_cost(r, list(self.cost_parts)) for r in records if r.ok), Cost())

    def meta(self) -> dict[str, Any]:
        ok = [r for r in getattr(self, "records_", []) if r.ok]
        options = self.options()
        return {**cost_meta(ok), "every": self.every, "method": self.method, "window": self.window, "phase": self.phase,
                "trajectory": self.trajectory,
                **(options.params() if options is not None else {})}


@register_probe("gradient")
class GradientProbe(TrajectoryProbe):
    """Gradient cosine between tasks on the shared encoder, averaged over one multi-task run.

    Parameters
    ----------
    tasks : tasks to probe (default: all of the suite's).
    every : probe every this many training steps.
    method : ``"batched"`` (one vmapped backward, default) or ``"loop"`` (a backward per task).
    lookahead : also compute the TAG lookahead in the same run (default True, or a
        :class:`LookaheadOptions`), so that :class:`~taskrel.probes.LookaheadProbe` with the
        same settings and options reuses the stored run.
        Its extra compute is not counted in this probe's cost (see ``meta``).
    window : ``(start, stop)``: average only the probe steps with ``start <= step < stop``
        (for example the first epochs, where a conflict shows most); None: the whole run.
        Analysis only: it does not change the stored run. With the summary a window must not
        cut a stored block (the error names the blocks).
    phase : ``"all"`` (default: the whole run), ``"early"`` or ``"late"``: the first or last
        quarter of the probe steps (whole blocks: with the summary, the first or last two
        eighths). A relation that holds while the tasks learn a shared signal shows early and
        can vanish in the run's mean. Analysis only, like ``window``.
    trajectory : ``"summary"`` (default: the run stores at most 8 blocks of probe steps, each
        with its sums, so its size does not grow with the steps: about 4 n^2 numbers a block)
        or ``"full"`` (every probe step's n x n matrices: any window, a per-step
        ``trajectory_``; 22 MB a seed at 96 tasks).
    config, seeds : training config and seeds (defaults ``TrainConfig()``, ``(0,)``).

    Attributes
    ----------
    affinity_ : mean gradient cosine over probe steps (symmetric), then mean/std over seeds.
    conflict_ : share of probe steps with a negative cosine (higher = more conflict: the
        opposite of the usual direction).
    magnitude_ : geometric mean over probe steps of ``||g_source|| / ||g_target||``.
    affinities_ : the three, by measure name.
    trajectory_ : DataFrame with columns seed, step, source, target, cosine: one row per
        stored block (its mean, at its first probe step) and pair; per probe step with
        ``trajectory="full"``.
    records_ : the stored runs used.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> probe = GradientProbe(suite.task_names[:3], every=5, config=TrainConfig(epochs=2, lr=3e-3, batch_size=32))
    >>> probe = probe.fit(suite, RunStore(tempfile.mkdtemp()))
    >>> probe.affinity_.values.shape, round(probe.affinity_.value(suite.task_names[0], suite.task_names[0]), 5)
    ((3, 3), 1.0)
    >>> bool(np.allclose(probe.affinity_.values, probe.affinity_.values.T))
    True
    >>> sorted(probe.trajectory_.columns)
    ['cosine', 'seed', 'source', 'step', 'target']
    """

    measure_meta = {
        "gradient-conflict-frequency": {"direction": "higher = more conflict"},
        "gradient-magnitude-ratio": {"direction": "||g_source|| / ||g_target||"},
    }

    def __init__(self, tasks: Sequence[str] | None = None, every: int = 10, method: str = "batched", lookahead: bool | LookaheadOptions = True, window: tuple[int, int] | None = None, config: TrainConfig | None = None, seeds: Sequence[int] = (0,), trajectory: str = "summary", phase: str = "all"):
        self.tasks = tasks
        self.window = window
        self.phase = phase
        self.trajectory = trajectory
        self.every = every
        self.method = method
        self.lookahead = lookahead
        self.config = config
        self.seeds = seeds

    def options(self) -> LookaheadOptions | None:
        return lookahead_options(self.lookahead)

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "shared_run_with_lookahead": self.lookahead is not False}

    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, np.ndarray]:
        """Per seed: mean cosine, share of negative cosines, geometric mean norm ratio."""
        import pandas as pd

        n = len(self.task_names(suite))
        cos_s, conf_s, mag_s = [], [], []
        trs, rows = self.trajectories(suite, records, "cosine")
        for tr in trs:
            if tr is None:
                for acc in (cos_s, conf_s, mag_s):
                    acc.append(np.full((n, n), np.nan))
                continue
            cos_s.append(absent(block_mean(tr, "cosine"), tr))
            conf = {"conflict": tr["conflict"], "conflict_n": tr["cosine_n"]}
            conf_s.append(absent(block_mean(conf, "conflict"), tr))
            logn = block_mean(tr, "log_norm")  # mean log norm per task: the log of the geometric mean
            mag_s.append(absent(np.exp(logn[:, None] - logn[None, :]), tr))
        self.trajectory_ = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["seed", "step", "source", "target", "cosine"])
        return {"gradient-cosine": np.stack(cos_s), "gradient-conflict-frequency": np.stack(conf_s),
                "gradient-magnitude-ratio": np.stack(mag_s)}

    @property
    def conflict_(self):
        """The conflict-frequency affinity (share of probe steps with a negative cosine)."""
        check_is_fitted(self, "affinities_", "fit(suite, runner)")
        return self.affinities_["gradient-conflict-frequency"]

    @property
    def magnitude_(self):
        """The magnitude-ratio affinity (geometric mean of ``||g_source|| / ||g_target||``)."""
        check_is_fitted(self, "affinities_", "fit(suite, runner)")
        return self.affinities_["gradient-magnitude-ratio"]
