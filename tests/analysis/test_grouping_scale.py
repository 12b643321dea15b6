"""The grouping search at scale: one time budget, status and gap, minimal_cost bounded, column
generation over group-value models (planted truths), and an Affinity searched by its rule."""

from __future__ import annotations

import logging
from itertools import combinations

import numpy as np
import pytest

from taskrel import Affinity, TaskrelError
from taskrel.analysis import CandidateTable, GroupingSearch, minimal_cost
from taskrel.analysis.mincost import cost_bounds
from taskrel.tables.group_estimates import enumerate_groups


class Planted:
    """Sum of effects: alone each task loses 1; a mate in its cluster lowers it by ``within``,
    one from another cluster raises it by ``-across``."""

    higher_is_better = False

    def __init__(self, sizes, within=0.1, across=-0.05, noise=0.0, seed=0):
        self.labels = np.repeat(np.arange(len(sizes)), sizes)
        n = len(self.labels)
        same = self.labels[:, None] == self.labels[None, :]
        rng = np.random.default_rng(seed)
        self.effect = np.where(same, within, across) + rng.normal(0, noise, (n, n))
        np.fill_diagonal(self.effect, 0.0)
        self.tasks = [f"t{i:02d}" for i in range(n)]
        self.asked = 0

    def predict_members(self, members):
        m = np.asarray(members, dtype=bool)
        self.asked += len(m)
        loss = 1.0 - m.astype(float) @ self.effect
        return np.where(m, loss, np.nan), np.where(m, 0.01, np.nan)

    def planted(self):
        return {tuple(t for t, c in zip(self.tasks, self.labels) if c == k)
                for k in np.unique(self.labels)}


def every_group_table(model, max_size=None):
    """The model's values for every group (small n only): the enumerating reference."""
    n = len(model.tasks)
    rows = []
    for _, idx in enumerate_groups(n, max_size or n):
        m = np.zeros((len(idx), n), dtype=bool)
        m[np.arange(len(idx))[:, None], idx] = True
        rows.append(m)
    mem = np.concatenate(rows)
    values, std = model.predict_members(mem)
    return CandidateTable.from_arrays(model.tasks, mem, np.ones(len(mem)), values,
                                      higher_is_better=model.higher_is_better,
                                      check_duplicates=False, std=std)


def test_planted_clusters_are_found_without_enumerating():
    model = Planted([4, 5, 3, 6, 4, 6], noise=0.01)  # 28 tasks: 2^28 groups
    gs = GroupingSearch(budget=10, time_limit=30).fit(model)
    assert set(gs.groups_) == model.planted()
    assert gs.status_ in ("feasible", "optimal") and gs.stats_["columns"] < 2_000
    assert model.asked < 2 ** 28 / 100
    assert gs.stats_["route"].startswith("column generation")
    # a budget under the number of clusters merges clusters, never splits one
    tight = GroupingSearch(budget=4, time_limit=30).fit(model)
    assert len(tight.networks_) <= 4
    for group in tight.groups_:
        whole = [c for c in model.planted() if set(c) & set(group)]
        assert all(set(c) <= set(group) for c in whole)


def test_a_model_with_one_known_best_group():
    class OneGroup:  # members of `best` gain from each other; every other mate costs
        tasks, higher_is_better = [f"t{i}" for i in range(12)], True
        best = np.isin(np.arange(12), [2, 5, 7, 9])

        def predict_members(self, members):
            m = np.asarray(members, dtype=bool)
            inside = (m & self.best).sum(1, keepdims=True)
            outside = (m & ~self.best).sum(1, keepdims=True)
            v = np.where(self.best, 0.3 * (inside - 1) - 0.2 * outside,
                         -0.1 * (inside + outside - 1))
            return np.where(m, v, np.nan), np.where(m, 0.0, np.nan)

    gs = GroupingSearch(budget=9).fit(OneGroup())
    assert ("t2", "t5", "t7", "t9") in gs.groups_ and gs.total_ == pytest.approx(3.6)
    assert len(gs.groups_) == 9


def test_heuristic_search_matches_the_enumerated_optimum_on_small_models():
    for seed in range(3):
        model = Planted([3, 3, 2], within=0.1, across=-0.05, noise=0.05, seed=seed)
        table = every_group_table(model)
        for budget in (2, 3, 5):
            exact = GroupingSearch(budget=budget).fit(table)
            found = GroupingSearch(budget=budget).fit(model)
            assert found.total_ >= exact.total_ - 1e-9  # never better than the optimum
            assert found.total_ == pytest.approx(exact.total_, abs=1e-9)
            assert found.gap_ is None and not found.bound_proven_  # heuristic: no proof
            assert found.status_ != "optimal"


class ExactPricing(Planted):
    """The same model with a brute-force ``price`` (small n), so the bound is proven."""

    price_exact = True

    def price(self, weights, size_cost, max_size, n_groups):
        n = len(self.tasks)
        mem = every_group_table(self, max_size).members
        loss = np.where(mem, 1.0 - mem.astype(float) @ self.effect, 0.0).sum(1)
        rc = loss - mem @ weights + size_cost[mem.sum(1)]
        order = np.argsort(rc, kind="stable")[:n_groups]
        assert n == mem.shape[1]
        return mem[order]


def test_exact_pricing_proves_its_bound():
    model = ExactPricing([3, 2, 3], noise=0.02, seed=1)
    table = every_group_table(model)
    for budget in (2, 3, 4):
        exact = GroupingSearch(budget=budget).fit(table)
        gs = GroupingSearch(budget=budget).fit(model)
        assert gs.bound_proven_ and gs.gap_ is not None
        assert gs.lower_bound_ <= exact.total_ + 1e-9 <= gs.total_ + 2e-9
        if gs.status_ == "optimal":
            assert gs.total_ == pytest.approx(exact.total_, abs=1e-9) and gs.gap_ == 0.0


def test_max_size_and_network_cost_are_respected():
    model = Planted([6, 6])
    gs = GroupingSearch(budget=6, max_size=3).fit(model)
    assert max(len(g) for g in gs.groups_) <= 3
    costly = GroupingSearch(budget=5, network_cost={k: 1.0 + (k > 1) for k in range(1, 13)},
                            max_size=6).fit(model)
    assert costly.cost_ <= 5
    # the tightest budget a size limit allows (no dendrogram cut fits it) still has a choice
    snug = GroupingSearch(budget=5, max_size=5).fit(Planted([7, 7, 6, 5]))
    assert len(snug.groups_) == 5 and max(len(g) for g in snug.groups_) <= 5
    with pytest.raises(TaskrelError, match="at most 2 tasks .*minimal feasible cost at least 6"):
        GroupingSearch(budget=5, max_size=2).fit(model)


def test_affinity_small_is_listed_and_large_is_asked():
    rng = np.random.default_rng(0)
    tasks = [f"t{i}" for i in range(6)]
    aff = Affinity(tasks, rng.normal(0, 0.1, (6, 6)), measure="pairwise")
    gs = GroupingSearch(budget=3).fit(aff)
    ref = GroupingSearch(budget=3).fit(CandidateTable.from_affinity(aff))
    assert gs.rule_ == "hoa" and gs.networks_ == ref.networks_ and gs.status_ == "optimal"
    labels = np.repeat(np.arange(6), 6)  # 36 tasks: listing every group is out of the question
    same = labels[:, None] == labels[None, :]
    values = np.where(same, 0.3, -0.2) + rng.normal(0, 0.02, same.shape)
    big = Affinity([f"u{i}" for i in range(36)], values, measure="pairwise")
    gs = GroupingSearch(budget=6, time_limit=30).fit(big)
    assert gs.rule_ == "hoa" and gs.stats_["route"].startswith("column generation")
    truth = {tuple(f"u{i}" for i in np.flatnonzero(labels == k)) for k in range(6)}
    assert set(gs.groups_) == truth
    # HOA values a group by its members' mean gain, so with room to spare a cluster may be
    # split at no loss; it is never mixed with another
    loose = GroupingSearch(budget=9, time_limit=30).fit(big)
    assert all(len({labels[int(t[1:])] for t in g}) == 1 for g in loose.groups_)
    assert loose.total_ >= gs.total_ - 1e-9
    cka = Affinity(tasks, np.abs(rng.normal(0, 0.1, (6, 6))), measure="similarity-linear")
    nos = GroupingSearch(budget=3).fit(cka)
    assert nos.rule_ == "no-singleton" and min(len(g) for g in nos.groups_) >= 2


def test_bad_input_names_the_routes():
    with pytest.raises(TaskrelError, match="CandidateTable.from_affinity.*predict_members"):
        GroupingSearch(budget=2).fit(np.eye(3))
    with pytest.raises(TaskrelError, match="time_limit must be positive"):
        GroupingSearch(budget=2, time_limit=0).fit(Planted([2, 2]))
    for bad in ({"partition": False}, {"robust": 1.0}, {"solver": "beam"}):
        with pytest.raises(TaskrelError, match="partition mode by column generation only"):
            GroupingSearch(budget=2, **bad).fit(Planted([2, 2]))


def quantised_table(n, k, seed=0):
    """Random per-group values rounded to 0.1: wide plateaus of tied choices."""
    rng = np.random.default_rng(seed)
    mem = []
    for _, idx in enumerate_groups(n, k):
        m = np.zeros((len(idx), n), dtype=bool)
        m[np.arange(len(idx))[:, None], idx] = True
        mem.append(m)
    mem = np.concatenate(mem)
    noise = rng.normal(-0.05, 0.1, mem.shape) * (mem.sum(1, keepdims=True) > 1)
    return CandidateTable.from_arrays([f"t{i}" for i in range(n)], mem, np.ones(len(mem)),
                                      np.where(mem, np.round(1 + noise, 1), np.nan),
                                      check_duplicates=False)


def test_a_search_that_took_minutes_stops_on_its_time_limit_with_an_incumbent():
    # without a limit this table (31,930 groups) took 38 s at load 14 to prove its optimum
    table = quantised_table(30, 4)
    seen = []
    gs = GroupingSearch(budget=12, time_limit=2.5, progress=seen.append).fit(table)
    assert gs.status_ == "time limit" and gs.gap_ is not None and gs.gap_ > 0
    # past two seconds the solver is not silent: the incumbent, bound and gap are reported
    assert seen and seen[-1]["incumbent"] is not None and seen[-1]["gap"] is not None
    assert gs.cost_ <= 12 and sorted(t for g in gs.groups_ for t in g) == sorted(table.tasks)
    assert gs.lower_bound_ <= gs.total_


def test_minimal_cost_closed_form_on_tables_that_hung():
    # the old exact MILP took over 300 s on such tables
    for n, k in [(25, 4), (50, 3)]:
        table = quantised_table(n, k)
        bounds = cost_bounds(table)
        assert bounds.exact and bounds.how == "closed form"
        assert minimal_cost(table) == -(-n // k)


def test_minimal_cost_is_scale_free_and_bounded():
    rng = np.random.default_rng(1)
    tasks = [f"t{i}" for i in range(7)]
    rows = [{"tasks": t, "cost": 1.0, t: 1.0} for t in tasks]
    for size in (2, 3):
        for g in list(combinations(tasks, size))[::3]:
            rows.append({"tasks": "+".join(g), "cost": float(rng.uniform(0.8, 2.0)),
                         **{t: 1.0 for t in g}})
    table = CandidateTable(rows)
    b = cost_bounds(table)
    assert b.lower <= b.upper and b.exact
    tiny = CandidateTable([{**r, "cost": r["cost"] * 1e-6} for r in rows])
    assert minimal_cost(tiny) == pytest.approx(1e-6 * minimal_cost(table), rel=1e-9)
    for budget in (2.00003, 1e-5, 4e-6):  # never a false "below the cheapest choice"
        gs = GroupingSearch(budget=budget).fit(tiny)
        assert gs.cost_ <= budget * (1 + 1e-9) and gs.status_ == "optimal"
    with pytest.raises(TaskrelError, match="minimal feasible cost"):
        GroupingSearch(budget=minimal_cost(tiny) * 0.5).fit(tiny)


def test_long_searches_report_progress(caplog):
    seen = []
    model = Planted([4, 4, 4])
    from taskrel.analysis.search_clock import SearchClock

    clock = SearchClock(10, progress=seen.append, quiet=0.0, every=0.0)
    with caplog.at_level(logging.INFO, logger="taskrel"):
        clock.update(incumbent=3.0, bound=2.0, stage="test")
    assert seen and seen[-1]["gap"] == pytest.approx(1 / 3) and "incumbent 3.0" in caplog.text
    gs = GroupingSearch(budget=3, progress=seen.append).fit(model)  # quick: nothing to report
    assert gs.status_ in ("feasible", "optimal")


def test_pricing_that_loses_exactness_is_not_trusted():
    class Tiring(ExactPricing):
        calls = 0

        @property
        def price_exact(self):  # exact on the first call only (its own solver ran out of time)
            return self.calls <= 1

        def price(self, weights, size_cost, max_size, n_groups):
            self.calls += 1
            return super().price(weights, size_cost, max_size, n_groups)

    model = Tiring([3, 2, 3], noise=0.02, seed=2)
    gs = GroupingSearch(budget=3).fit(model)
    assert model.calls >= 2 and not gs.bound_proven_ and gs.gap_ is None
    assert gs.status_ != "optimal"


def test_full_groups_are_improved_by_swaps():
    from taskrel.analysis.moves import improve_partition
    from taskrel.analysis.pricing import ModelOracle, pair_gains
    from taskrel.analysis.search_clock import SearchClock

    model = Planted([2, 2, 2])  # t00+t01, t02+t03, t04+t05 help each other
    oracle = ModelOracle(model)
    start = np.zeros((3, 6), dtype=bool)
    for g, (a, b) in enumerate([(0, 2), (1, 4), (3, 5)]):
        start[g, [a, b]] = True
    singles = np.diag(oracle.losses(np.eye(6, dtype=bool)))
    args = (oracle, start, np.ones(7), 3, 1, 2, SearchClock(10))
    stuck = improve_partition(*args)  # full groups, no budget for a fourth: no single move
    assert {tuple(np.flatnonzero(g)) for g in stuck} == {(0, 2), (1, 4), (3, 5)}
    better = improve_partition(*args, gain=pair_gains(oracle, singles))
    assert {tuple(np.flatnonzero(g)) for g in better} == {(0, 1), (2, 3), (4, 5)}
