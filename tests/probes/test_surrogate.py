"""SubsetSurrogate against planted additive truth, its bad-input rules, and the surrogate probe."""

from __future__ import annotations

import warnings
from itertools import combinations
from math import comb

import numpy as np
import pytest

from taskrel.analysis import CandidateTable, GroupingSearch
from taskrel.errors import TaskrelError
from taskrel.probes import PairwiseProbe
from taskrel.probes.surrogate import SurrogateProbe, sample_design
from taskrel.runner import Runner
from taskrel.suites import get_suite
from taskrel.tables.surrogate import ExtrapolationWarning, IdentifiabilityWarning, SubsetSurrogate
from taskrel.train import TrainConfig

TASKS = ["a", "b", "c", "d", "e", "f"]


def planted(n=6, seed=0, pair_scale=0.0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(1.0, 2.0, n)
    main = rng.normal(0, 0.15, (n, n))
    np.fill_diagonal(main, 0)
    pair = np.zeros((n, n, n))
    if pair_scale:
        for t in range(n):
            for s, u in combinations([k for k in range(n) if k != t], 2):
                pair[s, u, t] = pair[u, s, t] = rng.normal(0, pair_scale)
    return base, main, pair


def truth_of(members, base, main, pair):
    m = members.astype(float)
    vals = base[None, :] + m @ main
    vals += 0.5 * np.einsum("gs,gu,sut->gt", m, m, pair)
    return np.where(members, vals, np.nan)


def all_members(n):
    rows = [np.isin(np.arange(n), c) for k in range(1, n + 1) for c in combinations(range(n), k)]
    return np.array(rows)


def noisy_tables(members, truth, noise, n_seeds, seed=1, higher_is_better=False):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_seeds):
        vals = truth + rng.normal(0, noise, truth.shape)
        out.append(CandidateTable.from_arrays(TASKS[: members.shape[1]], members, np.ones(len(members)),
                                              vals, higher_is_better=higher_is_better))
    return out


def split(members, n_train, seed=0):
    rng = np.random.default_rng(seed)
    singles = np.flatnonzero(members.sum(1) == 1)
    rest = rng.permutation(np.flatnonzero(members.sum(1) > 1))
    return np.concatenate([singles, rest[:n_train]]), rest[n_train:]


@pytest.mark.filterwarnings("ignore::taskrel.tables.surrogate.ExtrapolationWarning")  # the held-out all-task group
def test_recovers_planted_effects_and_predicts_held_out_groups():
    base, main, pair = planted()
    members = all_members(6)
    truth = truth_of(members, base, main, pair)
    train, held = split(members, 24)
    noise = 0.02
    tables = noisy_tables(members[train], truth[train], noise, n_seeds=3)
    s = SubsetSurrogate(alpha=1e-4, effects="sum").fit(tables, n_seeds=3)
    assert np.abs(s.intercept_ - base).max() < 0.05
    assert np.abs(s.main_ - main).max() < 0.05
    # coefficients' standard errors are honest: most true values lie within 3 of them
    se = np.sqrt(np.array([np.diag(c)[1:6] for c in s.cov_]))  # target x other tasks
    errs = np.array([[(s.main_[k, j] - main[k, j]) / se[j, i] for i, k in enumerate(x for x in range(6) if x != j)]
                     for j in range(6)])
    assert np.mean(np.abs(errs) < 3) > 0.9
    pred = s.predict([tuple(TASKS[k] for k in np.flatnonzero(r)) for r in members[held]])
    err = np.abs(pred.values - truth[held])[members[held]]
    assert err.max() < 0.06, err.max()
    z = (pred.values - truth[held])[members[held]] / pred.std[members[held]]
    assert np.mean(np.abs(z) < 3) > 0.9
    # the affinity holds the relative drop of the target's loss, source -> target
    assert np.allclose(s.affinity_.values[0, 1], -s.main_[0, 1] / abs(s.intercept_[1]))
    assert s.affinity_.measure == "surrogate" and s.affinity_.tasks == TASKS
    assert s.affinity_.calibration == "relative-gain"


def test_averaged_effects_recover_a_planted_hoa_model_where_summed_ones_cannot():
    base, main, _ = planted(seed=15)
    members = all_members(6)
    m = members.astype(float)
    mates = np.maximum(m.sum(1, keepdims=True) - 1, 1)
    truth = np.where(members, base[None, :] + (m @ main) / mates, np.nan)  # HOA: mean of pair effects
    train, held = split(members, 20, seed=6)
    tables = noisy_tables(members[train], truth[train], 0.005, n_seeds=2)
    mean = SubsetSurrogate(effects="mean").fit(tables)
    total = SubsetSurrogate(effects="sum").fit(tables)
    assert np.abs(mean.main_ - main).max() < 0.03
    groups = [tuple(TASKS[k] for k in np.flatnonzero(r)) for r in members[held]]
    err_mean = np.nanmean(np.abs(mean.predict(groups).values - truth[held]))
    err_sum = np.nanmean(np.abs(total.predict(groups).values - truth[held]))
    assert err_mean < 0.01 < err_sum
    # the form chosen per task by leave-one-group-out error finds the right form and predicts as
    # it does; the default (summed and averaged effects, nesting both) pays for its extra
    # effects on 20 groups (about 3x the right form's error here) but stays far from the wrong one
    chosen = SubsetSurrogate(effects="auto").fit(tables)
    assert np.nanmean(np.abs(chosen.predict(groups).values - truth[held])) < 0.01
    assert chosen.effects_.count("mean") >= 4
    err_default = np.nanmean(np.abs(SubsetSurrogate().fit(tables).predict(groups).values - truth[held]))
    assert err_default < 0.5 * err_sum, (err_default, err_mean, err_sum)


def test_pairwise_terms_recover_planted_interactions():
    base, main, pair = planted(pair_scale=0.08, seed=3)
    members = all_members(6)
    truth = truth_of(members, base, main, pair)
    train, held = split(members, 44, seed=2)
    tables = noisy_tables(members[train], truth[train], 0.005, n_seeds=2)
    lin = SubsetSurrogate(effects="sum").fit(tables)
    quad = SubsetSurrogate(pairwise=True, alpha=1e-5, effects="sum").fit(tables)
    assert np.abs(quad.pair_ - pair).max() < 0.03
    groups = [tuple(TASKS[k] for k in np.flatnonzero(r)) for r in members[held]]
    err_lin = np.nanmean(np.abs(lin.predict(groups).values - truth[held]))
    err_quad = np.nanmean(np.abs(quad.predict(groups).values - truth[held]))
    assert err_quad < err_lin / 3


def test_candidates_lead_grouping_search_to_the_true_best_grouping():
    base, main, pair = planted(seed=5)
    members = all_members(6)
    truth = truth_of(members, base, main, pair)
    true_table = CandidateTable.from_arrays(TASKS, members, np.ones(len(members)), truth)
    train, _ = split(members, 20, seed=4)
    s = SubsetSurrogate(effects="sum").fit(noisy_tables(members[train], truth[train], 0.002, n_seeds=2))
    table = s.candidates()
    assert len(table) == 63 and sorted(table.groups) == sorted(true_table.groups)
    for budget in (2, 3):
        est = GroupingSearch(budget=budget, partition=True).fit(table)
        best = GroupingSearch(budget=budget, partition=True).fit(true_table)
        assert sorted(est.groups_) == sorted(best.groups_)


def test_scores_and_losses_give_the_same_effects():
    base, main, pair = planted(seed=7)
    members = all_members(6)
    truth = truth_of(members, base, main, pair)
    loss = SubsetSurrogate(alpha=0, effects="sum").fit(noisy_tables(members, truth, 0.01, 2))
    gain = SubsetSurrogate(alpha=0, effects="sum").fit(noisy_tables(members, -truth, 0.01, 2, higher_is_better=True))
    assert np.allclose(gain.main_, -loss.main_, atol=0.02)
    # relative drop of a loss vs raw gain of a score: both say the same task helps
    assert np.allclose(gain.affinity_.values, loss.affinity_.values * np.abs(loss.intercept_)[None, :], atol=0.02)
    assert gain.candidates(max_size=2).higher_is_better and gain.affinity_.calibration == "gain"


def test_permuting_tasks_permutes_the_affinity():
    base, main, pair = planted(seed=9)
    members = all_members(6)
    truth = truth_of(members, base, main, pair)
    perm = [3, 0, 5, 1, 4, 2]
    a = SubsetSurrogate().fit(noisy_tables(members, truth, 0.01, 1)).affinity_
    tab = noisy_tables(members, truth, 0.01, 1)[0]
    permuted = CandidateTable.from_arrays([TASKS[k] for k in perm], tab.members[:, perm], tab.cost, tab.values[:, perm])
    b = SubsetSurrogate().fit(permuted).affinity_
    assert np.allclose(b.values, a.values[np.ix_(perm, perm)])


def test_std_columns_weigh_rows():
    base, main, pair = planted(seed=11)
    members = all_members(6)
    truth = truth_of(members, base, main, pair)
    rng = np.random.default_rng(0)
    std = np.where(members, 0.01, np.nan)
    noisy_rows = rng.random(len(members)) < 0.3
    std[noisy_rows] = 0.5
    vals = truth + rng.normal(0, 1, truth.shape) * np.nan_to_num(std)
    tab = CandidateTable.from_arrays(TASKS, members, np.ones(len(members)), vals)
    weighted = SubsetSurrogate(effects="sum").fit(tab, std=std)
    plain = SubsetSurrogate(effects="sum").fit(tab)
    assert np.abs(weighted.main_ - main).max() < np.abs(plain.main_ - main).max()
    with pytest.raises(TaskrelError, match="std of"):
        SubsetSurrogate().fit(tab, std=np.where(members, np.nan, 0.0))


# ---------------------------------------------------------------------- bad input
def rows(*groups):
    """A loss table of these networks (repeats allowed: seeds as repeated rows)."""
    tasks = sorted({t for g in groups for t in g.split("+")})
    members = np.array([[t in g.split("+") for t in tasks] for g in groups])
    values = 1.0 + 0.1 * np.arange(len(groups))[:, None] + 0.01 * np.arange(len(tasks))[None, :]
    return CandidateTable.from_arrays(tasks, members, np.ones(len(groups)), values, check_duplicates=False)


def test_tasks_never_together_is_an_error():
    with pytest.raises(TaskrelError, match=r"'a' never appears together with \['c'\]"):
        SubsetSurrogate().fit(rows("a", "b", "c", "a+b", "b+c"))


def test_fewer_rows_than_parameters_is_an_error_or_an_explicit_warning():
    table = rows("a", "b", "c", "a+b+c")
    with pytest.raises(TaskrelError, match="2 measured rows for 3 parameters"):
        SubsetSurrogate().fit(table)
    with pytest.warns(IdentifiabilityWarning) as caught:
        SubsetSurrogate(underdetermined="warn").fit(table)
    assert any("not identifiable" in str(w.message) for w in caught)
    assert any("standard errors are unknown" in str(w.message) for w in caught)


def test_confounded_effects_warn_and_name_the_tasks():
    with pytest.warns(IdentifiabilityWarning, match="cannot tell apart"):
        SubsetSurrogate().fit(rows("a", "b", "c", "a+b+c", "a+b+c", "b+c"))


def test_mixed_directions_and_nan_are_errors():
    loss = rows("a", "b", "a+b")
    gain = CandidateTable.from_arrays(loss.tasks, loss.members, loss.cost, loss.values, higher_is_better=True)
    with pytest.raises(TaskrelError, match="mixed directions"):
        SubsetSurrogate().fit([loss, gain])
    with pytest.raises(TaskrelError, match="mixed directions"):
        SubsetSurrogate(higher_is_better=True).fit(loss)
    loss.values[2, 0] = np.nan  # a table damaged after it was built
    with pytest.raises(TaskrelError, match="value of 'a' in measured network a\\+b is nan"):
        SubsetSurrogate().fit(loss)


def test_larger_groups_than_measured_warn_as_extrapolation():
    s = SubsetSurrogate().fit(rows("a", "b", "c", "a+b", "a+c", "b+c", "a+b", "b+c", "a+c"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.candidates(max_size=2)
    with pytest.warns(ExtrapolationWarning, match="larger than any measured"):
        s.candidates()


def test_parameters_round_trip():
    s = SubsetSurrogate(pairwise=True, alpha=0.5)
    assert SubsetSurrogate(**s.get_params()).get_params() == s.get_params()
    assert repr(s).startswith("SubsetSurrogate(pairwise=True, alpha=0.5")
    assert s.set_params(alpha=2.0).alpha == 2.0
    with pytest.raises(TaskrelError, match="unknown parameter 'beta'"):
        s.set_params(beta=1)


def test_unfitted_and_bad_parameters():
    with pytest.raises(TaskrelError, match="call fit"):
        SubsetSurrogate().predict([["a"]])
    with pytest.raises(TaskrelError, match="alpha"):
        SubsetSurrogate(alpha=-1).fit(rows("a", "b", "a+b"))
    with pytest.raises(TaskrelError, match="CandidateTable"):
        SubsetSurrogate().fit({"a": 1})


# ---------------------------------------------------------------------- the probe


@pytest.mark.parametrize("n, n_subsets", [(4, 6), (6, 12), (8, 8), (8, 32)])
def test_design_is_seeded_covers_every_pair_and_feeds_every_parameter(n, n_subsets):
    tasks = [f"t{k}" for k in range(n)]
    design = sample_design(tasks, n_subsets, seed=3)
    assert design == sample_design(tasks, n_subsets, seed=3)
    assert design != sample_design(tasks, n_subsets, seed=4) or n_subsets >= 2**n - n - 1
    assert design[:n] == [(t,) for t in tasks] and len(design) == n + n_subsets
    assert len(set(design)) == len(design)
    together = {frozenset(p) for g in design for p in combinations(g, 2)}
    if n_subsets * n >= n * (n - 1):  # room for every task in n groups
        assert len(together) == comb(n, 2)
        assert all(sum(t in g for g in design) >= n for t in tasks)


def test_design_too_small_for_the_surrogate_is_refused_before_training(tmp_path):
    suite = get_suite("planted", n_examples=200)
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    with pytest.raises(TaskrelError, match="fewer groups than the 6 parameters"):
        SurrogateProbe(suite.task_names[:6], n_subsets=4).fit(suite, runner)
    with pytest.raises(TaskrelError, match="never trains"):
        SurrogateProbe(suite.task_names[:6], n_subsets=2, max_size=2, underdetermined="warn").fit(suite, runner)
    assert len(runner.store) == 0


def test_probe_shares_runs_with_the_pairwise_probe_and_refits_for_free(tmp_path):
    suite = get_suite("planted", n_examples=200)
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    names = ["c0t0", "c0t1", "c1t0", "conflict"]
    cfg = TrainConfig(epochs=1)
    probe = SurrogateProbe(names, n_subsets=6, config=cfg).fit(suite, runner)
    assert probe.trained_ == len(probe.design_) == 10
    again = SurrogateProbe(names, n_subsets=6, config=cfg).fit(suite, runner)
    assert again.trained_ == 0 and np.array_equal(again.affinity_.values, probe.affinity_.values)
    pairs_in_design = sum(len(g) == 2 for g in probe.design_)
    pairwise = PairwiseProbe(names, config=cfg).fit(suite, runner)
    assert pairwise.trained_ == comb(4, 2) - pairs_in_design  # singles and the design's pairs reused
    # measured groups are fitted: the surrogate's value alone is the measured single (the
    # intercept is anchored there; one seed, so the fit is that seed's single)
    table = probe.candidates()
    assert len(table) == 15 and not table.higher_is_better
    measured = probe.measured_["val"][0]
    single = measured.value(("c0t0",), "c0t0")
    pred = probe.surrogate_.predict([["c0t0"]])
    assert pred.values[0, 0] == pytest.approx(single, rel=1e-9)
    assert probe.affinity_.meta["design"][:4] == names
    # the same surrogate answers any group on demand, names itself and prices exactly
    model = probe.group_model()
    assert model.tasks == names and model.price_exact and "SubsetSurrogate(effects='both'" in model.estimator
    assert probe.affinity_.meta["estimator"] == model.estimator and model.cost.runs == probe.affinity_.cost.runs
    values, _ = model.predict_members(table.members)
    assert np.allclose(values, table.values, equal_nan=True)


def test_each_seeds_affinity_keeps_the_form_and_penalty_chosen_on_every_seed(tmp_path):
    suite = get_suite("planted", n_examples=200)
    names = ["c0t0", "c0t1", "c1t0", "conflict"]
    probe = SurrogateProbe(names, n_subsets=6, config=TrainConfig(epochs=1), seeds=(0, 1))
    probe.fit(suite, Runner(tmp_path, n_jobs=1, progress=False))
    pooled = probe.surrogate_
    for k, table in enumerate(probe.measured_["val"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            own = SubsetSurrogate(effects=dict(zip(names, pooled.effects_)), alpha=dict(zip(names, pooled.alpha_.tolist())),
                                  higher_is_better=False).fit(table)
        assert own.effects_ == pooled.effects_ and np.array_equal(own.alpha_, pooled.alpha_)
        assert np.allclose(probe.affinity_.per_seed[k], own.affinity_.values)
    assert np.allclose(probe.affinity_.values, probe.affinity_.per_seed.mean(0))


def test_tables_with_std_are_weighed_and_candidates_carry_standard_errors():
    base, main, pair = planted(seed=13)
    members = all_members(6)
    truth = truth_of(members, base, main, pair)
    rng = np.random.default_rng(1)
    std = np.where(members, np.where(rng.random(len(members)) < 0.3, 0.5, 0.01)[:, None], np.nan)
    vals = truth + rng.normal(0, 1, truth.shape) * np.nan_to_num(std)
    with_std = CandidateTable.from_arrays(TASKS, members, np.ones(len(members)), vals, std=std)
    carried = SubsetSurrogate().fit(with_std)
    given = SubsetSurrogate().fit(CandidateTable.from_arrays(TASKS, members, np.ones(len(members)), vals), std=std)
    assert np.allclose(carried.main_, given.main_)
    table = carried.candidates(max_size=3)
    pred = carried.predict(table)
    assert np.allclose(table.std[table.members], pred.std[table.members])
    assert (table.std[table.members] > 0).all()


def test_study_files_name_both_estimators():
    from taskrel import Study

    text = """
name = "s"
[suite]
name = "planted"
tasks = ["c0t0", "c0t1", "c1t0", "conflict"]
[probes.surrogate]
n_subsets = 6
effects = "sum"
[probes.features]
kind = "gradfeature"
dim = 16
"""
    probes = Study.from_toml(text=text).probes
    assert type(probes["surrogate"]).__name__ == "SurrogateProbe" and probes["surrogate"].effects == "sum"
    assert type(probes["features"]).__name__ == "GradFeatureProbe" and probes["features"].dim == 16


def test_active_probe_adds_the_groups_its_first_stage_is_least_sure_of_and_refits_for_free(tmp_path):
    suite = get_suite("planted", n_examples=200)
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    names = ["c0t0", "c0t1", "c1t0", "c1t1", "conflict"]
    cfg = TrainConfig(epochs=1)
    plain = SurrogateProbe(names, n_subsets=10, config=cfg).fit(suite, runner)
    probe = SurrogateProbe(names, n_subsets=10, config=cfg, active=3).fit(suite, runner)
    assert probe.trained_ == 3 and len(probe.design_) == len(plain.design_) + 3  # the first stage came from the store
    extra = probe.design_[len(plain.design_):]
    assert all(len(g) >= 3 for g in extra) and not set(extra) & set(plain.design_)
    assert probe.surrogate_.n_rows_.sum() > plain.surrogate_.n_rows_.sum()
    again = SurrogateProbe(names, n_subsets=10, config=cfg, active=3).fit(suite, runner)
    assert again.trained_ == 0 and again.design_ == probe.design_
    with pytest.raises(TaskrelError, match="active"):
        SurrogateProbe(names, n_subsets=10, config=cfg, active=-1).fit(suite, runner)
