"""The analyses of a study: clusters, auxiliary rankings, grouping under budgets, layouts.

:func:`analyse` reads the probes' affinities (and a probe's own candidate table where it has
one) and returns an :class:`Analysed`; a part that fails is recorded and the others go on.

Partial results: a task some probe could not measure (every run holding it failed, for example
because its loss diverged) is left out before the analyses
(:func:`taskrel.study.steps.leave_out`), and every analysis, the layouts, the validation and the
decision run on the tasks that remain. A left-out task is in no recommended layout: it could
not be measured, and a network that trains it would fail the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import ceil, comb
from typing import Any

import numpy as np

from taskrel.affinity import Affinity
from taskrel.analysis import (
    CandidateTable,
    branched_layout,
    cluster_stability,
    minimal_cost,
    rank_auxiliaries,
)
from taskrel.base import clone
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.probes import Probe
from taskrel.probes.partial import restrict_candidates
from taskrel.runner import Runner
from taskrel.study.capacity import capacity_table
from taskrel.study.findings import (
    AuxiliaryRanking,
    Capacity,
    Clustering,
    Dendrogram,
    FrontRow,
    GroupingFront,
    Stability,
)
from taskrel.study.steps import Log, layout_of
from taskrel.study.validated import StudyLayout
from taskrel.suite import Suite


@dataclass
class Analysed:
    """What the analyses found (the study result's fields of the same names)."""

    analysis_probe: str | None = None
    clustering: Clustering | None = None
    stability: Stability | None = None
    auxiliary: list[AuxiliaryRanking] = field(default_factory=list)
    grouping: GroupingFront | None = None
    layouts: dict[str, StudyLayout] = field(default_factory=dict)
    branched: dict[str, str] = field(default_factory=dict)  # probe -> its branched layout, described


def analyse(study: Any, suite: Suite, tasks: Sequence[str], affs: Mapping[str, Affinity], fitted: Mapping[str, Probe],
            runner: Runner, budgets: list[float] | None, budget: float | None, log: Log,
            at_width: Mapping[float, Probe] | None = None) -> Analysed:
    """Clusters, auxiliary rankings, the grouping front (``budget``: the recommendation's) and
    layouts of ``study`` (a :class:`~taskrel.study.Study`) on ``tasks``; ``at_width``: a width
    study's source probe already fitted at each other width (the probing step's)."""
    out = Analysed()
    main = _main_affinity(study.analysis_probe(), affs, tasks, log)
    if main is not None:
        out.analysis_probe = main[0]
        if study.clustering is not None:
            log.guard("clustering", lambda: _clustering(study, main, out))
        for primary in study.auxiliary:
            rows = log.guard(f"auxiliary ranking for {primary}", lambda p=primary: auxiliary_rows(affs, p, tasks))
            out.auxiliary += rows or []
    out.layouts["all-shared"] = StudyLayout(SharingLayout.shared(list(tasks), suite.n_stages))
    out.layouts["all-separate"] = StudyLayout(SharingLayout.separate(list(tasks), suite.n_stages))
    plan = study.grouping_plan()
    if plan is not None:
        log.guard("grouping", lambda: _grouping(plan, study.source_probe(), suite, tasks, affs, fitted, runner,
                                                budgets or [], float(budget), out, log, at_width))
    if study.branched:
        log.guard("branched layout", lambda: _branched(affs, tasks, suite.n_stages, budget, out))
    return out


def _main_affinity(want: str | None, affs: Mapping[str, Affinity], tasks: Sequence[str], log: Log) -> tuple[str, Affinity] | None:
    if want in affs:
        return want, affs[want].plain().subset(list(tasks))
    for name, aff in affs.items():
        if not aff.is_staged:
            if want is not None:
                log.problem("analysis", f"probe {want!r} gave no affinity; the analyses read {name!r} instead")
            return name, aff.subset(list(tasks))
    if affs:
        name = next(iter(affs))
        return name, affs[name].plain().subset(list(tasks))
    log.problem("analysis", "no probe gave an affinity; nothing to analyse")
    return None


# ---------------------------------------------------------------------- clusters
def _clustering(study: Any, main: tuple[str, Affinity], out: Analysed) -> None:
    name, aff = main
    tc = clone(study.clustering).fit(aff)
    dendrogram = getattr(tc, "dendrogram_", None)  # hierarchical clustering only
    order = list((dendrogram or {}).get("ivl", [])) or [t for c in tc.clusters_ for t in c]
    out.clustering = Clustering(
        name, tc.method, list(tc.tasks_), [int(x) for x in tc.labels_], [list(c) for c in tc.clusters_], int(tc.n_clusters_),
        order, None if dendrogram is None else Dendrogram.from_dict(dendrogram),
        np.asarray(getattr(tc, "linkage_matrix_", np.zeros((0, 4)))).tolist(), tc.scores_.reset_index().to_dict(orient="records"))
    if study.stability and aff.per_seed is not None and aff.per_seed.shape[0] >= 2:
        c = study.clustering
        st = cluster_stability(aff, method=c.method, n_clusters=tc.n_clusters_, linkage=c.linkage, random_state=c.random_state)
        out.stability = Stability(
            st.mean_ari_, st.mean_ari_vs_mean_, int(st.n_clusters_),
            [[None if np.isnan(v) else float(v) for v in row] for row in st.coassignment_.values],
            list(st.coassignment_.index), list(st.seeds_used_),
            {str(k): v for k, v in st.skipped_.items()})  # seeds with gaps (failed runs)


def auxiliary_rows(affs: Mapping[str, Affinity], primary: str, tasks: Sequence[str]) -> list[AuxiliaryRanking]:
    """The auxiliary ranking for ``primary`` from every flat affinity that holds it."""
    if primary not in tasks:
        raise TaskrelError(f"auxiliary: task {primary!r} was left out (no probe could measure it; see left out)")
    rows = []
    for name, aff in affs.items():
        if aff.is_staged or primary not in aff.tasks:
            continue
        frame = rank_auxiliaries(aff.subset([t for t in tasks if t in aff.tasks]), primary)
        rows.append(AuxiliaryRanking(primary, name, aff.measure, frame.to_dict(orient="records")))
    return rows


# ---------------------------------------------------------------------- grouping
def candidate_table(plan: Any, source: str | None, suite: Suite, tasks: Sequence[str], affs: Mapping[str, Affinity],
                    fitted: Mapping[str, Probe], runner: Runner, log: Log,
                    at_width: Mapping[float, Probe] | None = None) -> tuple[str, CandidateTable | Affinity]:
    """The table the grouping reads and its kind: groups at every width (``plan.widths``), the
    source probe's own table (``candidates``; pairwise: HOA), else one built from its affinity;
    an affinity with more groups (up to ``plan.max_size``) than
    :data:`~taskrel.analysis.grouping.ENUMERATE_LIMIT` is returned as it is (kind
    ``"affinity-model"``): the search then asks it for groups instead of listing them."""
    from taskrel.analysis.grouping import ENUMERATE_LIMIT

    probe = fitted.get(source)
    if plan.widths:  # groups offered at several widths
        return "hoa", capacity_table(plan, source, probe, suite, list(tasks), runner, log.say, at_width)
    table = _probe_table(probe, plan.max_size, tasks)
    if table is not None:
        return ("hoa" if probe.kind == "pairwise" else probe.kind), table
    if source not in affs:
        raise TaskrelError(f"grouping: probe {source!r} gave no affinity (see its error above)")
    aff = affs[source].plain().subset(list(tasks))
    n = len(tasks)
    top = n if plan.max_size is None else min(int(plan.max_size), n)
    if sum(comb(n, k) for k in range(1, top + 1)) > ENUMERATE_LIMIT:
        return "affinity-model", aff
    return "affinity", CandidateTable.from_affinity(aff, max_size=plan.max_size)


def _probe_table(probe: Probe | None, max_size: int | None, tasks: Sequence[str]) -> CandidateTable | None:
    """The probe's own candidate table on ``tasks`` (None when it makes none: ``Probe.candidates``)."""
    if probe is None:
        return None
    table = probe.candidates(max_size=max_size, tasks=list(tasks))  # a left-out task has no losses
    return None if table is None else restrict_candidates(table, [t for t in tasks if t in table.tasks])


def _grouping(plan: Any, source: str | None, suite: Suite, tasks: Sequence[str], affs: Mapping[str, Affinity],
              fitted: Mapping[str, Probe], runner: Runner, budgets: list[float], budget: float, out: Analysed, log: Log,
              at_width: Mapping[float, Probe] | None = None) -> None:
    g = plan.searcher()
    if plan.max_size is not None:
        g = clone(g, max_size=plan.max_size)
    kind, table = candidate_table(plan, source, suite, tasks, affs, fitted, runner, log, at_width)
    if isinstance(table, CandidateTable):
        cheapest, size = minimal_cost(table, bool(g.partition)), len(table)
    else:  # unit network costs: the fewest networks of at most max_size tasks
        cheapest, size = float(ceil(len(tasks) / (plan.max_size or len(tasks)))), None
    rows = [front_row(g, table, b, suite, tasks) if b >= cheapest else FrontRow(b) for b in budgets]
    rule = table.meta.get("rule") if isinstance(table, CandidateTable) else next((r.rule for r in rows if r.rule), None)
    recommend = plan.recommend
    capacity = table.meta.get("capacity") if isinstance(table, CandidateTable) else None
    out.grouping = GroupingFront(source, kind, rule, bool(getattr(table, "higher_is_better", True)),
                            size if size is not None else max((r.columns or 0 for r in rows), default=0),
                            bool(g.partition), budget, rows, recommend, None if capacity is None else Capacity.from_dict(capacity))
    if recommend == "clusters":
        if out.clustering is None:
            raise TaskrelError("grouping: recommend = 'clusters' needs the clustering, which gave nothing (see its error above)")
        blocks = [[t for t in c if t in tasks] for c in out.clustering.clusters]
        lay = layout_of(suite, tasks, [b for b in blocks if b], {})
        out.layouts["recommended"] = StudyLayout(lay)
        log.say(f"recommended grouping: the {len(blocks)} clusters: " + " | ".join(lay.label(b) for b in lay.blocks(0)))
        return
    chosen = next((r for r in rows if r.budget == budget), None)
    if chosen is None or chosen.blocks is None or chosen.layout is None:
        raise TaskrelError(f"grouping: no grouping fits the budget {budget:g} (the cheapest covering costs {cheapest:g})")
    out.layouts["recommended"] = StudyLayout(chosen.layout)
    log.say(f"recommended grouping at budget {budget:g}: " + " | ".join(chosen.layout.label(b) for b in chosen.blocks))


def front_row(search: Any, table: CandidateTable | Affinity, budget: float, suite: Suite, tasks: Sequence[str]) -> FrontRow:
    """The grouping ``search`` chooses at ``budget`` (on a table, or asking an affinity for
    groups), as a row of the front; a search stopped by its time limit says so."""
    gs = clone(search, budget=budget).fit(table)
    searched = table if isinstance(table, CandidateTable) else gs.table_
    served: dict[str, list[str]] = {}  # each task sits with the tasks its chosen network also serves
    for t in tasks:  # assignment_: task -> name of the network serving it
        served.setdefault(gs.assignment_[t], []).append(t)
    widths = {t: float(searched.width[searched.index(n)]) for t, n in gs.assignment_.items()}
    lay = layout_of(suite, tasks, list(served.values()), widths)
    row = FrontRow(budget, gs.cost_, gs.total_, list(gs.networks_), ["+".join(x) for x in gs.groups_],
                   [list(b) for b in lay.blocks(0)], lay, getattr(gs, "status_", None), getattr(gs, "gap_", None))
    if not isinstance(table, CandidateTable):
        row.rule, row.columns = getattr(gs, "rule_", None), int((gs.stats_ or {}).get("columns") or len(searched))
    return row


# ---------------------------------------------------------------------- branched
def _branched(affs: Mapping[str, Affinity], tasks: Sequence[str], n_stages: int, budget: float | None, out: Analysed) -> None:
    """A branched layout from the first per-stage affinity (none: nothing to do)."""
    staged = next(((n, a) for n, a in affs.items() if a.is_staged), None)
    if staged is None:
        return
    name, aff = staged
    lay = branched_layout(aff.subset(list(tasks)), budget=None if budget is None else budget * n_stages)
    out.layouts["branched"] = StudyLayout(lay)
    out.branched[name] = lay.describe()


__all__ = ["Analysed", "analyse", "auxiliary_rows", "candidate_table", "front_row"]
