"""The analyses of a study: clusters, auxiliary rankings, grouping under budgets, layouts.

Each part reads the probes' affinities (and the pairwise probe's candidate table) and writes
plain data into the study result; a part that fails is recorded and the others go on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.study.runner import _Context, _say, accepts, layout_of_groups


def run_all(ctx: _Context, fitted: dict[str, Any]) -> None:
    res = ctx.result
    affs = {k: Affinity.from_dict(v) for k, v in res.affinities.items()}
    main = _main_affinity(ctx, affs)
    if main is not None:
        res.analysis_probe = main[0]
        if ctx.study.clustering is not None:
            ctx.guard("clustering", lambda: _clustering(ctx, main[1]))
        for primary in ctx.study.auxiliary:
            ctx.guard(f"auxiliary ranking for {primary}", lambda p=primary: _auxiliary(ctx, affs, p))
    n_stages = ctx.suite.n_stages
    res.layouts["all-shared"] = SharingLayout.shared(ctx.tasks, n_stages).to_dict()
    res.layouts["all-separate"] = SharingLayout.separate(ctx.tasks, n_stages).to_dict()
    if ctx.study.grouping is not None:
        ctx.guard("grouping", lambda: _grouping(ctx, affs, fitted))
    if ctx.study.branched:
        ctx.guard("branched layout", lambda: _branched(ctx, affs))


def _plain(aff: Affinity) -> Affinity:
    """A plain (n, n) affinity: a per-stage one gives its last stage."""
    return aff.stage(aff.values.shape[0] - 1) if aff.is_staged else aff


def _main_affinity(ctx: _Context, affs: dict[str, Affinity]) -> tuple[str, Affinity] | None:
    want = ctx.study.analysis_probe()
    if want in affs:
        return want, _plain(affs[want]).subset(ctx.tasks)
    for name, aff in affs.items():
        if not aff.is_staged:
            if want is not None:
                ctx.result.errors.append({"part": "analysis", "error": f"probe {want!r} gave no affinity; the analyses read {name!r} instead"})
            return name, aff.subset(ctx.tasks)
    if affs:
        name = next(iter(affs))
        return name, _plain(affs[name]).subset(ctx.tasks)
    ctx.result.errors.append({"part": "analysis", "error": "no probe gave an affinity; nothing to analyse"})
    return None


# ---------------------------------------------------------------------- clusters
def _clustering(ctx: _Context, aff: Affinity) -> None:
    from taskrel.analysis import TaskClustering, cluster_stability

    params = {k: v for k, v in ctx.study.clustering.items() if k != "stability"}
    tc = TaskClustering(**params).fit(aff)
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
    if ctx.study.clustering.get("stability", True) and aff.per_seed is not None and aff.per_seed.shape[0] >= 2:
        st = cluster_stability(aff, **{**params, "n_clusters": tc.n_clusters_})
        ctx.result.stability = {
            "mean_ari": st.mean_ari,
            "mean_ari_vs_mean": st.mean_ari_vs_mean,
            "n_clusters": st.n_clusters,
            "coassignment": st.coassignment.values.tolist(),
            "tasks": list(st.coassignment.index),
        }


def _auxiliary(ctx: _Context, affs: dict[str, Affinity], primary: str) -> None:
    from taskrel.analysis import rank_auxiliaries

    for name, aff in affs.items():
        if aff.is_staged or primary not in aff.tasks:
            continue
        frame = rank_auxiliaries(aff.subset([t for t in ctx.tasks if t in aff.tasks]), primary)
        ctx.result.auxiliary.append({"primary": primary, "probe": name, "measure": aff.measure,
                                     "rows": frame.to_dict(orient="records")})


# ---------------------------------------------------------------------- grouping
def _table(ctx: _Context, affs: dict[str, Affinity], fitted: dict[str, Any]):
    from taskrel.analysis import CandidateTable

    g = ctx.study.grouping
    source = ctx.study.grouping_source()
    probe = fitted.get(source)
    max_size = g.get("max_size")
    if probe is not None and hasattr(probe, "candidates"):
        kw = {"max_size": max_size} if max_size is not None and accepts(probe.candidates, "max_size") else {}
        table = probe.candidates(**kw)
        return source, "hoa", table
    if source not in affs:
        raise TaskrelError(f"grouping: probe {source!r} gave no affinity (see its error above)")
    aff = _plain(affs[source]).subset(ctx.tasks)
    return source, "affinity", CandidateTable.from_affinity(aff, max_size=max_size)


def _grouping(ctx: _Context, affs: dict[str, Affinity], fitted: dict[str, Any]) -> None:
    from taskrel.analysis import GroupingSearch

    g = ctx.study.grouping
    source, kind, table = _table(ctx, affs, fitted)
    partition = bool(g.get("partition", True))
    n_stages = ctx.suite.n_stages
    rows = []
    for budget in g["budgets"]:
        try:
            gs = GroupingSearch(budget=budget, solver=g.get("solver", "milp"), partition=partition).fit(table)
        except TaskrelError as e:
            if "below the cheapest" not in str(e):
                raise
            rows.append({"budget": budget, "cost": None, "objective": None, "groups": None, "blocks": None})
            continue
        # each task sits with the tasks its chosen network also serves: a partition
        served: dict[tuple[str, ...], list[str]] = {}
        for t in ctx.tasks:
            served.setdefault(tuple(gs.assignment_[t]), []).append(t)
        blocks = list(served.values())
        lay = layout_of_groups(blocks, ctx.tasks, n_stages)
        rows.append({"budget": budget, "cost": gs.cost_, "objective": gs.total_,
                     "groups": ["+".join(x) for x in gs.groups_], "blocks": [list(b) for b in lay.blocks(0)],
                     "layout": lay.to_dict()})
    ctx.result.grouping = {
        "source": source,
        "table": kind,
        "higher_is_better": bool(table.higher_is_better),
        "n_candidates": len(table),
        "partition": partition,
        "budget": g["budget"],
        "front": rows,
    }
    chosen = next((r for r in rows if r["budget"] == g["budget"]), None)
    if chosen is None or chosen["blocks"] is None:
        raise TaskrelError(f"grouping: no grouping fits the budget {g['budget']:g}")
    ctx.result.layouts["recommended"] = chosen["layout"]
    _say(ctx.quiet, f"recommended grouping at budget {g['budget']:g}: "
         + " | ".join("+".join(b) for b in chosen["blocks"]))


# ---------------------------------------------------------------------- branched
def _branched(ctx: _Context, affs: dict[str, Affinity]) -> None:
    """A branched layout from a per-stage affinity, if the analysis module offers one."""
    staged = next(((n, a) for n, a in affs.items() if a.is_staged), None)
    if staged is None:
        return
    try:
        from taskrel.analysis.branching import branched_layout
    except ImportError:
        return  # this taskrel offers no branched-layout search
    name, aff = staged
    kw: dict[str, Any] = {}
    g = ctx.study.grouping or {}
    if "budget" in g and accepts(branched_layout, "budget"):
        kw["budget"] = g["budget"] * ctx.suite.n_stages
    lay = branched_layout(aff.subset(ctx.tasks), **kw)
    lay = getattr(lay, "layout_", lay)
    if not isinstance(lay, SharingLayout):
        raise TaskrelError(f"branched layout: expected a SharingLayout, got {type(lay).__name__}")
    ctx.result.layouts["branched"] = lay.to_dict()
    ctx.result.probes.setdefault(name, {})["branched_layout"] = lay.describe()
