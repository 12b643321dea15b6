"""Capacity as a choice: a suite's encoder at a width multiplier, and parameter counts.

A suite built with ``stages_at_width`` (a function ``width -> stage factories``) can build its
encoder at any width multiplier: ``suite.at_width(0.5)`` is the same data, tasks, split and
head factory with every stage built by ``stages_at_width(0.5)``. Heads follow the last
stage's size (the head factory receives its flattened size). Width 1 is the suite as built,
so its run keys do not change; at another width the stages differ, so does the suite's
fingerprint and every run key (:meth:`~taskrel.suite.Suite.fingerprint`).

Every built-in suite has a builder: its hidden sizes (units, channels) are multiplied by the
width and rounded (:func:`scaled`), at least one unit each. A suite of your own gets one by
passing ``Suite(..., stages_at_width=fn)``; without one, asking for a width is an error that
names the suite.

A :class:`~taskrel.layout.SharingLayout` may give each group its own width
(``layout.with_widths({task: width})``): the model builds each group's blocks at its width.
:func:`layout_parameters` and :func:`network_parameters` count parameters, and
:func:`matching_width` finds the width at which a layout has a given parameter count.

>>> from taskrel.suites import get_suite
>>> suite = get_suite("planted", n_examples=100)
>>> half = suite.at_width(0.5)
>>> suite.at_width(1.0) is suite, half.width, half.fingerprint() != suite.fingerprint()
(True, 0.5, True)
>>> network_parameters(half, suite.task_names) < network_parameters(suite, suite.task_names)
True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from taskrel.blocks import check_factories, check_heads
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout, build_model

WidthStages = Callable[[float], Sequence[Callable[[], nn.Module]]]
MIN_WIDTH, MAX_WIDTH = 1 / 64, 64.0


def check_width(value: Any, where: str = "width") -> float:
    """``value`` as a positive finite width, or a TaskrelError naming ``where`` and the value.

    >>> check_width(0.5), check_width(2)
    (0.5, 2.0)
    >>> check_width(0, "widths")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: widths: a width must be a positive number, got 0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TaskrelError(f"{where}: a width must be a positive number, got {value!r}")
    w = float(value)
    if not math.isfinite(w) or w <= 0:
        raise TaskrelError(f"{where}: a width must be a positive number, got {value!r}")
    return w


def scaled(units: int, width: float) -> int:
    """``units`` times ``width``, rounded, at least 1 (exactly ``units`` at width 1).

    >>> scaled(32, 0.5), scaled(32, 1.0), scaled(3, 0.1)
    (16, 32, 1)
    """
    return int(units) if width == 1.0 else max(1, int(round(units * width)))


def _linear(a: int, b: int) -> Callable[[], nn.Module]:
    return lambda: nn.Sequential(nn.Linear(a, b), nn.ReLU())


def mlp_stages(d_in: int, sizes: Sequence[int]) -> WidthStages:
    """The width builder of an MLP encoder: one Linear+ReLU stage per size in ``sizes``
    (the sizes at width 1), each scaled by the width.

    >>> build = mlp_stages(8, [32, 16])
    >>> [f() for f in build(0.5)][1]
    Sequential(
      (0): Linear(in_features=16, out_features=8, bias=True)
      (1): ReLU()
    )
    """
    sizes = [int(s) for s in sizes]

    def build(width: float) -> list[Callable[[], nn.Module]]:
        units = [int(d_in)] + [scaled(s, width) for s in sizes]
        return [_linear(a, b) for a, b in zip(units[:-1], units[1:])]

    return build


def suite_at_width(suite: Any, width: Any) -> Any:
    """``suite`` with its encoder built at ``width`` (see the module docstring).

    The width is absolute: ``suite.at_width(0.5).at_width(1.0)`` is the width-1 encoder.
    Suites are cached per width, so a width's fingerprint is computed once.
    """
    where = f"suite {suite.name!r}"
    w = check_width(width, f"{where}: width")
    if w == getattr(suite, "width", 1.0):
        return suite
    builder = getattr(suite, "stages_at_width", None)
    if builder is None:
        raise TaskrelError(
            f"{where} has no width builder, so it cannot be built at width {w:g}; give "
            f"Suite(..., stages_at_width=fn) with fn(width) -> stage factories"
        )
    cache = suite.__dict__.setdefault("_widths", {})
    key = (w, tuple(suite.task_names))
    if key in cache:
        return cache[key]
    try:
        stages = list(builder(w))
    except TaskrelError:
        raise
    except Exception as e:
        raise TaskrelError(f"{where}: its width builder failed at width {w:g}: {type(e).__name__}: {e}") from None
    check_factories(f"{where} at width {w:g}", stages, suite.head)
    if len(stages) != suite.n_stages:
        raise TaskrelError(f"{where}: at width {w:g} the builder gives {len(stages)} stages, the suite has {suite.n_stages}")
    out = copy.copy(suite)
    out.stages, out.width = stages, w
    out._feature_shapes, out._fingerprint = None, None
    out._parts = {k: v for k, v in suite.__dict__.get("_parts", {}).items() if k == "data"}
    out._widths = cache  # one cache for every width of the same tasks
    try:
        last = out.feature_shapes()[-1]
    except TaskrelError as e:
        raise TaskrelError(f"{where} at width {w:g}: {e}") from None
    with torch.random.fork_rng(devices=[]):
        check_heads(f"{where} at width {w:g}", out.tasks, out.head, torch.zeros(2, *last))
    cache[key] = out
    return out


def widths_fingerprint(suite: Any, layout: SharingLayout) -> dict[str, str]:
    """For a layout with widths: each width's fingerprint of the tasks built at it (part of a
    run's key, so a change of the width builder gives new keys)."""
    by_width: dict[float, list[str]] = {}
    for t in layout.tasks:
        by_width.setdefault(layout.width_of(t), []).append(t)
    return {f"{w:g}": suite.at_width(w).fingerprint(ts) for w, ts in sorted(by_width.items())}


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def network_parameters(suite: Any, tasks: Sequence[str], width: float | None = None) -> int:
    """Parameters of one network of ``tasks`` (a shared encoder and a head each) at ``width``
    (default: the suite's own width).

    >>> from taskrel.suites import get_suite
    >>> s = get_suite("planted", n_examples=100)
    >>> lay = SharingLayout.shared(["c0t0", "c0t1"], s.n_stages)
    >>> network_parameters(s, ["c0t0", "c0t1"]) == build_model(lay, s).n_parameters()
    True
    """
    s = suite if width is None else suite.at_width(width)
    state = torch.random.get_rng_state()
    try:
        enc = sum(_count(s.build_stage(k)) for k in range(s.n_stages))
        in_features = int(np.prod(s.feature_shapes()[-1]))
        heads = sum(_count(s.head(s.task(t), in_features)) for t in tasks)
    finally:
        torch.random.set_rng_state(state)
    return int(enc + heads)


def layout_parameters(suite: Any, layout: SharingLayout) -> int:
    """Parameters of the model a layout (with its widths) builds on ``suite``."""
    state = torch.random.get_rng_state()
    try:
        return int(build_model(layout, suite).n_parameters())
    finally:
        torch.random.set_rng_state(state)


def matching_width(count: Callable[[float], int], target: float, lo: float = MIN_WIDTH,
                   hi: float = MAX_WIDTH, digits: int = 3) -> tuple[float, int]:
    """The width (``digits`` decimals) whose ``count(width)`` is nearest ``target``, and that
    count; ``count`` must not decrease with the width (a parameter count does not).

    >>> matching_width(lambda w: int(100 * w * w), 25)
    (0.5, 25)
    """
    seen: dict[float, int] = {}

    def at(w: float) -> float:
        return round(min(max(w, lo), hi), digits)

    def n(w: float) -> int:
        if w not in seen:
            seen[w] = int(count(w))
        return seen[w]

    a = b = 1.0  # bracket the target, doubling outwards, then bisect on the log of the width
    while b < hi and n(b) < target:
        a, b = b, at(2 * b)
    while a > lo and n(a) > target:
        a, b = at(a / 2), a
    for _ in range(60):
        mid = at(math.sqrt(a * b))
        if mid in (a, b):
            break
        if n(mid) < target:
            a = mid
        else:
            b = mid
    best = min((a, b), key=lambda w: (abs(n(w) - target), w))
    return best, int(n(best))


__all__ = ["MAX_WIDTH", "MIN_WIDTH", "WidthStages", "check_width", "layout_parameters", "matching_width",
           "mlp_stages", "network_parameters", "scaled", "suite_at_width", "widths_fingerprint"]
