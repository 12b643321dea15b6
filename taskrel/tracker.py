"""``AffinityTracker``: gradient cosine and TAG lookahead affinity inside your own training loop.

TAG's value is that it rides along one ordinary training run. The tracker does that for any
PyTorch loop: give it the shared parameters, the optimizer (or a step size) and the task names;
once per step, before ``optimizer.step()``, hand it the per-task losses of the batch and a
closure that recomputes them. Every ``every`` steps it records

* the cosine of every pair of per-task gradients on the shared parameters, and
* TAG's lookahead ``Z(i -> j) = 1 - L_j(theta - eta g_i) / L_j(theta)`` (the plain step by
  default; ``step="optimizer"`` takes the optimizer's own step with its state instead).

Each probe step is the gradient and lookahead probes' own: :func:`taskrel.step.probe_step`
inside the one guard :func:`taskrel.step.undisturbed`, recorded by a
:class:`taskrel.step.ProbeLog` (here in full: every probe step's matrices stay in memory).

It never changes the training trajectory: the gradients come from ``torch.autograd.grad`` on
the losses' graph (kept for your ``backward``, ``.grad`` untouched), the lookahead swaps the
parameters' ``.data`` and puts the original tensors back, every closure call runs from one
forked random state (so dropout draws the same masks before and after each step, and the
global random state is as it was), and with ``model=`` the model's buffers (batch-norm
statistics) and train/eval mode are restored.

Phases. A relation between tasks need not hold all run long: two tasks that share a signal
have aligned gradients while they learn it, and once it is learnt their gradients are mostly
noise, so a pair clearly positive early can read near zero or negative averaged over the
run. :meth:`AffinityTracker.affinity` takes ``phase="early"`` (the probe steps in the first
quarter of the calls so far) or ``"late"`` (the last quarter), and
:meth:`AffinityTracker.summary` shows every pair early, late and over the run side by side.
The lookahead ``Z`` is a relative change of loss per step, often of order 1e-4: the summary
shows it scaled, with the scale in the column name.

A plain PyTorch loop (the added lines are marked)::

    tracker = AffinityTracker(model.encoder.parameters(), ["seg", "depth"], optimizer)  # +
    for x, y in loader:
        losses = {t: loss_fn[t](model(x)[t], y[t]) for t in tasks}
        closure = lambda: {t: loss_fn[t](model(x)[t], y[t]) for t in tasks}             # +
        tracker.step(losses, closure)                                                   # +
        optimizer.zero_grad(); sum(losses.values()).backward(); optimizer.step()
    affinity = tracker.affinity("lookahead")                                            # +
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from taskrel.affinity import Affinity, Cost
from taskrel.errors import TaskrelError
from taskrel.gradients import METHODS, STEPS
from taskrel.step import PHASE, Lookahead, ProbeLog, probe_step, undisturbed

Losses = Mapping[str, torch.Tensor] | Sequence[torch.Tensor] | torch.Tensor
KINDS = {"cosine": "gradient-cosine", "lookahead": "lookahead"}
UNITS = {"cosine": "cosine of the per-task gradients (-1..1)",
         "lookahead": "Z = 1 - L_target(after one step on the source) / L_target(before): relative loss change per step"}
PHASES = ("early", "late", "all")


def _scale(values: np.ndarray) -> float:
    """A power of ten that shows ``values`` with a few significant digits (1 when they are
    already of order 0.01 or more).

    >>> _scale(np.array([3e-5, -1.2e-4])), _scale(np.array([0.2, -0.5])), _scale(np.array([np.nan]))
    (0.0001, 1.0, 1.0)
    """
    v = np.abs(values[np.isfinite(values)])
    top = float(v.max()) if v.size else 0.0
    if top == 0.0 or top >= 1e-2:
        return 1.0
    return float(10.0 ** math.floor(math.log10(top)))


def _named(params: Iterable[Any]) -> tuple[list[str], list[torch.Tensor]]:
    """Parameters given as tensors or as ``(name, tensor)`` pairs (``named_parameters()``)."""
    items = list(params)
    if not items:
        raise TaskrelError("tracker: params is empty; give the shared parameters (for example model.encoder.parameters())")
    names, tensors = [], []
    for k, item in enumerate(items):
        name, p = (str(item[0]), item[1]) if isinstance(item, tuple) and len(item) == 2 else (f"#{k}", item)
        if not isinstance(p, torch.Tensor):
            raise TaskrelError(f"tracker: parameter {name} is a {type(p).__name__}, not a tensor")
        if not p.requires_grad:
            raise TaskrelError(f"tracker: parameter {name} (shape {tuple(p.shape)}) does not require grad")
        names.append(name)
        tensors.append(p)
    if len({id(p) for p in tensors}) != len(tensors):
        raise TaskrelError("tracker: a parameter is given twice")
    return names, tensors


class AffinityTracker:
    """Record gradient cosine and TAG lookahead affinity along your own training run.

    Parameters
    ----------
    params : the shared parameters (tensors, or ``(name, tensor)`` pairs for clearer errors).
    tasks : the task names, in the order of the affinity matrices.
    optimizer : the training optimizer: its learning rate (read at every probe step, so
        schedules count) is the lookahead's ``eta``; needed for ``step="optimizer"``.
    lr : a fixed step size ``eta`` for the lookahead (instead of, or over, the optimizer's).
    every : probe every this many calls of :meth:`step` (the first call is probed).
    step : ``"plain"`` (TAG: ``theta - eta g_i``) or ``"optimizer"`` (the optimizer's step on
        ``g_i`` with its current state, computed on copies).
    lookahead : also compute the lookahead (True) or cosines only (False).
    method : ``"batched"`` (one vmapped backward; with ``model``, also one vmapped forward
        for the lookahead) or ``"loop"`` (a backward and a closure call per task).
    model : optional module holding the parameters: its buffers and train/eval mode are
        restored after each probe step (give it when the closure runs batch norm in training
        mode), and the lookahead's closure calls are vectorised over the sources.

    Attributes
    ----------
    steps_ : the calls (0-based) that were probed. ``cosine_`` / ``lookahead_``: arrays
    (probes, n, n) of the raw per-step values (NaN where undefined). ``seconds_``: time spent
    by the tracker. ``calls_``: how many times :meth:`step` was called.

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> enc, head = torch.nn.Linear(4, 8), torch.nn.Linear(8, 1)
    >>> opt = torch.optim.SGD([*enc.parameters(), *head.parameters()], lr=0.1)
    >>> x = torch.randn(32, 4)
    >>> y = {"a": x[:, 0], "b": x[:, 0] + 0.1 * x[:, 1], "c": -x[:, 0]}
    >>> tracker = AffinityTracker(enc.parameters(), ["a", "b", "c"], opt, every=2)
    >>> for _ in range(6):
    ...     losses_of = lambda: {t: ((head(enc(x))[:, 0] - y[t]) ** 2).mean() for t in y}
    ...     losses = losses_of()
    ...     probed = tracker.step(losses, losses_of)
    ...     opt.zero_grad(); sum(losses.values()).backward(); opt.step()
    >>> tracker.steps_
    [0, 2, 4]
    >>> cos = tracker.affinity("cosine")
    >>> cos.measure, bool(cos.value("a", "b") > 0.9 and cos.value("a", "c") < 0)
    ('gradient-cosine', True)
    >>> look = tracker.affinity("lookahead")   # a step on "a" lowers "b"'s loss, raises "c"'s
    >>> bool(look.value("a", "b") > 0 > look.value("a", "c"))
    True
    >>> table = tracker.summary()              # every ordered pair: early, late, whole run
    >>> list(table.columns[:5]), len(table)
    (['source', 'target', 'cosine early', 'cosine late', 'cosine all'], 6)
    >>> tracker.affinity("cosine", phase="early").meta["window"]   # the first quarter of the 6 calls
    [0, 2]
    """

    def __init__(
        self,
        params: Iterable[Any],
        tasks: Sequence[str],
        optimizer: torch.optim.Optimizer | None = None,
        lr: float | None = None,
        every: int = 10,
        step: str = "plain",
        lookahead: bool = True,
        method: str = "batched",
        model: torch.nn.Module | None = None,
    ):
        self.param_names, self.params = _named(params)
        self.tasks = [str(t) for t in tasks]
        if len(self.tasks) < 2 or len(set(self.tasks)) != len(self.tasks):
            raise TaskrelError(f"tracker: tasks must be at least two distinct names, got {list(tasks)}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise TaskrelError(f"tracker: every must be an integer >= 1, got {every!r}")
        if step not in STEPS:
            raise TaskrelError(f"tracker: step must be one of {STEPS}, got {step!r}")
        if method not in METHODS:
            raise TaskrelError(f"tracker: method must be one of {METHODS}, got {method!r}")
        if lr is not None and not (float(lr) > 0 and math.isfinite(float(lr))):
            raise TaskrelError(f"tracker: lr must be a positive number, got {lr!r}")
        if lookahead and optimizer is None and (lr is None or step == "optimizer"):
            raise TaskrelError(f"tracker: the lookahead with step={step!r} needs the optimizer" + (" or lr" if step == "plain" else ""))
        if optimizer is not None:
            ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
            missing = [n for n, p in zip(self.param_names, self.params) if id(p) not in ids]
            if missing:
                raise TaskrelError(f"tracker: parameters {missing[:3]} are not in the optimizer")
        self.optimizer = optimizer
        self.lr = None if lr is None else float(lr)
        self.every = every
        self.step_kind = step
        self.lookahead = bool(lookahead)
        self.method = method
        self.model = model
        self.calls_ = 0
        self.log_ = ProbeLog(self.tasks, "full", lookahead=self.lookahead)
        self.seconds_ = {"gradient": 0.0, "lookahead": 0.0}

    # ------------------------------------------------------------------ per step
    def _stack(self, losses: Losses, what: str) -> torch.Tensor:
        """The losses as a 1-d tensor in task order; a clear error for the wrong tasks."""
        if isinstance(losses, Mapping):
            got = [str(k) for k in losses]
            if set(got) != set(self.tasks):
                missing = sorted(set(self.tasks) - set(got))
                extra = sorted(set(got) - set(self.tasks))
                raise TaskrelError(f"tracker: {what} returned tasks {got}, expected {self.tasks} (missing {missing}, unexpected {extra})")
            items = [losses[t] for t in self.tasks]
        else:
            items = list(losses)
            if len(items) != len(self.tasks):
                raise TaskrelError(f"tracker: {what} returned {len(items)} losses for {len(self.tasks)} tasks {self.tasks}")
        for t, v in zip(self.tasks, items):
            if not isinstance(v, torch.Tensor) or v.numel() != 1:
                shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise TaskrelError(f"tracker: {what}: the loss of task {t!r} must be a scalar tensor, got {shape}")
        return torch.stack([v.reshape(()) for v in items])

    def step(self, losses: Losses, closure: Callable[[], Losses], heldout: Callable[[], Losses] | None = None) -> bool:
        """Call once per training step, before ``optimizer.step()``. Returns True if it probed.

        losses : the per-task losses of this batch (``{task: scalar}``, or a sequence in task
            order) with their graph; your ``backward`` afterwards works as usual.
        closure : recomputes the same per-task losses with the current parameters (called
            ``n + 1`` times on a probe step, without gradients).
        heldout : optional closure of the losses on another batch: the lookahead is then
            measured there instead of on this batch.
        """
        call = self.calls_
        self.calls_ += 1
        if call % self.every:
            return False
        L = self._stack(losses, "losses")
        if not L.requires_grad:
            raise TaskrelError("tracker: losses have no graph (computed under torch.no_grad?); pass the losses you will call backward on")
        look = None
        if self.lookahead:
            source = heldout if heldout is not None else closure
            what = "heldout" if heldout is not None else "closure"
            look = Lookahead(lambda: self._stack(source(), what), self.step_kind, self.lr, self.optimizer,
                             module=self.model if self.method == "batched" else None)
        with undisturbed(self.model, list({p.device for p in self.params})):
            try:
                reading = probe_step(L, self.params, self.method, look, strict=True)
            except TaskrelError as e:
                if "no loss reaches parameter" not in str(e):
                    raise
                k = int(str(e).split("parameter ")[1].split(" ")[0])
                raise TaskrelError(f"tracker: no task's loss reaches parameter {self.param_names[k]}; "
                                   f"pass only the shared parameters the losses use") from None
        for part in ("gradient", "lookahead"):
            self.seconds_[part] += reading.seconds[part]
        self.log_.add(call, reading)
        return True

    # ------------------------------------------------------------------ results
    @property
    def steps_(self) -> list[int]:
        """The calls (0-based) that were probed (the probe log's steps)."""
        return self.log_.steps

    @property
    def cosine_(self) -> np.ndarray:
        n = len(self.tasks)
        return np.stack(self.log_.full["cosine"]) if self.log_.full["cosine"] else np.zeros((0, n, n))

    @property
    def lookahead_(self) -> np.ndarray:
        n = len(self.tasks)
        return np.stack(self.log_.full["lookahead"]) if self.log_.full["lookahead"] else np.zeros((0, n, n))

    def phase_window(self, phase: str | None, fraction: float = PHASE) -> tuple[int, int] | None:
        """The calls of a phase: ``"early"`` the first ``fraction`` of the calls so far,
        ``"late"`` the last ``fraction``, ``"all"`` or None the whole run (None)."""
        if phase in (None, "all"):
            return None
        if phase not in PHASES:
            raise TaskrelError(f"tracker: phase must be one of {PHASES} or None, got {phase!r}")
        if not 0 < float(fraction) <= 1:
            raise TaskrelError(f"tracker: fraction must be in (0, 1], got {fraction!r}")
        cut = max(int(math.ceil(float(fraction) * self.calls_)), 1)
        return (0, cut) if phase == "early" else (self.calls_ - cut, self.calls_)

    def affinity(self, kind: str = "lookahead", window: tuple[int, int] | None = None, phase: str | None = None,
                 fraction: float = PHASE) -> Affinity:
        """The mean over probe steps as an :class:`~taskrel.Affinity` (``"cosine"`` or ``"lookahead"``).

        ``values[i, j]``: cosine of tasks i and j (symmetric), or ``Z(i -> j)`` (a relative
        change of loss per step: ``meta["unit"]``). ``std`` is the standard error of that mean
        over probe steps (one run: no seeds). ``window=(start, stop)`` keeps the probe steps
        with ``start <= step < stop``; ``phase="early"`` / ``"late"`` the first / last
        ``fraction`` of the calls so far (:meth:`phase_window`).
        """
        if kind not in KINDS:
            raise TaskrelError(f"tracker: kind must be one of {sorted(KINDS)}, got {kind!r}")
        if kind == "lookahead" and not self.lookahead:
            raise TaskrelError("tracker: made with lookahead=False; only 'cosine' is recorded")
        if window is not None and phase not in (None, "all"):
            raise TaskrelError("tracker: give a window or a phase, not both")
        window = window if window is not None else self.phase_window(phase, fraction)
        values = self.cosine_ if kind == "cosine" else self.lookahead_
        steps = np.asarray(self.steps_, dtype=np.int64)
        if window is not None:
            keep = (steps >= int(window[0])) & (steps < int(window[1]))
            values, steps = values[keep], steps[keep]
        if len(values) == 0:
            raise TaskrelError(f"tracker: no probe step recorded{'' if window is None else f' in window {window}'} (probed steps: {self.steps_[:5]}...)")
        count = np.isfinite(values).sum(axis=0)
        mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), 0.0)
        dev = np.where(np.isfinite(values), values - mean, 0.0)
        sem = np.sqrt((dev**2).sum(axis=0) / np.maximum(count - 1, 1) / np.maximum(count, 1))
        seconds = self.seconds_["gradient"] + (self.seconds_["lookahead"] if kind == "lookahead" else 0.0)
        meta = {
            "source": "AffinityTracker", "every": self.every, "probe_steps": int(len(steps)), "calls": self.calls_,
            "step": self.step_kind, "eta": self.lr, "method": self.method, "window": None if window is None else list(window),
            "phase": phase or "all", "unit": UNITS[kind],
            "std": "standard error of the mean over probe steps", "seconds": "tracker overhead only",
        }
        return Affinity(list(self.tasks), mean, std=sem, n_seeds=1, measure=KINDS[kind], cost=Cost(self.calls_, 0, seconds, 1), meta=meta)

    def summary(self, fraction: float = PHASE):
        """Every ordered pair's cosine and lookahead early, late and over the whole run.

        A pandas DataFrame, one row per (source, target) with source != target: ``cosine
        early`` / ``late`` / ``all`` (the cosine is symmetric: each unordered pair appears
        twice), the lookahead likewise in the units its column names (``lookahead early
        [1e-4]`` means the numbers are Z / 1e-4; Z is the relative change of the target's loss
        after one step on the source), and ``sign flips``: True where the early and late
        means of the cosine have opposite signs (the whole-run mean then hides both).
        """
        import pandas as pd

        out = {}
        kinds = ["cosine", "lookahead"] if self.lookahead else ["cosine"]
        for kind in kinds:
            for phase in ("early", "late", "all"):
                out[(kind, phase)] = self.affinity(kind, phase=phase, fraction=fraction).values
        scale = _scale(np.concatenate([out[("lookahead", p)].ravel() for p in ("early", "late", "all")])) if self.lookahead else 1.0
        rows = []
        for i, a in enumerate(self.tasks):
            for j, b in enumerate(self.tasks):
                if i == j:
                    continue
                row: dict[str, Any] = {"source": a, "target": b}
                for phase in ("early", "late", "all"):
                    row[f"cosine {phase}"] = round(float(out[("cosine", phase)][i, j]), 4)
                if self.lookahead:
                    unit = "" if scale == 1.0 else f" [{scale:.0e}]"
                    for phase in ("early", "late", "all"):
                        row[f"lookahead {phase}{unit}"] = round(float(out[("lookahead", phase)][i, j]) / scale, 3)
                row["sign flips"] = bool(out[("cosine", "early")][i, j] * out[("cosine", "late")][i, j] < 0)
                rows.append(row)
        frame = pd.DataFrame(rows)
        frame.attrs["lookahead_scale"] = scale
        frame.attrs["phases"] = {p: self.phase_window(p, fraction) for p in ("early", "late")}
        return frame

    def __repr__(self) -> str:
        return f"AffinityTracker(tasks={self.tasks}, every={self.every}, step={self.step_kind!r}, probed={len(self.steps_)})"


__all__ = ["AffinityTracker"]
