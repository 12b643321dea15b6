"""Group-value models: the data-chosen surrogate, exact pricing, the corrected cheap estimate,
and the gradient-feature estimate asked for many groups at once."""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pytest
import torch
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout, build_model
from taskrel.suite import Suite, Task
from taskrel.tables import CandidateTable, SubsetSurrogate, pricing
from taskrel.tables.combined import CorrectedModel
from taskrel.tables.group_model import check_model
from taskrel.tables.group_values import GroupValues


def all_members(n):
    return np.array([np.isin(np.arange(n), c) for k in range(1, n + 1) for c in combinations(range(n), k)])


def planted(n, form, seed=0):
    """Losses of every group of n tasks: base + mates' effects summed, averaged, or summed with a
    size penalty (a model neither pure form holds)."""
    rng = np.random.default_rng(seed)
    base, main = rng.uniform(1, 2, n), rng.normal(0, 0.1, (n, n))
    np.fill_diagonal(main, 0)
    members = all_members(n)
    m = members.astype(float)
    mates = np.maximum(m.sum(1, keepdims=True) - 1, 1)
    effect = m @ main
    if form == "mean":
        effect = effect / mates
    elif form == "decline":  # each mate helps less the more mates there are
        effect = effect / np.sqrt(mates) + 0.05 * (mates - 1)
    return members, np.where(members, base[None, :] + effect, np.nan)


def tables(members, truth, noise, seeds=2, seed=1):
    rng = np.random.default_rng(seed)
    names = [f"t{i}" for i in range(members.shape[1])]
    return [CandidateTable.from_arrays(names, members, np.ones(len(members)), truth + rng.normal(0, noise, truth.shape),
                                       higher_is_better=False) for _ in range(seeds)]


def design_rows(members, n_larger, seed=0):
    """Singles, pairs and a few random larger groups (the issue's design)."""
    rng = np.random.default_rng(seed)
    small = np.nonzero(members.sum(1) <= 2)[0]
    larger = rng.choice(np.nonzero(members.sum(1) >= 3)[0], n_larger, replace=False)
    return np.sort(np.concatenate([small, larger]))


def held_out_error(model, members, truth, rows):
    rest = np.setdiff1d(np.arange(len(members)), rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred, _ = model.predict_members(members[rest])
    return float(np.sqrt(np.nanmean((pred - truth[rest]) ** 2)))


@pytest.mark.parametrize("form", ["sum", "mean", "decline"])
def test_default_surrogate_predicts_held_out_groups_about_as_well_as_the_right_form(form):
    members, truth = planted(7, form)
    rows = design_rows(members, 25)
    fit = lambda **kw: SubsetSurrogate(**kw).fit(tables(members[rows], truth[rows], 0.01))  # noqa: E731
    errors = {e: held_out_error(fit(effects=e, alpha=1e-3), members, truth, rows) for e in ("sum", "mean")}
    default, auto = fit(), fit(effects="auto")
    for model in (default, auto):
        err = held_out_error(model, members, truth, rows)
        assert err <= 1.3 * min(errors.values()) + 0.003, (form, model.effects, err, errors)
        if form in ("sum", "mean"):
            assert err < 0.5 * max(errors.values()), (form, model.effects, err, errors)
    if form in ("sum", "mean"):  # auto chose the planted form (or the nesting one) for most tasks
        assert sum(e in (form, "both") for e in auto.effects_) >= 5
    assert default.effects_ == ["both"] * 7 and "SubsetSurrogate(effects='both'" in default.affinity_.meta["estimator"]
    assert "SubsetSurrogate(effects='auto'" in auto.affinity_.meta["estimator"]


def test_default_surrogate_is_a_group_value_model_with_uncertainty():
    members, truth = planted(6, "sum")
    sur = SubsetSurrogate().fit(tables(members, truth, 0.02))
    gm = sur.group_model()
    check_model(gm)
    v, se = gm.predict_members(members[[0, 20, 40]])
    assert np.array_equal(np.isnan(v), ~members[[0, 20, 40]])
    assert np.all(se[members[[0, 20, 40]]] > 0)
    with pytest.raises(TaskrelError, match="shape"):
        gm.predict_members(np.ones((2, 5), dtype=bool))
    with pytest.raises(TaskrelError, match="empty group"):
        gm.predict_members(np.zeros((1, 6), dtype=bool))


def brute_price(gm, weights, size_cost, max_size):
    members = all_members(len(gm.tasks))
    members = members[members.sum(1) <= max_size]
    v, _ = gm.predict_members(members)
    sign = -1.0 if gm.higher_is_better else 1.0
    cost = np.nansum(np.where(members, sign * v - weights[None, :], 0), axis=1) + size_cost[members.sum(1)]
    return members, cost


@pytest.mark.parametrize("effects", ["sum", "mean", "both"])
@pytest.mark.parametrize("milp", [False, True])
def test_pricing_finds_the_cheapest_group_that_brute_force_finds(effects, milp, monkeypatch):
    if milp:
        monkeypatch.setattr(pricing, "ENUMERATE_UP_TO", 0)
    members, truth = planted(7, "sum", seed=3)
    sur = SubsetSurrogate(effects=effects, alpha=1e-2).fit(tables(members, truth, 0.02))
    gm = sur.group_model()
    rng = np.random.default_rng(5)
    for _ in range(3):
        weights = rng.uniform(1.0, 2.0, 7)
        size_cost = np.r_[0.0, rng.uniform(-0.2, 0.2, 7)]
        groups = gm.price(weights, size_cost, 5, n_groups=3)
        allm, cost = brute_price(gm, weights, size_cost, 5)
        best = cost.min()
        got = [cost[np.all(allm == g, axis=1)][0] for g in groups]
        assert got[0] == pytest.approx(best, abs=1e-8)
        assert all(a <= b + 1e-12 for a, b in zip(got, got[1:]))  # best first
        assert groups.sum(1).max() <= 5
        # with min_size (the search's keyword) the best group of 3 to 5 tasks, as brute force finds it
        big = gm.price(weights, size_cost, 5, n_groups=2, min_size=3, time_limit=5.0)
        wide = allm.sum(1) >= 3
        assert big.sum(1).min() >= 3
        assert cost[np.all(allm == big[0], axis=1)][0] == pytest.approx(cost[wide].min(), abs=1e-8)
    assert gm.price_exact


def test_huge_listings_are_refused_naming_the_on_demand_route(monkeypatch):
    from taskrel.tables import surrogate as module

    members, truth = planted(6, "sum")
    sur = SubsetSurrogate().fit(tables(members, truth, 0.02))
    assert len(sur.candidates(max_size=2)) == 21
    monkeypatch.setattr(module, "MAX_LISTED", 30)
    with pytest.raises(TaskrelError, match="group_model"):
        sur.candidates(max_size=3)


def test_pairwise_surrogate_offers_no_exact_price():
    members, truth = planted(5, "sum")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = SubsetSurrogate(pairwise=True, effects="sum", alpha=1e-2).fit(tables(members, truth, 0.02)).group_model()
    assert not hasattr(gm, "price") and gm.price_exact is False


def test_bad_options_are_named():
    members, truth = planted(4, "sum")
    for bad in ({"effects": "product"}, {"alpha": -1.0}, {"unseen": "ignore"}):
        with pytest.raises(TaskrelError, match=next(iter(bad))):
            SubsetSurrogate(**bad).fit(tables(members, truth, 0.02))
    sur = SubsetSurrogate().fit(tables(members, truth, 0.02))
    with pytest.raises(TaskrelError, match="size_cost"):
        sur.group_model().price(np.ones(4), np.zeros(2), 3)
    with pytest.raises(TaskrelError, match="weights"):
        sur.group_model().price(np.ones(3), np.zeros(5), 3)


def test_measured_groups_correct_a_biased_cheap_estimate():
    n = 7
    members, truth = planted(n, "decline", seed=2)
    rng = np.random.default_rng(9)
    offset, bias = rng.normal(0, 0.3, n), rng.normal(0, 0.05, (n, n))

    def cheap(m):
        m = np.asarray(m, dtype=bool)
        full = all_members(n)
        idx = [int(np.nonzero(np.all(full == row, axis=1))[0][0]) for row in m]
        wrong = truth[idx] + offset[None, :] + m.astype(float) @ bias
        return np.where(m, wrong, np.nan), np.where(m, 0.01, np.nan)

    gm = GroupValues([f"t{i}" for i in range(n)], False, cheap, estimator="biased")
    rows = design_rows(members, 15)
    corrected = CorrectedModel(gm).fit(tables(members[rows], truth[rows], 0.01))
    before, after = held_out_error(gm, members, truth, rows), held_out_error(corrected, members, truth, rows)
    assert after < 0.35 * before, (before, after)
    check_model(corrected.group_model())
    v, se = corrected.predict_members(members[[30]])
    assert np.all(se[members[[30]]] >= 0.01)  # the cheap estimate's error is kept in the sum
    assert corrected.group_model().estimator.startswith("corrected: biased + residual SubsetSurrogate")


def test_corrected_model_with_pairs_never_measured_keeps_the_cheap_estimate_there():
    members, truth = planted(4, "sum")
    gm = GroupValues([f"t{i}" for i in range(4)], False, lambda m: (np.where(m, 1.0, np.nan), np.where(m, 0.0, np.nan)))
    singles = members.sum(1) == 1
    only = singles | np.all(members == np.array([1, 1, 0, 0], bool), axis=1)
    model = CorrectedModel(gm).fit(tables(members[only], truth[only], 0.01))
    v, _ = model.predict_members(np.array([[False, False, True, True]]))
    alone, _ = model.predict_members(np.array([[False, False, True, False], [False, False, False, True]]))
    assert v[0, 2:] == pytest.approx(np.diag(alone[:, 2:]), abs=1e-6)  # no correction learned for t2+t3
    with pytest.raises(TaskrelError, match="tasks"):
        CorrectedModel(gm).fit(tables(members[:, :3][members[:, 3] == 0], truth[:, :3][members[:, 3] == 0], 0.01))


# ---------------------------------------------------------------------- gradient features
def mixed_suite() -> Suite:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 5)).astype("float32")
    w = rng.normal(size=(5, 3))
    z = X @ w
    targets = {"r": z[:, 0] + 0.1 * rng.normal(size=160), "b": (z[:, 1] > 0).astype(float),
               "m": np.digitize(z[:, 2], [-1, 0, 1]).astype(float)}
    targets["r"][rng.random(160) < 0.3] = np.nan
    tasks = [Task("r", "regression"), Task("b", "binary"), Task("m", "multiclass")]
    return Suite("mixed", X, tasks, targets, stages=[lambda: nn.Linear(5, 6), lambda: nn.Tanh()])


@pytest.mark.parametrize("steps", [1, 2])
def test_batched_gradient_feature_estimates_equal_group_by_group_ones(steps):
    from taskrel.probes.gradfeature import FeatureModel, gradient_features
    from taskrel.probes.linearised import gradfeature_model, predict_losses

    suite = mixed_suite()
    names = suite.task_names
    tasks = [suite.task(t) for t in names]
    model = build_model(SharingLayout.shared(names, suite.n_stages), suite, seed=0)
    tr, _ = gradient_features(model, suite, "train", tasks, 8, 200, seed=1)
    va, _ = gradient_features(model, suite, "val", tasks, 8, 200, seed=1)
    fm = FeatureModel(tasks, tr, va, ridge=0.5, newton_steps=steps)
    members = all_members(3)
    batched = predict_losses(fm, members, chunk=3)
    for r, row in enumerate(members):
        one = fm.losses([t for t, m in zip(names, row) if m])
        for j, t in enumerate(names):
            assert np.isnan(batched[r, j]) if not row[j] else batched[r, j] == pytest.approx(one[t], rel=1e-6)
    fm2 = FeatureModel(tasks, *[gradient_features(model, suite, s, tasks, 8, 200, seed=2)[0] for s in ("train", "val")],
                       ridge=0.5, newton_steps=steps)
    gm = gradfeature_model({0: fm, 1: fm2}, names)
    check_model(gm)
    v, se = gm.predict_members(members)
    two = np.stack([batched, predict_losses(fm2, members)])
    assert np.allclose(v, two.mean(0), equal_nan=True)
    assert np.allclose(se, two.std(0, ddof=1) / np.sqrt(2), equal_nan=True)
    one_seed = gradfeature_model({0: fm}, names).predict_members(members)[1]
    assert np.isnan(one_seed).all()  # one base model: its spread is unknown, not zero
    assert torch.get_num_threads() >= 1


def test_pooled_choice_takes_one_form_for_every_task():
    members, truth = planted(7, "mean", seed=4)
    rows = design_rows(members, 25)
    sur = SubsetSurrogate(effects="auto", choose="pooled").fit(tables(members[rows], truth[rows], 0.01))
    assert len(set(sur.effects_)) == 1 and sur.effects_[0] in ("mean", "both")
    with pytest.raises(TaskrelError, match="choose"):
        SubsetSurrogate(choose="vote").fit(tables(members[rows], truth[rows], 0.01))


def test_active_choice_proposes_the_least_known_groups_never_measured_ones():
    from taskrel.tables.active import most_uncertain

    members, truth = planted(7, "sum", seed=4)
    rows = design_rows(members, 10)
    gm = SubsetSurrogate().fit(tables(members[rows], truth[rows], 0.01)).group_model()
    pool = members[members.sum(1) >= 3]
    pick = most_uncertain(gm, pool, 5, measured=members[rows])
    _, se = gm.predict_members(pool)
    total = np.nansum(se, axis=1)
    done = {r.tobytes() for r in members[rows]}
    fresh = np.array([r.tobytes() not in done for r in pool])
    assert len(pick) == 5 and fresh[pick].all()
    assert total[pick].min() >= np.sort(total[fresh])[-5] - 1e-12  # the five largest among the fresh
    with pytest.raises(TaskrelError, match="n must be"):
        most_uncertain(gm, pool, 0)


def test_pricing_out_of_time_keeps_a_local_search_group_and_says_it_is_not_proven(monkeypatch):
    monkeypatch.setattr(pricing, "ENUMERATE_UP_TO", 0)
    members, truth = planted(7, "sum", seed=3)
    gm = SubsetSurrogate().fit(tables(members, truth, 0.02)).group_model(time_limit=0.0)
    weights, size_cost = np.full(7, 1.5), np.zeros(8)
    groups = gm.price(weights, size_cost, 4, n_groups=2)
    allm, cost = brute_price(gm, weights, size_cost, 4)
    assert 1 <= len(groups) <= 2 and groups.sum(1).max() <= 4
    got = cost[np.all(allm == groups[0], axis=1)][0]
    assert got <= np.quantile(cost, 0.05)  # among the best 5% of groups, without a proof
    assert gm.price_exact is False


def test_the_search_groups_planted_clusters_from_the_default_surrogate_without_listing_groups():
    from taskrel.analysis import GroupingSearch

    rng = np.random.default_rng(0)
    n, labels = 8, np.array([0, 0, 0, 1, 1, 1, 2, 2])
    main = np.where(labels[:, None] == labels[None, :], -0.08, 0.05)  # losses: mates of a cluster help
    np.fill_diagonal(main, 0)
    base = rng.uniform(1, 2, n)
    members = all_members(n)
    truth = np.where(members, base[None, :] + members.astype(float) @ main, np.nan)
    rows = design_rows(members, 30)
    model = SubsetSurrogate().fit(tables(members[rows], truth[rows], 0.005)).group_model()
    search = GroupingSearch(budget=3, max_size=4, time_limit=30).fit(model)
    assert sorted(sorted(g) for g in search.groups_) == [["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6", "t7"]]
