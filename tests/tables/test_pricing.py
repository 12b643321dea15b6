"""Exact pricing of quadratic group values (``taskrel.tables.pricing``): listing one size gives
the truly cheapest groups, ties in lexicographic order on both sides of ``n / 2``; the MILP
finds the least cost of every size; ``price_quadratic`` gives the same best group by either
route, up to the group of every task."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from taskrel.tables import pricing
from taskrel.tables.pricing import group_cost, least_by_milp, least_listed, price_quadratic


def random_form(seed, n):
    rng = np.random.default_rng(seed)
    Q = np.triu(rng.normal(0, 1, (n, n)), 1)
    lin = rng.normal(0, 1, n)
    return 0.3, lin, Q + Q.T


def brute(const, lin, Q, k):
    """Every group of ``k`` in lexicographic order, sorted (stably) by cost."""
    n = len(lin)
    rows = np.array([np.isin(np.arange(n), c) for c in combinations(range(n), k)]).reshape(-1, n)
    cost = np.array([group_cost(const, lin, Q, z) for z in rows])
    order = np.argsort(cost, kind="stable")
    return cost[order], rows[order]


@pytest.mark.parametrize("seed", [0, 1])
def test_listing_returns_the_cheapest_groups_of_every_size_best_first(seed):
    n = 8
    const, lin, Q = random_form(seed, n)
    for k in range(0, n + 1):  # below, at and past n / 2 (listed by the tasks left out)
        costs, rows = least_listed(const, lin, Q, k, keep=5)
        want_costs, want_rows = brute(const, lin, Q, k)
        assert np.array_equal(rows, want_rows[:5]) and rows.sum(1).tolist() == [k] * len(rows)
        assert np.allclose(costs, want_costs[:5], atol=1e-12)


def test_listing_breaks_ties_in_lexicographic_order_on_both_sides_of_half():
    n = 8
    lin, Q = np.tile([0.0, 1.0], n // 2), np.zeros((n, n))  # many groups of equal cost
    for k in range(1, n + 1):
        costs, rows = least_listed(0.0, lin, Q, k, keep=100)
        want_costs, want_rows = brute(0.0, lin, Q, k)
        assert np.array_equal(rows, want_rows[:100]) and np.array_equal(costs, want_costs[:100])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_milp_finds_the_least_cost_of_every_size(seed):
    n = 9
    const, lin, Q = random_form(seed, n)
    for k in range(1, n + 1):  # linearised products up to n / 3, Glover's form past it
        bound, group, proven = least_by_milp(const, lin, Q, k, 20.0)
        least = brute(const, lin, Q, k)[0][0]
        assert proven and group.sum() == k and np.isclose(group_cost(const, lin, Q, group), least)
        assert bound <= least + 1e-7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pricing_by_milp_finds_the_group_that_listing_finds_up_to_every_task(seed, monkeypatch):
    n = 9
    const, lin, Q = random_form(seed, n)
    form = lambda k: (const * k, lin, Q * (1 + 0.1 * k))  # noqa: E731
    listed, exact = price_quadratic(form, n, n, n_groups=3)
    assert exact and len(listed) == 3
    monkeypatch.setattr(pricing, "ENUMERATE_UP_TO", 0)  # every size by the MILP, the last of n tasks
    by_milp, proven = price_quadratic(form, n, n, n_groups=1, time_limit=30.0)
    assert proven
    cost = lambda z: group_cost(*form(int(z.sum())), z)  # noqa: E731
    assert np.isclose(cost(by_milp[0]), cost(listed[0]))
    assert [cost(z) for z in listed] == sorted(cost(z) for z in listed)
