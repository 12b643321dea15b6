"""The analyses are Estimators: parameters in the constructor, fit returns self, learned
attributes end in ``_`` and appear only after fit, clone gives an equal unfitted copy."""

import numpy as np
import pytest

from taskrel.affinity import Affinity
from taskrel.analysis.branching import BranchedLayoutSearch
from taskrel.analysis.selection import GreedyAuxiliarySelection
from taskrel.analysis.stability import ClusterStability, cluster_stability
from taskrel.base import Estimator, check_is_fitted, clone
from taskrel.errors import TaskrelError

BLOCK = np.kron(np.eye(2), np.ones((2, 2)))
TASKS = ["a", "b", "c", "d"]


def staged() -> Affinity:
    s = np.ones((2, 4, 4))
    s[1] = [[1, .9, .1, .1], [.9, 1, .1, .1], [.1, .1, 1, .9], [.1, .1, .9, 1]]
    return Affinity(TASKS, s, stages=["early", "late"])


CASES = {
    "branched": (lambda: BranchedLayoutSearch(budget=3), staged, "layout_"),
    "stability": (lambda: ClusterStability(n_clusters=2, clustering_params={"linkage": "average"}),
                  lambda: Affinity.from_seeds(TASKS, [BLOCK, BLOCK + 0.01, BLOCK * 0.9]), "coassignment_"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimator_idiom(name):
    make, data, learned = CASES[name]
    est = make()
    assert isinstance(est, Estimator)
    again = clone(est)
    assert again.get_params() == est.get_params() and repr(again) == repr(est)
    with pytest.raises(TaskrelError, match="is not fitted"):
        check_is_fitted(est, learned)
    assert not [k for k in vars(est) if k.endswith("_")]
    assert est.fit(data()) is est
    check_is_fitted(est, learned)
    with pytest.raises(TaskrelError, match="unknown parameter"):
        est.set_params(nope=1)


def test_stability_function_is_the_estimator():
    aff = Affinity.from_seeds(TASKS, [BLOCK, BLOCK + 0.01, BLOCK * 0.9])
    a = cluster_stability(aff, n_clusters=2, linkage="average")
    b = ClusterStability(n_clusters=2, clustering_params={"linkage": "average"}).fit(aff)
    assert a.get_params() == b.get_params() and a.mean_ari_ == b.mean_ari_ == 1.0
    np.testing.assert_array_equal(a.labels_, b.labels_)


def test_greedy_selection_takes_config_and_seeds():
    sel = GreedyAuxiliarySelection("a", seeds=[0, 1])
    assert isinstance(sel, Estimator) and sel.get_params()["seeds"] == [0, 1] and sel.get_params()["config"] is None
    assert "settings" not in sel.get_params()
