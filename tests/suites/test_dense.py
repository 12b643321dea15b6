"""Tasks with their own loss, metric and any target shape: the dense MNIST suite end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.losses import task_loss, task_metric
from taskrel.suite import Suite, Task
from taskrel.suites import get_suite
from taskrel.train import TrainConfig, train

TASKS = ["fg", "dist", "denoise", "digit"]
CFG = TrainConfig(epochs=1, batch_size=32, lr=3e-3)


@pytest.fixture(scope="module")
def dense():
    return get_suite("mnist-dense", tasks=TASKS, n_examples=200)


def test_targets_are_derived_from_the_digits(dense):
    fg, dist, clean = (dense.targets[t] for t in ("fg", "dist", "denoise"))
    assert fg.shape == dist.shape == clean.shape == (200, 28, 28)
    assert np.array_equal(fg, clean > 0.5)
    assert np.all(dist[fg == 1] == 0) and np.all(dist[fg == 0] > 0)  # distance to the stroke
    assert not np.allclose(dense.inputs[:, 0], clean)  # the input is the noisy image


def test_mask_leaves_missing_pixels_out():
    t = Task("d", "custom", loss=lambda o, y, m: (((o - y) ** 2) * m).sum() / m.sum())
    y = torch.tensor([[1.0, float("nan")], [3.0, 1.0]])
    out = torch.tensor([[1.0, 123.0], [1.0, 1.0]])
    assert float(task_loss(t, out, y)) == pytest.approx(4 / 3)
    two = Task("d2", "custom", loss=lambda o, y: ((o - y) ** 2).mean())  # gets fully known rows
    assert float(task_loss(two, out, y)) == pytest.approx(2.0)
    per_row = task_loss(t, out, y, reduce=False)
    assert per_row.shape == (2,) and per_row.tolist() == pytest.approx([0.0, 2.0])


def test_own_metric_and_direction():
    t = Task("d", "custom", loss=lambda o, y: (o - y).abs().mean(), metric=lambda o, y: float((o - y).abs().max()), direction="min")
    assert task_metric(t, torch.zeros(2, 3), torch.ones(2, 3) * torch.tensor([1.0, 2.0, 5.0])) == 5.0
    assert not t.higher_is_better
    assert Task("e", "custom", loss=t.loss).metric == "loss"  # the loss itself, lower is better
    with pytest.raises(TaskrelError, match="'d'.*direction"):
        Task("d", "custom", loss=t.loss, metric=t.metric)
    with pytest.raises(TaskrelError, match="'x'.*needs its own loss"):
        Task("x", "custom")
    with pytest.raises(TaskrelError, match="'x'.*loss must take"):
        Task("x", "custom", loss=lambda o: o)


def test_own_loss_changes_the_task_fingerprint(dense):
    other = Suite("mnist-dense", dense.inputs, [Task("fg", "custom", loss=lambda o, y, m: (o * m).mean())],
                  {"fg": dense.targets["fg"]}, dense.stages, head=dense.head, split=dense.split)
    assert other.fingerprint(["fg"]) != dense.fingerprint(["fg"])


def _toy(loss):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype("float32")
    return Suite("toy", X, [Task("map", "custom", loss=loss)], {"map": rng.normal(size=(40, 2, 3))},
                 stages=[lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU())])


@pytest.mark.parametrize("loss, match", [
    (lambda o, y, m: (o - y) ** 2, r"task 'map': its loss must return a scalar tensor.*\(8, 2, 3\)"),
    (lambda o, y, m: (o - y).sum() * float("nan"), r"task 'map': its loss (returned|returns) nan on (the first training batch|a batch of training rows)"),
])
def test_bad_loss_is_named_before_training(loss, match):
    with pytest.raises(TaskrelError, match=match):  # at the suite's construction, or the first batch
        train(_toy(loss), SharingLayout.shared(["map"], 1), TrainConfig(epochs=1, batch_size=8))


def test_training_is_deterministic_and_learns(dense):
    lay = SharingLayout.shared(TASKS, dense.n_stages)
    a = train(dense, lay, TrainConfig(epochs=2, batch_size=32, lr=3e-3), seed=3)
    b = train(dense, lay, TrainConfig(epochs=2, batch_size=32, lr=3e-3), seed=3)
    assert a.metrics == b.metrics
    h = a.history
    assert h[-1]["val"]["dist"] < h[0]["val"]["dist"] or h[-1]["val"]["denoise"] < h[0]["val"]["denoise"]
    assert all(math.isfinite(a.metric(t, "test")) for t in TASKS)


@pytest.mark.slow
def test_probes_grouping_study_and_report_run_on_dense_tasks(dense, tmp_path):
    from taskrel.analysis import GroupingSearch
    from taskrel.probes import GradientProbe, PairwiseProbe
    from taskrel.report import write_report
    from taskrel.study import Study, Validation

    study = Study(probes=[PairwiseProbe(), GradientProbe(every=2)], grouping=GroupingSearch(budget=2),
                  validation=Validation(seeds=[0], front=False), tasks=TASKS, config=CFG, verbose=False)
    result = study.fit(dense, tmp_path / "store").result_
    for name in ("pairwise", "gradient"):
        vals = result.affinity(name).plain().values
        assert vals.shape == (4, 4)
        off = vals[~np.eye(4, dtype=bool)]
        assert np.isfinite(off).all() and np.ptp(off) > 0  # measured, not constant
    groups = result.recommended.blocks(0)
    assert sorted(t for g in groups for t in g) == sorted(TASKS) and len(groups) <= 2
    rows = [r for r in result.validation if r["status"] == "ok"]
    assert {r["layout"] for r in rows} >= {"recommended", "all-shared", "all-separate"}
    assert all(math.isfinite(r["test_metric"]) for r in rows)
    md = write_report(result, tmp_path / "report")["markdown"].read_text()
    assert "denoise" in md and "all-shared" in md


def test_gradient_feature_probe_refuses_own_losses_clearly(dense):
    from taskrel.probes import GradFeatureProbe

    with pytest.raises(TaskrelError, match=r"gradient-feature probe: tasks \['fg', 'dist', 'denoise'\] bring their own loss"):
        GradFeatureProbe().check(dense)
