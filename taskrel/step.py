"""One training step (summed losses, or a TorchJD aggregate), autocast, and run failures.

>>> str(diverged("training", {"a": 0.5, "b": float("inf")}, float("inf"), 7))
"training loss of task 'b' became inf (at step 7)"
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

import torch

from taskrel.errors import RunFailed
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


__all__ = ["AUTOCAST", "Stepper", "autocast", "check_first_batch", "diverged"]
