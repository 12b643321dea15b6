"""A suite's network blocks, checked before any training: stages and the head are factories of
fresh modules (not lazy, the same shapes at every call), each head gives its task's number of
outputs, and a task's own loss trains the head on one batch. Each error names the suite, the
stage or task, and the value at fault.

>>> from torch import nn
>>> check_factories("suite 's'", [nn.Linear(2, 2)], None)
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: suite 's': stage 0 is a module (Linear), not a factory; pass a function that builds a fresh one, e.g. lambda: nn.Sequential(...), so every run starts anew
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.splits import labelled


def check_factories(where: str, stages: Sequence[Any], head: Any) -> None:
    """Stages and the head must be factories (callables returning a fresh module), not modules."""
    if isinstance(stages, nn.Module) or not isinstance(stages, Sequence) or isinstance(stages, str):
        raise TaskrelError(f"{where}: stages must be a list of stage factories, got {type(stages).__name__}")
    if not stages:
        raise TaskrelError(f"{where}: the encoder needs at least one stage")
    for k, f in enumerate(stages):
        if isinstance(f, nn.Module):
            raise TaskrelError(
                f"{where}: stage {k} is a module ({type(f).__name__}), not a factory; pass a function "
                f"that builds a fresh one, e.g. lambda: nn.Sequential(...), so every run starts anew"
            )
        if not callable(f):
            raise TaskrelError(f"{where}: stage {k} is not a factory (a callable returning an nn.Module), got {f!r}")
    if isinstance(head, nn.Module):
        raise TaskrelError(f"{where}: head is a module ({type(head).__name__}), not a factory head(task, in_features)")
    if not callable(head):
        raise TaskrelError(f"{where}: head is not a factory head(task, in_features) -> nn.Module, got {head!r}")


def expected_outputs(task: Any) -> int:
    """The number of outputs a head of ``task`` must give per example."""
    return int(task.n_outputs or 1)


def check_heads(where: str, tasks: Sequence[Any], head: Callable[..., Any], features: torch.Tensor) -> None:
    """Build each task's head on the last stage's features and check its output size."""
    in_features = int(np.prod(features.shape[1:]))
    seen: dict[tuple[str, int], None] = {}
    for t in tasks:
        sig = (t.kind, expected_outputs(t))
        if sig in seen:
            continue
        seen[sig] = None
        try:
            m = head(t, in_features)
        except Exception as e:
            raise TaskrelError(f"{where}, task {t.name!r}: the head factory failed: {type(e).__name__}: {e}") from None
        if not isinstance(m, nn.Module):
            raise TaskrelError(f"{where}, task {t.name!r}: the head factory returned {type(m).__name__}, not an nn.Module")
        try:
            with torch.no_grad():
                out = m.eval()(features)
        except Exception as e:
            raise TaskrelError(
                f"{where}, task {t.name!r}: the head fails on the last stage's output, shape "
                f"{tuple(features.shape)}: {type(e).__name__}: {e}"
            ) from None
        want = expected_outputs(t)
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        ok = got is not None and got[0] == features.shape[0] and int(np.prod(got[1:])) == want
        if not ok:
            raise TaskrelError(
                f"{where}, task {t.name!r}: the head gives outputs of shape {got}; a {t.kind} task "
                f"with {want} output(s) needs shape ({features.shape[0]}, {want})"
            )


def _shapes(m: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in [*m.named_parameters(), *m.named_buffers()]]


def check_stage_module(where: str, module: nn.Module, again: Callable[[], Any] | None = None) -> None:
    """A stage must not be lazy (``nn.LazyLinear`` and kin: no shapes until a forward pass, so
    nothing can be checked, fingerprinted or copied before training), and its factory must give
    the same parameter shapes at every call (``again``: the factory, called once more)."""
    from torch.nn.modules.lazy import LazyModuleMixin

    lazy = [type(m).__name__ for m in module.modules() if isinstance(m, LazyModuleMixin)]
    if lazy:
        raise TaskrelError(f"{where}: uses {lazy[0]}, a lazy module (its shapes are unknown until a forward pass); "
                           f"give its input size instead (e.g. nn.Linear(in_features, out) for nn.LazyLinear(out))")
    if again is None:
        return
    try:
        second = again()
    except Exception as e:
        raise TaskrelError(f"{where}: its factory failed when called again: {type(e).__name__}: {e}") from None
    if isinstance(second, nn.Module) and _shapes(second) != _shapes(module):
        diff = next((a, b) for a, b in zip(_shapes(module) + [("-", ())], _shapes(second) + [("-", ())]) if a != b)
        raise TaskrelError(f"{where}: its factory gives modules of different shapes at each call ({diff[0][0]} "
                           f"{diff[0][1]} then {diff[1][0]} {diff[1][1]}); every run must build the same stage")


def check_loss_gradients(where: str, tasks: Sequence[Any], head: Callable[..., Any], features: Callable[[np.ndarray], torch.Tensor],
                         targets: Mapping[str, np.ndarray], train: np.ndarray, batch: int = 8) -> None:
    """Each task's own loss, on one batch of its labelled training rows through a fresh head:
    a finite scalar tensor that requires grad (a constant such as ``torch.tensor(0.5)``, or a
    value detached from the output, would train nothing and is refused naming the task).
    ``features(rows)``: the last stage's output on those rows."""
    from taskrel.losses import own_loss

    for t in tasks:
        if t.loss is None:
            continue
        y = targets[t.name][train]
        rows = train[labelled(y)][:batch]
        feats = features(rows)
        m = head(t, int(np.prod(feats.shape[1:])))
        try:
            value = own_loss(t, m.train()(feats), torch.from_numpy(targets[t.name][rows]))
        except TaskrelError:
            raise
        except Exception as e:
            raise TaskrelError(f"{where}, task {t.name!r}: its loss fails on a batch of training rows: {type(e).__name__}: {e}") from None
        if not value.requires_grad:
            raise TaskrelError(f"{where}, task {t.name!r}: its loss returns a tensor that does not depend on the model's output "
                               f"(got {float(value.detach()):g} without a gradient: a constant, or a value made with .detach(), "
                               ".item() or torch.tensor(...)); compute it from the output with torch operations")
        if not math.isfinite(float(value.detach())):
            raise TaskrelError(f"{where}, task {t.name!r}: its loss returns {float(value.detach())} on a batch of training rows")


__all__ = ["check_factories", "check_heads", "check_loss_gradients", "check_stage_module", "expected_outputs"]
