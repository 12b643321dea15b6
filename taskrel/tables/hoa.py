"""Standley's higher-order approximation (HOA): every group's per-task values from pair runs,
at one or more widths, as a :class:`~taskrel.tables.CandidateTable`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.tables.candidates import CandidateTable
from taskrel.tables.group_estimates import (
    CostSpec,
    Rows,
    WidthCost,
    by_width,
    check_max_size,
    enumerate_groups,
    mean_from_mates,
    network_costs,
    number,
    per_task,
    width_scale,
)


def _pair_matrix(tasks: list[str], pairs: Mapping, what: str) -> np.ndarray:
    """``onto[s, t]`` = value of ``t`` trained with ``s``; NaN where no pair was given."""
    index = {t: i for i, t in enumerate(tasks)}
    onto = np.full((len(tasks), len(tasks)), np.nan)
    if not isinstance(pairs, Mapping):
        raise TaskrelError(f"hoa: {what} must map (a, b) -> {{a: value, b: value}}")
    for key, vals in pairs.items():
        if not isinstance(key, tuple) or len(key) != 2 or key[0] == key[1]:
            raise TaskrelError(f"hoa: pair key must be a tuple of two tasks, got {key!r}")
        a, b = key
        for t in (a, b):
            if t not in index:
                raise TaskrelError(f"hoa: pair {key!r}: unknown task {t!r}; tasks are {tasks}")
            if not isinstance(vals, Mapping) or t not in vals:
                raise TaskrelError(f"hoa: pair {key!r}: value of {t!r} is missing")
        ia, ib = index[a], index[b]
        if not np.isnan(onto[ib, ia]):
            raise TaskrelError(f"hoa: pair {a!r}+{b!r} is given more than once")
        onto[ib, ia] = number(vals[a], f"pair {key!r}: value of {a!r}")
        onto[ia, ib] = number(vals[b], f"pair {key!r}: value of {b!r}")
    return onto


def hoa_candidates(
    tasks: list[str],
    single_loss: Mapping[str, float] | Mapping[float, Mapping[str, float]],
    pair_loss: Mapping[tuple[str, str], Mapping[str, float]] | Mapping[float, Mapping],
    max_size: int | None = None,
    cost: CostSpec = 1.0,
    higher_is_better: bool = False,
    width_cost: WidthCost = None,
) -> CandidateTable:
    """Standley's higher-order approximation: every group's per-task value from pair runs.

    ``pair_loss[(a, b)] = {a: value of a trained with b, b: value of b trained with a}`` for
    every pair. The value of ``t`` in group ``G`` (size >= 2) is the mean of its pair values
    with the other members; a singleton has ``single_loss[t]``. Values are losses, or scores
    with ``higher_is_better=True``. Networks of several widths: give ``single_loss`` and
    ``pair_loss`` as ``{width: ...}`` (a width with singles only lists singletons, as
    Standley's half-size networks). ``cost`` is the cost of a full-width network: one number,
    a dict size -> cost, or a function of the group's task tuple; a network of width ``w``
    costs ``w`` times it (or ``width_cost(w)`` times it). Groups of every size up to
    ``max_size`` (default: all tasks) are listed; beyond a few million, pass ``max_size``.

    >>> t = hoa_candidates(["a", "b", "c"], {"a": 1, "b": 1, "c": 1},
    ...     {("a", "b"): {"a": .8, "b": 1.1}, ("a", "c"): {"a": .6, "c": .9},
    ...      ("b", "c"): {"b": .7, "c": 1.0}})
    >>> len(t), t.value(("a", "b", "c"), "a")
    (7, 0.7)
    >>> half = hoa_candidates(["a", "b"], {1: {"a": 1, "b": 1}, .5: {"a": 1.2, "b": 1.1}},
    ...                       {1: {("a", "b"): {"a": .9, "b": 1.0}}})
    >>> half.names, half.cost.tolist()
    (['a', 'b', 'a+b', 'a@0.5', 'b@0.5'], [1.0, 1.0, 1.0, 0.5, 0.5])
    """
    tasks = [str(t) for t in tasks]
    if len(set(tasks)) != len(tasks) or not tasks:
        raise TaskrelError(f"hoa: task names must be distinct and non-empty, got {tasks}")
    max_size = check_max_size(max_size, len(tasks))
    singles = by_width(single_loss, "single_loss") if single_loss is not None else {}
    pairs = by_width(pair_loss, "pair_loss") if pair_loss else {}
    rows = Rows(tasks)
    for w in sorted(set(singles) | set(pairs), reverse=True):
        scale = width_scale(width_cost, w)
        low = 1 if w in singles else 2
        onto = None
        if max_size >= 2 and w in pairs:
            onto = _pair_matrix(tasks, pairs[w], f"pair_loss at width {w:g}")
            np.fill_diagonal(onto, 0.0)
            missing = np.argwhere(np.isnan(onto))
            if len(missing):
                i, j = missing[0]
                raise TaskrelError(f"hoa: no pair value for {tasks[i]!r}+{tasks[j]!r} "
                                   f"at width {w:g}")
        top = max_size if onto is not None else 1
        for k, idx in enumerate_groups(len(tasks), top, low) if low <= top else []:
            if k == 1:
                vals = per_task(singles[w], tasks, f"single_loss at width {w:g}")[idx]
            else:
                vals = mean_from_mates(onto, idx)
            rows.add(idx, vals, network_costs(cost, tasks, idx, scale), w)
    meta = {"rule": "hoa", "value": "HOA estimate from pairs"}
    return CandidateTable.from_arrays(**rows.arrays(bool(higher_is_better), meta), check_duplicates=False)


__all__ = ["hoa_candidates"]
