"""Checks of training settings: every field's type and range, before anything trains.

:class:`taskrel.train.TrainConfig` calls :func:`check_config` when it is made, so a bad value
fails at once with a message naming the field and the value, never during training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from taskrel.aggregators import check_aggregator
from taskrel.errors import TaskrelError

PRECISIONS = ("fp32", "bf16", "fp16")
ROWS = ("all", "labelled")

_INT_FIELDS = {"epochs": 1, "batch_size": 1, "patience": 1, "threads": 0}
# field -> (lowest, lowest allowed?, highest)
_REAL_FIELDS = {
    "lr": (0.0, False, math.inf),
    "weight_decay": (0.0, True, math.inf),
    "momentum": (0.0, True, 1.0),
    "min_delta": (0.0, True, math.inf),
    "data_fraction": (0.0, False, 1.0),
}
_CHOICES = {"optimizer": ("adam", "adamw", "sgd"), "schedule": ("constant", "cosine")}


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def check_config(cfg: Any) -> None:
    """Check every field of a :class:`TrainConfig` (type and range); numbers become plain.

    Each error names the field and the value.

    >>> from taskrel.train import TrainConfig
    >>> TrainConfig(epochs=2.5)
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: train config: epochs must be an integer >= 1, got 2.5
    >>> TrainConfig(lr="0.01")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: train config: lr must be a number > 0, got '0.01' (str)
    >>> TrainConfig(rows="some")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: train config: rows must be 'all' (every training row) or 'labelled' (only rows labelled for one of the run's tasks), got 'some'
    """

    def bad(msg: str) -> None:
        raise TaskrelError(f"train config: {msg}")

    def put(name: str, value: Any) -> None:
        object.__setattr__(cfg, name, value)

    for name, choices in _CHOICES.items():
        v = getattr(cfg, name)
        if not isinstance(v, str) or v not in choices:
            bad(f"unknown {name} {v!r}; use {', '.join(choices[:-1])} or {choices[-1]}")
    for name, low in _INT_FIELDS.items():
        v = getattr(cfg, name)
        if not _is_int(v) or v < low:
            bad(f"{name} must be an integer >= {low}, got {v!r}" + (" (0: torch's default)" if name == "threads" else ""))
        put(name, int(v))
    for name, (low, closed, high) in _REAL_FIELDS.items():
        v = getattr(cfg, name)
        rng = f"{'>=' if closed else '>'} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
        if not _is_real(v):
            bad(f"{name} must be a number {rng}, got {v!r} ({type(v).__name__})")
        if not (math.isfinite(v) and (v >= low if closed else v > low) and v <= high):
            bad(f"{name} must be a finite number {rng}, got {v!r}")
        put(name, float(v))
    if not isinstance(cfg.freeze_encoder, (bool, np.bool_)):
        bad(f"freeze_encoder must be true or false, got {cfg.freeze_encoder!r}")
    put("freeze_encoder", bool(cfg.freeze_encoder))
    if cfg.grad_clip is not None:
        if not _is_real(cfg.grad_clip) or not (math.isfinite(cfg.grad_clip) and cfg.grad_clip > 0):
            bad(f"grad_clip must be a finite number > 0 (or None: no clipping), got {cfg.grad_clip!r}")
        put("grad_clip", float(cfg.grad_clip))
    put("loss_weights", _check_loss_weights(cfg.loss_weights, bad))
    _check_device(cfg.device, bad)
    check_aggregator(getattr(cfg, "aggregator", None))
    precision = getattr(cfg, "precision", "fp32")
    if precision not in PRECISIONS:
        bad(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "fp16" and getattr(cfg, "aggregator", None) is not None:
        bad(f"precision 'fp16' with aggregator {cfg.aggregator!r} is not supported (no gradient scaling of a Jacobian); use 'bf16'")
    rows = getattr(cfg, "rows", "all")
    if not isinstance(rows, str) or rows not in ROWS:
        bad(f"rows must be 'all' (every training row) or 'labelled' (only rows labelled for one of the run's tasks), got {rows!r}")


def _check_loss_weights(lw: Any, bad: Callable[[str], None]) -> tuple[tuple[str, float], ...]:
    if isinstance(lw, dict):
        lw = list(lw.items())
    try:
        pairs = [tuple(p) for p in lw]
    except TypeError:
        bad(f"loss_weights must map task names to weights, got {lw!r}")
    out: dict[str, float] = {}
    for p in pairs:
        if len(p) != 2 or not isinstance(p[0], str):
            bad(f"loss_weights must map task names to weights, got the entry {p!r}")
        name, w = p
        if not _is_real(w) or not (math.isfinite(w) and w >= 0):
            bad(f"loss weight of task {name!r} must be a finite number >= 0, got {w!r}")
        if name in out:
            bad(f"loss weight of task {name!r} is given twice")
        out[name] = float(w)
    return tuple(sorted(out.items()))


def _check_device(device: Any, bad: Callable[[str], None]) -> None:
    if not isinstance(device, str):
        bad(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        bad(f"device {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            bad(f"device {device!r} is not available: this machine has no CUDA GPU")
        if dev.index is not None and dev.index >= n:
            bad(f"device {device!r} is not available: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1})")
        return
    if dev.type == "mps" and torch.backends.mps.is_available():
        return
    backend = getattr(torch, dev.type, None)
    if dev.type != "mps" and backend is not None and getattr(backend, "is_available", lambda: False)():
        return
    bad(f"device {device!r} is not available on this machine")


def check_loss_weights(cfg: Any, task_names: Sequence[str]) -> None:
    """Refuse loss weights for tasks the suite does not have.

    >>> from taskrel.train import TrainConfig
    >>> check_loss_weights(TrainConfig(loss_weights={"b": 2.0}), ["a"])
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: train config: loss weight for unknown task 'b' (field loss_weights: [train] in a study file); tasks are ['a']
    """
    for name, _ in cfg.loss_weights:
        if name not in task_names:
            raise TaskrelError(f"train config: loss weight for unknown task {name!r} (field loss_weights: [train] in a study file); "
                               f"tasks are {list(task_names)}")


def check_rows(cfg: Any, suite: Any) -> None:
    """Refuse ``rows="labelled"`` on a suite that streams from a Dataset (its labels are not
    read before training), before anything trains.

    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> check_rows(TrainConfig(rows="labelled"), get_suite("planted", n_examples=100))  # in memory: fine
    """
    if cfg.rows != "all" and getattr(suite, "streams", False):
        raise TaskrelError(f"train config: rows={cfg.rows!r} needs an in-memory suite; suite {suite.name!r} streams from a "
                           "Dataset, whose labels are not read before training: use rows='all'")


__all__ = ["PRECISIONS", "ROWS", "check_config", "check_loss_weights", "check_rows"]
