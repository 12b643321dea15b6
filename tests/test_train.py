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


# ------------------------------------------------------------------ rows = "labelled"
def _sparse_suite(keep_train=None):
    """Two regression tasks labelled on a few of 200 training rows (NaN elsewhere); val and test
    fully labelled. ``keep_train``: build the suite from only these training rows."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    ya, yb = X[:, 0] + 0.1 * rng.normal(size=300), X[:, 1] - X[:, 2]
    train_rows = np.arange(200)
    ya[:200][rng.random(200) > 0.25] = np.nan  # about 50 labelled rows for a
    yb[:200][rng.random(200) > 0.15] = np.nan  # about 30 for b
    rows = np.concatenate([train_rows if keep_train is None else keep_train, np.arange(200, 300)])
    n = len(rows) - 100
    split = {"train": np.arange(n), "val": np.arange(n, n + 50), "test": np.arange(n + 50, n + 100)}
    return Suite("sparse", X[rows], [Task("a", "regression"), Task("b", "regression")], {"a": ya[rows], "b": yb[rows]},
                 [lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU())], split=split)


@pytest.mark.parametrize("tasks", [["a"], ["a", "b"]])
def test_labelled_rows_train_as_a_suite_holding_only_those_rows(tasks):
    full = _sparse_suite()
    Y = np.stack([full.targets[t][:200] for t in tasks], 1)
    labelled = np.flatnonzero(~np.isnan(Y).all(1))
    assert 0 < len(labelled) < 120  # sparse: most rows carry no label for these tasks
    only = _sparse_suite(keep_train=labelled)
    cfg = TrainConfig(epochs=3, batch_size=16, patience=10)
    lay = SharingLayout.shared(tasks, 1)
    sparse = train(full, lay, cfg.with_(rows="labelled"), seed=1)
    dense = train(only, lay, cfg, seed=1)
    everything = train(full, lay, cfg, seed=1)
    assert sparse.examples == dense.examples == len(labelled) * 3
    assert sparse.steps == dense.steps == -(-len(labelled) // 16) * 3
    assert everything.examples == 200 * 3 and everything.steps == 13 * 3
    # the same rows in the same seeded order: the same run, number for number
    assert sparse.history == dense.history and sparse.metrics == dense.metrics
    assert sparse.metrics != everything.metrics


def test_labelled_rows_with_a_data_fraction_subsample_the_labelled_rows():
    full = _sparse_suite()
    n = int((~np.isnan(full.targets["a"][:200])).sum())
    r = train(full, SharingLayout.shared(["a"], 1), TrainConfig(epochs=2, batch_size=8, rows="labelled", data_fraction=0.5), seed=0)
    assert r.examples == round(0.5 * n) * 2


def test_rows_is_in_the_key_only_when_not_the_default():
    import hashlib
    import json

    from taskrel.store import RunSpec

    def digest(cfg):
        return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]

    # digests of TrainConfig.to_dict() computed with the code before ``rows`` existed: stored runs keep their keys
    assert digest(TrainConfig()) == "3b743a14a50b7de346abf1f0"
    assert digest(TrainConfig(epochs=5, batch_size=32, lr=3e-3, data_fraction=0.5)) == "239fffcd1cd7a51851010edf"
    assert TrainConfig(rows="all").to_dict() == TrainConfig().to_dict()
    suite = _sparse_suite()
    lay = SharingLayout.shared(["a"], 1)
    keys = {RunSpec(lay, TrainConfig(rows=r), 0).key(suite) for r in ("all", "labelled")}
    assert len(keys) == 2 and RunSpec(lay, TrainConfig(), 0).key(suite) in keys
    cfg = TrainConfig(rows="labelled")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_rows_bad_values_are_refused():
    for bad in ("some", None, "Labelled"):
        with pytest.raises(TaskrelError, match="rows must be 'all' .* or 'labelled'"):
            TrainConfig(rows=bad)


def test_rows_labelled_on_a_streaming_suite_is_a_clear_error(tmp_path):
    from taskrel.datasets import DatasetSuite

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return torch.tensor([float(i % 5), 1.0]), {"y": None if i % 3 else float(i % 5), "z": float(i % 2)}

    tasks = [Task("y", "regression"), Task("z", "regression")]
    s = DatasetSuite("items", Items(), tasks, stages=[lambda: nn.Linear(2, 4)], split=(0.6, 0.2, 0.2))
    with pytest.raises(TaskrelError, match="rows='labelled' needs an in-memory suite; suite 'items' streams"):
        train(s, SharingLayout.shared(["y"], 1), TrainConfig(epochs=1, rows="labelled"))
    assert train(s, SharingLayout.shared(["y"], 1), TrainConfig(epochs=1), seed=0).examples == 24
    # a study says so before anything trains, naming the field
    from taskrel.probes import PairwiseProbe
    from taskrel.study import Study

    study = Study(probes=[PairwiseProbe()], config=TrainConfig(epochs=1, rows="labelled"), clustering=None,
                  validation=None, verbose=False)
    with pytest.raises(TaskrelError, match="field 'train.rows'.*streams"):
        study.fit(s, tmp_path / "store")
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.json"))
