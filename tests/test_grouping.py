"""Grouping search: exact solvers against an independent brute force, properties, bad input."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskrel import Affinity, TaskrelError
from taskrel.analysis import (
    CandidateTable,
    GroupingSearch,
    hoa_candidates,
    minimal_cost,
    pareto_front,
)


# ---------------------------------------------------------------------- brute force (independent)
def brute_force(members, values, cost, budget, partition, higher):
    """Best objective over every subset of networks; None when no subset is feasible."""
    G, n = members.shape
    subsets = ((np.arange(1, 1 << G)[:, None] >> np.arange(G)) & 1).astype(bool)
    spend = subsets @ cost
    count = subsets.astype(int) @ members.astype(int)
    ok = (spend <= budget + 1e-9) & (count >= 1).all(axis=1)
    if partition:
        ok &= (count == 1).all(axis=1)
    if not ok.any():
        return None
    sign = -1.0 if higher else 1.0
    loss = np.where(members, sign * np.nan_to_num(values), np.inf)
    served = np.full((int(ok.sum()), n), np.inf)
    for g, chosen in enumerate(subsets[ok].T):
        served[chosen] = np.minimum(served[chosen], loss[g])
    return sign * served.sum(axis=1).min()


def random_instance(rng, n, n_networks, higher=False, singletons=True):
    tasks = [f"task{i}" for i in range(n)]
    pool = set()
    if singletons:
        pool.update((i,) for i in range(n))
    while len(pool) < n_networks:
        size = int(rng.integers(1, n + 1))
        pool.add(tuple(sorted(rng.choice(n, size, replace=False).tolist())))
    records = []
    for group in sorted(pool):
        rec = {"tasks": [tasks[i] for i in group], "cost": round(float(rng.uniform(0.3, 2.0)), 2)}
        rec["values"] = {tasks[i]: round(float(rng.uniform(0, 1)), 3) for i in group}
        records.append(rec)
    return CandidateTable(records, tasks=tasks, higher_is_better=higher)


def solve_or_none(table, **kw):
    try:
        return GroupingSearch(**kw).fit(table)
    except TaskrelError as e:
        assert "below the cheapest" in str(e) or "partitions the tasks" in str(e), str(e)
        return None


def test_exact_solvers_match_brute_force():
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(3, 7))
        partition = trial % 3 == 0
        higher = trial % 5 == 0
        table = random_instance(rng, n, int(rng.integers(n, n + 5)), higher, trial % 4 != 0)
        budget = round(float(rng.uniform(0.5, table.cost.sum())), 2)
        want = brute_force(table.members, table.values, table.cost, budget, partition, higher)
        variants = [{}, {"solver": "exhaustive"}]
        if trial % 2:
            variants.append({"column_generation": True})
        for kw in variants:
            gs = solve_or_none(table, budget=budget, partition=partition, **kw)
            if want is None:
                assert gs is None, (trial, kw)
                continue
            assert gs is not None, (trial, kw)
            assert gs.total_ == pytest.approx(want, abs=1e-7), (trial, kw)
            assert gs.cost_ <= budget + 1e-9
            assert set(gs.assignment_) == set(table.tasks)
            for t, g in gs.assignment_.items():
                assert t in g and g in gs.groups_
        beam = solve_or_none(table, budget=budget, partition=partition, solver="beam")
        if beam is not None:
            assert want is not None and beam.cost_ <= budget + 1e-9
            assert (beam.total_ <= want + 1e-9) if higher else (beam.total_ >= want - 1e-9)


def random_hoa(n, seed, **kw):
    rng = np.random.default_rng(seed)
    tasks = [f"t{i}" for i in range(n)]
    single = {t: 1.0 for t in tasks}
    pair = {
        (a, b): {a: 1 + rng.normal(0, 0.1), b: 1 + rng.normal(0, 0.1)}
        for a, b in combinations(tasks, 2)
    }
    return hoa_candidates(tasks, single, pair, **kw)


@pytest.mark.parametrize("partition", [False, True])
def test_column_generation_matches_direct_milp_on_hoa(partition):
    for seed in range(8):
        table = random_hoa(8, seed)
        for budget in (2, 3.5):
            direct = GroupingSearch(budget, partition=partition, column_generation=False).fit(table)
            cg = GroupingSearch(budget, partition=partition, column_generation=True).fit(table)
            assert cg.total_ == pytest.approx(direct.total_, abs=1e-9)
            assert cg.stats_["lower_bound"] <= cg.total_ + 1e-7
            if seed < 2:
                ex = GroupingSearch(budget, partition=partition, solver="exhaustive").fit(table)
                assert ex.total_ == pytest.approx(direct.total_, abs=1e-9)


def test_hoa_losses_are_means_of_pair_losses():
    table = random_hoa(5, 0)
    pair = table.value(("t0", "t3"), "t0")
    group = table.value(("t0", "t1", "t3"), "t0")
    other = table.value(("t0", "t1"), "t0")
    assert group == pytest.approx((pair + other) / 2)
    assert len(table) == 31 and len(random_hoa(5, 0, max_size=2)) == 15
    sized = random_hoa(4, 0, cost={1: 1.0, 2: 1.5, 3: 2.0, 4: 2.5})
    assert sized.cost[sized.find(("t0", "t1", "t2"))] == 2.0
    by_fn = random_hoa(4, 0, cost=lambda g: 0.5 + len(g))
    assert by_fn.cost[by_fn.find(("t1",))] == 1.5


def test_from_affinity_scores_and_losses():
    aff = Affinity(["a", "b", "c"], [[0, 0.4, 0.2], [0.1, 0, 0.3], [0.5, -0.2, 0]])
    scores = CandidateTable.from_affinity(aff)
    assert scores.higher_is_better
    assert scores.value(("a", "b", "c"), "a") == pytest.approx((0.1 + 0.5) / 2)
    assert scores.value(("c",), "c") == 0.0
    loss = CandidateTable.from_affinity(aff, base_loss={"a": 1, "b": 2, "c": 3}, max_size=2)
    assert not loss.higher_is_better and len(loss) == 6
    assert loss.value(("b", "c"), "b") == pytest.approx(2 - (-0.2))
    best = GroupingSearch(budget=1).fit(scores)
    assert best.groups_ == [("a", "b", "c")]


# ---------------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), partition=st.booleans())
def test_task_permutation_does_not_change_objective(seed, partition):
    rng = np.random.default_rng(seed)
    table = random_instance(rng, 5, 9)
    budget = float(table.cost.sum() * 0.5)
    perm = rng.permutation(table.n_tasks)
    shuffled = CandidateTable.from_arrays(
        [table.tasks[i] for i in perm], table.members[:, perm], table.cost, table.values[:, perm]
    )
    a = solve_or_none(table, budget=budget, partition=partition)
    b = solve_or_none(shuffled, budget=budget, partition=partition)
    assert (a is None) == (b is None)
    if a is not None:
        assert a.total_ == pytest.approx(b.total_, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), partition=st.booleans())
def test_raising_the_budget_never_worsens_the_optimum(seed, partition):
    rng = np.random.default_rng(seed)
    table = random_instance(rng, 5, 9)
    previous = np.inf
    for budget in np.linspace(1, table.cost.sum(), 6):
        gs = solve_or_none(table, budget=float(budget), partition=partition)
        if gs is not None:
            assert gs.total_ <= previous + 1e-9
            previous = gs.total_


def test_pareto_front_and_score_on():
    table = random_hoa(6, 3)
    front = pareto_front(table, [0.5, 1, 2, 3, 6])
    assert list(front.columns) == ["budget", "cost", "objective", "groups"]
    assert np.isnan(front.loc[0, "objective"])
    objective = front["objective"].to_numpy()[1:]
    assert (np.diff(objective) <= 1e-9).all()
    assert front.loc[4, "objective"] == pytest.approx(sum(table.losses.min(axis=0)))
    gs = GroupingSearch(budget=2).fit(table)
    assert gs.score_on(table) == pytest.approx(gs.total_)
    test = random_hoa(6, 4)
    assert gs.score_on(test, reassign=True) <= gs.score_on(test) + 1e-12


def test_frame_csv_json_round_trip(tmp_path):
    table = random_instance(np.random.default_rng(1), 4, 7)
    frame = table.to_frame()
    again = CandidateTable.from_frame(frame)
    assert again.groups == table.groups and np.allclose(again.cost, table.cost)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    from_csv = CandidateTable.from_csv(path)
    assert np.allclose(np.nan_to_num(from_csv.values), np.nan_to_num(table.values))
    records = [
        {"tasks": "+".join(g), "cost": float(c), **{t: table.value(g, t) for t in g}}
        for g, c in zip(table.groups, table.cost)
    ]
    jpath = tmp_path / "t.json"
    jpath.write_text(json.dumps(records))
    assert CandidateTable.from_json(jpath).groups == table.groups


# ---------------------------------------------------------------------- bad input
def _frame(**override):
    base = {"tasks": ["a", "b", "a+b"], "cost": [1.0, 1.0, 1.5], "a": [0.5, None, 0.3],
            "b": [None, 0.4, 0.35]}
    base.update(override)
    return pd.DataFrame(base)


@pytest.mark.parametrize(
    "frame, message",
    [
        (_frame(tasks=["a", "b", "a+z"]), "unknown task 'z'"),
        (_frame(b=[None, 0.4, None]), "value missing for member 'b'"),
        (_frame(cost=[1.0, 0.0, 1.5]), "cost must be a positive"),
        (_frame(cost=[1.0, float("nan"), 1.5]), "NaN"),
        (_frame(tasks=["a", "a+b", "b+a"], a=[0.5, 0.3, 0.3], b=[None, 0.4, 0.4]),
         "network a\\+b is listed more than once"),
        (_frame(tasks=["a", "b", "a+a"]), "repeated"),
        (_frame().drop(columns="cost"), "'cost' is missing"),
    ],
)
def test_bad_tables_raise(frame, message):
    with pytest.raises(TaskrelError, match=message):
        CandidateTable.from_frame(frame)


def test_bad_search_input_raises(tmp_path):
    table = CandidateTable.from_frame(_frame())
    with pytest.raises(TaskrelError, match=r"budget 0\.5 .*minimal feasible cost 1\.5"):
        GroupingSearch(budget=0.5).fit(table)
    with pytest.raises(TaskrelError, match="partitions every task .minimal feasible cost 1.5"):
        GroupingSearch(budget=1.2, partition=True).fit(table)
    assert minimal_cost(table) == 1.5
    with pytest.raises(TaskrelError, match="budget must be a positive"):
        GroupingSearch(budget=-1).fit(table)
    with pytest.raises(TaskrelError, match="unknown solver 'magic'"):
        GroupingSearch(budget=2, solver="magic").fit(table)
    with pytest.raises(TaskrelError, match="in no candidate network"):
        GroupingSearch(budget=2).fit(
            CandidateTable([{"tasks": "a", "cost": 1, "a": 1}], tasks=["a", "b"]))
    with pytest.raises(TaskrelError, match="at most 12 tasks"):
        GroupingSearch(budget=3, solver="exhaustive").fit(random_hoa(13, 0, max_size=1))
    with pytest.raises(TaskrelError, match="no pair loss for 'a'\\+'c'"):
        hoa_candidates(["a", "b", "c"], {"a": 1, "b": 1, "c": 1},
                       {("a", "b"): {"a": 1, "b": 1}, ("b", "c"): {"b": 1, "c": 1}})
    with pytest.raises(TaskrelError, match="single_loss has no value for task 'c'"):
        hoa_candidates(["a", "b", "c"], {"a": 1, "b": 1}, {}, max_size=1)
    with pytest.raises(TaskrelError, match="does not exist"):
        CandidateTable.from_csv(tmp_path / "missing.csv")
    with pytest.raises(TaskrelError, match="pass a smaller max_size"):
        random_hoa(24, 0)
    with pytest.raises(TaskrelError, match="call fit before score_on"):
        GroupingSearch(budget=1).score_on(table)
