"""Every check of a study against its suite, before anything trains: one place per value.

Each problem is a :class:`~taskrel.errors.TaskrelError` naming the field (as a study file
spells it) and the value.
"""

from __future__ import annotations

import math
from typing import Any

from taskrel.analysis.cluster import LINKAGES
from taskrel.analysis.cluster import METHODS as CLUSTER_METHODS
from taskrel.config_checks import check_loss_weights
from taskrel.errors import TaskrelError
from taskrel.suite import Suite


def _fail(field: str, msg: str) -> None:
    raise TaskrelError(f"study: field {field!r}: {msg}")


def check_study(study: Any, suite: Suite) -> tuple[list[str], list[float] | None, float | None]:
    """The study's tasks, its budgets (sorted, with the recommendation's) and the
    recommendation's budget (the grouping's, or the middle budget when it gives None), checked.

    ``study`` is a :class:`~taskrel.study.Study`; nothing in it is changed.
    """
    try:
        tasks = suite.check_tasks(study.tasks) if study.tasks is not None else list(suite.task_names)
    except TaskrelError as e:
        raise TaskrelError(f"study: field 'suite.tasks': {e}") from None
    if len(tasks) < 2:
        _fail("suite.tasks", f"a study needs at least two tasks, got {tasks}")
    named = study.named_probes()
    if not named:
        _fail("probes", "a study needs at least one probe ([probes.pairwise], ...)")
    for name, probe in study.prepared_probes(tasks).items():
        try:
            check_loss_weights(probe.train_config(), suite.task_names)
            probe.check(suite)
            probe.plan(suite)
        except TaskrelError as e:
            raise TaskrelError(f"study: field 'probes.{name}': {e}") from None
    if study.affinity is not None and study.affinity not in named:
        _fail("analysis.affinity", f"no probe named {study.affinity!r}; probes are {list(named)}")
    for t in study.auxiliary:
        if t not in tasks:
            _fail("analysis.auxiliary.primary", f"unknown task {t!r}; tasks are {tasks}")
    if study.clustering is not None:
        for attr, allowed in (("method", CLUSTER_METHODS), ("linkage", LINKAGES)):
            value = getattr(study.clustering, attr, None)
            if value is not None and value not in allowed:
                _fail(f"analysis.clustering.{attr}", f"unknown {attr} {value!r}; use one of {', '.join(allowed)}")
        k = getattr(study.clustering, "n_clusters", None)
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(tasks)):
            _fail("analysis.clustering.n_clusters", f"must be an integer between 1 and {len(tasks)}, got {k!r}")
    budgets, budget = _check_grouping(study, list(named), len(tasks)) if study.grouping is not None else (None, None)
    check_widths(study, suite)
    if study.validation is not None:
        study.validation.check()
    return tasks, budgets, budget


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _check_grouping(study: Any, probes: list[str], n: int) -> tuple[list[float], float]:
    from taskrel.analysis.grouping import SOLVERS

    g = study.grouping
    src = study.grouping_source
    if src is not None and src not in probes:
        _fail("analysis.grouping.source", f"no probe named {src!r}; probes are {probes}")
    budgets = list(study.budgets) if study.budgets is not None else list(range(1, n + 1))
    if not budgets:
        _fail("analysis.grouping.budgets", f"must be a non-empty list of numbers, got {budgets!r}")
    if study.widths:  # a narrow network costs less than a full one: any positive budget may do
        least, each, one = 0.0, "must be a number above 0", "must be a number above 0"
    else:
        least, each, one = 1.0, "(networks trained) must be a number >= 1", "must be a number >= 1 (networks trained)"
    for b in budgets:
        if not _number(b) or b < least or b <= 0:
            _fail("analysis.grouping.budgets", f"each budget {each}, got {b!r}")
    budget = g.budget if g.budget is not None else sorted(set(budgets))[len(set(budgets)) // 2]
    if not _number(budget) or budget < least or budget <= 0:
        _fail("analysis.grouping.budget", f"{one}, got {budget!r}")
    if budget > n and not study.widths:
        _fail("analysis.grouping.budget", f"{budget} networks for {n} tasks: at most {n} are ever useful")
    if g.solver not in SOLVERS:
        _fail("analysis.grouping.solver", f"unknown solver {g.solver!r}; use one of {list(SOLVERS)}")
    ms = study.max_size
    if ms is not None and (not isinstance(ms, int) or isinstance(ms, bool) or ms < 1):
        _fail("analysis.grouping.max_size", f"must be a positive integer, got {ms!r}")
    return sorted({float(b) for b in budgets} | {float(budget)}), float(budget)


def check_widths(study: Any, suite: Suite) -> list[float] | None:
    """The widths a study offers each group, checked (and the suite built at each), or None."""
    from taskrel.study.capacity import COSTS
    from taskrel.widths import check_width

    ws = study.widths
    if ws is None:
        return None
    where = "analysis.grouping.widths"
    if study.grouping is None:
        _fail(where, "widths are chosen by the grouping search; the study has no grouping")
    if isinstance(ws, (str, bytes)) or not hasattr(ws, "__iter__") or not list(ws):
        _fail(where, f"must be a non-empty list of widths (e.g. [0.5, 1.0]), got {ws!r}")
    widths = [check_width(w, f"study: field {where!r}") for w in ws]
    if len(set(widths)) != len(widths):
        _fail(where, f"widths are repeated: {list(ws)}")
    if study.grouping_cost not in COSTS:
        _fail("analysis.grouping.cost", f"unknown cost {study.grouping_cost!r}; use one of {', '.join(COSTS)}")
    source = study.source_probe()
    probe = study.named_probes().get(source)
    if getattr(probe, "kind", None) != "pairwise":
        _fail(where, f"choosing widths needs a pairwise probe as the grouping source; the source is {source!r}")
    for w in widths:
        try:
            suite.at_width(w)
        except TaskrelError as e:
            _fail(where, f"width {w:g}: {e}")
    return widths


__all__ = ["check_study", "check_widths"]
