"""The analyses of a study: clusters, auxiliary rankings, grouping under budgets, layouts.

Each part reads the probes' affinities (and a probe's own candidate table where it has one)
and writes plain data into the study result; a part that fails is recorded and the others go on.

Partial results: a task that some probe could not measure (every run holding it failed, for
example because its loss diverged) leaves NaN entries in that probe's affinity. Such tasks are
left out first (:func:`taskrel.affinity_missing.complete_over`: greedily, the task with the most
missing entries), recorded with their reason in ``result.left_out``, and every analysis, the
layouts, the validation and the decision run on the tasks that remain. A left-out task is in
no recommended layout: it could not be measured, and a network that trains it would fail the
same way.
"""

from __future__ import annotations

import inspect

import numpy as np

from taskrel.affinity import Affinity
from taskrel.affinity_missing import complete_over
from taskrel.analysis import (
    CandidateTable,
    GroupingSearch,
    branched_layout,
    cluster_stability,
    minimal_cost,
    rank_auxiliaries,
)
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.probes import Probe
from taskrel.probes.partial import restrict_candidates
from taskrel.study.capacity import capacity_table
from taskrel.study.context import StudyContext, clone


def run_analyses(ctx: StudyContext, fitted: dict[str, Probe], budgets: list[float] | None, budget: float | None) -> None:
    """Clusters, auxiliary rankings, the grouping front (``budget``: the recommendation's) and layouts."""
    res, study = ctx.result, ctx.study
    affs = {k: Affinity.from_dict(v) for k, v in res.affinities.items()}
    if not leave_out_incomplete(ctx, affs):
        return
    main = _main_affinity(ctx, affs)
    if main is not None:
        res.analysis_probe = main[0]
        if study.clustering is not None:
            ctx.guard("clustering", lambda: _clustering(ctx, main[1]))
        for primary in study.auxiliary:
            ctx.guard(f"auxiliary ranking for {primary}", lambda p=primary: _auxiliary(ctx, affs, p))
    n_stages = ctx.suite.n_stages
    res.layouts["all-shared"] = SharingLayout.shared(ctx.tasks, n_stages).to_dict()
    res.layouts["all-separate"] = SharingLayout.separate(ctx.tasks, n_stages).to_dict()
    if study.grouping is not None:
        ctx.guard("grouping", lambda: _grouping(ctx, affs, fitted, budgets or [], float(budget)))
    if study.branched:
        ctx.guard("branched layout", lambda: _branched(ctx, affs, budget))


def leave_out_incomplete(ctx: StudyContext, affs: dict[str, Affinity]) -> bool:
    """Leave out the tasks with missing entries in any probe's affinity: ``ctx.tasks`` becomes
    the tasks that remain, ``result.left_out`` says why for each other one. False (nothing to
    analyse, recorded as a problem) when fewer than two tasks remain."""
    keep, left = complete_over(affs, ctx.tasks) if affs else (ctx.tasks, {})
    if not left:
        return True
    ctx.result.left_out = left
    for task, why in left.items():
        ctx.say(f"task {task!r} left out of the analyses: {why}")
    ctx.tasks = keep
    if len(keep) < 2:
        ctx.result.errors.append({"part": "analysis", "error": f"only {len(keep)} task(s) remain after leaving out "
                                  f"{', '.join(left)} (see left out); nothing to analyse"})
        return False
    return True


def _main_affinity(ctx: StudyContext, affs: dict[str, Affinity]) -> tuple[str, Affinity] | None:
    want = ctx.study.analysis_probe()
    if want in affs:
        return want, affs[want].plain().subset(ctx.tasks)
    for name, aff in affs.items():
        if not aff.is_staged:
            if want is not None:
                ctx.result.errors.append({"part": "analysis", "error": f"probe {want!r} gave no affinity; the analyses read {name!r} instead"})
            return name, aff.subset(ctx.tasks)
    if affs:
        name = next(iter(affs))
        return name, affs[name].plain().subset(ctx.tasks)
    ctx.result.errors.append({"part": "analysis", "error": "no probe gave an affinity; nothing to analyse"})
    return None


# ---------------------------------------------------------------------- clusters
def _clustering(ctx: StudyContext, aff: Affinity) -> None:
    tc = clone(ctx.study.clustering).fit(aff)
    order = list(getattr(tc, "dendrogram_", {}).get("ivl", [])) or [t for c in tc.clusters_ for t in c]
    ctx.result.clustering = {
        "probe": ctx.result.analysis_probe,
        "method": tc.method,
        "tasks": tc.tasks_,
        "labels": [int(x) for x in tc.labels_],
        "clusters": tc.clusters_,
        "n_clusters": tc.n_clusters_,
        "order": order,
        "dendrogram": getattr(tc, "dendrogram_", None),
        "linkage": np.asarray(getattr(tc, "linkage_matrix_", np.zeros((0, 4)))).tolist(),
        "scores": tc.scores_.reset_index().to_dict(orient="records"),
    }
    if ctx.study.stability and aff.per_seed is not None and aff.per_seed.shape[0] >= 2:
        c = ctx.study.clustering
        st = cluster_stability(aff, method=c.method, n_clusters=tc.n_clusters_, linkage=c.linkage, random_state=c.random_state)
        ctx.result.stability = {
            "mean_ari": st.mean_ari,
            "mean_ari_vs_mean": st.mean_ari_vs_mean,
            "n_clusters": st.n_clusters,
            "coassignment": [[None if np.isnan(v) else float(v) for v in row] for row in st.coassignment.values],
            "tasks": list(st.coassignment.index),
            "seeds_used": list(st.seeds_used),
            "skipped": {str(k): v for k, v in st.skipped.items()},  # seeds with gaps (failed runs)
        }


def _auxiliary(ctx: StudyContext, affs: dict[str, Affinity], primary: str) -> None:
    if primary in ctx.result.left_out:
        raise TaskrelError(f"auxiliary: task {primary!r} was left out ({ctx.result.left_out[primary]})")
    for name, aff in affs.items():
        if aff.is_staged or primary not in aff.tasks:
            continue
        frame = rank_auxiliaries(aff.subset([t for t in ctx.tasks if t in aff.tasks]), primary)
        ctx.result.auxiliary.append({"primary": primary, "probe": name, "measure": aff.measure,
                                     "rows": frame.to_dict(orient="records")})


# ---------------------------------------------------------------------- grouping
def _table(ctx: StudyContext, affs: dict[str, Affinity], fitted: dict[str, Probe]) -> tuple[str, str, CandidateTable]:
    source = ctx.study.source_probe()
    probe = fitted.get(source)
    max_size = ctx.study.max_size
    if getattr(ctx.study, "widths", None):  # groups offered at several widths
        return source, "hoa", capacity_table(ctx, probe)
    if probe is not None and callable(getattr(probe, "candidates", None)):
        kw = {} if max_size is None else {"max_size": max_size}
        if "tasks" in inspect.signature(probe.candidates).parameters:  # its table on the remaining tasks
            kw["tasks"] = ctx.tasks  # (a left-out task has no losses)
        table = probe.candidates(**kw)
        table = restrict_candidates(table, [t for t in ctx.tasks if t in table.tasks])
        return source, "hoa" if probe.kind == "pairwise" else probe.kind, table
    if source not in affs:
        raise TaskrelError(f"grouping: probe {source!r} gave no affinity (see its error above)")
    aff = affs[source].plain().subset(ctx.tasks)
    return source, "affinity", CandidateTable.from_affinity(aff, max_size=max_size)


def _grouping(ctx: StudyContext, affs: dict[str, Affinity], fitted: dict[str, Probe], budgets: list[float], budget: float) -> None:
    g: GroupingSearch = ctx.study.grouping
    source, kind, table = _table(ctx, affs, fitted)
    partition = bool(g.partition)
    cheapest = minimal_cost(table, partition)
    rows = []
    for b in budgets:
        if b < cheapest:
            rows.append({"budget": b, "cost": None, "objective": None, "groups": None, "blocks": None})
            continue
        gs = clone(g, budget=b).fit(table)
        # each task sits with the tasks its chosen network also serves: a partition
        served: dict[str, list[str]] = {}
        for t in ctx.tasks:  # assignment_: task -> name of the network serving it
            served.setdefault(gs.assignment_[t], []).append(t)
        lay = ctx.layout_of(list(served.values()), {t: float(table.width[table.index(n)]) for t, n in gs.assignment_.items()})
        rows.append({"budget": b, "cost": gs.cost_, "objective": gs.total_, "networks": list(gs.networks_),
                     "groups": ["+".join(x) for x in gs.groups_], "blocks": [list(b) for b in lay.blocks(0)],
                     "layout": lay.to_dict()})
    ctx.result.grouping = {
        "source": source,
        "table": kind,
        "rule": table.meta.get("rule"),
        "higher_is_better": bool(table.higher_is_better),
        "n_candidates": len(table),
        "partition": partition,
        "budget": budget,
        "front": rows,
        **({"capacity": table.meta["capacity"]} if "capacity" in table.meta else {}),
    }
    chosen = next((r for r in rows if r["budget"] == budget), None)
    if chosen is None or chosen["blocks"] is None:
        raise TaskrelError(f"grouping: no grouping fits the budget {budget:g} (the cheapest covering costs {cheapest:g})")
    ctx.result.layouts["recommended"] = chosen["layout"]
    ctx.say(f"recommended grouping at budget {budget:g}: " + " | ".join(SharingLayout.from_dict(chosen["layout"]).label(b) for b in chosen["blocks"]))


# ---------------------------------------------------------------------- branched
def _branched(ctx: StudyContext, affs: dict[str, Affinity], budget: float | None) -> None:
    """A branched layout from the first per-stage affinity (none: nothing to do)."""
    staged = next(((n, a) for n, a in affs.items() if a.is_staged), None)
    if staged is None:
        return
    name, aff = staged
    stages_budget = None if budget is None else budget * ctx.suite.n_stages
    lay = branched_layout(aff.subset(ctx.tasks), budget=stages_budget)
    ctx.result.layouts["branched"] = lay.to_dict()
    ctx.result.probes.setdefault(name, {})["branched_layout"] = lay.describe()


__all__ = ["leave_out_incomplete", "run_analyses"]
