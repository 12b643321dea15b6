"""The proven bound of column generation over quadratic group values: every size bound is a
true lower bound (checked by listing every group), the Lagrangian bound never passes the true
optimum, the gap is proven 0 where the search is exact, and the proof finds the group a
heuristic pricing missed."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from taskrel import Affinity, TaskrelError
from taskrel.analysis import AffinityGroupModel, CandidateTable, GroupingSearch
from taskrel.analysis.group_branch import least_group
from taskrel.analysis.pricing import ModelOracle, local_search, reduced_costs
from taskrel.analysis.pricing_bound import (
    certify,
    group_cost,
    lagrangian_bound,
    row_bound,
)
from taskrel.tables.pricing import effects_form, least_by_milp


def every_group(n, k):
    out = np.zeros((len(list(combinations(range(n), k))), n), dtype=bool)
    for r, idx in enumerate(combinations(range(n), k)):
        out[r, list(idx)] = True
    return out


def least_by_size(form, n):
    return np.array([min(group_cost(*form(k), z) for z in every_group(n, k))
                     for k in range(1, n + 1)])


def random_forms(seed, n=9):
    rng = np.random.default_rng(seed)
    aff = Affinity([f"t{i}" for i in range(n)], rng.normal(0, 0.3, (n, n)), measure="pairwise")
    model = AffinityGroupModel(aff)  # mean of mates: Q scales with 1 / (k - 1)
    yield model.quadratic_form(rng.normal(0, 0.5, n), np.r_[0, rng.uniform(0, 1, n)])
    Q = rng.normal(0, 1, (n, n))  # any symmetric quadratic
    Q = np.triu(Q, 1) + np.triu(Q, 1).T
    lin = rng.normal(0, 1, n)
    yield lambda k: (0.3 * k, lin, Q)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_size_bound_is_below_the_true_least_reduced_cost(seed):
    n = 9
    for form in random_forms(seed, n):
        truth = least_by_size(form, n)
        rows = np.array([row_bound(*form(k), k) for k in range(1, n + 1)])
        assert (rows <= truth + 1e-9).all()
        for k in range(2, n + 1):
            const, lin, Q = form(k)
            # the MILP: both linearisations (products up to n / 3, Glover's form beyond)
            bound, group, proven = least_by_milp(const, lin, Q, k, 20.0)
            assert bound <= truth[k - 1] + 1e-7 and proven  # 9 tasks: HiGHS proves it
            assert np.isclose(group_cost(const, lin, Q, group), truth[k - 1])
            # branch and bound: exact when it finishes; a valid bound when cut short
            bound, group, done = least_group(const, lin, Q, k, -np.inf, 20.0)
            assert done and np.isclose(bound, truth[k - 1]) and group.sum() == k
            bound, _, done = least_group(const, lin, Q, k, -np.inf, 20.0, node_limit=3)
            assert bound <= truth[k - 1] + 1e-9
            # with tol 0 it proves "nothing below 0" or finds the least below 0
            bound, _, done = least_group(const, lin, Q, k, 0.0, 20.0)
            assert done and bound <= truth[k - 1] + 1e-9
            assert np.isclose(bound, truth[k - 1]) if truth[k - 1] < 0 else bound >= 0
        listed = certify(form, n, 1, n, time_limit=20, tol=-np.inf)  # every size listed
        assert listed.how["enumerated"] == n - 1 and np.allclose(listed.bounds, truth)
        cert = certify(form, n, 1, n, time_limit=20, enumerate_up_to=0, tol=-np.inf)
        assert (cert.bounds <= truth + 1e-7).all() and cert.exact
        assert np.allclose(cert.bounds, truth, atol=1e-7)
        assert np.isclose(cert.costs[0], truth.min())


def test_the_form_is_the_models_reduced_cost():
    rng = np.random.default_rng(3)
    n = 7
    aff = Affinity([f"t{i}" for i in range(n)], rng.normal(0, 0.2, (n, n)), measure="pairwise")
    base = {f"t{i}": float(v) for i, v in enumerate(rng.uniform(0.5, 2, n))}
    pi, size_cost = rng.normal(0, 1, n), np.r_[0, rng.uniform(0, 1, n)]
    for model in (AffinityGroupModel(aff), AffinityGroupModel(aff, base_loss=base)):
        form = model.quadratic_form(pi, size_cost)
        groups = rng.random((40, n)) < 0.5
        groups[groups.sum(1) == 0, 0] = True
        want = reduced_costs(ModelOracle(model), groups, pi, size_cost)
        got = [group_cost(*form(int(g.sum())), g) for g in groups]
        assert np.allclose(got, want)


class Quadratic:
    """Sum of effects: task ``t`` in group ``g`` loses ``1 - sum_{s in g} E[s, t]``; with
    ``quadratic_form`` unless ``hidden``."""

    higher_is_better = False

    def __init__(self, effect, hidden=False):
        self.effect = np.asarray(effect, dtype=float)
        self.tasks = [f"t{i}" for i in range(len(self.effect))]
        if not hidden:
            self.quadratic_form = self._form

    def predict_members(self, members):
        m = np.asarray(members, dtype=bool)
        return np.where(m, 1.0 - m @ self.effect, np.nan), np.where(m, 0.0, np.nan)

    def _form(self, weights, size_cost):
        n = len(self.tasks)
        return effects_form(np.ones(n), -self.effect, np.zeros((n, n)), weights, size_cost,
                            False)


def hidden_group_effects():
    """Six tasks that pay only together (each pair +0.25 both ways), each with a partner
    outside (+0.55 both ways); every other pair harms (-0.5). Growing a group one task at a
    time from a single task finds a partner pair and stops there."""
    n = 12
    E = np.full((n, n), -0.5)
    E[:6, :6] = 0.25
    for i in range(6):
        E[i, i + 6] = E[i + 6, i] = 0.55
    np.fill_diagonal(E, 0.0)
    return E


def test_the_proof_finds_the_group_heuristic_pricing_misses():
    model = Quadratic(hidden_group_effects())
    oracle = ModelOracle(model)
    pi, size_cost = np.zeros(12), np.zeros(13)  # reduced cost: 1 a task, -0.5 an H pair
    heuristic = local_search(oracle, pi, size_cost, 1, 12, np.eye(12, dtype=bool))
    assert min(reduced_costs(oracle, heuristic, pi, size_cost)) > 0  # nothing below zero
    cert = certify(model.quadratic_form(pi, size_cost), 12, 1, 12, time_limit=20)
    assert np.flatnonzero(cert.groups[0]).tolist() == [0, 1, 2, 3, 4, 5]
    assert np.isclose(cert.costs[0], 6 - 15 * 0.5) and np.isclose(cert.least, -1.5)


def true_optimum(model, budget):
    """Least total loss of a partition into at most ``budget`` groups: the exact MILP over a
    table of every group (small n only)."""
    n = len(model.tasks)
    mem = np.concatenate([every_group(n, k) for k in range(1, n + 1)])
    values, std = model.predict_members(mem)
    table = CandidateTable.from_arrays(model.tasks, mem, np.ones(len(mem)), values,
                                       higher_is_better=model.higher_is_better,
                                       check_duplicates=False, std=std)
    gs = GroupingSearch(budget=budget, time_limit=None).fit(table)
    assert gs.status_ == "optimal"
    return -gs.total_ if model.higher_is_better else gs.total_


@pytest.mark.parametrize("budget", [2, 3, 5])
def test_the_lagrangian_bound_is_valid_and_the_gap_proven(budget):
    rng = np.random.default_rng(budget)
    n = 8
    labels = np.repeat([0, 1, 2], [3, 3, 2])
    values = np.where(labels[:, None] == labels[None, :], 0.3, -0.2) + rng.normal(0, .1, (n, n))
    model = AffinityGroupModel(Affinity([f"t{i}" for i in range(n)], values,
                                        measure="pairwise"))
    gs = GroupingSearch(budget=budget, time_limit=30).fit(model)
    best = true_optimum(model, budget)  # losses: HOA scores negated
    mine = -gs.total_
    assert gs.bound_proven_ and gs.lower_bound_ <= best + 1e-9
    assert np.isclose(mine, best)  # 8 tasks: the search finds the optimum
    # the gap is the honest one, 0 exactly when the bound meets the choice
    assert np.isclose(gs.gap_, (mine - gs.lower_bound_) / abs(mine), atol=1e-12)
    assert (gs.status_ == "optimal") == (gs.gap_ <= 1e-9)


def test_the_same_search_is_proven_optimal_with_the_form_and_unproven_without():
    E = hidden_group_effects()
    budget = 7
    best = true_optimum(Quadratic(E), budget)
    plain = GroupingSearch(budget=budget, time_limit=30).fit(Quadratic(E, hidden=True))
    proved = GroupingSearch(budget=budget, time_limit=30).fit(Quadratic(E))
    assert not plain.bound_proven_ and plain.gap_ is None and plain.status_ != "optimal"
    assert proved.bound_proven_ and proved.lower_bound_ <= best + 1e-9
    assert np.isclose(proved.total_, best)
    assert proved.status_ == "optimal" and proved.gap_ == 0.0


def test_lagrangian_bound_uses_the_size_and_budget_limits():
    # two groups of 4 at most (budget 2): the bound is the master value plus 2 * (-1)
    bounds = np.array([0.0, 0.0, 0.0, -1.0])
    assert np.isclose(lagrangian_bound(5.0, bounds, 1, np.r_[np.inf, np.ones(4)], 2.0, 8), 3.0)
    assert lagrangian_bound(5.0, np.zeros(4), 1, np.r_[np.inf, np.ones(4)], 2.0, 8) == 5.0


def test_a_form_that_disagrees_with_the_model_is_refused():
    E = hidden_group_effects()
    model = Quadratic(E)
    model.quadratic_form = Quadratic(np.zeros_like(E))._form
    with pytest.raises(TaskrelError, match="quadratic_form disagrees"):
        GroupingSearch(budget=3, time_limit=30).fit(model)


class KeywordPricing(Quadratic):
    """Exact brute-force pricing that takes the contract's new keywords (and records them)."""

    price_exact = True

    def __init__(self, effect):
        super().__init__(effect, hidden=True)
        self.asked_with = []

    def price(self, weights, size_cost, max_size, n_groups, *, min_size=1, time_limit=None):
        self.asked_with.append((min_size, time_limit))
        n = len(self.tasks)
        mem = np.concatenate([every_group(n, k) for k in range(min_size, max_size + 1)])
        rc = reduced_costs(ModelOracle(self), mem, weights, size_cost)
        return mem[np.argsort(rc, kind="stable")[:n_groups]]


def test_price_gets_min_size_and_a_time_limit_when_it_takes_them():
    rng = np.random.default_rng(0)
    E = rng.normal(0, 0.1, (7, 7))
    np.fill_diagonal(E, 0.0)
    model = KeywordPricing(E)
    gs = GroupingSearch(budget=3, allow_singletons=False, time_limit=30).fit(model)
    assert model.asked_with and all(m == 2 for m, _ in model.asked_with)
    assert all(0 < t <= 30 for _, t in model.asked_with)
    assert min(len(g) for g in gs.groups_) >= 2 and gs.bound_proven_
