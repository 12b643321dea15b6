"""Gradient cosine and TAG lookahead probes: exact cases, optimizer rules, planted truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout, build_model
from taskrel.probes import GradientProbe, LookaheadProbe, per_task_gradients
from taskrel.probes.gradient import GradientCallback
from taskrel.probes.lookahead import proposed_update
from taskrel.store import RunStore
from taskrel.suite import Suite, Task
from taskrel.suites import get_suite
from taskrel.train import StepState, TrainConfig, task_loss, train

PLANTED_CONFIG = TrainConfig(epochs=30, lr=3e-3, batch_size=32)


def mirror_suite() -> Suite:
    """Task ``a``, its exact copy, its negation, and an independent task."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 8)).astype(np.float32)
    y = np.tanh(X @ rng.normal(size=(8, 3))) @ rng.normal(size=3)
    y = (y - y.mean()) / y.std()
    other = np.sin(X[:, 0] * 2)
    stages = [lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU()), lambda: nn.Sequential(nn.Linear(16, 8), nn.ReLU())]
    tasks = [Task(t, "regression") for t in ("a", "copy", "neg", "other")]
    return Suite("mirror", X, tasks, {"a": y, "copy": y, "neg": -y, "other": other}, stages)


def settings(config: TrainConfig, seeds=(0,)) -> dict:
    """A probe's config and seeds."""
    return {"config": config, "seeds": list(seeds)}


def same_cluster_auc(aff, truth) -> float:
    cl = truth["cluster"]
    labels, scores = [], []
    for i, s in enumerate(aff.tasks):
        for j, t in enumerate(aff.tasks):
            if i != j:
                labels.append(int(cl[s] == cl[t] >= 0))
                scores.append(aff.values[i, j])
    return float(roc_auc_score(labels, scores))


# ------------------------------------------------------------------ exact cases
@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    suite = mirror_suite()
    store = RunStore(tmp_path_factory.mktemp("mirror"))
    st = settings(TrainConfig(epochs=2, lr=3e-3, batch_size=32))
    grad = GradientProbe(every=1, trajectory="full", **st).fit(suite, store)
    look = LookaheadProbe(every=1, trajectory="full", **st).fit(suite, store)
    return suite, store, grad, look


def test_duplicated_task_has_cosine_one_at_every_step(mirror):
    _, _, grad, _ = mirror
    tr = grad.trajectory_
    pair = tr[(tr.source == "a") & (tr.target == "copy")]
    assert len(pair) == grad.records_[0].steps  # every=1: every step probed
    assert np.allclose(pair.cosine, 1.0, atol=1e-5)
    assert grad.affinity_.value("a", "copy") == pytest.approx(1.0, abs=1e-5)
    assert grad.conflict_.value("a", "copy") == 0.0
    assert grad.magnitude_.value("a", "copy") == pytest.approx(1.0, abs=1e-5)


def test_negated_task_opposes_early(mirror):
    _, _, grad, look = mirror
    tr = grad.trajectory_
    first = tr[(tr.source == "a") & (tr.target == "neg")].sort_values("step").cosine.to_numpy()
    # identical heads: the gradients differ only through the head outputs (not exactly 0)
    assert first[0] < -0.9
    assert first[:5].mean() < -0.8
    lt = look.trajectory_
    z = lt[(lt.source == "a") & (lt.target == "neg")].sort_values("step").lookahead.to_numpy()
    assert z[0] < 0 and z[:5].mean() < 0
    assert look.affinity_.value("a", "neg") < 0 < look.affinity_.value("a", "copy")
    early = LookaheadProbe(every=1, window=(0, 5), trajectory="full", config=look.config, seeds=look.seeds).fit(mirror[0], mirror[1])
    assert early.affinity_.value("a", "neg") < 0 and early.affinity_.value("neg", "a") < 0


def test_probes_share_one_stored_run_and_count_costs(mirror):
    suite, store, grad, look = mirror
    assert len(store) == 1 and grad.records_[0].key == look.records_[0].key
    again = GradientProbe(every=1, trajectory="full", config=grad.config, seeds=grad.seeds).fit(suite, store)
    assert len(store) == 1
    np.testing.assert_array_equal(again.affinity_.values, grad.affinity_.values)
    rec = grad.records_[0]
    g, lk = grad.affinity_.cost, look.affinity_.cost
    assert g.steps == lk.steps == rec.steps
    assert rec.examples < g.examples < lk.examples  # the lookahead adds n forward passes per probe step
    assert g.seconds < lk.seconds
    assert look.affinity_.meta["probe_steps"] == rec.steps


def test_symmetric_and_permutation(tmp_path):
    suite = mirror_suite()
    st = settings(TrainConfig(epochs=1, lr=3e-3, batch_size=32))
    store = RunStore(tmp_path)
    a = GradientProbe(["a", "neg", "other"], every=2, **st).fit(suite, store)
    b = GradientProbe(["other", "a", "neg"], every=2, **st).fit(suite, store)
    assert len(store) == 1  # layouts equal up to order: one run
    np.testing.assert_allclose(a.affinity_.values, a.affinity_.values.T)
    np.testing.assert_allclose(b.affinity_.subset(a.affinity_.tasks).values, a.affinity_.values)


# ------------------------------------------------------------------ the mathematics
def test_batched_and_looped_gradients_agree():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4))
    x = torch.randn(11, 5)
    losses = (net(x) ** 2).mean(0) * torch.arange(1.0, 5.0)
    params = list(net[0].parameters())
    a = per_task_gradients(losses, params, "batched")
    b = per_task_gradients(losses, params, "loop")
    assert a.shape == (4, sum(p.numel() for p in params))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="unknown method"):
        per_task_gradients(losses, params, "magic")


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.SGD(p, lr=0.05),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, dampening=0.0),
        lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01),
        lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    ],
)
def test_proposed_update_is_the_optimizer_step(make):
    torch.manual_seed(1)
    w = nn.Parameter(torch.randn(6))
    b = nn.Parameter(torch.randn(2, 3))
    opt = make([w, b])
    for k in range(4):  # proposed before the first step and after some steps
        g = torch.randn(1, 12)
        before = [w.detach().clone(), b.detach().clone()]
        state = {id(p): {n: v.clone() for n, v in opt.state.get(p, {}).items()} for p in (w, b)}
        delta = proposed_update(opt, [w, b], g)
        for p in (w, b):  # state untouched
            for n, v in state[id(p)].items():
                assert torch.equal(opt.state[p][n], v)
        w.grad, b.grad = g[0, :6].clone(), g[0, 6:].reshape(2, 3).clone()
        opt.step()
        taken = torch.cat([(before[0] - w.detach()).reshape(-1), (before[1] - b.detach()).reshape(-1)])
        torch.testing.assert_close(delta[0], taken, rtol=1e-5, atol=1e-7, msg=f"step {k}")


def test_callback_leaves_training_unchanged():
    suite = mirror_suite()
    lay = SharingLayout.shared(suite.task_names, suite.n_stages)
    cfg = TrainConfig(epochs=2, batch_size=32)
    plain = train(suite, lay, cfg, seed=3)
    probed = train(suite, lay, cfg, seed=3, callbacks=[GradientCallback(every=3, lookahead=True)])
    assert plain.metrics == probed.metrics
    ex = probed.extras["GradientCallback"]
    assert ex["steps"] == list(range(0, probed.steps, 3))
    assert ex["format"] == "summary" and sum(b["count"] for b in ex["blocks"]) == len(ex["steps"])
    assert all("lookahead" in b for b in ex["blocks"]) and ex["seconds"]["lookahead"] > 0
    full = train(suite, lay, cfg, seed=3, callbacks=[GradientCallback(every=3, trajectory="full")])
    assert full.metrics == plain.metrics
    assert len(full.extras["GradientCallback"]["lookahead"]) == len(ex["steps"])


# ------------------------------------------------------------------ lookahead options
def dropout_suite() -> Suite:
    """The mirror tasks on an encoder with dropout (and batch norm) in it."""
    base = mirror_suite()
    stages = [
        lambda: nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3)),
        lambda: nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.2)),
    ]
    return Suite("mirror-dropout", base.inputs, base.tasks, base.targets, stages)


def _state(suite: Suite, optimizer_steps: int) -> StepState:
    """A probe step of the all-shared model with an Adam that has taken some steps."""
    torch.manual_seed(0)
    names = suite.task_names
    model = build_model(SharingLayout.shared(names, suite.n_stages), suite)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    X, ys = suite.tensors("train", names)
    tasks = [suite.task(t) for t in names]
    for k in range(optimizer_steps):
        idx = slice(32 * k, 32 * (k + 1))
        out = model(X[idx])
        opt.zero_grad()
        sum(task_loss(t, out[t.name], ys[t.name][idx]) for t in tasks).backward()
        opt.step()
    return StepState(optimizer_steps, 0, model, opt, X[:32], {t: ys[t][:32] for t in names}, tasks, {t: 1.0 for t in names})


def test_plain_step_ignores_the_optimizer_state_and_optimizer_step_does_not():
    suite = mirror_suite()
    fresh, used = _state(suite, 0), _state(suite, 5)
    used.model.load_state_dict(fresh.model.state_dict())  # same parameters, different Adam state
    z = {}
    for step in ("plain", "optimizer"):
        for name, st in (("fresh", fresh), ("used", used)):
            cb = GradientCallback(every=1, step=step)
            cb.on_step(st)
            z[step, name] = cb.log.blocks[0]["lookahead"]  # one probe step: the block's sum is its value
    np.testing.assert_allclose(z["plain", "fresh"], z["plain", "used"], rtol=1e-6)
    assert not np.allclose(z["optimizer", "fresh"], z["optimizer", "used"], rtol=1e-3)
    cb = GradientCallback(every=1, eta=1e-3)  # a smaller plain step: smaller effects, same signs
    cb.on_step(fresh)
    small = cb.log.blocks[0]["lookahead"]
    assert np.all(np.abs(small) < np.abs(z["plain", "fresh"]) + 1e-9)


def test_lookahead_runs_with_dropout_under_the_same_randomness(tmp_path):
    suite = dropout_suite()
    store = RunStore(tmp_path)
    st = settings(TrainConfig(epochs=2, lr=3e-3, batch_size=32))
    grad = GradientProbe(every=1, **st).fit(suite, store)  # crashed before: vmap and dropout
    look = LookaheadProbe(every=1, **st).fit(suite, store)
    assert len(store) == 1 and np.isfinite(look.affinity_.values).all()
    assert look.affinity_.value("a", "copy") > 0 > look.affinity_.value("a", "neg")
    assert grad.affinity_.value("a", "copy") > 0.9
    # a vanishing step changes no loss: the base and the shifted losses drew the same masks
    tiny = LookaheadProbe(every=1, eta=1e-9, **st).fit(suite, store)
    assert np.abs(tiny.trajectory_.lookahead.dropna().to_numpy()).max() < 1e-4
    evald = LookaheadProbe(every=1, randomness="eval", **st).fit(suite, store)
    assert evald.affinity_.value("a", "copy") > 0 > evald.affinity_.value("a", "neg")
    assert len(store) == 3  # each set of options is its own run


def test_heldout_lookahead_is_measured_on_other_rows(tmp_path):
    suite = mirror_suite()
    st = settings(TrainConfig(epochs=2, lr=3e-3, batch_size=32))
    store = RunStore(tmp_path)
    same = LookaheadProbe(every=1, **st).fit(suite, store)
    held = LookaheadProbe(every=1, holdout=0.5, **st).fit(suite, store)
    assert held.records_[0].key != same.records_[0].key
    assert held.affinity_.meta["holdout"] == 0.5
    assert held.affinity_.value("a", "copy") > 0 > held.affinity_.value("a", "neg")
    ex_same = same.records_[0].extras["gradient"]["examples"]["lookahead"]
    ex_held = held.records_[0].extras["gradient"]["examples"]["lookahead"]
    assert ex_held < ex_same  # only the held-out rows are evaluated
    with pytest.raises(TaskrelError, match="holdout must be in"):
        LookaheadProbe(holdout=1.0, **st).fit(suite, store)


# ------------------------------------------------------------------ planted truth
@pytest.fixture(scope="module")
def planted_probes(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # faster for this small net, and the same floats on any machine
    try:
        suite = get_suite("planted")
        store = RunStore(tmp_path_factory.mktemp("planted"))
        st = settings(PLANTED_CONFIG, seeds=(0, 1, 2))
        grad = GradientProbe(every=10, **st).fit(suite, store)
        look = LookaheadProbe(every=10, **st).fit(suite, store)
        adam = LookaheadProbe(every=10, step="optimizer", **st).fit(suite, store)
    finally:
        torch.set_num_threads(threads)
    return suite, store, grad, look, adam


@pytest.mark.slow
def test_planted_same_cluster_ranks_first(planted_probes):
    suite, store, grad, look, adam = planted_probes
    assert len(store) == 6  # one run per seed serves both probes; the optimizer step is its own
    # measured, mean of seeds 0-2: gradient 1.00; lookahead with TAG's plain step 0.907 (0.987
    # symmetrised); with Adam's own step (its moments make up most of every source's step)
    # 0.830 (0.880): the plain step ranks the planted clusters better
    assert same_cluster_auc(grad.affinity_, suite.truth) >= 0.95
    assert same_cluster_auc(look.affinity_, suite.truth) >= 0.9
    assert same_cluster_auc(look.affinity_.symmetrize(), suite.truth) >= 0.95
    assert same_cluster_auc(look.affinity_, suite.truth) > same_cluster_auc(adam.affinity_, suite.truth)
    assert look.affinity_.meta["step"] == "plain" and adam.affinity_.meta["step"] == "optimizer"


@pytest.mark.slow
def test_planted_conflict_is_negative_with_its_cluster(planted_probes):
    suite, store, grad, look, adam = planted_probes
    c0 = suite.truth["clusters"][0]
    for t in c0:  # measured: cosine -0.115, -0.093; lookahead conflict -> c0 -0.024, -0.024
        assert grad.affinity_.value("conflict", t) < -0.05 and grad.affinity_.value(t, "conflict") < -0.05
        assert look.affinity_.value("conflict", t) < 0 and look.affinity_.value(t, "conflict") < 0
    # a step on the conflict raises cluster 0's losses most (next: c1t0 -0.012); with Adam's
    # step c1t0 (-0.012) comes before c0t1 (-0.009)
    row = look.affinity_.to_frame().loc["conflict"].drop("conflict")
    assert set(row.nsmallest(len(c0)).index) == set(c0)


# ------------------------------------------------------------------ compact trajectories
def test_summary_gives_the_full_trajectorys_means_in_a_fraction_of_the_record(mirror, tmp_path):
    """The default summary keeps a few blocks of sums: the whole-run affinities are those of
    the full per-step record, the early/late blocks are whole-block means, and the record is
    smaller (it does not grow with the steps)."""
    import json

    suite, _, grad, look = mirror
    store = RunStore(tmp_path)
    summ = GradientProbe(every=1, config=grad.config, seeds=grad.seeds).fit(suite, store)
    look_s = LookaheadProbe(every=1, config=look.config, seeds=look.seeds).fit(suite, store)
    assert summ.trained_ == 1 and look_s.trained_ == 0  # one run for both, as in full
    for a, b in ((summ.affinity_, grad.affinity_), (summ.conflict_, grad.conflict_), (look_s.affinity_, look.affinity_)):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(summ.magnitude_.values, grad.magnitude_.values, rtol=1e-4)
    ex = summ.records_[0].extras["gradient"]
    assert ex["format"] == "summary" and len(ex["blocks"]) <= 8 and sum(b["count"] for b in ex["blocks"]) == len(ex["steps"])
    size = {k: len(json.dumps(r.records_[0].extras["gradient"])) for k, r in (("summary", summ), ("full", grad))}
    assert size["summary"] < size["full"]  # 10 probe steps here; the size no longer grows with them:
    # a window on the blocks' boundaries is the mean of those blocks; one that cuts a block is refused
    first = ex["blocks"][0]
    early = GradientProbe(every=1, window=(0, first["last"] + 1), config=grad.config, seeds=grad.seeds).fit(suite, store)
    tr = grad.trajectory_
    pair = tr[(tr.source == "a") & (tr.target == "neg") & (tr.step <= first["last"])].cosine.mean()
    assert early.affinity_.value("a", "neg") == pytest.approx(pair, abs=1e-5)
    with pytest.raises(TaskrelError, match="cuts a stored block.*trajectory='full'"):
        GradientProbe(every=1, window=(0, first["last"]), config=grad.config, seeds=grad.seeds).fit(suite, store)


def test_a_summary_log_does_not_grow_with_the_steps_and_keeps_exact_sums():
    import json

    from taskrel.step import ProbeLog, Reading

    rng = np.random.default_rng(0)
    n = 5
    readings = []
    for _ in range(1000):
        c = rng.uniform(-1, 1, (n, n))
        c = (c + c.T) / 2
        np.fill_diagonal(c, 1.0)
        readings.append(Reading(c, rng.uniform(0.5, 2, n), rng.normal(0, 1e-3, (n, n))))
    sizes = {}
    for steps in (16, 1000):
        log = ProbeLog(list("abcde"))
        for k in range(steps):
            log.add(k, readings[k])
        sizes[steps] = len(json.dumps(log.to_json()["blocks"]))
        assert len(log.blocks) <= 8 and sum(b["count"] for b in log.blocks) == steps
        np.testing.assert_allclose(sum(b["cosine"] for b in log.blocks), sum(r.cosine for r in readings[:steps]))
        np.testing.assert_allclose(sum(b["lookahead"] for b in log.blocks), sum(r.lookahead for r in readings[:steps]))
    assert sizes[1000] < 1.1 * sizes[16]


def test_phases_are_the_first_and_last_quarter_of_the_probe_steps(mirror):
    """phase='early' is the mean over the first quarter of the probe steps (a full trajectory:
    exactly the window on them); with the summary, whole blocks holding at least a quarter."""
    suite, store, grad, _ = mirror
    steps = sorted(set(grad.trajectory_.step))
    cut = -(-len(steps) // 4)
    early = GradientProbe(every=1, phase="early", trajectory="full", config=grad.config, seeds=grad.seeds).fit(suite, store)
    window = GradientProbe(every=1, window=(0, steps[cut]), trajectory="full", config=grad.config, seeds=grad.seeds).fit(suite, store)
    np.testing.assert_allclose(early.affinity_.values, window.affinity_.values)
    late = GradientProbe(every=1, phase="late", trajectory="full", config=grad.config, seeds=grad.seeds).fit(suite, store)
    assert late.affinity_.meta["phase"] == "late" and not np.allclose(late.affinity_.values, early.affinity_.values)
    with pytest.raises(TaskrelError, match="phase must be one of"):
        GradientProbe(phase="middle").fit(suite, store)
    with pytest.raises(TaskrelError, match="a window or a phase"):
        GradientProbe(phase="early", window=(0, 5)).fit(suite, store)


def test_the_documented_many_task_window_falls_on_its_stored_blocks():
    """docs/scale.md's gradient route at many tasks averages a window of probe steps (32 to 119
    of 120 full-batch steps on planted-many's 600 training rows): that window must lie on the
    blocks its summary trajectory stores, or a study using it would fail after training
    (in_window refuses a window that cuts a block)."""
    from math import ceil

    from taskrel.probes.trajectory import in_window
    from taskrel.step import ProbeLog, Reading
    from taskrel.train import TrainConfig

    probe = GradientProbe(every=1, lookahead=False, window=(32, 120),
                          config=TrainConfig(batch_size=600, epochs=120, patience=120))
    cfg = probe.train_config()
    n_train = 600  # planted-many's default training rows (the study does not change it)
    steps = cfg.epochs * ceil(n_train / cfg.batch_size)
    assert cfg.patience >= cfg.epochs  # no early stop: every run probes every step
    log = ProbeLog(["a", "b"], lookahead=False)
    reading = Reading(np.eye(2), np.ones(2))
    for step in range(0, steps, probe.every):
        log.add(step, reading)
    tr = {"first": np.array([b["first"] for b in log.blocks]), "last": np.array([b["last"] for b in log.blocks]),
          "count": np.array([b["count"] for b in log.blocks])}
    kept = in_window(tr, probe.window)
    assert kept["count"].sum() == min(probe.window[1], steps) - probe.window[0]
