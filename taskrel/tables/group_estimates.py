"""Every group's per-task values estimated from pair runs or an affinity, at one or more widths.

What :meth:`~taskrel.tables.CandidateTable.from_affinity` (through :func:`affinity_arrays`)
and :func:`~taskrel.tables.hoa_candidates` (:mod:`taskrel.tables.hoa`) build on: groups listed
size by size, values from group mates, costs per network, and :class:`Rows`, which stacks them
into the arrays of a candidate table (``tasks, members, cost, values, width, higher_is_better,
meta``).

The rule that turns an affinity into group values depends on what the affinity's zero means
(``Affinity.calibration``):

* ``"hoa"`` for relative gains (``"relative-gain"``: zero = as good as alone): member ``t`` of
  ``G`` gains ``g = mean(values[s, t], s in G - {t})``; with a base value ``b_t`` (the
  single-task loss) its loss is ``b_t - |b_t| g``, which is Standley's higher-order
  approximation written with relative pair gains; without one, the table holds ``g`` as a
  score (a singleton scores 0).
* ``"mean-gain"`` for gains in the units of the value (``"gain"``): ``b_t - g`` (or ``g``).
* ``"no-singleton"`` for scores without a calibrated zero (``"uncalibrated"``: CKA, gradient
  cosine, lookahead, frozen transfer): TAG's rule. Groups of two or more tasks only, each
  member scored ``g``; no task is ever alone, since nothing says what alone is worth.

>>> import numpy as np
>>> groups = enumerate_groups(3, 3)
>>> [(k, idx.tolist()) for k, idx in groups][:2]
[(1, [[0], [1], [2]]), (2, [[0, 1], [0, 2], [1, 2]])]
>>> onto = np.array([[0, .4, 0], [.2, 0, .1], [0, 0, 0]])
>>> mean_from_mates(onto, groups[2][1]).round(3).tolist()
[[0.1, 0.2, 0.05]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from itertools import combinations
from math import comb
from typing import Any

import numpy as np

from taskrel.affinity import Affinity
from taskrel.calibration import CALIBRATIONS
from taskrel.errors import TaskrelError

MAX_ENUMERATED = 5_000_000
RULES = ("hoa", "mean-gain", "no-singleton")
RULE_OF = {"relative-gain": "hoa", "gain": "mean-gain", "uncalibrated": "no-singleton"}
CostSpec = float | Mapping[int, float] | Callable[[tuple[str, ...]], float]
WidthCost = Mapping[float, float] | Callable[[float], float] | None


def number(v: Any, what: str) -> float:
    """``v`` as a finite float, or a TaskrelError naming ``what``."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise TaskrelError(f"candidates: {what} is not a number: {v!r}") from None
    if not math.isfinite(x):
        raise TaskrelError(f"candidates: {what} is {x} (NaN or inf is not allowed)")
    return x


def per_task(mapping: Mapping[str, float], tasks: list[str], what: str) -> np.ndarray:
    """One finite value per task from a mapping; unknown or missing tasks are errors."""
    if not isinstance(mapping, Mapping):
        raise TaskrelError(f"candidates: {what} must map task -> value, got {type(mapping).__name__}")
    out = np.empty(len(tasks))
    for i, t in enumerate(tasks):
        if t not in mapping:
            raise TaskrelError(f"candidates: {what} has no value for task {t!r}")
        out[i] = number(mapping[t], f"{what}[{t!r}]")
    extra = set(mapping) - set(tasks)
    if extra:
        raise TaskrelError(f"candidates: {what} names unknown task(s) {sorted(map(str, extra))}")
    return out


def by_width(spec: Any, what: str) -> dict[float, Any]:
    """``{width: x}`` from either one ``x`` (width 1) or a mapping keyed by numeric widths."""
    if isinstance(spec, Mapping) and spec and all(
        isinstance(k, (int, float)) and not isinstance(k, bool) for k in spec
    ):
        out = {}
        for k, v in spec.items():
            w = number(k, f"{what} width")
            if w <= 0:
                raise TaskrelError(f"candidates: {what}: width must be positive, got {k!r}")
            out[w] = v
        return out
    return {1.0: spec}


def check_max_size(max_size: Any, n: int) -> int:
    if max_size is None:
        return n
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 1:
        raise TaskrelError(f"candidates: max_size must be a positive integer, got {max_size!r}")
    return min(int(max_size), n)


def enumerate_groups(n: int, max_size: int, min_size: int = 1) -> list[tuple[int, np.ndarray]]:
    """``[(k, member indices (count, k))]`` for k = min_size..max_size, each row sorted."""
    total = sum(comb(n, k) for k in range(min_size, max_size + 1))
    if total > MAX_ENUMERATED:
        raise TaskrelError(
            f"candidates: {n} tasks with max_size={max_size} make {total} networks (more than "
            f"{MAX_ENUMERATED}); pass a smaller max_size"
        )
    if n <= 24 and max_size > 3:
        masks = np.arange(1, 1 << n, dtype=np.int64)
        bits = ((masks[:, None] >> np.arange(n)) & 1).astype(bool)
        size = bits.sum(axis=1)
        return [(k, np.nonzero(bits[size == k])[1].reshape(-1, k))
                for k in range(min_size, max_size + 1)]
    return [(k, np.array(list(combinations(range(n), k)), dtype=np.intp).reshape(-1, k))
            for k in range(min_size, max_size + 1)]


def mean_from_mates(onto: np.ndarray, idx: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    """For groups ``idx`` (count, k >= 2): ``mean(onto[s, t], s in G - {t})`` per member."""
    k = idx.shape[1]
    out = np.empty(idx.shape)
    for s in range(0, len(idx), chunk):
        sl = idx[s:s + chunk]
        block = onto[sl[:, :, None], sl[:, None, :]]
        out[s:s + chunk] = (block.sum(axis=1) - block[:, np.arange(k), np.arange(k)]) / (k - 1)
    return out


def network_costs(cost: CostSpec, tasks: list[str], idx: np.ndarray, scale: float) -> np.ndarray:
    """Costs of groups ``idx`` at width 1 (``cost``: number, size -> cost, or a function of
    the group's task tuple), times the width's ``scale``."""
    size = idx.shape[1]
    if callable(cost):
        out = np.array([number(cost(tuple(tasks[i] for i in row)), "cost") for row in idx])
    elif isinstance(cost, Mapping):
        if size not in cost:
            raise TaskrelError(f"candidates: cost has no entry for networks of size {size}")
        out = np.full(len(idx), number(cost[size], f"cost[{size}]"))
    else:
        out = np.full(len(idx), number(cost, "cost"))
    out = out * scale
    if (out <= 0).any():
        raise TaskrelError(f"candidates: costs of size-{size} networks must be positive numbers")
    return out


def width_scale(width_cost: WidthCost, width: float) -> float:
    """The cost multiplier of a width (default: the width itself)."""
    if width_cost is None:
        return width
    if callable(width_cost):
        return number(width_cost(width), f"width_cost({width:g})")
    if width not in width_cost:
        raise TaskrelError(f"candidates: width_cost has no entry for width {width:g}")
    return number(width_cost[width], f"width_cost[{width:g}]")


class Rows:
    """Rows gathered width by width, then stacked into table arrays."""

    def __init__(self, tasks: list[str]):
        self.tasks, self.parts = tasks, []

    def add(self, idx: np.ndarray, values: np.ndarray, cost: np.ndarray, width: float) -> None:
        n, m = len(self.tasks), len(idx)
        members = np.zeros((m, n), dtype=bool)
        vals = np.full((m, n), np.nan)
        rows = np.arange(m)[:, None]
        members[rows, idx] = True
        vals[rows, idx] = values
        self.parts.append((members, vals, cost, np.full(m, width)))

    def arrays(self, higher_is_better: bool, meta: dict[str, Any]) -> dict[str, Any]:
        if not self.parts:
            raise TaskrelError("candidates: no networks to list (check max_size and the widths)")
        members, values, cost, width = (np.concatenate(x) for x in zip(*self.parts))
        return {"tasks": self.tasks, "members": members, "cost": cost, "values": values,
                "width": width, "higher_is_better": higher_is_better, "meta": meta}


def affinity_arrays(affinity: Affinity, base=None, max_size=None, cost: CostSpec = 1.0,
                    rule: str = "auto", higher_is_better: bool = False,
                    width_cost: WidthCost = None) -> dict[str, Any]:
    """Arrays of :meth:`~taskrel.tables.CandidateTable.from_affinity` (module docstring)."""
    if not isinstance(affinity, Affinity) or affinity.is_staged:
        raise TaskrelError("candidates: from_affinity needs a plain (n x n) taskrel Affinity")
    if rule == "auto":
        if affinity.calibration not in RULE_OF:
            raise TaskrelError(
                f"candidates: affinity {affinity.measure!r} is {affinity.calibration!r} "
                f"(not a task affinity); it cannot score groups"
            )
        rule = RULE_OF[affinity.calibration]
    if rule not in RULES:
        raise TaskrelError(f"candidates: unknown rule {rule!r}; use 'auto' or one of {RULES}")
    if rule == "no-singleton" and base is not None:
        raise TaskrelError(
            f"candidates: affinity {affinity.measure or ''!r} has no calibrated zero, so it "
            f"cannot be turned into losses (base_loss); calibrate it against measured pairs "
            f"first (Affinity.calibrate) or use it without base_loss"
        )
    tasks = list(affinity.tasks)
    n = len(tasks)
    max_size = check_max_size(max_size, n)
    low = 2 if rule == "no-singleton" else 1
    if low > max_size:
        raise TaskrelError(f"candidates: rule 'no-singleton' needs groups of two or more tasks "
                           f"(max_size={max_size}, {n} task(s))")
    onto = np.array(affinity.values, dtype=np.float64)
    bases = by_width(base, "base_loss") if base is not None else {1.0: None}
    rows = Rows(tasks)
    for w in sorted(bases, reverse=True):
        b = None if bases[w] is None else per_task(bases[w], tasks, f"base_loss at width {w:g}")
        scale = width_scale(width_cost, w)
        for k, idx in enumerate_groups(n, max_size, low):
            gain = np.zeros(idx.shape) if k == 1 else mean_from_mates(onto, idx)
            if b is not None:
                sign = 1.0 if higher_is_better else -1.0
                step = np.abs(b[idx]) * gain if rule == "hoa" else gain
                gain = b[idx] + sign * step
            rows.add(idx, gain, network_costs(cost, tasks, idx, scale), w)
    value = {"hoa": "relative gain from group mates (HOA)", "mean-gain": "gain from group mates",
             "no-singleton": "mean affinity from group mates (no task alone)"}[rule]
    if base is not None:
        value = f"{'score' if higher_is_better else 'loss'} from base and {value}"
    meta = {"rule": rule, "affinity": affinity.measure, "calibration": affinity.calibration,
            "value": value}
    return rows.arrays(bool(higher_is_better) if base is not None else True, meta)


__all__ = ["CALIBRATIONS", "RULES", "RULE_OF", "Rows", "affinity_arrays", "by_width", "check_max_size",
           "enumerate_groups", "mean_from_mates", "network_costs", "number", "per_task", "width_scale"]
