"""Grouping search: exact solvers against an independent brute force, properties, bad input."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from taskrel import Affinity, TaskrelError
from taskrel.analysis import (
    CandidateTable,
    GroupingSearch,
    hoa_candidates,
    minimal_cost,
    pareto_front,
)
from taskrel.tables.candidates import default_name


# ---------------------------------------------------------------------- brute force (independent)
def brute_force(table, budget, partition, allow_singletons=True):
    """The lexicographic optimum over every subset of networks (independent of the solvers):
    objective, then cost, then task slots, then sum of row positions. None when infeasible."""
    members, cost = table.members, table.cost
    G, n = members.shape
    subsets = ((np.arange(1, 1 << G)[:, None] >> np.arange(G)) & 1).astype(bool)
    if not allow_singletons:
        subsets = subsets[~(subsets & (members.sum(axis=1) == 1)).any(axis=1)]
    spend = subsets @ cost
    count = subsets.astype(int) @ members.astype(int)
    ok = (spend <= budget + 1e-9) & (count >= 1).all(axis=1)
    if partition:
        ok &= (count == 1).all(axis=1)
    if not ok.any():
        return None
    subsets, spend = subsets[ok], spend[ok]
    loss = table.losses
    served = np.full((len(subsets), n), np.inf)
    for g, chosen in enumerate(subsets.T):
        served[chosen] = np.minimum(served[chosen], loss[g])
    obj = served.sum(axis=1)
    keep = obj <= obj.min() + 1e-7 * (1 + abs(obj.min()))
    keep &= spend <= spend[keep].min() + 1e-7 * (1 + spend[keep].min())
    slots = subsets.astype(int) @ members.sum(axis=1)
    keep &= slots == slots[keep].min()
    pos = subsets.astype(int) @ np.arange(G)
    best = np.flatnonzero(keep)[np.argmin(pos[keep])]
    sign = -1.0 if table.higher_is_better else 1.0
    return sign * obj[best], spend[best], np.flatnonzero(subsets[best])


def random_instance(rng, n, n_sets, higher=False, singletons=True, widths=(1.0, 0.5, 0.25)):
    """Random task sets, each at one to three widths; values and costs on coarse grids so
    that ties are common."""
    tasks = [f"task{i}" for i in range(n)]
    pool = set()
    if singletons:
        pool.update((i,) for i in range(n))
    n_sets = min(n_sets, 2**n - 1 - (0 if singletons else n))
    while len(pool) < n_sets:
        size = int(rng.integers(1 if singletons else 2, n + 1))
        pool.add(tuple(sorted(rng.choice(n, size, replace=False).tolist())))
    records = []
    for group in sorted(pool):
        for w in widths[: int(rng.integers(1, len(widths) + 1))]:
            rec = {"tasks": [tasks[i] for i in group], "width": w,
                   "cost": float(rng.integers(1, 8)) / 4}
            rec["values"] = {tasks[i]: float(rng.integers(0, 20)) / 20 for i in group}
            records.append(rec)
    return CandidateTable(records, tasks=tasks, higher_is_better=higher)


def solve_or_none(table, **kw):
    try:
        return GroupingSearch(**kw).fit(table)
    except TaskrelError as e:
        assert "below the cheapest" in str(e) or "partitions the tasks" in str(e), str(e)
        return None


def check_choice(gs, table, budget):
    assert gs.cost_ <= budget + 1e-9
    assert gs.cost_ == pytest.approx(table.cost[gs.chosen_].sum())
    assert set(gs.assignment_) == set(table.tasks)
    assert gs.networks_ == [table.name(g) for g in gs.chosen_]
    assert all(gs.served_[name] for name in gs.networks_), "a chosen network serves nothing"
    for t, name in gs.assignment_.items():
        assert t in table.group(table.index(name)) and t in gs.served_[name]


def test_exact_solvers_match_brute_force_with_several_widths():
    rng = np.random.default_rng(7)
    for trial in range(70):
        n = int(rng.integers(2, 6))
        partition = trial % 3 != 0
        higher = trial % 5 == 0
        table = random_instance(rng, n, int(rng.integers(n, n + 3)), higher, trial % 4 != 0)
        if len(table) > 13:
            table = table.take(range(13)) if table.members[:13].any(axis=0).all() else table
        if len(table) > 13:
            continue
        budget = float(rng.integers(2, int(4 * table.cost.sum()) + 2)) / 4
        want = brute_force(table, budget, partition)
        variants = [{}, {"solver": "exhaustive"}] + ([{"column_generation": True}] if trial % 2 else [])
        for kw in variants:
            gs = solve_or_none(table, budget=budget, partition=partition, **kw)
            assert (gs is None) == (want is None), (trial, kw)
            if gs is None:
                continue
            check_choice(gs, table, budget)
            assert gs.total_ == pytest.approx(want[0], abs=1e-6), (trial, kw)
            if kw.get("solver") != "exhaustive":  # the MILP breaks every tie as documented
                assert gs.cost_ == pytest.approx(want[1]), (trial, kw)
                assert gs.chosen_.tolist() == want[2].tolist(), (trial, kw)
        beam = solve_or_none(table, budget=budget, partition=partition, solver="beam")
        if beam is not None:
            assert want is not None
            check_choice(beam, table, budget)
            assert (beam.total_ <= want[0] + 1e-9) if higher else (beam.total_ >= want[0] - 1e-9)


def test_no_singletons_matches_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(20):
        table = random_instance(rng, 4, 9, widths=(1.0, 0.5))
        if len(table) > 13:
            continue
        budget = float(rng.integers(4, 16)) / 4
        want = brute_force(table, budget, trial % 2 == 0, allow_singletons=False)
        gs = None
        try:
            gs = GroupingSearch(budget, partition=trial % 2 == 0, allow_singletons=False).fit(table)
        except TaskrelError as e:
            assert want is None and ("below the cheapest" in str(e) or "partitions" in str(e)
                                     or "two or more" in str(e)), str(e)
        if gs is not None:
            assert want is not None and gs.chosen_.tolist() == want[2].tolist()
            assert min(len(g) for g in gs.groups_) >= 2


def test_a_network_that_serves_no_task_is_never_chosen():
    table = CandidateTable([{"tasks": "a", "cost": 1, "a": 1.0}, {"tasks": "b", "cost": 1, "b": 1.0},
                            {"tasks": "a+b", "cost": 1, "a": 0.5, "b": 0.5}])
    for solver in ("milp", "exhaustive", "beam"):
        gs = GroupingSearch(budget=3, partition=False, solver=solver).fit(table)
        assert gs.networks_ == ["a+b"] and gs.cost_ == 1.0, solver


def _sized(a_ab, b_ab, half=(1.1, 1.3), full=(1.0, 1.0)):
    return CandidateTable([
        {"tasks": "a", "cost": 1, "a": full[0]},
        {"tasks": "a", "width": 0.5, "cost": 0.5, "a": half[0]},
        {"tasks": "b", "cost": 1, "b": full[1]},
        {"tasks": "b", "width": 0.5, "cost": 0.5, "b": half[1]},
        {"tasks": "a+b", "cost": 1, "a": a_ab, "b": b_ab}])


def test_networks_of_the_same_tasks_are_told_apart():
    test = _sized(1.0, 4.0, half=(2.0, 3.0), full=(5.0, 5.0))
    gs = GroupingSearch(budget=1.5).fit(_sized(0.95, 1.2))
    assert gs.networks_ == ["a@0.5", "b"] and gs.assignment_ == {"a": "a@0.5", "b": "b"}
    assert gs.total_ == pytest.approx(2.1) and gs.cost_ == 1.5
    assert gs.score_on(test) == pytest.approx(2.0 + 5.0)
    val = _sized(0.95, 0.8, half=(0.9, 1.3))
    over = GroupingSearch(budget=1.5, partition=False).fit(val)
    assert over.networks_ == ["a@0.5", "a+b"]
    assert over.assignment_ == {"a": "a@0.5", "b": "a+b"}
    assert over.served_ == {"a@0.5": ("a",), "a+b": ("b",)}
    assert over.score_on(test) == pytest.approx(2.0 + 4.0)
    assert over.score_on(test, reassign=True) == pytest.approx(1.0 + 4.0)
    front = pareto_front(val, [1, 1.5], score_on=test, reassign=True, partition=False)
    assert front["networks"].tolist() == [["a+b"], ["a@0.5", "a+b"]]
    assert front["score_on"].tolist() == pytest.approx([5.0, 5.0])
    with pytest.raises(TaskrelError, match=r"chosen network\(s\) \['a@0.5'\] are not in"):
        over.score_on(test.take([0, 2, 3, 4]))


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
    for seed in range(4):
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
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), partition=st.booleans())
def test_task_permutation_does_not_change_objective(seed, partition):
    rng = np.random.default_rng(seed)
    table = random_instance(rng, 5, 9)
    budget = float(table.cost.sum() * 0.5)
    perm = rng.permutation(table.n_tasks)
    shuffled = CandidateTable.from_arrays(
        [table.tasks[i] for i in perm], table.members[:, perm], table.cost, table.values[:, perm],
        width=table.width,
    )
    a = solve_or_none(table, budget=budget, partition=partition)
    b = solve_or_none(shuffled, budget=budget, partition=partition)
    assert (a is None) == (b is None)
    if a is not None:
        assert a.total_ == pytest.approx(b.total_, abs=1e-9)


@settings(max_examples=15, deadline=None)
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
    front = pareto_front(table, [0.5, 1, 2, 3, 6], partition=False)
    assert list(front.columns) == ["budget", "cost", "objective", "networks"]
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
        {"tasks": "+".join(g), "width": float(w), "cost": float(c), **{t: table.value(name, t) for t in g}}
        for name, g, w, c in zip(table.names, table.groups, table.width, table.cost)
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
         r"listed more than once: a\+b \(rows 1, 2\)"),
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
    with pytest.raises(TaskrelError, match="no pair value for 'a'\\+'c' at width 1"):
        hoa_candidates(["a", "b", "c"], {"a": 1, "b": 1, "c": 1},
                       {("a", "b"): {"a": 1, "b": 1}, ("b", "c"): {"b": 1, "c": 1}})
    with pytest.raises(TaskrelError, match="single_loss at width 1 has no value for task 'c'"):
        hoa_candidates(["a", "b", "c"], {"a": 1, "b": 1}, {}, max_size=1)
    with pytest.raises(TaskrelError, match="does not exist"):
        CandidateTable.from_csv(tmp_path / "missing.csv")
    with pytest.raises(TaskrelError, match="pass a smaller max_size"):
        random_hoa(24, 0)
    with pytest.raises(TaskrelError, match="call fit before score_on"):
        GroupingSearch(budget=1).score_on(table)


# ---------------------------------------------------------------------- Standley et al. (2020)
DATA = Path(__file__).resolve().parents[1] / "data"
TASKS5 = ["t1", "t2", "t3", "t4", "t5"]


def standley_tables(setting: int) -> dict[str, CandidateTable]:
    """Their released val / test / early-stopping tables, and HOA built from the val pairs
    (full and half-size singles measured, higher orders estimated at full size)."""
    frame = pd.read_csv(DATA / "standley2020_network_selection.csv", comment="#")
    frame = frame[frame["setting"] == setting].drop(columns="setting")
    tables = {split: CandidateTable.from_frame(part.drop(columns="split").reset_index(drop=True))
              for split, part in frame.groupby("split")}
    val = tables["val"]
    singles = {w: {t: val.value(default_name([t], w), t) for t in TASKS5} for w in (1.0, 0.5)}
    pairs = {(a, b): {a: val.value(f"{a}+{b}", a), b: val.value(f"{a}+{b}", b)}
             for a, b in combinations(TASKS5, 2)}
    tables["hoa"] = hoa_candidates(TASKS5, singles, {1.0: pairs})
    return tables


@pytest.mark.parametrize("setting", [1, 2, 3, 4])
def test_reproduces_standleys_published_selections(setting):
    """Select in overlap mode on val, ESA and HOA with half-size networks at budgets 1..5 in
    steps of 0.5; score on test with each task served by its best chosen network (their
    scoring). Their figure's numbers are rounded to 5 decimals."""
    published = json.loads((DATA / "standley2020_published.json").read_text())
    tables = standley_tables(setting)
    assert len(tables["val"]) == 36 and (tables["val"].width == 0.5).sum() == 5
    for kind, select_on in (("optimal", "val"), ("esa", "esa"), ("hoa", "hoa")):
        want = published["curves"][str(setting)][kind]
        for budget, expected in zip(published["budgets"], want):
            gs = GroupingSearch(budget=budget, partition=False).fit(tables[select_on])
            got = gs.score_on(tables["test"], reassign=True)
            if setting == 1 and budget == 1 and kind != "hoa":
                # the only choice at budget 1 is the five-task network; the figure shows it at
                # 0.50273 here and at 0.50278 (the released test total) on its HOA curve
                assert gs.networks_ == ["+".join(TASKS5)] and expected == 0.50273
                assert got == pytest.approx(0.50278, abs=5e-6)
                continue
            assert got == pytest.approx(expected, abs=6e-6), (kind, budget, gs.networks_)


def test_standley_half_size_networks_are_chosen_by_identity():
    tables = standley_tables(1)
    gs = GroupingSearch(budget=4.5, partition=False).fit(tables["hoa"])
    # a validation tie (t2 alone and t2 with t3 both 0.1695): the fewer task slots win
    assert gs.networks_ == ["t2", "t3", "t5", "t1+t3", "t4@0.5"]
    assert gs.cost_ == 4.5 and gs.assignment_["t4"] == "t4@0.5"


# ---------------------------------------------------------------------- choices under noise
def _noisy(std_ab: float):
    records = [
        {"tasks": "a", "cost": 1, "a": 1.0, "std": {"a": 0.01}},
        {"tasks": "b", "cost": 1, "b": 1.0, "std": {"b": 0.01}},
        {"tasks": "a+b", "cost": 1, "a": 0.9, "b": 0.95, "std": {"a": std_ab, "b": std_ab}},
    ]
    return CandidateTable(records, n_seeds=4)


def test_robust_choice_avoids_a_noisy_gain():
    quiet, noisy = _noisy(0.01), _noisy(0.5)
    assert GroupingSearch(budget=2).fit(noisy).networks_ == ["a+b"]  # the mean prefers it
    assert GroupingSearch(budget=2, robust=1.0).fit(noisy).networks_ == ["a", "b"]
    assert GroupingSearch(budget=2, robust=1.0).fit(quiet).networks_ == ["a+b"]
    gs = GroupingSearch(budget=2).fit(noisy)
    sem = 0.5 / 2
    z = (2.0 - 1.85) / np.sqrt(2 * sem**2 + 2 * (0.01 / 2) ** 2)
    assert gs.p_beats_["all-separate"] == pytest.approx(stats.norm.cdf(z))
    assert gs.p_beats_["all-shared"] == 0.0  # it is all-shared
    assert gs.total_sem_ == pytest.approx(np.sqrt(2) * sem)
    assert GroupingSearch(budget=2).fit(quiet).p_beats_["all-separate"] > 0.999


def test_within_noise_prefers_the_cheaper_choice():
    records = [{"tasks": t, "cost": 1, t: 1.0, "std": {t: 0.2}} for t in "abc"]
    records.append({"tasks": "a+b+c", "cost": 1, "a": 1.02, "b": 1.01, "c": 1.0,
                    "std": {t: 0.2 for t in "abc"}})
    table = CandidateTable(records)
    assert GroupingSearch(budget=3).fit(table).networks_ == ["a", "b", "c"]
    gs = GroupingSearch(budget=3, within_noise=1.0).fit(table)
    assert gs.networks_ == ["a+b+c"] and gs.cost_ == 1.0
    tight = CandidateTable([{**r, "std": {t: 1e-4 for t in r["std"]}} for r in records])
    assert GroupingSearch(budget=3, within_noise=1.0).fit(tight).networks_ == ["a", "b", "c"]
    with pytest.raises(TaskrelError, match="need a table with std"):
        GroupingSearch(budget=3, robust=1.0).fit(_frame_table())
    assert GroupingSearch(budget=3).fit(_frame_table()).p_beats_ == {
        "all-separate": None, "all-shared": None}


def _frame_table():
    return CandidateTable.from_frame(_frame())


# ---------------------------------------------------------------------- the CLI
def test_cli_group_scores_a_front_on_another_table(tmp_path, capsys):
    from taskrel.cli.main import main

    tables = standley_tables(1)
    val, test = tmp_path / "val.csv", tmp_path / "test.csv"
    tables["val"].to_frame().to_csv(val, index=False)
    tables["test"].to_frame().to_csv(test, index=False)
    out = tmp_path / "g.json"
    argv = ["group", str(val), "--overlap", "--budgets", "1.5,2.5", "--budget", "4.5",
            "--score-on", str(test), "--reassign", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "objective: total loss over the tasks" in printed and "(lower is better); overlap mode" in printed
    report = json.loads(out.read_text())
    for row in report["front"] + [report["choice"]]:
        gs = GroupingSearch(budget=row["budget"], partition=False).fit(tables["val"])
        assert row["networks"] == gs.networks_ and row["objective"] == gs.total_  # full precision
        assert row["score_on"] == gs.score_on(tables["test"], reassign=True)
    assert report["mode"] == "overlap" and report["reassign"]
    assert main(["group", str(val), "--budget", "2"]) == 0  # default: a partition
    assert "partition mode" in capsys.readouterr().out
    assert main(["group", str(val), "--budget", "2", "--reassign"]) != 0
    assert "--reassign needs --score-on" in capsys.readouterr().err
    assert main(["group", str(val), "--budget", "2.5", "--no-singletons", "--json", str(out)]) == 0
    assert all(len(g.split("+")) >= 2 for g in json.loads(out.read_text())["choice"]["networks"])
