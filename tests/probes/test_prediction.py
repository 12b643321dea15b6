"""The prediction probe: planted truth recovered, invariances, classification tasks, the spread,
and clear refusals before anything is fitted."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from taskrel.analysis import TaskClustering
from taskrel.errors import TaskrelError
from taskrel.probes.prediction import PredictionProbe, prediction_similarity
from taskrel.suite import Suite, Task
from taskrel.suites import get_suite
from taskrel.suites.mlp import mlp_suite


@pytest.fixture(scope="module")
def planted():
    return get_suite("planted-many", n_tasks=24, seed=3)


def fit(suite, tmp_path, **kw):
    return PredictionProbe(**kw).fit(suite, tmp_path)


def test_recovers_the_planted_clusters_and_keeps_harm_apart(planted, tmp_path):
    aff = fit(planted, tmp_path).affinity_
    truth = planted.truth
    idx = {t: i for i, t in enumerate(aff.tasks)}
    within = np.mean([aff.values[idx[a], idx[b]] for a, b in truth["helps"]])
    apart = ~np.eye(len(aff.tasks), dtype=bool)
    for a, b in truth["helps"]:
        apart[idx[a], idx[b]] = False
    between = aff.values[apart]
    assert within > between.mean() + 2 * between.std()  # a cluster's pairs stand out from the others
    labels = TaskClustering(method="hierarchical").fit(aff).labels_
    planted_labels = [truth["cluster"][t] if truth["cluster"][t] >= 0 else 100 + i for i, t in enumerate(aff.tasks)]
    assert adjusted_rand_score(planted_labels, labels) > 0.8
    lab = dict(zip(aff.tasks, labels))
    assert all(lab[h] != lab[t] for h, k in truth["harmful"].items() for t in truth["clusters"][k])
    assert aff.cost.runs == 0 and aff.calibration == "uncalibrated"


def test_task_order_permutes_the_matrix(planted, tmp_path):
    tasks = planted.task_names[:8]
    a = fit(planted, tmp_path / "a", tasks=tasks, seeds=(0,)).affinity_
    b = fit(planted, tmp_path / "b", tasks=tasks[::-1], seeds=(0,)).affinity_
    np.testing.assert_allclose(b.values, a.values[::-1, ::-1], atol=1e-10)


def small(targets: dict, kinds: dict, n: int = 120) -> Suite:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    ys = {t: f(X) for t, f in targets.items()}
    tasks = [kinds[t] if isinstance(kinds.get(t), Task) else Task(t, kinds.get(t, "regression")) for t in ys]
    return mlp_suite("small", X, tasks, ys, [8],
                     split={"train": np.arange(80), "val": np.arange(80, 100), "test": np.arange(100, n)})


def test_scale_and_sign_of_a_target():
    """A positive rescaling changes nothing; a sign flip flips the correlation, not CKA."""
    s = small({"a": lambda X: X[:, 0] + 0.3 * X[:, 1], "b": lambda X: 5 * (X[:, 0] + 0.3 * X[:, 1]) + 2,
               "c": lambda X: -(X[:, 0] + 0.3 * X[:, 1]), "d": lambda X: X[:, 2]}, {})
    v = PredictionProbe(seeds=(0,)).fit(s, _store()).affinity_
    i = {t: k for k, t in enumerate(v.tasks)}
    assert v.values[i["a"], i["b"]] == pytest.approx(1.0, abs=1e-6)
    assert v.values[i["a"], i["c"]] == pytest.approx(-1.0, abs=1e-6)
    assert abs(v.values[i["a"], i["d"]]) < 0.3
    cka = PredictionProbe(similarity="cka", seeds=(0,)).fit(s, _store()).affinity_
    assert cka.values[i["a"], i["c"]] == pytest.approx(1.0, abs=1e-6) and cka.measure == "prediction-cka"


def _store():
    import tempfile

    return tempfile.mkdtemp()


def test_classification_tasks_and_missing_labels():
    """A multiclass task is compared through its one-hot predictions (sqrt of linear CKA); a binary
    task by correlation; missing labels are left out of a task's fit."""
    def cls3(X):
        return np.digitize(X[:, 0], [-0.5, 0.5]).astype(float)

    def half_missing(X):
        y = (X[:, 0] > 0).astype(float)
        y[::2] = np.nan
        return y

    s = small({"m": cls3, "b": lambda X: (X[:, 0] > 0).astype(float), "bm": half_missing, "r": lambda X: X[:, 3]},
              {"m": "multiclass", "b": "binary", "bm": "binary"})
    probe = PredictionProbe(seeds=(0, 1)).fit(s, _store())
    v, i = probe.affinity_.values, {t: k for k, t in enumerate(probe.affinity_.tasks)}
    assert probe.labelled_["bm"] == 40 and probe.labelled_["b"] == 80
    assert v[i["b"], i["bm"]] > 0.8 and v[i["m"], i["b"]] > 0.8  # all read X[:, 0]
    assert abs(v[i["b"], i["r"]]) < 0.4 and 0 <= v[i["m"], i["r"]] < 0.5
    assert np.allclose(v, v.T) and np.allclose(np.diag(v), 1.0)


def test_spread_from_bootstrap_samples(planted, tmp_path):
    probe = PredictionProbe(seeds=(0, 1, 2)).fit(planted, tmp_path)
    aff = probe.affinity_
    off = ~np.eye(len(aff.tasks), dtype=bool)
    assert aff.per_seed.shape == (3, *aff.values.shape) and aff.n_seeds == 1
    assert (aff.std[off] > 0).all()
    rms = np.sqrt(((aff.per_seed - aff.values) ** 2).mean(axis=0))
    np.testing.assert_allclose(aff.std, rms)
    # a resample measures again: near the full value, not equal to it
    assert 0.01 < np.abs(aff.per_seed[:, off] - aff.values[off]).mean() < 0.3
    assert set(probe.alpha_) == set(aff.tasks) and all(a > 0 for a in probe.alpha_.values())
    again = PredictionProbe(seeds=(0, 1, 2)).fit(planted, tmp_path).affinity_  # seeded: the same samples
    np.testing.assert_array_equal(again.per_seed, aff.per_seed)


def test_a_constant_prediction_is_alike_to_nothing():
    a = np.arange(6.0)[:, None]
    m = prediction_similarity([a, np.ones((6, 1)), 2 * a])
    assert m[0, 1] == 0 and m[1, 2] == 0 and m[0, 2] == pytest.approx(1.0) and m[1, 1] == 1


@pytest.mark.parametrize("params, match", [
    ({"probe_set": "test"}, "test split is kept for validation"),
    ({"probe_set": ("train", "train")}, "probe_set"),
    ({"similarity": "spearman"}, "similarity must be one of"),
    ({"max_rows": 2}, "max_rows must be an integer >= 4"),
    ({"seeds": ()}, "seed"),
])
def test_bad_parameters_are_refused_before_fitting(planted, tmp_path, params, match):
    with pytest.raises(TaskrelError, match=match):
        PredictionProbe(**params).fit(planted, tmp_path)


def test_a_custom_task_is_refused_by_name():
    def sq(out, y):
        return ((out - y) ** 2).mean()

    s = small({"a": lambda X: X[:, 0], "b": lambda X: X[:, 1:3]}, {"b": Task("b", "custom", n_outputs=2, loss=sq)})
    with pytest.raises(TaskrelError, match="task 'b' is a custom task"):
        PredictionProbe(seeds=(0,)).fit(s, _store())
