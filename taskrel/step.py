"""One training step (summed losses, or a TorchJD aggregate), autocast, run failures, and the
probe step that rides along a training step without disturbing it.

The probe step (:func:`probe_step` inside :func:`undisturbed`) is the one the ``"gradient"``
training callback (the gradient and lookahead probes) and :class:`taskrel.AffinityTracker`
(your own loop) both take: per-task gradients on the shared parameters, their cosines and
norms, and optionally TAG's lookahead (:mod:`taskrel.gradients` holds the maths). The per-step
sequence of readings is kept by :class:`ProbeLog`: in full, or summarised in a few blocks.

>>> str(diverged("training", {"a": 0.5, "b": float("inf")}, float("inf"), 7))
"training loss of task 'b' became inf (at step 7)"
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from taskrel.errors import RunFailed, TaskrelError
from taskrel.gradients import cosine_matrix, lookahead_matrix, lookahead_steps, per_task_gradients
from taskrel.losses import check_own_losses, task_loss

if TYPE_CHECKING:  # pragma: no cover
    from taskrel.layout import MultiTaskNet
    from taskrel.suite import Task

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Torch autocast for ``precision`` ``"bf16"``/``"fp16"`` on ``device``; nothing for ``"fp32"``."""
    if precision not in AUTOCAST:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=AUTOCAST[precision])


def check_first_batch(model: MultiTaskNet, tasks: list[Task], xb: torch.Tensor, yb: dict[str, torch.Tensor]) -> None:
    """A task's own loss must give a finite scalar: checked on the first batch, before any update."""
    if all(t.loss is None for t in tasks):
        return
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        was = model.training
        out = model.eval()(xb)
        model.train(was)
        check_own_losses(tasks, out, yb)


class Stepper:
    """One optimisation step: the weighted sum of task losses, or a TorchJD aggregate of them."""

    def __init__(self, cfg: Any, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter],
                 lw: dict[str, float], device: torch.device) -> None:
        self.cfg, self.opt, self.params, self.lw, self.device = cfg, opt, params, lw, device
        self.aggregator = None
        if cfg.aggregator is not None:
            from taskrel.aggregators import make_aggregator

            self.aggregator = make_aggregator(cfg.aggregator)
        use_scaler = cfg.precision == "fp16" and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def step(self, model: MultiTaskNet, tasks: list[Task], xb: torch.Tensor, yb: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        """Update the model on one batch; returns the weighted loss (detached)."""
        with autocast(self.cfg.precision, self.device):
            out = model(xb)
        per_task = {t.name: task_loss(t, out[t.name].float(), yb[t.name]) for t in tasks}
        loss = sum(self.lw[n] * v for n, v in per_task.items())
        if not torch.isfinite(loss):
            raise diverged("training", {n: float(v.detach()) for n, v in per_task.items()}, float(loss.detach()), step)
        self.opt.zero_grad(set_to_none=True)
        if self.aggregator is not None:
            from taskrel.aggregators import aggregated_backward

            aggregated_backward([self.lw[n] * v for n, v in per_task.items()], self.params, self.aggregator)
        elif self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        return loss.detach()


def diverged(where: str, losses: dict[str, float], total: float, step: int) -> RunFailed:
    """The failure of a run whose loss became NaN or inf, naming the task(s) at fault.

    >>> str(diverged("training", {"a": 0.5, "b": float("inf")}, float("inf"), 7))
    "training loss of task 'b' became inf (at step 7)"
    """
    bad = [t for t, v in losses.items() if not math.isfinite(v)]
    if not bad:
        return RunFailed(f"{where} loss became {total} (the weighted sum of finite task losses)", step)
    which = f"task {bad[0]!r}" if len(bad) == 1 else "tasks " + ", ".join(repr(t) for t in bad)
    return RunFailed(f"{where} loss of {which} became {losses[bad[0]]}", step, task=bad[0])


# ---------------------------------------------------------------------- the probe step
@contextlib.contextmanager
def undisturbed(model: torch.nn.Module | None, devices: Sequence[torch.device] = ()) -> Iterator[None]:
    """The one "don't disturb training" guard of a probe step: afterwards the random state
    (CPU and the CUDA devices in ``devices``), the grad mode and, with a ``model``, its buffers
    and train/eval mode are as they were.

    The model's buffers are swapped for copies during the block (and the original tensors put
    back), so a forward in training mode (batch-norm statistics) writes into the copies: the
    originals keep their values and their autograd versions, and a graph built before stays valid.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).train()
    >>> before, state = net[1].running_mean.clone(), torch.random.get_rng_state()
    >>> with undisturbed(net):
    ...     _ = net.eval().train()(torch.randn(8, 2))
    >>> bool(torch.equal(net[1].running_mean, before)), bool(torch.equal(torch.random.get_rng_state(), state)), net.training
    (True, True, True)
    """
    swapped = []
    if model is not None:
        for mod in model.modules():
            for name, buf in list(mod.named_buffers(recurse=False)):
                swapped.append((mod, name, buf))
                setattr(mod, name, buf.detach().clone())
    mode = model.training if model is not None else None
    cuda = sorted({d.index or 0 for d in devices if torch.device(d).type == "cuda"})
    grad_mode = torch.is_grad_enabled()
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            for mod, name, buf in swapped:
                setattr(mod, name, buf)
            if model is not None:
                model.train(mode)
            torch.set_grad_enabled(grad_mode)


@dataclass
class Lookahead:
    """What the lookahead part of a probe step needs.

    losses : recomputes the per-task losses (stacked, task order) at the current parameters.
    step, eta, optimizer : the step on each source (:func:`taskrel.gradients.lookahead_steps`).
    weights : per-task loss weights scaling each source's gradient (None: 1).
    module : the module to vectorise the shifted forwards over (None: a loop over sources).
    mode : ``(model, training)``: put the model in that mode for the lookahead losses.
    """

    losses: Callable[[], torch.Tensor]
    step: str = "plain"
    eta: float | None = None
    optimizer: torch.optim.Optimizer | None = None
    weights: torch.Tensor | None = None
    module: torch.nn.Module | None = None
    mode: tuple[torch.nn.Module, bool] | None = None


@dataclass
class Reading:
    """One probe step's values: ``cosine`` (n, n), ``norms`` (n), ``lookahead`` (n, n; source
    -> target) or None, and the ``seconds`` each part took."""

    cosine: np.ndarray
    norms: np.ndarray
    lookahead: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=lambda: {"gradient": 0.0, "lookahead": 0.0})


def probe_step(losses: torch.Tensor, params: Sequence[torch.Tensor], method: str = "batched",
               lookahead: Lookahead | None = None, strict: bool = False) -> Reading:
    """Per-task gradients of ``losses`` (1-d, with a graph) on ``params``, their cosines and
    norms, and with ``lookahead`` TAG's ``Z(i -> j)``. Call it inside :func:`undisturbed`.

    >>> w = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    >>> r = probe_step(torch.stack([w[0] ** 2, -w[0] ** 2, w[1] ** 2 + 1]), [w],
    ...                lookahead=Lookahead(lambda: torch.stack([w[0] ** 2, -w[0] ** 2 + 2, w[1] ** 2 + 1]), eta=0.1))
    >>> r.cosine[0].round(3).tolist(), r.norms.round(3).tolist()
    ([1.0, -1.0, nan], [2.0, 2.0, 0.0])
    >>> bool(r.lookahead[0, 0] > 0 > r.lookahead[0, 1])   # a step on task 0 lowers its loss, raises task 1's
    True
    """
    t0 = time.perf_counter()
    with torch.enable_grad():
        grads = per_task_gradients(losses, params, method, strict=strict)
    cos, norms = cosine_matrix(grads)
    t1 = time.perf_counter()
    reading = Reading(cos, norms, seconds={"gradient": t1 - t0, "lookahead": 0.0})
    if lookahead is not None:
        g = grads if lookahead.weights is None else grads * lookahead.weights.to(grads)[:, None]
        deltas = lookahead_steps(g, params, lookahead.step, lookahead.eta, lookahead.optimizer)
        if lookahead.mode is not None:
            lookahead.mode[0].train(lookahead.mode[1])
        reading.lookahead = lookahead_matrix(lookahead.losses, params, deltas, lookahead.module)
        reading.seconds["lookahead"] = time.perf_counter() - t1
    return reading


# ---------------------------------------------------------------------- the per-step sequence
KEEP = ("summary", "full")
PHASE = 0.25
"""The early and late phases of a run: its first and last quarter (of a tracker's calls, or of
a stored trajectory's probe steps)."""


class ProbeLog:
    """The sequence of probe readings along a run, kept in full or summarised in blocks.

    Every reading joins a block of consecutive probe steps; there are at most ``blocks`` of
    them, all of ``span`` probe steps (the last maybe fewer): when they are full, neighbours
    merge and ``span`` doubles. A block keeps sums (cosine, negative cosines, lookahead, log
    gradient norm) and how many finite values each entry had, so the mean over any run of
    whole blocks (the early blocks, the late ones, the whole run) is exact. With
    ``keep="full"`` every step's matrices are kept instead (n x n per step; no blocks).

    >>> r = Reading(np.array([[1.0, -0.5], [-0.5, 1.0]]), np.array([1.0, 2.0]))
    >>> log = ProbeLog(["a", "b"], blocks=2, lookahead=False)
    >>> for step in range(5):
    ...     log.add(step, r)
    >>> [(b["first"], b["last"], b["count"]) for b in log.blocks], log.span
    ([(0, 3, 4), (4, 4, 1)], 4)
    >>> js = log.to_json()
    >>> js["format"], js["blocks"][0]["cosine"], js["blocks"][0]["conflict"]
    ('summary', [4.0, -2.0, 4.0], [0, 4, 0])
    """

    def __init__(self, tasks: Sequence[str], keep: str = "summary", blocks: int = 8, lookahead: bool = True):
        if keep not in KEEP:
            raise TaskrelError(f"probe log: keep must be one of {KEEP}, got {keep!r}")
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 2:
            raise TaskrelError(f"probe log: blocks must be an integer >= 2, got {blocks!r}")
        self.tasks, self.keep, self.max_blocks, self.lookahead = list(tasks), keep, blocks, bool(lookahead)
        self.steps: list[int] = []
        self.blocks: list[dict[str, Any]] = []
        self.span = 1
        self.full: dict[str, list[np.ndarray]] = {"cosine": [], "norms": [], "lookahead": []}

    def add(self, step: int, r: Reading) -> None:
        """Record one probe step's reading."""
        self.steps.append(int(step))
        if self.keep == "full":  # every step's matrices; no blocks needed
            self.full["cosine"].append(r.cosine)
            self.full["norms"].append(r.norms)
            if r.lookahead is not None:
                self.full["lookahead"].append(r.lookahead)
            return
        if not self.blocks or self.blocks[-1]["count"] == self.span:
            if len(self.blocks) == self.max_blocks:
                self.blocks = [_merged(a, b) for a, b in zip(self.blocks[::2], self.blocks[1::2])]
                self.span *= 2
            self.blocks.append(_block(step, r, self.lookahead))
        else:
            self.blocks[-1] = _merged(self.blocks[-1], _block(step, r, self.lookahead))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: ``steps`` and ``format``, then ``blocks`` (summary) or per-step
        ``cosine`` (n x n), ``norms`` (n) and ``lookahead`` (n x n or None) (full)."""
        out: dict[str, Any] = {"tasks": self.tasks, "steps": self.steps, "format": self.keep}
        if self.keep == "full":
            out["cosine"] = [_clean(c) for c in self.full["cosine"]]
            out["norms"] = [_clean(v) for v in self.full["norms"]]
            out["lookahead"] = [_clean(z) for z in self.full["lookahead"]] if self.lookahead else None
            return out
        upper = np.triu_indices(len(self.tasks))
        out["span"] = self.span
        out["blocks"] = [_block_json(b, upper) for b in self.blocks]
        return out


def block_sums(cosine: np.ndarray, norms: np.ndarray, lookahead: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The sums a block keeps, of one probe step or (with leading axes) of each of many: the
    cosine, its negative entries (``conflict``), the log gradient norm and the lookahead, each
    with non-finite values as 0 and its count of finite values (``*_n``).

    >>> b = block_sums(np.array([[1.0, -0.5], [-0.5, np.nan]]), np.array([1.0, 0.0]))
    >>> b["conflict"].tolist(), b["cosine_n"].tolist(), b["log_norm_n"].tolist()
    ([[0, 1], [1, 0]], [[1, 1], [1, 0]], [1, 0])
    """
    cos = np.asarray(cosine, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logn = np.log(np.asarray(norms, dtype=np.float64))
    out = {"cosine": np.where(np.isfinite(cos), cos, 0.0), "cosine_n": np.isfinite(cos).astype(np.int64),
           "conflict": (np.isfinite(cos) & (np.nan_to_num(cos) < 0)).astype(np.int64),
           "log_norm": np.where(np.isfinite(logn), logn, 0.0), "log_norm_n": np.isfinite(logn).astype(np.int64)}
    if lookahead is not None:
        z = np.asarray(lookahead, dtype=np.float64)
        out["lookahead"], out["lookahead_n"] = np.where(np.isfinite(z), z, 0.0), np.isfinite(z).astype(np.int64)
    return out


def _block(step: int, r: Reading, lookahead: bool) -> dict[str, Any]:
    return {"first": int(step), "last": int(step), "count": 1,
            **block_sums(r.cosine, r.norms, r.lookahead if lookahead else None)}


def _merged(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {"first": a["first"], "last": b["last"], "count": a["count"] + b["count"]}
    for k in a:
        if k not in out:
            out[k] = a[k] + b[k]
    return out


def _clean(a: np.ndarray) -> list:
    """JSON-safe nested lists: NaN becomes None, 7 significant digits."""
    a = np.asarray(a)
    return [_clean(r) for r in a] if a.ndim > 1 else [None if not np.isfinite(v) else float(f"{v:.7g}") for v in a]


def _block_json(b: dict[str, Any], upper: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """A block as JSON: symmetric matrices as their upper triangle (row by row, diagonal
    included); a count array only where some entry had fewer finite values than the block."""
    out: dict[str, Any] = {"first": b["first"], "last": b["last"], "count": b["count"],
                           "cosine": _clean(b["cosine"][upper]), "conflict": b["conflict"][upper].tolist(),
                           "log_norm": _clean(b["log_norm"])}
    for key, n_key, tri in (("cosine", "cosine_n", True), ("log_norm", "log_norm_n", False), ("lookahead", "lookahead_n", False)):
        if key == "lookahead" and "lookahead" in b:
            out["lookahead"] = _clean(b["lookahead"])
        if n_key in b and (b[n_key] != b["count"]).any():
            out[n_key] = (b[n_key][upper] if tri else b[n_key]).tolist()
    return out


__all__ = ["AUTOCAST", "KEEP", "PHASE", "Lookahead", "ProbeLog", "Reading", "Stepper", "autocast", "block_sums", "check_first_batch", "diverged", "probe_step", "undisturbed"]
