"""The grouping search at many tasks: column generation over a group-value model, and the
cases that used to hang.

Part 1 (``scale``): a planted sum-of-effects model. ``n`` tasks in clusters of 4 to 12; task
``t`` alone has loss 1; in group ``G`` its loss is ``1 - sum_{s in G - t} E[s, t]`` with
``E[s, t] = 0.05`` inside a cluster and ``-0.03`` across, plus N(0, 0.01^2) noise fixed per
pair (additive effects plus noise). Nothing is enumerated: the search asks the model
(``predict_members``) through column generation with heuristic pricing. For each budget (a
number of networks, every network costing 1, no size limit) it reports the seconds, status,
gap (``gap``: proven, so None under heuristic pricing; ``gap_vs_cg_bound``: against the
master LP's value over the generated columns, which heuristic pricing does not prove), the
columns generated, the groups the model was asked about, and the ARI of the chosen grouping
against the planted clusters (1.0 means the planted grouping was found; below the number of
clusters the budget forces merges, so ARI < 1 there is the right answer; each size also runs
one budget of clusters + 5, where the planted grouping is the optimum). At budget 2 with at
most 16 clusters, ``best_cluster_split`` is the best split of the planted clusters into two
networks, found by asking the model about every split: a reference the search should reach.

Part 2 (``hangs``): the issue's cases that hung. ``GroupingSearch`` on the 147,536-row table
at 96 tasks (every group up to 3, HOA from random pairs) with the default 60 s limit, and
``minimal_cost`` on random unit-cost tables at (25 tasks, groups up to 4), (50, 3), (96, 3)
and (201, 2) (every group up to that size, random values).

Part 3 (``bound``, ``--bound``): the proven gap. Two models whose reduced cost is quadratic in
membership, so column generation proves its bound (``taskrel.analysis.pricing_bound``) when
its heuristic pricing stalls: the HOA group values of a planted affinity (``GroupingSearch``
given the ``Affinity`` itself, the route of every many-task study: clusters of 4 to 12,
affinity 0.3 inside a cluster and -0.2 across, plus N(0, 0.05^2)) and the planted additive
model of part 1 with its ``quadratic_form``. Per budget: seconds, status, the proven gap and
bound, how the bound was proven, and ARI. ``python benchmarks/search_scale.py --bound
[--sizes 100] [--budgets 2 5 10 15 20 30] [--models "affinity (HOA)"]``; committed as
``benchmarks/results/search_scale_bound.json`` (100 tasks, both models) and
``benchmarks/results/search_scale_bound_200.json`` (``--sizes 200 --models "affinity (HOA)"``).

Usage: ``python benchmarks/search_scale.py [--quick] [--sizes 100 200] [--budgets 2 5 ...]
[--max-size 8] [--skip-hangs] [--bound]``; prints JSON. The committed results:
``benchmarks/results/grouping_scale.json`` (no size limit, and the hangs) and
``benchmarks/results/grouping_scale_max8.json`` (``--sizes 100 200 --budgets 13 15 20 30
--max-size 8 --skip-hangs``; 200 tasks need 25 networks of 8).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from itertools import combinations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from taskrel import Affinity, TaskrelError
from taskrel.analysis import CandidateTable, GroupingSearch, hoa_candidates, minimal_cost
from taskrel.tables.pricing import effects_form


class PlantedAdditive:
    """Sum-of-effects group values with planted clusters (module docstring)."""

    higher_is_better = False

    def __init__(self, n: int, seed: int = 0, within: float = 0.05, across: float = -0.03,
                 noise: float = 0.01):
        rng = np.random.default_rng(seed)
        sizes = []
        while sum(sizes) < n:
            sizes.append(int(rng.integers(4, 13)))
        sizes[-1] -= sum(sizes) - n
        if sizes[-1] < 2:
            sizes[-2] += sizes.pop()
        self.labels = np.repeat(np.arange(len(sizes)), sizes)
        same = self.labels[:, None] == self.labels[None, :]
        self.effect = np.where(same, within, across) + rng.normal(0, noise, (n, n))
        np.fill_diagonal(self.effect, 0.0)
        self.tasks = [f"t{i:03d}" for i in range(n)]

    def predict_members(self, members):
        m = np.asarray(members, dtype=bool)
        loss = 1.0 - m.astype(np.float64) @ self.effect
        return np.where(m, loss, np.nan), np.where(m, 0.01, np.nan)


class PlantedAdditiveForm(PlantedAdditive):
    """The same model, with its reduced cost as a quadratic form (a proven bound)."""

    def quadratic_form(self, weights, size_cost):
        n = len(self.tasks)
        return effects_form(np.ones(n), -self.effect, np.zeros((n, n)), weights, size_cost,
                            False)


def planted_affinity(n: int, seed: int = 0) -> tuple[Affinity, np.ndarray]:
    """Relative gains 0.3 inside a cluster (4 to 12 tasks), -0.2 across, plus noise."""
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(4, 13)))
    sizes[-1] -= sum(sizes) - n
    labels = np.repeat(np.arange(len(sizes)), sizes)
    values = np.where(labels[:, None] == labels[None, :], 0.3, -0.2)
    values = values + rng.normal(0, 0.05, (n, n))
    return Affinity([f"t{i:03d}" for i in range(n)], values, measure="pairwise"), labels


def bound_row(kind: str, n: int, budget: int, time_limit: float) -> dict:
    if kind == "affinity (HOA)":
        model, labels = planted_affinity(n)
    else:
        model = PlantedAdditiveForm(n)
        labels = model.labels
    t0 = time.perf_counter()
    gs = GroupingSearch(budget=budget, time_limit=time_limit).fit(model)
    secs = time.perf_counter() - t0
    found = np.empty(n, dtype=int)
    for k, group in enumerate(gs.groups_):
        for t in group:
            found[int(t[1:])] = k
    return {"model": kind, "n_tasks": n, "budget": budget, "clusters": int(labels.max() + 1),
            "seconds": round(secs, 2), "status": gs.status_, "bound_proven": gs.bound_proven_,
            "gap": None if gs.gap_ is None else round(gs.gap_, 5),
            "objective": round(gs.total_, 4),
            "lower_bound": None if gs.lower_bound_ is None else round(gs.lower_bound_, 4),
            "networks": len(gs.networks_), "ari": round(adjusted_rand_score(labels, found), 4),
            "pricing": gs.stats_.get("pricing"), "cg_rounds": gs.stats_.get("rounds"),
            "cg_converged": gs.stats_.get("converged"), "cg_stopped": gs.stats_.get("stopped"),
            "certified": gs.stats_.get("certified"), "certify_how": gs.stats_.get("certify_how"),
            "columns": gs.stats_.get("columns"), "milp": gs.stats_.get("milp"),
            "load": round(os.getloadavg()[0], 2)}


def ari(gs, model) -> float:
    found = np.empty(len(model.tasks), dtype=int)
    for k, group in enumerate(gs.groups_):
        for t in group:
            found[model.tasks.index(t)] = k
    return float(adjusted_rand_score(model.labels, found))


def scale_row(n: int, budget: int, time_limit: float, max_size: int | None = None) -> dict:
    model = PlantedAdditive(n)
    t0 = time.perf_counter()
    gs = GroupingSearch(budget=budget, time_limit=time_limit, max_size=max_size).fit(model)
    secs = time.perf_counter() - t0
    return {"n_tasks": n, "budget": budget, "max_size": max_size,
            "clusters": int(model.labels.max() + 1),
            "seconds": round(secs, 2), "status": gs.status_,
            "gap": None if gs.gap_ is None else round(gs.gap_, 5),
            "bound_proven": gs.bound_proven_,
            "gap_vs_cg_bound": None if gs.stats_.get("gap_vs_bound") is None
            else round(gs.stats_["gap_vs_bound"], 5),
            "networks": len(gs.networks_),
            "largest_group": max(len(g) for g in gs.groups_),
            "columns": gs.stats_["columns"], "model_rows": gs.stats_["model_rows"],
            "cg_rounds": gs.stats_["rounds"], "cg_converged": gs.stats_["converged"],
            "cg_stopped": gs.stats_.get("stopped"), "milp": gs.stats_.get("milp"),
            "ari": round(ari(gs, model), 4), "objective": round(gs.total_, 4),
            "best_cluster_split": None if budget != 2 else union_reference(model)}


def union_reference(model: PlantedAdditive) -> float | None:
    """Budget 2: the best split of the planted clusters into two networks (every one of the
    2^(clusters-1) splits asked of the model); None past 16 clusters."""
    k = int(model.labels.max() + 1)
    if k > 16:
        return None
    clusters = np.array([model.labels == c for c in range(k)])
    masks = (np.arange(1 << (k - 1))[:, None] >> np.arange(k)) & 1
    first = (masks.astype(bool)[:, :, None] & clusters[None]).any(axis=1)
    rows = np.concatenate([first, ~first])
    keep = rows.any(axis=1)
    values, _ = model.predict_members(rows[keep])
    totals = np.zeros(len(rows))
    totals[keep] = np.nansum(values, axis=1)
    half = len(first)
    return float((totals[:half] + totals[half:]).min())


def safe_row(n: int, budget: int, time_limit: float, max_size: int | None) -> dict:
    """A row, or the error when no grouping fits (a budget below ceil(n / max_size))."""
    try:
        return scale_row(n, budget, time_limit, max_size)
    except TaskrelError as e:
        return {"n_tasks": n, "budget": budget, "max_size": max_size, "error": str(e)}


def random_pairs_table(n: int, max_size: int, seed: int = 0) -> CandidateTable:
    rng = np.random.default_rng(seed)
    tasks = [f"t{i:03d}" for i in range(n)]
    pair = {(a, b): {a: 1 + rng.normal(0, 0.1), b: 1 + rng.normal(0, 0.1)}
            for a, b in combinations(tasks, 2)}
    return hoa_candidates(tasks, {t: 1.0 for t in tasks}, pair, max_size=max_size)


def hang_rows(quick: bool) -> list[dict]:
    rows = []
    for n, k in ([(25, 4), (50, 3)] if quick else [(25, 4), (50, 3), (96, 3), (201, 2)]):
        table = random_pairs_table(n, k, seed=1)
        t0 = time.perf_counter()
        value = minimal_cost(table)
        rows.append({"case": "minimal_cost", "n_tasks": n, "max_size": k, "rows": len(table),
                     "seconds": round(time.perf_counter() - t0, 3), "minimal_cost": value,
                     "closed_form": float(-(-n // k))})
    if not quick:
        table = random_pairs_table(96, 3)
        for budget in (32, 40, 60):
            t0 = time.perf_counter()
            gs = GroupingSearch(budget=budget).fit(table)
            rows.append({"case": "GroupingSearch default time_limit", "n_tasks": 96,
                         "max_size": 3, "rows": len(table), "budget": budget,
                         "seconds": round(time.perf_counter() - t0, 2), "status": gs.status_,
                         "gap": None if gs.gap_ is None else round(gs.gap_, 6),
                         "ties": gs.stats_.get("ties")})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--budgets", type=int, nargs="*", default=None)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--skip-hangs", action="store_true")
    ap.add_argument("--max-size", type=int, default=None)
    ap.add_argument("--bound", action="store_true", help="part 3 only: the proven gap")
    ap.add_argument("--models", nargs="*", default=["affinity (HOA)", "additive + quadratic_form"],
                    help="part 3: which models")
    args = ap.parse_args()
    if args.bound:
        return print(json.dumps(bound_part(args), indent=1))
    sizes = args.sizes or ([100] if args.quick else [100, 200, 500])
    budgets = args.budgets or ([5, 12] if args.quick else [2, 5, 10, 15, 20, 30])
    load = os.getloadavg()
    runs = [(n, b) for n in sizes for b in budgets]
    if not args.budgets:  # and one budget above the number of clusters: the planted grouping
        runs += [(n, int(PlantedAdditive(n).labels.max()) + 6) for n in sizes]
    out = {"benchmark": "search_scale", "python": platform.python_version(),
           "cpu_count": os.cpu_count(), "load_before": [round(x, 2) for x in load],
           "time_limit": args.time_limit,
           "scale": [safe_row(n, b, args.time_limit, args.max_size) for n, b in runs]}
    if not args.skip_hangs:
        out["hangs"] = hang_rows(args.quick)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=1))


def bound_part(args) -> dict:
    load = os.getloadavg()
    out = {"benchmark": "search_scale_bound", "python": platform.python_version(),
           "cpu_count": os.cpu_count(), "load_before": [round(x, 2) for x in load],
           "time_limit": args.time_limit, "rows": []}
    for n in args.sizes or [100]:
        for kind in args.models:
            for b in args.budgets or [2, 5, 10, 15, 20, 30]:
                out["rows"].append(bound_row(kind, n, b, args.time_limit))
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


if __name__ == "__main__":
    main()
