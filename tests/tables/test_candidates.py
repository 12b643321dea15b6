"""Candidate tables: network identity and widths, builders (HOA, affinity rules), round trips."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from taskrel import Affinity, TaskrelError
from taskrel.analysis import CandidateTable, GroupingSearch, hoa_candidates


def planted_pairs(n=5, seed=0):
    rng = np.random.default_rng(seed)
    tasks = [f"t{i}" for i in range(n)]
    single = {t: float(rng.uniform(0.5, 2.0)) for t in tasks}
    pair = {(a, b): {a: single[a] * (1 - rng.normal(0, 0.1)), b: single[b] * (1 - rng.normal(0, 0.1))}
            for a, b in combinations(tasks, 2)}
    return tasks, single, pair


# ---------------------------------------------------------------------- identity
def test_duplicates_are_refused_naming_every_clash():
    rows = [{"tasks": "a", "cost": 1, "a": 1}, {"tasks": "a", "cost": 0.5, "a": 2},
            {"tasks": "b", "cost": 1, "b": 1}, {"tasks": "a+b", "cost": 1, "a": 1, "b": 1},
            {"tasks": "b+a", "cost": 2, "a": 1, "b": 1}]
    with pytest.raises(TaskrelError) as err:
        CandidateTable(rows)
    msg = str(err.value)
    assert "a (rows 0, 1)" in msg and "a+b (rows 3, 4)" in msg and "'name' or 'width'" in msg
    named = [dict(r) for r in rows]
    named[1]["width"] = 0.5
    named[4]["name"] = "a+b big"
    table = CandidateTable(named)
    assert table.names == ["a", "a@0.5", "b", "a+b", "a+b big"]
    with pytest.raises(TaskrelError, match="several networks hold a\\+b: a\\+b, a\\+b big"):
        table.find(["a", "b"])
    assert table.find(["a"], width=0.5) == 1 and table.value("a+b big", "b") == 1.0
    with pytest.raises(TaskrelError, match="listed more than once: x \\(rows 0, 1\\)"):
        CandidateTable([{"name": "x", "tasks": "a", "cost": 1, "a": 1},
                        {"name": "x", "tasks": "a", "width": 2, "cost": 1, "a": 1}])


def test_round_trips_keep_identity_width_and_std(tmp_path):
    table = CandidateTable([
        {"tasks": "a", "cost": 1, "a": 0.1234567891234, "std": {"a": 0.01}},
        {"name": "a-small", "tasks": "a", "width": 0.5, "cost": 0.5, "a": 0.2, "std": {"a": 0.02}},
        {"tasks": "a+b", "cost": 1, "a": 0.3, "b": 0.4, "std": {"a": 0.0, "b": 0.1}},
        {"tasks": "b", "width": 0.25, "cost": 0.3, "b": 0.5, "std": {"b": 0.2}},
    ], n_seeds=3)
    for again in (CandidateTable.from_frame(table.to_frame(), n_seeds=3),
                  CandidateTable.from_json(table.to_json(tmp_path / "t.json"))):
        assert again.names == table.names and again.groups == table.groups
        assert np.array_equal(again.width, table.width) and np.array_equal(again.cost, table.cost)
        assert np.array_equal(np.nan_to_num(again.values), np.nan_to_num(table.values))
        assert np.allclose(np.nan_to_num(again.sem), np.nan_to_num(table.std) / np.sqrt(3))
    path = tmp_path / "t.csv"
    table.to_frame().to_csv(path, index=False)
    assert CandidateTable.from_csv(path).names == table.names


def test_concat_and_take_keep_names():
    full = CandidateTable([{"tasks": "a", "cost": 1, "a": 1.0}, {"tasks": "b", "cost": 1, "b": 1.0}])
    half = CandidateTable([{"tasks": "a", "width": 0.5, "cost": 0.5, "a": 1.5},
                           {"tasks": "b", "width": 0.5, "cost": 0.5, "b": 1.5}])
    both = CandidateTable.concat([full, half])
    assert both.names == ["a", "b", "a@0.5", "b@0.5"]
    assert both.take([3, 0]).names == ["b@0.5", "a"]
    with pytest.raises(TaskrelError, match="listed more than once"):
        CandidateTable.concat([full, full])


# ---------------------------------------------------------------------- HOA
def test_hoa_with_half_size_networks_and_gains():
    tasks, single, pair = planted_pairs()
    half = {t: v * 1.1 for t, v in single.items()}
    table = hoa_candidates(tasks, {1.0: single, 0.5: half}, {1.0: pair}, max_size=3)
    assert len(table) == 5 + 10 + 10 + 5 and (table.width == 0.5).sum() == 5
    assert table.cost[table.index("t2@0.5")] == 0.5 and table.value("t2@0.5", "t2") == half["t2"]
    want = (pair[("t0", "t1")]["t1"] + pair[("t1", "t3")]["t1"]) / 2
    assert table.value("t0+t1+t3", "t1") == pytest.approx(want)
    scaled = hoa_candidates(tasks, {1.0: single, 0.5: half}, {1.0: pair}, max_size=2,
                            cost=2.0, width_cost={1.0: 1.0, 0.5: 0.3})
    assert scaled.cost[scaled.index("t0@0.5")] == pytest.approx(0.6)
    # a gain table (higher is better) is the loss table negated: the same choice
    gains = hoa_candidates(tasks, {w: {t: -v for t, v in s.items()} for w, s in
                                   ((1.0, single), (0.5, half))},
                           {1.0: {k: {t: -v for t, v in d.items()} for k, d in pair.items()}},
                           max_size=3, higher_is_better=True)
    assert gains.higher_is_better and np.allclose(np.nan_to_num(gains.values), -np.nan_to_num(table.values))
    for budget in (2.0, 2.5, 3.5):
        for partition in (True, False):
            a = GroupingSearch(budget, partition=partition).fit(table)
            b = GroupingSearch(budget, partition=partition).fit(gains)
            assert a.networks_ == b.networks_ and a.total_ == pytest.approx(-b.total_)


# ---------------------------------------------------------------------- affinity rules
def test_relative_gain_rule_is_hoa():
    """Pairwise relative gains scaled by the single-task loss give exactly HOA's losses."""
    tasks, single, pair = planted_pairs(5, 1)
    values = np.zeros((5, 5))
    for (a, b), d in pair.items():
        ia, ib = tasks.index(a), tasks.index(b)
        values[ib, ia] = (single[a] - d[a]) / single[a]
        values[ia, ib] = (single[b] - d[b]) / single[b]
    aff = Affinity(tasks, values, measure="pairwise")
    assert aff.calibration == "relative-gain"
    est = CandidateTable.from_affinity(aff, base_loss=single)
    hoa = hoa_candidates(tasks, single, pair)
    assert est.meta["rule"] == "hoa" and est.names == hoa.names
    assert np.allclose(np.nan_to_num(est.values), np.nan_to_num(hoa.values))
    scores = CandidateTable.from_affinity(aff)
    assert scores.higher_is_better and scores.value("t0", "t0") == 0.0


def test_uncalibrated_affinities_get_tags_rule():
    cka = Affinity(["a", "b", "c", "d"], np.full((4, 4), 0.7), measure="similarity-linear")
    table = CandidateTable.from_affinity(cka)
    assert table.meta["rule"] == "no-singleton" and min(len(g) for g in table.groups) == 2
    gs = GroupingSearch(budget=4).fit(table)
    assert all(len(g) >= 2 for g in gs.groups_)
    with pytest.raises(TaskrelError, match="no calibrated zero"):
        CandidateTable.from_affinity(cka, base_loss={t: 1.0 for t in "abcd"})
    forced = CandidateTable.from_affinity(cka, rule="mean-gain", max_size=1)
    assert forced.meta["rule"] == "mean-gain" and len(forced) == 4
    conflict = Affinity(["a", "b"], [[0, 1], [1, 0]], measure="gradient-conflict-frequency")
    with pytest.raises(TaskrelError, match="not a task affinity"):
        CandidateTable.from_affinity(conflict)
    with pytest.raises(TaskrelError, match="unknown rule 'magic'"):
        CandidateTable.from_affinity(cka, rule="magic")


def test_calibrated_affinity_scores_groups_by_hoa():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 0.1, (4, 4))
    np.fill_diagonal(true, 0)
    raw = Affinity(["a", "b", "c", "d"], np.where(np.eye(4, dtype=bool), 1.0, 0.5 + 2 * true),
                   measure="gradient-cosine")
    measured = {("a", "b"): true[0, 1], ("c", "d"): true[2, 3], ("b", "d"): true[1, 3]}
    cal = raw.calibrate(measured)
    off = ~np.eye(4, dtype=bool)
    assert np.allclose(cal.values[off], true[off])
    table = CandidateTable.from_affinity(cal, base_loss={t: 2.0 for t in "abcd"})
    assert table.meta["rule"] == "hoa"
    assert table.value("a+b", "b") == pytest.approx(2.0 * (1 - true[0, 1]))


def test_affinity_tables_at_several_widths():
    aff = Affinity(["a", "b", "c"], [[0, .2, .1], [.1, 0, -.1], [0, .3, 0]], measure="pairwise")
    base = {1.0: {"a": 1.0, "b": 2.0, "c": 1.0}, 0.5: {"a": 1.2, "b": 2.5, "c": 1.1}}
    table = CandidateTable.from_affinity(aff, base_loss=base, max_size=2)
    assert len(table) == 12 and table.names[6:8] == ["a@0.5", "b@0.5"]
    assert table.value("a+b@0.5", "b") == pytest.approx(2.5 * (1 - 0.2))
    assert table.cost[table.index("c@0.5")] == 0.5
    gains = CandidateTable.from_affinity(aff, base_loss={"a": 1.0, "b": 2.0, "c": 1.0},
                                         higher_is_better=True)
    assert gains.higher_is_better and gains.value("a+b", "b") == pytest.approx(2.0 * 1.2)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("record, message", [
    ({"tasks": "a", "cost": 1, "a": 1, "width": 0}, "width must be a positive number"),
    ({"tasks": "a", "cost": 1, "a": 1, "width": "wide"}, "width is not a number"),
    ({"tasks": "a", "cost": 1, "a": 1, "std": {"a": -1}}, "std of 'a' is -1"),
])
def test_bad_records_raise(record, message):
    with pytest.raises(TaskrelError, match=message):
        CandidateTable([record])


def test_bad_builder_input_raises():
    with pytest.raises(TaskrelError, match="no pair value for 'a'\\+'b' at width 0.5"):
        hoa_candidates(["a", "b"], {1: {"a": 1, "b": 1}, 0.5: {"a": 1, "b": 1}},
                       {0.5: {}, 1: {("a", "b"): {"a": 1, "b": 1}}})
    with pytest.raises(TaskrelError, match="needs groups of two or more"):
        CandidateTable.from_affinity(Affinity(["a", "b"], np.eye(2), measure="similarity-rbf"),
                                     max_size=1)
    with pytest.raises(TaskrelError, match="base_loss at width 1 has no value for task 'b'"):
        CandidateTable.from_affinity(Affinity(["a", "b"], np.zeros((2, 2))), base_loss={"a": 1})


def test_width_and_grouping_chosen_together_under_a_parameter_budget():
    """Capacity as a choice: half-width networks cost a quarter of the parameters."""
    single = {1.0: {"a": 1.0, "b": 1.0, "c": 1.0}, 0.5: {"a": 1.2, "b": 1.2, "c": 1.2}}
    pairs = {1.0: {("a", "b"): {"a": 1.3, "b": 1.3}, ("a", "c"): {"a": 0.8, "c": 0.8},
                   ("b", "c"): {"b": 1.0, "c": 1.0}}}
    table = hoa_candidates(["a", "b", "c"], single, pairs, width_cost=lambda w: w ** 2)
    assert table.cost[table.index("b@0.5")] == 0.25
    chosen = {b: GroupingSearch(budget=b).fit(table).networks_ for b in (0.75, 1.0, 1.5, 2.0)}
    assert chosen == {0.75: ["a@0.5", "b@0.5", "c@0.5"], 1.0: ["a+b+c"],
                      1.5: ["a+c", "b@0.5"], 2.0: ["b", "a+c"]}
