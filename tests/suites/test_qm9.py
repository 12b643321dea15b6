"""The qm9 suite (optional extra 'studies': qm9pack's data and rdkit)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.suites import get_suite, list_suites
from taskrel.train import TrainConfig, train

STANDARD = ["mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv"]


@pytest.fixture(scope="module")
def extra():
    pytest.importorskip("rdkit")
    # not importorskip: `import qm9pack` needs pkg_resources, which recent setuptools lacks;
    # the suite only reads the package's data files, so being installed is what counts
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed (pip install 'taskrel[studies]')")


@pytest.fixture(scope="module")
def small(extra):
    return get_suite("qm9", n_examples=600, fp_bits=256)


def test_listed_and_missing_extra_is_named(monkeypatch):
    assert "qm9" in list_suites()
    import taskrel.suites.qm9 as mod

    real = importlib.util.find_spec
    monkeypatch.setattr(mod.importlib.util, "find_spec", lambda name, *a: None if name == "qm9pack" else real(name, *a))
    with pytest.raises(TaskrelError, match=r"pip install 'taskrel\[studies\]'"):
        get_suite("qm9", n_examples=100)


def test_twelve_standard_regression_tasks(small):
    assert small.task_names == STANDARD
    assert all(t.kind == "regression" and t.metric == "mse" for t in small.tasks)
    assert small.n_stages == 3 and small.stage_names == ["fc1", "fc2", "fc3"]
    assert small.feature_shapes() == [(128,), (64,), (32,)]


def test_shapes_finite_and_subsample_size(small):
    X = small.inputs
    assert X.shape == (600, 256 + 12) and X.dtype == np.float32 and np.isfinite(X).all()
    assert set(np.unique(X[:, :256])) <= {0.0, 1.0} and X[:, :256].sum() > 0
    assert sum(len(v) for v in small.split.values()) == 600
    assert len(np.unique(np.concatenate(list(small.split.values())))) == 600
    assert len(set(small.truth["molecule"])) == 600
    for t in STANDARD:
        y = small.targets[t]
        assert y.shape == (600,) and np.isfinite(y).all()
        # z-scored with the training rows' statistics, not the test rows'
        tr = y[small.split["train"]]
        assert abs(tr.mean()) < 1e-9 and abs(tr.std() - 1) < 1e-9
        assert small.truth["target_std"][t] > 0


def test_deterministic_for_a_seed_and_options(extra):
    a = get_suite("qm9", tasks=["gap", "U0"], n_examples=300, fp_bits=128, seed=3)
    b = get_suite("qm9", tasks=["gap", "U0"], n_examples=300, fp_bits=128, seed=3)
    c = get_suite("qm9", tasks=["gap", "U0"], n_examples=300, fp_bits=128, seed=4)
    assert a.task_names == ["gap", "U0"]
    assert np.array_equal(a.inputs, b.inputs) and a.truth["molecule"] == b.truth["molecule"]
    assert all(np.array_equal(a.split[s], b.split[s]) for s in a.split)
    assert np.array_equal(a.targets["gap"], b.targets["gap"])
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.truth["molecule"] != c.truth["molecule"]
    d = get_suite("qm9", tasks=["gap"], n_examples=250, fp_bits=64, descriptors=False)
    assert d.inputs.shape == (250, 64)


def test_bad_options_are_named(extra):
    with pytest.raises(TaskrelError, match="unknown; known: mu, alpha"):
        get_suite("qm9", tasks=["gap", "energy"])
    with pytest.raises(TaskrelError, match="n_examples must be >= 10"):
        get_suite("qm9", n_examples=3)


def test_short_training_of_two_tasks_is_finite(small):
    lay = SharingLayout.shared(["gap", "U0"], small.n_stages)
    res = train(small, lay, TrainConfig(epochs=3, batch_size=64, lr=3e-3), seed=0)
    for split in ("val", "test"):
        for t in ("gap", "U0"):
            assert math.isfinite(res.loss(t, split))
    assert math.isfinite(res.history[-1]["train_loss"]) and res.steps > 0
