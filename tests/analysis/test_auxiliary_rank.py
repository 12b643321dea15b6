"""Ranking auxiliary tasks for a primary task from an affinity."""

from __future__ import annotations

import numpy as np
import pytest

from taskrel import Affinity, TaskrelError
from taskrel.analysis import rank_auxiliaries


def test_ranking_reads_the_primary_column_best_first():
    values = np.array([[0, 0.9, 0.1, 0.0], [0.3, 0, 0.2, 0.5], [-0.4, 0.1, 0, 0.2],
                       [0.3, 0.0, 0.6, 0]])
    std = np.full((4, 4), 0.05)
    std[3, 0] = 0.01
    aff = Affinity(["a", "b", "c", "d"], values, std=std)
    ranked = rank_auxiliaries(aff, "a")
    assert list(ranked.columns) == ["source", "affinity", "std"]
    # b and d tie on 0.3: the smaller std (d) comes first
    assert ranked["source"].tolist() == ["d", "b", "c"]
    assert ranked["affinity"].tolist() == [0.3, 0.3, -0.4]
    assert ranked["std"].tolist() == [0.01, 0.05, 0.05]
    assert rank_auxiliaries(aff, "b")["source"].tolist()[0] == "a"


def test_ranking_bad_input():
    aff = Affinity(["a", "b"], [[0, 1], [1, 0]])
    with pytest.raises(TaskrelError, match="unknown primary task 'z'"):
        rank_auxiliaries(aff, "z")
    with pytest.raises(TaskrelError, match="per-stage"):
        rank_auxiliaries(Affinity(["a", "b"], np.zeros((2, 2, 2))), "a")
    with pytest.raises(TaskrelError, match="only task"):
        rank_auxiliaries(Affinity(["a"], [[0]]), "a")
    with pytest.raises(TaskrelError, match="expected a taskrel Affinity"):
        rank_auxiliaries(np.eye(2), "a")
