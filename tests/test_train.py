import numpy as np
import pytest
import torch
from torch import nn

from taskrel.errors import RunFailed, TaskrelError
from taskrel.layout import SharingLayout
from taskrel.suite import Suite, Task
from taskrel.train import Callback, TrainConfig, task_loss, train

FAST = TrainConfig(epochs=4, lr=3e-3, batch_size=32)


def test_same_seed_same_numbers(planted):
    lay = SharingLayout.shared(planted.task_names[:3], planted.n_stages)
    a = train(planted, lay, FAST, seed=3)
    b = train(planted, lay, FAST, seed=3)
    c = train(planted, lay, FAST, seed=4)
    assert a.metrics == b.metrics and a.history == b.history
    assert a.metrics != c.metrics


def test_missing_labels_are_masked():
    task = Task("r", "regression")
    out = torch.tensor([[1.0], [2.0], [3.0]])
    y = torch.tensor([1.0, float("nan"), 5.0])
    assert float(task_loss(task, out, y)) == pytest.approx((0 + 4) / 2)
    ml = Task("m", "multilabel", 2)
    y2 = torch.tensor([[1.0, float("nan")], [float("nan"), float("nan")]])
    loss = task_loss(ml, torch.zeros(2, 2), y2)
    assert float(loss) == pytest.approx(np.log(2))


def test_loss_weight_zero_ignores_a_task(planted):
    t = planted.task_names
    lay = SharingLayout.shared([t[0], t[1]], planted.n_stages)
    cfg = FAST.with_(loss_weights={t[1]: 0.0})
    both = train(planted, lay, cfg, seed=0)
    alone = train(planted, SharingLayout.separate([t[0]], planted.n_stages), FAST, seed=0)
    # with zero weight the second head gets no gradient and the encoder only sees task 0
    assert both.metrics["val"][t[0]]["loss"] == pytest.approx(alone.metrics["val"][t[0]]["loss"], rel=1e-5)


def test_early_stopping_restores_best(planted):
    lay = SharingLayout.separate(planted.task_names[:1], planted.n_stages)
    r = train(planted, lay, TrainConfig(epochs=200, patience=2, lr=0.05, batch_size=32), seed=0)
    assert len(r.history) < 200
    best = min(h["val_loss"] for h in r.history)
    assert r.metrics["val"][planted.task_names[0]]["loss"] == pytest.approx(best, rel=1e-5)
    assert r.history[r.best_epoch]["val_loss"] == pytest.approx(best)


def test_callback_sees_steps_and_shared_parameters(planted):
    seen = []

    class Spy(Callback):
        every = 5

        def on_step(self, state):
            losses = state.losses()
            grads = torch.autograd.grad(losses[state.tasks[0].name], state.model.shared_parameters())
            seen.append((state.step, len(grads)))

        def result(self):
            return {"calls": len(seen)}

    lay = SharingLayout.shared(planted.task_names[:2], planted.n_stages)
    spy = Spy()
    r = train(planted, lay, FAST, seed=0, callbacks=[spy])
    assert [s for s, _ in seen] == list(range(0, r.steps, 5))
    assert r.extras["Spy"] == {"calls": len(seen)}
    # probing does not change training
    assert r.metrics == train(planted, lay, FAST, seed=0).metrics


def test_warm_start_and_frozen_encoder(planted):
    t = planted.task_names
    n = planted.n_stages
    src = train(planted, SharingLayout.separate([t[0]], n), FAST, seed=0, keep_state=True)
    from taskrel.layout import build_model

    model = build_model(SharingLayout.separate([t[0]], n), planted)
    model.load_state_dict(src.state)
    enc = model.encoder_state(t[0])
    frozen = train(planted, SharingLayout.separate([t[1]], n), FAST.with_(freeze_encoder=True), seed=0, warm_start=enc, keep_state=True)
    tgt = build_model(SharingLayout.separate([t[1]], n), planted)
    tgt.load_state_dict(frozen.state)
    for k, block in enumerate(tgt.encoder_state(t[1])):
        for name, v in block.items():
            assert torch.equal(v, enc[k][name]), (k, name)


class Exploding(nn.Module):
    """A stage whose output turns NaN after a few training steps."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        h = self.lin(x)
        return h * float("nan") if self.calls > 6 else h


def test_divergence_raises_run_failed_with_step():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4)).astype(np.float32)
    s = Suite("nan", X, [Task("y", "regression")], {"y": X[:, 0]}, [Exploding])
    with pytest.raises(RunFailed) as e:
        train(s, SharingLayout.separate(["y"], 1), TrainConfig(epochs=5, batch_size=16), seed=0)
    assert e.value.step == 6 and "nan" in e.value.reason.lower()


def test_config_validation():
    for bad, msg in [({"epochs": 0}, "epochs"), ({"lr": -1}, "lr"), ({"data_fraction": 0}, "data_fraction"), ({"loss_weights": {"a": -1}}, "loss weight of task 'a'")]:
        with pytest.raises(TaskrelError, match=msg):
            TrainConfig(**bad)
    with pytest.raises(TaskrelError, match="unknown fields"):
        TrainConfig.from_dict({"epoch": 3})
    cfg = TrainConfig(loss_weights={"a": 2.0})
    assert TrainConfig.from_dict({**cfg.to_dict()}) == cfg.with_(device="cpu")


def test_layout_task_must_exist(planted):
    with pytest.raises(TaskrelError, match="unknown task 'nope'"):
        train(planted, SharingLayout.separate(["nope"], planted.n_stages), FAST)
    with pytest.raises(TaskrelError, match="layout has 2 stages"):
        train(planted, SharingLayout.separate(planted.task_names[:1], 2), FAST)


def test_divergence_names_the_task_that_diverged():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)).astype(np.float32)
    s = Suite("huge", X, [Task("fine", "regression"), Task("huge", "regression")], {"fine": X[:, 0], "huge": 1e30 * X[:, 1]},
              [lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU())])
    with pytest.raises(RunFailed) as e:
        train(s, SharingLayout.shared(["fine", "huge"], 1), TrainConfig(epochs=2), seed=0)
    assert e.value.task == "huge" and e.value.step == 0
    assert "loss of task 'huge' became inf" in str(e.value)
    r = train(s, SharingLayout.separate(["fine"], 1), TrainConfig(epochs=2), seed=0)
    assert np.isfinite(r.loss("fine"))


def test_config_numbers_are_normalised():
    a = TrainConfig(epochs=np.int64(3), weight_decay=0, lr=np.float32(0.5), loss_weights={"b": 1, "a": 2})
    b = TrainConfig(epochs=3, weight_decay=0.0, lr=0.5, loss_weights=[("a", 2.0), ("b", 1.0)])
    assert a == b and a.to_dict() == b.to_dict()
    assert type(a.epochs) is int and type(a.lr) is float  # JSON-ready: part of a run's key
    import json

    json.dumps(a.to_dict())


def test_loss_weight_for_an_unknown_task_is_refused_before_training(planted):
    with pytest.raises(TaskrelError, match="loss weight for unknown task 'zzz'"):
        train(planted, SharingLayout.separate(planted.task_names[:1], planted.n_stages), TrainConfig(epochs=1, loss_weights={"zzz": 1.0}))
