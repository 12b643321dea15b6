import numpy as np
import pytest
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites import get_suite, list_suites

rng = np.random.default_rng(0)
X = rng.normal(size=(50, 4)).astype(np.float32)
STAGES = [lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU())]


def make(**kw):
    args = dict(
        name="s",
        inputs=X,
        tasks=[Task("a", "binary"), Task("b", "regression")],
        targets={"a": (X[:, 0] > 0).astype(float), "b": X[:, 1]},
        stages=STAGES,
    )
    args.update(kw)
    return Suite(**args)


def with_nan_input():
    x = X.copy()
    x[3, 2] = np.nan
    return {"inputs": x}


def no_val_labels():
    y = X[:, 1].copy()
    y[make().split["val"]] = np.nan
    return {"targets": {"a": (X[:, 0] > 0).astype(float), "b": y}}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"targets": {"a": np.ones(49), "b": X[:, 1]}}, "task 'a': targets have 49 rows, inputs have 50"),
        (with_nan_input(), "inputs contain NaN or inf"),
        ({"inputs": np.where(X > 2, np.inf, X)}, "inputs contain NaN or inf"),
        ({"tasks": [Task("a", "binary"), Task("a", "binary")]}, "duplicate task names ['a']"),
        ({"tasks": []}, "no tasks"),
        ({"inputs": np.zeros((0, 4))}, "inputs must be an array"),
        (no_val_labels(), "task 'b': no labels in the val split"),
        ({"targets": {"a": X[:, 0], "b": X[:, 1]}}, "binary targets must be 0 or 1"),
        ({"targets": {"a": (X[:, 0] > 0).astype(float)}}, "task 'b': no targets given"),
        ({"targets": {"a": (X[:, 0] > 0).astype(float), "b": X[:, 1], "c": X[:, 2]}}, "unknown tasks ['c']"),
        ({"stages": []}, "at least one stage"),
        ({"split": (0.5, 0.5, 0.5)}, "split fractions"),
    ],
)
def test_bad_suite_is_named(changes, message):
    with pytest.raises(TaskrelError) as e:
        make(**changes)
    assert message in str(e.value)


def test_unknown_kind_and_metric():
    with pytest.raises(TaskrelError, match="unknown kind 'ranking'"):
        Task("x", "ranking")
    with pytest.raises(TaskrelError, match="metric 'mse' needs a regression task"):
        Task("x", "binary", metric="mse")


def test_multiclass_and_multilabel_infer_outputs():
    y3 = rng.integers(0, 3, size=50).astype(float)
    ml = (rng.random((50, 4)) > 0.5).astype(float)
    s = make(tasks=[Task("m", "multiclass"), Task("l", "multilabel")], targets={"m": y3, "l": ml})
    assert s.task("m").n_outputs == 3 and s.task("l").n_outputs == 4


def test_fingerprint_stable_and_sensitive():
    a, b = make(), make()
    assert a.fingerprint() == b.fingerprint()
    y = (X[:, 0] > 0).astype(float)
    y[0] = 1 - y[0]
    assert make(targets={"a": y, "b": X[:, 1]}).fingerprint() != a.fingerprint()
    assert make(split_seed=1).fingerprint() != a.fingerprint()
    other = [lambda: nn.Sequential(nn.Linear(4, 7), nn.ReLU())]
    assert make(stages=other).fingerprint() != a.fingerprint()


def test_builtin_suites_listed_and_offline():
    names = list_suites()
    assert {"planted", "digits", "mnist"} <= set(names)
    d = get_suite("digits")
    assert len(d.tasks) >= 12 and d.n_stages >= 3
    m = get_suite("mnist", tasks=["is0", "even"], n_examples=300)
    assert m.inputs.shape == (300, 1, 28, 28)
    # labels agree with their definition
    digit = np.asarray(d.truth["digit"])
    assert np.array_equal(d.targets["even"], (digit % 2 == 0).astype(float))


def test_planted_truth_is_data():
    s = get_suite("planted", n_clusters=2, tasks_per_cluster=3)
    assert s.truth["clusters"] == [["c0t0", "c0t1", "c0t2"], ["c1t0", "c1t1", "c1t2"]]
    assert ["c0t0", "c0t2"] in s.truth["helps"] and ["conflict", "c0t1"] in s.truth["hurts"]
    # each task is labelled on part of the examples; the rest are missing
    frac = np.mean(~np.isnan(s.targets["c0t0"]))
    assert 0.1 < frac < 0.3
    b = get_suite("planted", kind="binary")
    assert set(np.unique(b.targets["c0t0"][~np.isnan(b.targets["c0t0"])])) == {0.0, 1.0}


def test_multimnist_targets_follow_the_digits():
    s = get_suite("multimnist", n_examples=300)
    left, right = np.asarray(s.truth["left"]), np.asarray(s.truth["right"])
    assert s.inputs.shape == (300, 1, 36, 36) and s.inputs.max() <= 1.0
    assert np.array_equal(s.targets["L_even"], (left % 2 == 0).astype(float))
    assert np.array_equal(s.targets["sum_ge10"], (left + right >= 10).astype(float))


def test_yeast_needs_its_extra_or_loads():
    try:
        import river  # noqa: F401
    except ImportError:
        with pytest.raises(TaskrelError, match="pip install 'taskrel\\[studies\\]'"):
            get_suite("yeast")
        return
    s = get_suite("yeast")
    assert s.inputs.shape == (2417, 103) and len(s.tasks) == 14


def test_task_names_torch_refuses_as_module_names_still_train():
    from taskrel.layout import SharingLayout, build_model
    from taskrel.train import TrainConfig, train

    X = np.random.default_rng(0).normal(size=(60, 3)).astype("float32")
    names = ["y.1", "type", "forward", "~d", "~~d", "cuda"]
    s = Suite("odd", X, [Task(n, "regression") for n in names], {n: X[:, 0] * (i + 1) + X[:, 1] for i, n in enumerate(names)},
              stages=[lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU())])
    model = build_model(SharingLayout.shared(names, 1), s)
    assert len(model.heads) == len(names), "every task keeps its own head"
    r = train(s, SharingLayout.shared(names, 1), TrainConfig(epochs=2))
    assert sorted(r.metrics["val"]) == sorted(names)


def test_module_key_is_one_to_one_and_acceptable_to_torch():
    from hypothesis import given
    from hypothesis import strategies as st

    from taskrel.task import module_key

    @given(st.lists(st.text(alphabet="ab.~dy", min_size=1, max_size=6), unique=True, max_size=8))
    def check(names):
        keys = [module_key(n) for n in names]
        assert len(set(keys)) == len(keys)
        nn.ModuleDict({k: nn.Identity() for k in keys})  # torch accepts every key

    check()


def test_construction_checks_leave_the_global_seed_alone():
    import torch

    X = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    Suite("s", X, [Task("a", "binary")], {"a": (X[:, 0] > 0).astype(float)}, stages=[lambda: nn.Linear(3, 4)])
    assert torch.equal(torch.rand(3), expected)
