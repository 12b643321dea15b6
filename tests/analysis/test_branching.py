import numpy as np
import pytest

from taskrel.affinity import Affinity
from taskrel.analysis.branching import BranchedLayoutSearch
from taskrel.errors import TaskrelError


def planted_stages(seed=0):
    """Early stage: everyone alike. Middle: two families. Last: pairs within families."""
    rng = np.random.default_rng(seed)
    tasks = list("abcdef")
    fam = np.array([0, 0, 0, 1, 1, 1])
    pair = np.array([0, 0, 1, 2, 2, 3])
    s = np.empty((3, 6, 6))
    s[0] = 0.95
    s[1] = np.where(fam[:, None] == fam[None, :], 0.9, 0.2)
    s[2] = np.where(pair[:, None] == pair[None, :], 0.9, 0.1)
    s += rng.normal(scale=0.01, size=s.shape)
    return Affinity(tasks, s, stages=["s0", "s1", "s2"])


def test_recovers_the_planted_tree():
    search = BranchedLayoutSearch(budget=1 + 2 + 4).fit(planted_stages())
    assert search.layout_.describe() == "stage0: a+b+c+d+e+f | stage1: a+b+c d+e+f | stage2: a+b c d+e f"
    assert search.cost_ == 7


def test_more_budget_never_worse_and_front_is_monotone():
    aff = planted_stages(1)
    scores = [BranchedLayoutSearch(budget=b).fit(aff).dissimilarity_ for b in range(3, 19)]
    assert all(x >= y - 1e-12 for x, y in zip(scores, scores[1:]))
    front = BranchedLayoutSearch().fit(aff).front_
    assert front["cost"].is_monotonic_increasing and front["dissimilarity"].is_monotonic_decreasing
    assert BranchedLayoutSearch(budget=18).fit(aff).dissimilarity_ == pytest.approx(0.0, abs=1e-12)


def test_permuting_tasks_permutes_the_answer():
    aff = planted_stages(2)
    perm = ["f", "c", "a", "e", "b", "d"]
    a = BranchedLayoutSearch(budget=7).fit(aff).layout_
    b = BranchedLayoutSearch(budget=7).fit(aff.subset(perm)).layout_
    assert a == b


def test_bad_inputs():
    flat = Affinity(["a", "b"], np.eye(2))
    with pytest.raises(TaskrelError, match="per-stage affinity"):
        BranchedLayoutSearch().fit(flat)
    with pytest.raises(TaskrelError, match="below the cheapest"):
        BranchedLayoutSearch(budget=1).fit(planted_stages())
    with pytest.raises(TaskrelError, match="stage_costs"):
        BranchedLayoutSearch(stage_costs=[1, -1, 1]).fit(planted_stages())
