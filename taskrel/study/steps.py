"""The steps of a study as plain functions: probing, leaving out what could not be measured,
and validation. Each takes typed inputs and returns typed outputs (the analyses between them:
:mod:`taskrel.study.analyses`); :meth:`~taskrel.study.Study.fit` puts the outputs into its
:class:`~taskrel.study.StudyResult`.

Probing queues every probe's runs in one runner call (a run several probes need trains once,
parallel workers never wait for a probe to finish), then fits each probe on the filled store,
training nothing more. A step that fails is recorded in the :class:`Log` and the study goes on.

Validation trains the recommended layout against all-shared and all-separate (and, as asked,
the front's groupings, random groupings of the recommendation's sizes, all-shared with a
conflict-aware aggregator, and width-matched baselines) over paired seeds, scored on the
held-out *test* split, which the probes and the grouping search never read. It trains a bounded
number of layouts whatever the number of tasks (a front of more than :data:`FRONT_LIMIT`
groupings is not trained), nothing per pair.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taskrel.affinity import Affinity, Cost
from taskrel.affinity_missing import complete_over
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.probes import Probe
from taskrel.runner import Runner
from taskrel.store import RunSpec
from taskrel.study.capacity import matched_baselines
from taskrel.study.checks import Checked
from taskrel.study.findings import GroupingFront
from taskrel.study.settings import plain
from taskrel.study.validated import StudyLayout, ValidationRow
from taskrel.suite import Suite
from taskrel.train import TrainConfig

ORDER = ("recommended", "branched", "all-shared", "all-separate")
FRONT_LIMIT = 8  # the most front groupings validation trains (beyond: the recommendation and controls only)


def error_text(e: BaseException) -> str:
    """A one-line reason: a TaskrelError's message, else the exception's last line."""
    if isinstance(e, TaskrelError):
        return str(e)
    return traceback.format_exception_only(type(e), e)[-1].strip()


@dataclass
class Log:
    """Progress lines (on stderr unless quiet) and the problems of the steps (``{"part", "error"}``)."""

    verbose: bool = True
    errors: list[dict[str, str]] = field(default_factory=list)

    def say(self, msg: str) -> None:
        if self.verbose:
            print(f"taskrel study: {msg}", file=sys.stderr, flush=True)

    def guard(self, part: str, fn: Callable[[], Any]) -> Any:
        """Run one part; on failure record it and go on (KeyboardInterrupt still stops)."""
        try:
            return fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            msg = error_text(e)
            self.errors.append({"part": part, "error": msg})
            self.say(f"{part} failed: {msg} (the study goes on)")
            return None

    def problem(self, part: str, msg: str) -> None:
        self.errors.append({"part": part, "error": msg})


def layout_of(suite: Suite, tasks: Sequence[str], blocks: Sequence[Sequence[str]],
              widths: Mapping[str, float] | None = None) -> SharingLayout:
    """Flat groups as a layout of ``suite``, tasks kept in the study's order; ``widths``
    (``{task: width}``, default 1) gives each group's network its width."""
    return SharingLayout.from_groups(blocks, suite.n_stages, order=list(tasks)).with_widths(widths or {})


# ---------------------------------------------------------------------- probing
@dataclass
class Probed:
    """What the probes gave: the fitted probes and their affinities, per-probe facts (kind,
    seeds, cost, error; for the grouping source of a width study, its runs at each width) and
    gradient-cosine trajectories, by probe name; ``at_width``: the grouping source fitted on the
    suite at each other width (a width study's)."""

    fitted: dict[str, Probe] = field(default_factory=dict)
    affinities: dict[str, Affinity] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    trajectories: dict[str, dict[str, list]] = field(default_factory=dict)
    at_width: dict[float, Probe] = field(default_factory=dict)


def probe_step(checked: Checked, suite: Suite, runner: Runner, log: Log) -> Probed:
    """Every probe's runs, and a width study's runs at its other widths, in one queue (saying
    up front how many the store holds), then each probe fitted on the filled store with the
    plan the checks made (:class:`~taskrel.study.checks.Checked`): nothing is planned twice."""
    jobs = checked.queue(suite)
    per = checked.run_keys(suite)
    keys = {k for ks in per.values() for k in ks}
    held = sum(k in runner.store for k in keys)
    at = f" (with the {checked.source} probe's at width {', '.join(f'{w:g}' for w in checked.widths)})" if checked.widths else ""
    log.say(f"{len(checked.probes)} probes plan {len(keys)} distinct runs{at}: {held} already in the store, {len(keys) - held} to train")
    queued = log.guard("probe runs", lambda: runner.run_all(jobs, desc="probe runs")) or []
    out = Probed()
    for name, probe in checked.probes.items():
        log.say(f"probe {name} ({probe.kind}, seeds {probe.seed_list()})")
        t0 = time.perf_counter()
        ok = log.guard(f"probe {name}", lambda p=probe, n=name: p.fit(suite, runner, plan=checked.plans[n]))
        info: dict[str, Any] = {"kind": probe.kind, "seeds": probe.seed_list(), "params": probe_params(probe),
                                "seconds": time.perf_counter() - t0}
        if ok is None:
            info["error"] = log.errors[-1]["error"]
        else:
            out.fitted[name] = probe
            out.affinities[name] = probe.affinity_
            info |= _probe_facts(probe)
            traj = getattr(probe, "trajectory_", None)
            if traj is not None and "cosine" in traj:
                out.trajectories[name] = cosine_trajectory(traj)
        out.info[name] = info
    _widths(checked, queued[1:], runner, out, log, per)
    return out


def _probe_facts(probe: Probe) -> dict[str, Any]:
    """A fitted probe's cost, measure and failures (and missing entries) for the result."""
    aff: Affinity = probe.affinity_
    info = {"cost": {"steps": aff.cost.steps, "examples": aff.cost.examples, "seconds": aff.cost.seconds,
                     "runs": aff.cost.runs, "measure_seconds": float(aff.meta.get("measure_seconds", 0.0))},
            "measure": aff.measure, "failed": len(probe.failed_)}
    if aff.missing is not None:  # entries no seed measured: their tasks are left out of the analyses
        info["missing"] = int(aff.missing.sum())
    return info


def _widths(checked: Checked, queued: Sequence[Any], runner: Runner, out: Probed, log: Log, keys: dict[str, list[str]]) -> None:
    """The grouping source fitted at each other width (its runs came with the probes' queue);
    its runs (``keys``: the planned run keys by name) and how many the queue trained, per width,
    in the source's info."""
    queued = [*queued, *[None] * len(checked.widths)]  # None: the queue failed (its error is in the log)
    for (w, (at, probe, plan)), runs in zip(checked.widths.items(), queued):
        name = f"{probe.kind} at width {w:g}"
        if log.guard(name, lambda p=probe, a=at, pl=plan: p.fit(a, runner, plan=pl)) is not None:
            out.at_width[w] = probe
        if checked.source in out.info:
            out.info[checked.source].setdefault("widths", {})[f"{w:g}"] = {
                "runs": len(set(keys[name])), "trained": None if runs is None else int(runs.trained)}


def probe_params(probe: Probe) -> dict[str, Any]:
    """A probe's own parameters as plain data (its tasks, config and seeds are recorded apart)."""
    return plain({k: v for k, v in probe.get_params().items() if k not in ("tasks", "config", "seeds")})


def cosine_trajectory(frame: Any) -> dict[str, list]:
    """Gradient cosines over training, one row per (seed, step, pair), source < target."""
    import pandas as pd

    df = pd.DataFrame(frame)
    if not {"seed", "step", "source", "target", "cosine"} <= set(df.columns):
        raise TaskrelError("study: a cosine trajectory needs columns seed, step, source, target, cosine")
    order = {t: i for i, t in enumerate(dict.fromkeys(df["source"]))}
    df = df[[order[s] < order.get(t, -1) for s, t in zip(df["source"], df["target"])]]
    return {c: df[c].tolist() for c in ("seed", "step", "source", "target", "cosine")}


def leave_out(affs: Mapping[str, Affinity], tasks: Sequence[str], log: Log) -> tuple[list[str], dict[str, str]]:
    """The tasks every probe measured, and why each other one is left out (no probe could
    measure it: for example every run holding it diverged; greedily, the task with the most
    missing entries first: :func:`taskrel.affinity_missing.complete_over`)."""
    keep, left = complete_over(dict(affs), list(tasks)) if affs else (list(tasks), {})
    for task, why in left.items():
        log.say(f"task {task!r} left out of the analyses: {why}")
    if left and len(keep) < 2:
        log.problem("analysis", f"only {len(keep)} task(s) remain after leaving out {', '.join(left)} (see left out); nothing to analyse")
    return list(keep), dict(left)


# ---------------------------------------------------------------------- validation
def front_name(budget: float) -> str:
    """The layout name of the grouping chosen at ``budget``.

    >>> front_name(2.0), front_name(2.5)
    ('budget 2', 'budget 2.5')
    """
    return f"budget {budget:g}"


def control_name(aggregator: str) -> str:
    """The layout name of all-shared trained with a conflict-aware aggregator.

    >>> control_name("upgrad")
    'all-shared + upgrad'
    """
    return f"all-shared + {aggregator}"


def random_groupings(blocks, tasks, count: int, seed: int = 0) -> list[list[list[str]]]:
    """``count`` distinct random partitions of ``tasks`` with the group sizes of ``blocks``,
    none equal to ``blocks`` itself (fewer when no more exist).

    >>> gs = random_groupings([["a", "b"], ["c"]], ["a", "b", "c"], 5)
    >>> len(gs), sorted(sorted(len(b) for b in g) for g in gs)
    (2, [[1, 2], [1, 2]])
    """
    sizes = sorted((len(b) for b in blocks), reverse=True)
    seen = {frozenset(frozenset(b) for b in blocks)}
    rng = np.random.default_rng(seed)
    out: list[list[list[str]]] = []
    for _ in range(200 * count):
        if len(out) == count:
            break
        perm = [tasks[i] for i in rng.permutation(len(tasks))]
        cut = np.cumsum([0, *sizes])
        groups = [perm[a:b] for a, b in zip(cut[:-1], cut[1:])]
        key = frozenset(frozenset(g) for g in groups)
        if key not in seen:
            seen.add(key)
            out.append(groups)
    return out


def validation_layouts(validation: Any, layouts: Mapping[str, StudyLayout], grouping: GroupingFront | None,
                       suite: Suite, tasks: Sequence[str], widths: bool, log: Log) -> dict[str, StudyLayout]:
    """The layouts to validate, by name, each with the entry it gets in the result's layouts:
    the study's layouts, the front's (``validation.front``), random groupings of the
    recommendation's sizes and widths (``validation.random``) and the width-matched baselines
    (``validation.matched``; by default when the grouping chose ``widths``)."""
    named = {n: StudyLayout.from_dict(layouts[n]) for n in ORDER if n in layouts}  # plain forms read too
    grouping = None if grouping is None else GroupingFront.from_dict(grouping)
    front = [row for row in grouping.front if row.layout is not None] if validation.front and grouping else []
    if len(front) > FRONT_LIMIT:  # many budgets (many tasks): the front is not trained layout by layout
        log.say(f"validation: the front has {len(front)} groupings; only the recommendation is trained against the "
                f"baselines (name at most {FRONT_LIMIT} budgets to validate the front)")
        front = []
    for row in front:
        named[front_name(row.budget)] = StudyLayout(row.layout)
    rec = named["recommended"].layout if "recommended" in named else None
    if rec is not None and validation.random:
        # the i-th largest random group takes the width of the i-th largest recommended group
        sizes = [rec.width_of(b[0]) for b in sorted(rec.blocks(0), key=lambda b: -len(b))]
        for i, blocks in enumerate(random_groupings(rec.blocks(0), list(tasks), validation.random), 1):
            lay = layout_of(suite, tasks, blocks, {t: w for b, w in zip(blocks, sizes) for t in b})
            named[f"random {i}"] = StudyLayout(lay)
    matched = validation.matched if validation.matched is not None else widths
    if rec is not None and matched:
        for name, (lay, info) in matched_baselines(suite, list(tasks), rec).items():
            named[name] = StudyLayout(lay, **info)
            log.say(f"validation: {name} at width {info['width']:g}: {info['n_parameters']} parameters "
                    f"(the recommendation has {info['target_parameters']})")
    return named


@dataclass
class Validated:
    """The validation's layouts by name, its rows (one per layout, seed and task) and the cost
    its records state."""

    layouts: dict[str, StudyLayout]
    rows: list[ValidationRow]
    cost: Cost


def validate_step(validation: Any, config: TrainConfig, named: Mapping[str, StudyLayout],
                  suite: Suite, tasks: Sequence[str], runner: Runner, log: Log) -> Validated:
    """Train every layout of ``named`` over the validation's seeds (one queue) and table the
    test scores."""
    from taskrel.probes.base import cost_of

    layouts = dict(named)
    plan = {n: (entry.layout, config) for n, entry in named.items()}
    if validation.aggregator and "all-shared" in plan:
        name = control_name(validation.aggregator)
        shared = plan["all-shared"][0]
        plan[name] = (shared, config.with_(aggregator=validation.aggregator))
        layouts[name] = StudyLayout(shared, aggregator=validation.aggregator)  # not an alias of all-shared
    runs = [(name, seed, RunSpec(lay, cfg, seed, label=f"validate {name} seed{seed}"))
            for name, (lay, cfg) in plan.items() for seed in validation.seeds]
    log.say(f"validation: {len({lay for lay, _ in plan.values()})} distinct layouts x {len(validation.seeds)} seeds, "
            "scored on the test split")
    records = runner.run(suite, [spec for _, _, spec in runs], desc="validation")
    cost = cost_of(records)  # from the records: a resumed study keeps the cost of its first run
    rows = []
    for (name, seed, _), rec in zip(runs, records):
        ok = rec.ok
        for t in tasks:
            rows.append(ValidationRow(name, seed, t, rec.loss(t, "test") if ok else None, rec.metric(t, "test") if ok else None,
                                      rec.loss(t, "val") if ok else None, rec.n_parameters if ok else None,
                                      "ok" if ok else "failed"))
    return Validated(layouts, rows, cost)


__all__ = ["Log", "Probed", "Validated", "control_name", "cosine_trajectory", "error_text", "front_name", "layout_of",
           "leave_out", "probe_params", "probe_step", "random_groupings", "validate_step", "validation_layouts"]
