"""AffinityTracker: exact maths, an unchanged training trajectory, stochastic layers, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from taskrel import AffinityTracker, TaskrelError
from taskrel.analysis import TaskClustering, rank_auxiliaries
from taskrel.gradients import proposed_update

TASKS = ["a", "b", "c", "d"]


class Net(nn.Module):
    """A shared encoder with dropout and batch norm, one head per task."""

    def __init__(self, dropout: float = 0.3):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 8), nn.ReLU())
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in TASKS})

    def forward(self, x):
        h = self.encoder(x)
        return {t: self.heads[t](h)[:, 0] for t in TASKS}


def data(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    base = torch.tanh(x[:, :3].sum(1))
    y = {"a": base, "b": base + 0.1 * x[:, 4], "c": -base, "d": torch.sin(2 * x[:, 5])}
    return x, y


def losses_of(model, x, y):
    out = model(x)
    return {t: ((out[t] - y[t]) ** 2).mean() for t in TASKS}


def run(steps: int, tracker_kw: dict | None, optimizer: str = "adam"):
    """Train a few steps on fresh batches, with or without a tracker; return everything."""
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2) if optimizer == "adam" else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tracker = None
    if tracker_kw is not None:
        tracker = AffinityTracker(model.encoder.named_parameters(), TASKS, opt, model=model, **tracker_kw)
    for k in range(steps):
        x, y = data(32, seed=k)
        losses = losses_of(model, x, y)
        if tracker is not None:
            tracker.step(losses, lambda x=x, y=y: losses_of(model, x, y))
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    return model, opt, tracker, torch.get_rng_state()


@pytest.mark.parametrize("kw", [{"every": 1}, {"every": 3, "step": "optimizer"}, {"every": 2, "method": "loop"}])
def test_training_trajectory_is_unchanged(kw):
    plain_model, plain_opt, _, plain_rng = run(8, None)
    model, opt, tracker, rng = run(8, kw)
    assert len(tracker.steps_) == len(range(0, 8, kw["every"]))
    for (name, p), q in zip(plain_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(p, q), name  # parameters and batch-norm buffers, bit for bit
    for p, q in zip(plain_model.parameters(), model.parameters()):
        assert torch.equal(p.grad, q.grad)
    assert torch.equal(plain_rng, rng)  # dropout of later steps drew the same masks
    s1, s2 = plain_opt.state_dict()["state"], opt.state_dict()["state"]
    assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)
    assert model.training and torch.is_grad_enabled()


def test_grad_state_and_mode_are_restored():
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data()
    losses = losses_of(model, x, y)
    sum(losses.values()).backward()  # a .grad already there (gradient accumulation)
    before = [p.grad.clone() for p in model.parameters()]
    losses = losses_of(model, x, y)
    tracker = AffinityTracker(model.encoder.parameters(), TASKS, opt, model=model, every=1)
    tracker.step(losses, lambda: losses_of(model, x, y))
    assert all(torch.equal(b, p.grad) for b, p in zip(before, model.parameters()))
    sum(losses.values()).backward()  # the graph is still there
    assert model.training


def test_plain_lookahead_matches_closed_form():
    """L_j(theta) = |theta - c_j|^2: the plain step on i gives L_j exactly."""
    torch.manual_seed(0)
    theta = nn.Parameter(torch.randn(5))
    c = torch.randn(3, 5)
    tasks = ["x", "y", "z"]

    def losses():
        return {t: ((theta - c[k]) ** 2).sum() for k, t in enumerate(tasks)}

    eta = 0.05
    tracker = AffinityTracker([theta], tasks, lr=eta, every=1)
    tracker.step(losses(), losses)
    th = theta.detach()
    g = 2 * (th[None] - c)
    after = (((th[None, None] - eta * g[:, None]) - c[None]) ** 2).sum(-1)  # (source, target)
    base = ((th[None] - c) ** 2).sum(-1)
    expected = 1 - after / base[None]
    np.testing.assert_allclose(tracker.lookahead_[0], expected.numpy(), rtol=1e-5, atol=1e-6)
    cos = (g @ g.T) / (g.norm(dim=1)[:, None] * g.norm(dim=1)[None])
    np.testing.assert_allclose(tracker.cosine_[0], cos.numpy(), rtol=1e-5, atol=1e-6)


def test_optimizer_step_option_uses_the_optimizer_rule():
    torch.manual_seed(1)
    theta = nn.Parameter(torch.randn(4))
    c = torch.randn(2, 4)
    opt = torch.optim.Adam([theta], lr=0.1)
    for _ in range(3):  # some Adam state
        opt.zero_grad()
        ((theta - c[0]) ** 2).sum().backward()
        opt.step()

    def losses():
        return [((theta - c[k]) ** 2).sum() for k in range(2)]

    tracker = AffinityTracker([theta], ["p", "q"], opt, step="optimizer", every=1)
    tracker.step(losses(), losses)
    g = 2 * (theta.detach()[None] - c)
    delta = proposed_update(opt, [theta], g)
    after = (((theta.detach()[None, None] - delta[:, None]) - c[None]) ** 2).sum(-1)
    base = ((theta.detach()[None] - c) ** 2).sum(-1)
    np.testing.assert_allclose(tracker.lookahead_[0], (1 - after / base).numpy(), rtol=1e-5)


def test_dropout_sees_the_same_masks_before_and_after_the_step():
    """With a vanishing step, Z is 0 up to rounding: base and shifted losses share the masks."""
    torch.manual_seed(0)
    model = Net(dropout=0.5)
    x, y = data()
    tracker = AffinityTracker(model.encoder.parameters(), TASKS, lr=1e-9, every=1, model=model)
    tracker.step(losses_of(model, x, y), lambda: losses_of(model, x, y))
    assert np.abs(tracker.lookahead_[0]).max() < 1e-5
    # with independent masks the same numbers are noise of the order of the dropout itself
    with torch.no_grad():
        a, b = losses_of(model, x, y), losses_of(model, x, y)
    assert max(abs(1 - float(b[t]) / float(a[t])) for t in TASKS) > 1e-3


def test_affinities_are_right_and_flow_into_analyses():
    _, _, tracker, _ = run(30, {"every": 2})
    cos, look = tracker.affinity("cosine"), tracker.affinity("lookahead")
    assert cos.measure == "gradient-cosine" and look.measure == "lookahead"
    np.testing.assert_allclose(cos.values, cos.values.T)
    np.testing.assert_allclose(np.diag(cos.values), 1.0, atol=1e-6)
    # a, b and c read one feature (c's sign flip is absorbed by its own head); d does not
    for s in "abc":
        for t in "abc":
            assert cos.value(s, t) > 0.2 > abs(cos.value(s, "d"))
            assert look.value(s, t) > 0 > look.value(s, "d")
    assert (cos.std >= 0).all() and cos.meta["probe_steps"] == 15
    ranked = rank_auxiliaries(look, "a")
    assert list(ranked["source"])[-1] == "d"
    assert sorted(map(sorted, TaskClustering(n_clusters=2).fit(cos.symmetrize()).clusters_)) == [["a", "b", "c"], ["d"]]
    early = tracker.affinity("cosine", window=(0, 10))
    assert early.meta["probe_steps"] == 5


def test_heldout_closure_is_where_the_lookahead_is_measured():
    theta = nn.Parameter(torch.tensor([1.0, 1.0]))
    train_c = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    tracker = AffinityTracker([theta], ["u", "v"], lr=0.1, every=1)

    def on(c):
        return lambda: [((theta - c[k]) ** 2).sum() for k in range(2)]

    held_c = torch.tensor([[0.0, 0.0], [0.0, 0.0]])  # on the held-out batch both want theta -> 0
    tracker.step(on(train_c)(), on(train_c), heldout=on(held_c))
    z = tracker.lookahead_[0]
    assert z[0, 1] > 0 and z[1, 0] < 0  # on the training batch z[0, 1] would be < 0


# ------------------------------------------------------------------ bad input
def test_bad_input_gets_clear_errors():
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data()
    unused = nn.Linear(3, 3)
    tr = AffinityTracker([*model.encoder.named_parameters(), ("unused.weight", unused.weight)], TASKS, None, lr=0.1)
    with pytest.raises(TaskrelError, match="no task's loss reaches parameter unused.weight"):
        tr.step(losses_of(model, x, y), lambda: losses_of(model, x, y))
    tr = AffinityTracker(model.encoder.parameters(), TASKS, opt)
    with pytest.raises(TaskrelError, match=r"closure returned tasks .*missing \['d'\], unexpected \['e'\]"):
        tr.step(losses_of(model, x, y), lambda: {**{t: v for t, v in losses_of(model, x, y).items() if t != "d"}, "e": torch.tensor(1.0)})
    with pytest.raises(TaskrelError, match="losses returned tasks"):
        AffinityTracker(model.encoder.parameters(), TASKS, opt).step({"a": torch.tensor(1.0, requires_grad=True)}, dict)
    with pytest.raises(TaskrelError, match=r"task 'a' must be a scalar tensor, got \(64,\)"):
        out = model(x)
        AffinityTracker(model.encoder.parameters(), TASKS, opt).step({t: (out[t] - y[t]) ** 2 for t in TASKS}, dict)
    with pytest.raises(TaskrelError, match="no graph"):
        with torch.no_grad():
            AffinityTracker(model.encoder.parameters(), TASKS, opt).step(losses_of(model, x, y), dict)
    with pytest.raises(TaskrelError, match="needs the optimizer or lr"):
        AffinityTracker(model.encoder.parameters(), TASKS)
    with pytest.raises(TaskrelError, match="step='optimizer' needs the optimizer"):
        AffinityTracker(model.encoder.parameters(), TASKS, lr=0.1, step="optimizer")
    with pytest.raises(TaskrelError, match="not in the optimizer"):
        AffinityTracker(unused.parameters(), TASKS, opt)
    with pytest.raises(TaskrelError, match="params is empty"):
        AffinityTracker([], TASKS, opt)
    with pytest.raises(TaskrelError, match="every must be"):
        AffinityTracker(model.encoder.parameters(), TASKS, opt, every=0)
    with pytest.raises(TaskrelError, match="no probe step"):
        AffinityTracker(model.encoder.parameters(), TASKS, opt).affinity("cosine")


def test_libmtl_style_loop_with_stacked_losses_and_a_gradient_weighting():
    """Losses as one tensor (task order), then a weighting that reads per-task gradients."""
    torch.manual_seed(0)
    model = Net(dropout=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    tracker = AffinityTracker(list(model.encoder.parameters()), TASKS, opt, every=1, model=model)
    share = list(model.encoder.parameters())
    for k in range(3):
        x, y = data(32, seed=k)
        train_losses = torch.stack(list(losses_of(model, x, y).values()))
        tracker.step(train_losses, lambda x=x, y=y: torch.stack(list(losses_of(model, x, y).values())))
        opt.zero_grad(set_to_none=False)
        grads = [torch.autograd.grad(train_losses[i], share, retain_graph=True) for i in range(len(TASKS))]
        norms = torch.stack([torch.sqrt(sum((g**2).sum() for g in gs)) for gs in grads])
        (train_losses / norms.detach()).sum().backward()  # a gradient-normalising weighting
        opt.step()
    assert tracker.steps_ == [0, 1, 2] and np.isfinite(tracker.affinity("lookahead").values).all()


# ------------------------------------------------------------------ phases and units
def test_phases_show_a_relation_the_whole_run_mean_hides():
    """Task b shares a's signal for the first half of the run and opposes it afterwards: the
    early phase reads a positive cosine, the late one a negative one, the whole-run mean lies
    between, and the summary flags the pair; the lookahead is shown in its own scale."""
    torch.manual_seed(0)
    enc, heads = nn.Linear(4, 8), nn.ModuleDict({t: nn.Linear(8, 1) for t in ("a", "b")})
    heads["b"].load_state_dict(heads["a"].state_dict())  # the same head: the same gradient while the targets agree
    opt = torch.optim.SGD([*enc.parameters(), *heads.parameters()], lr=1e-4)
    tracker = AffinityTracker(enc.parameters(), ["a", "b"], opt, every=1)
    for k in range(40):
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(k))
        y = {"a": x[:, 0], "b": x[:, 0] if k < 20 else -x[:, 0]}

        def closure(x=x, y=y):
            return {t: ((heads[t](enc(x))[:, 0] - y[t]) ** 2).mean() for t in y}

        losses = closure()
        tracker.step(losses, closure)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    early, late = tracker.affinity("cosine", phase="early"), tracker.affinity("cosine", phase="late")
    whole = tracker.affinity("cosine")
    assert early.value("a", "b") > 0 > late.value("a", "b")
    assert late.value("a", "b") < whole.value("a", "b") < early.value("a", "b")
    assert early.meta["window"] == [0, 10] and late.meta["window"] == [30, 40]
    np.testing.assert_allclose(early.values, tracker.affinity("cosine", window=(0, 10)).values)
    table = tracker.summary()
    row = table[(table.source == "a") & (table.target == "b")].iloc[0]
    assert bool(row["sign flips"]) and row["cosine early"] == pytest.approx(early.value("a", "b"), abs=1e-4)
    scale = table.attrs["lookahead_scale"]
    look = tracker.affinity("lookahead", phase="early").value("a", "b")
    assert scale < 1e-2 and f"lookahead early [{scale:.0e}]" in table.columns  # a small lr: Z of order scale
    assert row[f"lookahead early [{scale:.0e}]"] == pytest.approx(look / scale, abs=1e-3)
    assert 0.1 <= abs(table[f"lookahead all [{scale:.0e}]"]).max() < 10  # shown with a few digits, not 0.0000
    assert "relative loss change" in tracker.affinity("lookahead").meta["unit"]
    with pytest.raises(TaskrelError, match="phase must be one of"):
        tracker.affinity("cosine", phase="middle")
    with pytest.raises(TaskrelError, match="a window or a phase"):
        tracker.affinity("cosine", window=(0, 5), phase="early")
