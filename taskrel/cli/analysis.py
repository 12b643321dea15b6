"""``taskrel cluster``, ``aux``, ``group`` and ``layout``: advice from affinities and tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from taskrel.cli.common import add_run_args, out_path, probe_settings
from taskrel.errors import TaskrelError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="cluster tasks from an affinity JSON")
    p.add_argument("affinity", help="affinity JSON written by 'taskrel probe'")
    p.add_argument("--method", default="hierarchical", choices=["hierarchical", "spectral", "community"])
    p.add_argument("--k", type=int, default=None, help="number of clusters (default: chosen)")
    p.add_argument("--stage", type=int, default=None, help="stage of a per-stage affinity (default: last)")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("aux", help="rank auxiliary tasks for a primary task (optionally select greedily with real runs)")
    p.add_argument("affinity", help="affinity JSON")
    p.add_argument("--primary", required=True)
    p.add_argument("--select", metavar="SUITE", default=None, help="run greedy forward selection on this suite, trying candidates in the ranking's order")
    p.add_argument("--max-runs", type=int, default=40)
    p.add_argument("--min-gain", type=float, default=0.0, help="relative validation-loss gain needed to add a task")
    add_run_args(p)
    p.set_defaults(func=cmd_aux)

    p = sub.add_parser("group", help="choose task groups under a budget (exact MILP by default)")
    p.add_argument("input", help="candidate table (CSV or JSON: tasks, cost, per-task values) or an affinity JSON")
    p.add_argument("--budget", type=float, default=None, help="total cost allowed (networks, by default)")
    p.add_argument("--budgets", default=None, help="comma-separated budgets: print the Pareto front")
    p.add_argument("--score-on", default=None, help="a second table to score the chosen groups on (select on one, score on another)")
    p.add_argument("--partition", action="store_true", help="each task in exactly one group")
    p.add_argument("--solver", default="milp", choices=["milp", "exhaustive", "beam"])
    p.add_argument("--max-size", type=int, default=None, help="largest group built from an affinity")
    p.add_argument("--higher-is-better", action="store_true", help="the table holds scores, not losses")
    p.add_argument("--n-stages", type=int, default=None, help="write the grouping as a layout JSON with this many stages")
    p.add_argument("--out", default=None, help="layout JSON path (with --n-stages)")
    p.set_defaults(func=cmd_group)

    p = sub.add_parser("layout", help="branched sharing layout from a per-stage affinity (e.g. CKA) under a budget")
    p.add_argument("affinity", help="per-stage affinity JSON ('taskrel probe similarity')")
    p.add_argument("--budget", type=float, default=None, help="stage copies allowed (default: half-way between all-shared and all-separate)")
    p.add_argument("--out", default="layout.json")
    p.set_defaults(func=cmd_layout)


def _affinity(path: str):
    from taskrel.affinity import Affinity

    return Affinity.load(path)


def _flat(aff, stage: int | None):
    if aff.is_staged:
        return aff.stage(aff.values.shape[0] - 1 if stage is None else stage)
    if stage is not None:
        raise TaskrelError("--stage given but the affinity is not per-stage")
    return aff


def cmd_cluster(args: argparse.Namespace) -> int:
    from taskrel.analysis import TaskClustering

    aff = _flat(_affinity(args.affinity), args.stage)
    tc = TaskClustering(method=args.method, n_clusters=args.k).fit(aff)
    print(f"{tc.n_clusters_} clusters ({args.method}, {aff.measure or 'affinity'}):")
    for i, c in enumerate(tc.clusters_):
        print(f"  {i}: {', '.join(c)}")
    print(f"silhouette {tc.silhouette_:.3f}")
    return 0


def cmd_aux(args: argparse.Namespace) -> int:
    from taskrel.analysis import rank_auxiliaries

    aff = _flat(_affinity(args.affinity), None)
    ranking = rank_auxiliaries(aff, args.primary)
    print(f"auxiliary tasks for {args.primary} (effect on it, best first):")
    print(ranking.to_string(index=False))
    if args.select:
        from taskrel.analysis.selection import GreedyAuxiliarySelection
        from taskrel.store import RunStore
        from taskrel.suites import get_suite

        suite = get_suite(args.select)
        sel = GreedyAuxiliarySelection(args.primary, candidates=list(ranking["source"]), ranking=aff, max_runs=args.max_runs, min_gain=args.min_gain, settings=probe_settings(args))
        sel.fit(suite, RunStore(args.store))
        print(f"\ngreedy selection ({sel.runs_} runs): {', '.join(sel.selected_) or 'none helps'}")
        print(sel.comparison_.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _table(path: str, higher: bool, max_size: int | None):
    from taskrel.analysis import CandidateTable

    p = Path(path)
    if not p.exists():
        raise TaskrelError(f"group: file {path!r} does not exist")
    if p.suffix.lower() == ".csv":
        return CandidateTable.from_csv(p, higher_is_better=higher)
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise TaskrelError(f"group: {path!r} is not valid JSON ({e})") from None
    if isinstance(d, dict) and d.get("kind") == "taskrel.Affinity":
        from taskrel.affinity import Affinity

        aff = _flat(Affinity.from_dict(d), None)
        return CandidateTable.from_affinity(aff, max_size=max_size)
    return CandidateTable.from_json(p, higher_is_better=higher)


def cmd_group(args: argparse.Namespace) -> int:
    from taskrel.analysis import GroupingSearch, pareto_front

    table = _table(args.input, args.higher_is_better, args.max_size)
    kw = {"solver": args.solver, "partition": args.partition}
    if args.budgets:
        try:
            budgets = [float(b) for b in args.budgets.split(",")]
        except ValueError:
            raise TaskrelError(f"--budgets must be numbers separated by commas, got {args.budgets!r}") from None
        print(pareto_front(table, budgets, **kw).to_string(index=False))
        if args.budget is None:
            return 0
    if args.budget is None:
        raise TaskrelError("group: give --budget (or --budgets for a Pareto front)")
    gs = GroupingSearch(budget=args.budget, **kw).fit(table)
    what = "score" if table.higher_is_better else "loss"
    print(f"budget {args.budget:g}: cost {gs.cost_:g}, total {what} {gs.total_:.4f}")
    for g in gs.groups_:
        served = [t for t, h in gs.assignment_.items() if h == g]
        print(f"  {'+'.join(g)}  (serves {', '.join(served) or 'nothing'})")
    if args.score_on:
        other = _table(args.score_on, args.higher_is_better, args.max_size)
        print(f"scored on {args.score_on}: total {what} {gs.score_on(other):.4f}")
    if args.n_stages:
        from taskrel.layout import SharingLayout

        groups, seen = [], set()
        for g in gs.groups_:  # a task in two chosen networks goes with the one that serves it
            keep = [t for t in g if gs.assignment_.get(t) == g and t not in seen]
            if keep:
                groups.append(keep)
                seen.update(keep)
        lay = SharingLayout.groups(groups, args.n_stages)
        p = out_path(args.out, "layout.json")
        p.write_text(json.dumps(lay.to_dict(), indent=1))
        print(f"layout: {lay.describe()}\nwritten to {p}")
    return 0


def cmd_layout(args: argparse.Namespace) -> int:
    from taskrel.analysis.branching import BranchedLayoutSearch

    aff = _affinity(args.affinity)
    s = BranchedLayoutSearch(budget=args.budget).fit(aff)
    print(f"branched layout (cost {s.cost_:g} stage copies, sharing dissimilarity {s.dissimilarity_:.3f}):")
    print(f"  {s.layout_.describe()}")
    print("front (cost, dissimilarity):")
    print(s.front_[["cost", "dissimilarity"]].to_string(index=False))
    p = out_path(args.out, "layout.json")
    p.write_text(json.dumps(s.layout_.to_dict(), indent=1))
    print(f"written to {p}")
    return 0
