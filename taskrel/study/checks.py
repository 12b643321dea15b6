"""Every check of a study against its suite, before anything trains: one place per value.

Each problem is a :class:`~taskrel.errors.TaskrelError` naming the field (as a study file
spells it) and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from taskrel.analysis.cluster import LINKAGES
from taskrel.analysis.cluster import METHODS as CLUSTER_METHODS
from taskrel.config_checks import check_loss_weights, check_rows
from taskrel.errors import TaskrelError
from taskrel.suite import Suite


def _fail(field: str, msg: str) -> None:
    raise TaskrelError(f"study: field {field!r}: {msg}")


@dataclass
class Checked:
    """What the checks found and made, handed to the study's steps so nothing is made twice.

    ``tasks``: the study's tasks; ``probes``: the probes as they will be fitted (the study's
    tasks and config where a probe gives none), by name; ``plans``: each probe's
    :class:`~taskrel.plans.Plan` (made once, here); ``budgets`` and ``budget``: the grouping's
    front (sorted, with the recommendation's) and the recommendation's budget (None: no
    grouping); ``widths``: the grouping source's probe at every width other than 1, as
    ``{width: (suite at that width, probe, plan)}`` (empty: no widths), ``source`` that probe's name;
    ``keys``: each probe's planned run keys by name (a width's as ``"<probe> at width w"``),
    computed once by :meth:`run_keys`.
    """

    tasks: list[str]
    probes: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, Any] = field(default_factory=dict)
    budgets: list[float] | None = None
    budget: float | None = None
    widths: dict[float, tuple[Suite, Any, Any]] = field(default_factory=dict)
    source: str | None = None
    keys: dict[str, list[str]] | None = None

    def run_keys(self, suite: Suite) -> dict[str, list[str]]:
        """Each probe's planned run keys by name, and each width's (computed once, then kept)."""
        if self.keys is None:
            self.keys = {name: [s.key(suite) for s in plan] for name, plan in self.plans.items()}
            for w, (at, probe, plan) in self.widths.items():
                self.keys[f"{probe.kind} at width {w:g}"] = [s.key(at) for s in plan]
        return self.keys

    def queue(self, suite: Suite) -> list[tuple[Suite, list[Any]]]:
        """Every planned probe run, grouped by the suite it trains on (the study's, then each width's)."""
        return [(suite, [s for plan in self.plans.values() for s in plan]),
                *((at, list(plan)) for at, _, plan in self.widths.values())]


def check_study(study: Any, suite: Suite) -> Checked:
    """The study checked against ``suite``, and what the checks made: the first problem
    :func:`study_problems` finds is raised, else the :class:`Checked` (its tasks, prepared
    probes, each probe's plan, the grouping's budgets and the width probes' plans).

    ``study`` is a :class:`~taskrel.study.Study`; nothing in it is changed.
    """
    errors, checked = examine(study, suite)
    if errors:
        raise TaskrelError(errors[0])
    return checked


def study_problems(study: Any, suite: Suite) -> list[str]:
    """Every problem of ``study`` against ``suite`` (each naming its field), none raised."""
    return examine(study, suite)[0]


def examine(study: Any, suite: Suite) -> tuple[list[str], Checked | None]:
    """Every problem of ``study`` against ``suite``, and (when there is none) the
    :class:`Checked`; each probe is planned once, here."""
    errors: list[str] = []

    def attempt(fn: Any) -> Any:
        try:
            return fn()
        except TaskrelError as e:
            errors.append(str(e))
            return None

    attempt(study.suite_options)  # the suite parameter's form, also when fit is given a suite
    tasks = attempt(lambda: _tasks(study, suite))
    named = attempt(study.named_probes)
    if tasks is None or named is None:
        return errors, None
    if not named:
        attempt(lambda: _fail("probes", "a study needs at least one probe ([probes.pairwise], ...)"))
    base = study.base_config()
    attempt(lambda: _check_train(base, suite))
    checked = Checked(tasks, attempt(lambda: study.prepared_probes(tasks)) or {})
    for name, probe in checked.probes.items():
        plan = attempt(lambda n=name, p=probe: _check_probe(n, p, suite, base))
        if plan is not None:
            checked.plans[name] = plan
    _check_analyses(study, tasks, list(named), attempt)
    if study.grouping_plan() is not None:
        checked.budgets, checked.budget = attempt(lambda: _check_grouping(study, list(named), len(tasks))) or (None, None)
    widths = attempt(lambda: check_widths(study, suite))
    if widths and not errors:
        checked.source = study.source_probe()
        checked.widths = attempt(lambda: width_plans(widths, checked.probes.get(checked.source), suite)) or {}
    attempt(lambda: check_run_budget(study.max_runs, checked.run_keys(suite), len(tasks)))
    if study.validation is not None:
        attempt(study.validation.check)
    return errors, (None if errors else checked)


def _check_analyses(study: Any, tasks: list[str], named: list[str], attempt: Any) -> None:
    """The analyses' settings: the affinity probe, auxiliary tasks and the clustering."""
    if study.affinity is not None and study.affinity not in named:
        attempt(lambda: _fail("analysis.affinity", f"no probe named {study.affinity!r}; probes are {named}"))
    for t in study.auxiliary:
        if t not in tasks:
            attempt(lambda t=t: _fail("analysis.auxiliary.primary", f"unknown task {t!r}; tasks are {tasks}"))
    if study.clustering is not None:
        attempt(lambda: _check_clustering(study.clustering, len(tasks)))


def width_plans(widths: list[float], probe: Any, suite: Suite) -> dict[float, tuple[Suite, Any, Any]]:
    """The grouping source ``probe`` (a prepared pairwise probe) at every width but 1: the
    suite built at that width, a copy of the probe and its plan there."""
    from taskrel.base import clone

    out = {}
    for w in sorted({float(x) for x in widths}):
        if w != 1.0:
            at = suite.at_width(w)
            p = clone(probe)
            out[w] = (at, p, p.plan(at))
    return out


def _tasks(study: Any, suite: Suite) -> list[str]:
    tasks = study.task_list(suite)
    if len(tasks) < 2:
        _fail("suite.tasks", f"a study needs at least two tasks, got {tasks}")
    return tasks


def _check_train(config: Any, suite: Suite) -> None:
    """The study's [train] config against the suite (its loss weights name tasks)."""
    try:
        check_loss_weights(config, suite.task_names)
    except TaskrelError as e:
        raise TaskrelError(f"study: field 'train.loss_weights': {e}") from None
    try:
        check_rows(config, suite)
    except TaskrelError as e:
        raise TaskrelError(f"study: field 'train.rows': {e}") from None


def _check_probe(name: str, probe: Any, suite: Suite, base: Any = None) -> Any:
    """The probe checked against the suite; its plan (a config the probe shares with the
    study's [train] is checked there, once)."""
    try:
        cfg = probe.train_config()
        if base is None or getattr(cfg, "loss_weights", None) != getattr(base, "loss_weights", None):
            check_loss_weights(cfg, suite.task_names)
        probe.check(suite)
        return probe.plan(suite)
    except TaskrelError as e:
        raise TaskrelError(f"study: field 'probes.{name}': {e}") from None




def check_run_budget(max_runs: int | None, planned: dict[str, list[Any]], n_tasks: int) -> int:
    """The distinct runs the probes plan (``planned``: each probe's run keys by name); a
    TaskrelError before any training when they exceed ``max_runs``, naming each probe's count
    and the cheap route.

    >>> check_run_budget(10, {"pairwise": list(range(15))}, 5)
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: study: field 'max_runs': the probes plan 15 runs (pairwise 15), more than max_runs = 10. ...
    """
    if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1):
        _fail("max_runs", f"must be a positive whole number of runs (or None: no limit), got {max_runs!r}")
    keys = {k for ks in planned.values() for k in ks}
    if max_runs is None or len(keys) <= max_runs:
        return len(keys)
    per = ", ".join(f"{name} {len(set(ks))}" for name, ks in planned.items())
    _fail("max_runs", f"the probes plan {len(keys)} runs ({per}), more than max_runs = {max_runs}. A pairwise probe "
          f"trains every task alone and every pair: {n_tasks + n_tasks * (n_tasks - 1) // 2} runs per seed at "
          f"{n_tasks} tasks. The cheap route: the prediction probe ([probes.prediction]) trains no run; the gradient "
          "and gradient-feature probes ([probes.gradient], [probes.gradfeature]) train one run with every task per seed; "
          "or raise max_runs")


def _check_clustering(clustering: Any, n: int) -> None:
    for attr, allowed in (("method", CLUSTER_METHODS), ("linkage", LINKAGES)):
        value = getattr(clustering, attr, None)
        if value is not None and value not in allowed:
            _fail(f"analysis.clustering.{attr}", f"unknown {attr} {value!r}; use one of {', '.join(allowed)}")
    k = getattr(clustering, "n_clusters", None)
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n):
        _fail("analysis.clustering.n_clusters", f"must be an integer between 1 and {n}, got {k!r}")
    if not isinstance(getattr(clustering, "stability", True), bool):
        _fail("analysis.clustering.stability", f"must be true or false, got {clustering.stability!r}")


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


RECOMMEND = ("search", "clusters")


def _check_grouping(study: Any, probes: list[str], n: int) -> tuple[list[float], float]:
    from taskrel.analysis.grouping import SOLVERS

    plan = study.grouping_plan()
    g = plan.searcher()
    src = plan.source
    if src is not None and src not in probes:
        _fail("analysis.grouping.source", f"no probe named {src!r}; probes are {probes}")
    budgets = list(plan.budgets) if plan.budgets is not None else list(range(1, n + 1))
    if not budgets:
        _fail("analysis.grouping.budgets", f"must be a non-empty list of numbers, got {budgets!r}")
    if plan.widths:  # a narrow network costs less than a full one: any positive budget may do
        least, each, one = 0.0, "must be a number above 0", "must be a number above 0"
    else:
        least, each, one = 1.0, "(networks trained) must be a number >= 1", "must be a number >= 1 (networks trained)"
    for b in budgets:
        if not _number(b) or b < least or b <= 0:
            _fail("analysis.grouping.budgets", f"each budget {each}, got {b!r}")
        if b > n and not plan.widths:
            _fail("analysis.grouping.budgets", f"{b!r} networks for {n} tasks: at most {n} are ever useful")
    budget = g.budget if g.budget is not None else sorted(set(budgets))[len(set(budgets)) // 2]
    if not _number(budget) or budget < least or budget <= 0:
        _fail("analysis.grouping.budget", f"{one}, got {budget!r}")
    if budget > n and not plan.widths:
        _fail("analysis.grouping.budget", f"{budget} networks for {n} tasks: at most {n} are ever useful")
    if g.solver not in SOLVERS:
        _fail("analysis.grouping.solver", f"unknown solver {g.solver!r}; use one of {list(SOLVERS)}")
    ms = plan.max_size
    if ms is not None and (not isinstance(ms, int) or isinstance(ms, bool) or ms < 1):
        _fail("analysis.grouping.max_size", f"must be a positive integer, got {ms!r}")
    rec = plan.recommend
    if rec not in RECOMMEND:
        _fail("analysis.grouping.recommend", f"must be one of {list(RECOMMEND)}, got {rec!r}")
    if rec == "clusters" and study.clustering is None:
        _fail("analysis.grouping.recommend", "'clusters' needs an [analysis.clustering] table")
    return sorted({float(b) for b in budgets} | {float(budget)}), float(budget)


def check_widths(study: Any, suite: Suite) -> list[float] | None:
    """The widths a study offers each group, checked (and the suite built at each), or None."""
    from taskrel.study.capacity import COSTS
    from taskrel.widths import check_width

    plan = study.grouping_plan()
    ws = None if plan is None else plan.widths
    if ws is None:
        return None
    where = "analysis.grouping.widths"
    if isinstance(ws, (str, bytes)) or not hasattr(ws, "__iter__") or not list(ws):
        _fail(where, f"must be a non-empty list of widths (e.g. [0.5, 1.0]), got {ws!r}")
    widths = [check_width(w, f"study: field {where!r}") for w in ws]
    if len(set(widths)) != len(widths):
        _fail(where, f"widths are repeated: {list(ws)}")
    if plan.cost not in COSTS:
        _fail("analysis.grouping.cost", f"unknown cost {plan.cost!r}; use one of {', '.join(COSTS)}")
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


def planned_runs(study: Any, suite: Suite, store: Any = None) -> dict[str, Any]:
    """The probe runs ``study`` plans on ``suite`` before validation (over ``max_runs`` too):
    ``{"probes": {name: runs}, "runs": distinct runs, "stored": of
    those already finished in ``store`` (None: no store)}``; a width study's runs at another
    width count under ``"<probe> at width w"``. Validation adds (layouts x seeds) runs once the
    probes have answered."""
    from pathlib import Path

    from taskrel.store import RunStore

    tasks = study.task_list(suite)
    checked = Checked(tasks, study.prepared_probes(tasks))
    checked.plans = {name: probe.plan(suite) for name, probe in checked.probes.items()}
    widths = check_widths(study, suite)
    if widths:
        checked.source = study.source_probe()
        checked.widths = width_plans(widths, checked.probes.get(checked.source), suite)
    per = checked.run_keys(suite)
    keys = {k for ks in per.values() for k in ks}
    stored = None
    if store is not None:
        held = store if isinstance(store, RunStore) else (RunStore(store) if Path(store).is_dir() else None)
        stored = 0 if held is None else sum(k in held for k in keys)
    return {"probes": {name: len(set(ks)) for name, ks in per.items()}, "runs": len(keys), "stored": stored}


__all__ = ["Checked", "check_run_budget", "check_study", "check_widths", "examine", "planned_runs", "study_problems", "width_plans"]
