"""``taskrel cluster``, ``aux``, ``group`` and ``layout``: advice from affinities and tables."""

from __future__ import annotations

import argparse
import json

from taskrel.cli.checks import check_suite_name, input_file, writable_file
from taskrel.cli.common import add_run_args, out_path, probe_settings, runner_of
from taskrel.errors import TaskrelError
from taskrel.files import atomic_write_text


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
    p.add_argument("input", help="candidate table (CSV or JSON: name, tasks, width, cost, per-task values) or an affinity JSON")
    p.add_argument("--budget", type=float, default=None, help="total cost allowed (networks, by default)")
    p.add_argument("--budgets", default=None, help="comma-separated budgets: print the Pareto front")
    p.add_argument("--score-on", default=None, help="a second table to score the chosen networks on, matched by name (select on one, score on another)")
    p.add_argument("--reassign", action="store_true", help="with --score-on: each task takes its best chosen network on that table (Standley's scoring)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--partition", dest="partition", action="store_true", default=True, help="each task in exactly one network (default, as in a study)")
    mode.add_argument("--overlap", dest="partition", action="store_false", help="networks may share tasks; each task is served by its best chosen network (Standley's setting)")
    p.add_argument("--no-singletons", action="store_true", help="no task trained alone (TAG's rule)")
    p.add_argument("--solver", default="milp", choices=["milp", "exhaustive", "beam"])
    p.add_argument("--max-size", type=int, default=None, help="largest group built from an affinity")
    p.add_argument("--rule", default="auto", choices=["auto", "hoa", "mean-gain", "no-singleton"], help="how an affinity becomes group scores (default: by its calibration)")
    p.add_argument("--higher-is-better", action="store_true", help="the table holds scores, not losses")
    p.add_argument("--robust", type=float, default=0.0, help="choose on values made pessimistic by this many standard errors (table with std)")
    p.add_argument("--within-noise", type=float, default=0.0, help="take the cheapest choice within this many standard errors of the optimum")
    p.add_argument("--json", default=None, metavar="PATH", help="write the results (full precision) as JSON")
    p.add_argument("--n-stages", type=int, default=None, help="write the grouping as a layout JSON with this many stages")
    p.add_argument("--out", default=None, help="layout JSON path (with --n-stages)")
    p.set_defaults(func=cmd_group)

    p = sub.add_parser("layout", help="branched sharing layout from a per-stage affinity (e.g. CKA) under a budget")
    p.add_argument("affinity", help="per-stage affinity JSON ('taskrel probe similarity')")
    p.add_argument("--budget", type=float, default=None, help="stage copies allowed (default: half-way between all-shared and all-separate)")
    p.add_argument("--out", default="layout.json")
    p.set_defaults(func=cmd_layout)


def _affinity(path: str):
    input_file(path, "affinity", "an affinity JSON file (written by 'taskrel probe')")
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
        check_suite_name(args.select)
        from taskrel.analysis.selection import GreedyAuxiliarySelection
        from taskrel.suites import get_suite

        suite = get_suite(args.select)
        sel = GreedyAuxiliarySelection(args.primary, candidates=list(ranking["source"]), ranking=aff, max_runs=args.max_runs, min_gain=args.min_gain, **probe_settings(args))
        with runner_of(args) as runner:
            sel.fit(suite, runner)
        print(f"\ngreedy selection ({sel.runs_} runs): {', '.join(sel.selected_) or 'none helps'}")
        print(sel.comparison_.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _table(path: str, higher: bool, max_size: int | None, rule: str = "auto"):
    from taskrel.analysis import CandidateTable

    p = input_file(path, "group", "a candidate table (CSV or JSON) or an affinity JSON file")
    if p.suffix.lower() == ".csv":
        return CandidateTable.from_csv(p, higher_is_better=higher)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TaskrelError(f"group: {path!r} is not valid JSON ({e})") from None
    if isinstance(d, dict) and d.get("kind") == "taskrel.Affinity":
        from taskrel.affinity import Affinity

        aff = _flat(Affinity.from_dict(d), None)
        return CandidateTable.from_affinity(aff, max_size=max_size, rule=rule)
    return CandidateTable.from_json(p, higher_is_better=higher)


def _choice(gs, other, reassign: bool) -> dict:
    out = {"budget": float(gs.budget), "cost": gs.cost_, "objective": gs.total_,
           "objective_sem": gs.total_sem_, "networks": list(gs.networks_),
           "served": {k: list(v) for k, v in gs.served_.items()}, "p_beats": gs.p_beats_}
    if other is not None:
        out["score_on"] = gs.score_on(other, reassign=reassign)
    return out


def cmd_group(args: argparse.Namespace) -> int:
    input_file(args.input, "group", "a candidate table (CSV or JSON) or an affinity JSON file")
    if args.score_on:
        input_file(args.score_on, "--score-on", "a candidate table (CSV or JSON) or an affinity JSON file")
    if args.json:
        writable_file(args.json, "--json")
    if args.n_stages:
        writable_file(args.out or "layout.json", "--out")
    from taskrel.analysis import GroupingSearch

    table = _table(args.input, args.higher_is_better, args.max_size, args.rule)
    other = _table(args.score_on, args.higher_is_better, args.max_size, args.rule) if args.score_on else None
    if args.reassign and other is None:
        raise TaskrelError("group: --reassign needs --score-on")
    kw = {"solver": args.solver, "partition": args.partition, "allow_singletons": not args.no_singletons,
          "robust": args.robust, "within_noise": args.within_noise}
    budgets = []
    if args.budgets:
        try:
            budgets = [float(b) for b in args.budgets.split(",")]
        except ValueError:
            raise TaskrelError(f"--budgets must be numbers separated by commas, got {args.budgets!r}") from None
    if args.budget is None and not budgets:
        raise TaskrelError("group: give --budget (or --budgets for a Pareto front)")
    mode = "partition" if args.partition else "overlap"
    rule = table.meta.get("rule")
    print(f"objective: {table.objective}; {mode} mode" + (f"; group values by rule {rule!r}" if rule else ""))
    report = {"input": args.input, "objective": table.objective, "higher_is_better": table.higher_is_better,
              "mode": mode, "rule": rule, "no_singletons": bool(args.no_singletons), "score_on": args.score_on,
              "reassign": bool(args.reassign), "front": [], "choice": None}
    for b in budgets:
        try:
            report["front"].append(_choice(GroupingSearch(budget=b, **kw).fit(table), other, args.reassign))
        except TaskrelError as e:
            if "below the cheapest" not in str(e):
                raise
            report["front"].append({"budget": b, "cost": None, "objective": None, "networks": None})
    if budgets:
        _print_front(report["front"], other is not None)
    if args.budget is not None:
        gs = GroupingSearch(budget=args.budget, **kw).fit(table)
        report["choice"] = c = _choice(gs, other, args.reassign)
        print(f"budget {args.budget:g}: cost {gs.cost_:.10g}, objective {gs.total_:.10g}")
        for name in gs.networks_:
            print(f"  {name}  (serves {', '.join(gs.served_[name])})")
        if other is not None:
            how = "each task on its best chosen network" if args.reassign else "each task on its network"
            print(f"scored on {args.score_on} ({how}): objective {c['score_on']:.10g}")
        if gs.total_sem_ is not None:
            print("P(beats all-separate) " + _p(gs.p_beats_["all-separate"]) + ", P(beats all-shared) " + _p(gs.p_beats_["all-shared"]))
        if args.n_stages:
            _write_layout(gs, args)
    if args.json:
        path = out_path(args.json, "grouping.json")
        atomic_write_text(path, json.dumps(report, indent=1))
        print(f"results written to {path}")
    return 0


def _p(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _print_front(rows: list[dict], scored: bool) -> None:
    print("budget  cost        objective" + ("   scored on other" if scored else "") + "   networks")
    for r in rows:
        if r["networks"] is None:
            print(f"{r['budget']:<7g} (below the cheapest feasible choice)")
            continue
        extra = f"   {r['score_on']:<15.10g}" if scored else ""
        print(f"{r['budget']:<7g} {r['cost']:<11.10g} {r['objective']:<11.10g}{extra}   {', '.join(r['networks'])}")


def _write_layout(gs, args: argparse.Namespace) -> None:
    from taskrel.layout import SharingLayout

    groups = [list(gs.served_[name]) for name in gs.networks_]
    lay = SharingLayout.groups(groups, args.n_stages)
    p = out_path(args.out, "layout.json")
    atomic_write_text(p, json.dumps(lay.to_dict(), indent=1))
    print(f"layout: {lay.describe()}\nwritten to {p}")


def cmd_layout(args: argparse.Namespace) -> int:
    writable_file(args.out, "--out")
    from taskrel.analysis.branching import BranchedLayoutSearch

    aff = _affinity(args.affinity)
    s = BranchedLayoutSearch(budget=args.budget).fit(aff)
    print(f"branched layout (cost {s.cost_:g} stage copies, sharing dissimilarity {s.dissimilarity_:.3f}):")
    print(f"  {s.layout_.describe()}")
    print("front (cost, dissimilarity):")
    print(s.front_[["cost", "dissimilarity"]].to_string(index=False))
    p = out_path(args.out, "layout.json")
    atomic_write_text(p, json.dumps(s.layout_.to_dict(), indent=1))
    print(f"written to {p}")
    return 0
