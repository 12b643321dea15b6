"""Gradient-feature probe: exact where the linearisation is exact, and end to end through a store."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout, build_model
from taskrel.probes.gradfeature import (
    FeatureModel,
    GradFeatureProbe,
    gradient_features,
    projection_matrix,
)
from taskrel.runner import Runner
from taskrel.suite import Suite, Task
from taskrel.suites import get_suite
from taskrel.train import TrainConfig, task_loss


def linear_suite() -> Suite:
    """Outputs linear in the shared encoder's weights (heads fixed): the linearisation is exact."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 5)).astype("float32")
    w = rng.normal(size=(5, 3))
    targets = {f"t{k}": X @ w[:, k] + 0.1 * rng.normal(size=150) for k in range(3)}
    targets["t2"][rng.random(150) < 0.3] = np.nan  # missing labels are left out
    tasks = [Task(f"t{k}", "regression") for k in range(3)]
    return Suite("linear", X, tasks, targets, stages=[lambda: nn.Linear(5, 4)])


def shared_of(model):
    ids = {id(p) for p in model.shared_parameters()}
    return [(n, p) for n, p in model.named_parameters() if id(p) in ids]


def test_linearised_fine_tune_is_the_true_fine_tune_when_outputs_are_linear():
    suite = linear_suite()
    tasks = [suite.task(t) for t in suite.task_names]
    model = build_model(SharingLayout.shared(suite.task_names, 1), suite, seed=0)
    dim = 6
    tr, _ = gradient_features(model, suite, "train", tasks, dim, 1000, seed=1)
    va, _ = gradient_features(model, suite, "val", tasks, dim, 1000, seed=1)
    fm = FeatureModel(tasks, tr, va, ridge=0.3, newton_steps=1)
    group = ["t0", "t2"]
    delta = fm.fine_tune(group)

    # the same fine-tune done directly on the network, in the projected subspace
    shared = shared_of(model)
    P = projection_matrix(sum(p.numel() for _, p in shared), dim, seed=1).double()
    base = torch.cat([p.detach().reshape(-1) for _, p in shared]).double()
    params = {n: p.detach() for n, p in model.named_parameters()}

    def forward(d, split):
        flat = (base + P @ d).float()
        new, off = dict(params), 0
        for n, p in shared:
            new[n] = flat[off : off + p.numel()].reshape(p.shape)
            off += p.numel()
        X, ys = suite.tensors(split, group)
        out = functional_call(model, new, (X,))
        return {t: task_loss(suite.task(t), out[t], ys[t]) for t in group}

    d = torch.zeros(dim, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([d], lr=1, max_iter=100, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = sum(forward(d, "train").values()) + 0.5 * fm.lam * (d * d).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(delta, d.detach(), atol=1e-3, rtol=1e-3)
    estimated = fm.losses(group)
    actual = {t: float(v) for t, v in forward(d.detach(), "val").items()}
    for t in group:
        assert estimated[t] == pytest.approx(actual[t], rel=1e-3)


def test_features_are_projected_per_example_gradients():
    suite = get_suite("planted", n_examples=200)
    names = suite.task_names[:3]
    tasks = [suite.task(t) for t in names]
    model = build_model(SharingLayout.shared(names, suite.n_stages), suite, seed=2)
    feats, n = gradient_features(model, suite, "val", tasks, 8, 10, seed=4)
    assert n == 10 and feats[names[1]].phi.shape == (10, 1, 8)
    shared = shared_of(model)
    P = projection_matrix(sum(p.numel() for _, p in shared), 8, seed=4)
    X, _ = suite.tensors("val", names)
    # which rows were sampled: find each by its base output
    out_all = model(X)[names[1]].detach().reshape(-1).double()
    for i in (0, 7):
        row = int(torch.argmin((out_all - feats[names[1]].f0[i, 0]).abs()))
        out = model(X[row : row + 1])[names[1]].sum()
        grads = torch.autograd.grad(out, [p for _, p in shared])
        g = torch.cat([x.reshape(-1) for x in grads])
        assert torch.allclose(feats[names[1]].phi[i, 0].float(), g @ P, atol=1e-5)


def test_probe_end_to_end_second_fit_trains_nothing(tmp_path):
    suite = get_suite("planted", n_examples=200)
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    names = ["c0t0", "c0t1", "conflict"]
    probe = GradFeatureProbe(names, dim=16, n_examples=100, config=TrainConfig(epochs=2)).fit(suite, runner)
    assert probe.trained_ == 1 and probe.affinity_.measure == "gradfeature"
    base = probe.records_[0]
    assert probe.affinity_.cost.runs == 1 and probe.affinity_.cost.examples == base.examples + probe.feature_examples_
    labelled = {sp: int((~np.isnan(np.stack([suite.targets[t][suite.split[sp]] for t in names]))).any(0).sum())
                for sp in ("train", "val")}
    assert probe.feature_examples_ == sum(min(v, 100) for v in labelled.values())  # examples differentiated
    table = probe.candidates()
    assert len(table) == 7 and not table.higher_is_better
    est = probe.estimate([["c0t1"], ["conflict", "c0t1"]])
    assert table.value(("c0t1",), "c0t1") == pytest.approx(est["c0t1"]["c0t1"][0])
    alone, pair = est["c0t1"]["c0t1"][0], est["c0t1+conflict"]["c0t1"][0]
    assert probe.affinity_.value("conflict", "c0t1") == pytest.approx((alone - pair) / alone)

    again = GradFeatureProbe(names, dim=16, n_examples=100, config=TrainConfig(epochs=2)).fit(suite, runner)
    assert again.trained_ == 0
    assert np.array_equal(again.affinity_.values, probe.affinity_.values)
    # the same base run in another task order: the affinity is permuted, nothing trains
    perm = ["conflict", "c0t0", "c0t1"]
    permuted = GradFeatureProbe(perm, dim=16, n_examples=100, config=TrainConfig(epochs=2)).fit(suite, runner)
    assert permuted.trained_ == 0
    idx = [names.index(t) for t in perm]
    assert np.allclose(permuted.affinity_.values, probe.affinity_.values[np.ix_(idx, idx)], atol=1e-6)


def test_bad_parameters_fail_before_training(tmp_path):
    suite = get_suite("planted", n_examples=200)
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    for bad in ({"dim": 0}, {"ridge": -1.0}, {"n_examples": 1}, {"newton_steps": 0}):
        with pytest.raises(TaskrelError, match=next(iter(bad))):
            GradFeatureProbe(["c0t0", "c0t1"], **bad).fit(suite, runner)
    assert len(runner.store) == 0
    with pytest.raises(TaskrelError, match="call fit"):
        GradFeatureProbe().candidates()


def test_probe_answers_any_group_on_demand_as_a_group_value_model(tmp_path, monkeypatch):
    from taskrel.tables.group_model import check_model

    suite = get_suite("planted", n_examples=200)
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    names = ["c0t0", "c0t1", "c1t0", "conflict"]
    probe = GradFeatureProbe(names, dim=16, n_examples=100, seeds=(0, 1), config=TrainConfig(epochs=2)).fit(suite, runner)
    model = probe.group_model()
    check_model(model)
    assert model.tasks == names and model.higher_is_better is False and not hasattr(model, "price")
    assert "gradient-feature" in model.estimator and model.cost.runs == 2
    members = np.array([[1, 1, 0, 1], [0, 1, 1, 0], [0, 0, 1, 0]], dtype=bool)
    values, se = probe.predict_members(members)
    est = probe.estimate([["c0t0", "c0t1", "conflict"], ["c0t1", "c1t0"], ["c1t0"]])
    for r, per in enumerate(est.values()):
        for t, (mean, std) in per.items():
            j = names.index(t)
            assert values[r, j] == pytest.approx(mean, rel=1e-6)
            assert se[r, j] == pytest.approx(std / np.sqrt(2), rel=1e-5)  # standard error of the seed mean
    assert np.isnan(values[~members]).all()
    table = probe.candidates(max_size=2)
    assert table.value(("c0t1", "c1t0"), "c1t0") == pytest.approx(values[1, 2], rel=1e-9)
    import taskrel.probes.gradfeature as gf

    monkeypatch.setattr(gf, "MAX_GROUPS", 5)
    with pytest.raises(TaskrelError, match="group_model"):  # a huge listing names the on-demand route
        probe.candidates()
