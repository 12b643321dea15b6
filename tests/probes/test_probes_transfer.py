"""Transfer probe (Taskonomy): planted truth, shared single runs, direction, JSON, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_probes_pairwise import (
    HELPER_SETTINGS,
    PLANTED_TASKS,
    SEEDS,
    cluster_auc,
    helper_suite,
    planted_settings,
    planted_store,
)
from torch import nn

from taskrel.affinity import Affinity
from taskrel.cli.main import main
from taskrel.errors import TaskrelError
from taskrel.probes.pairwise import PairwiseProbe
from taskrel.probes.transfer import TransferProbe
from taskrel.store import RunStore
from taskrel.suite import Suite, Task
from taskrel.suites import get_suite


@pytest.fixture(scope="module")
def planted_suite():
    return get_suite("planted")


@pytest.fixture(scope="module")
def fitted(planted_suite, tmp_path_factory):
    """The pairwise probe first (free if its module ran), then the transfer probe on one store."""
    store = planted_store(tmp_path_factory)
    PairwiseProbe(PLANTED_TASKS, **planted_settings()).fit(planted_suite, store)
    before = len(store)
    probe = TransferProbe(PLANTED_TASKS, mode="frozen", **planted_settings())
    probe.fit(planted_suite, store)
    return probe, store, before


@pytest.fixture(scope="module")
def helper_store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("transfer-helper-store"))


# ----------------------------------------------------------------- planted truth
def test_frozen_transfer_ranks_same_cluster_pairs_first(fitted, planted_suite):
    aff = fitted[0].affinity_
    assert aff.measure == "transfer-frozen" and aff.n_seeds == len(SEEDS)
    assert cluster_auc(aff, planted_suite.truth) >= 0.9
    assert np.all(np.diag(aff.values) == 0)


def test_conflict_has_a_negative_effect_on_its_cluster(fitted):
    aff = fitted[0].affinity_
    assert aff.value("conflict", "c0t0") < 0 and aff.value("conflict", "c0t1") < 0


def test_shares_the_single_task_runs_with_the_pairwise_probe(fitted):
    probe, store, before = fitted
    n = len(PLANTED_TASKS)
    own = len(SEEDS) * n * (n - 1)
    assert probe.trained_ == own  # the single-task runs came from the pairwise probe
    assert len(store) == before + own
    singles = [r for r in probe.records_ if r.spec["warm_start"] is None]
    assert len(singles) == len(SEEDS) * n
    assert probe.affinity_.cost.runs == own + len(singles)


def test_gain_is_scratch_minus_transfer_in_loss_units(fitted):
    probe = fitted[0]
    row = probe.table_.query("source == 'c0t1' and target == 'c0t0' and seed == 0").iloc[0]
    assert row["gain"] == pytest.approx(row["scratch"] - row["transfer"])  # mse: lower is better
    k = PLANTED_TASKS.index
    assert probe.affinity_.per_seed[0, k("c0t1"), k("c0t0")] == pytest.approx(row["gain"])


def test_asking_again_trains_nothing(fitted, planted_suite):
    probe, store, _ = fitted
    n = len(store)
    again = TransferProbe(PLANTED_TASKS, mode="frozen", **planted_settings())
    assert again.fit(planted_suite, store).trained_ == 0 and len(store) == n
    np.testing.assert_array_equal(again.affinity_.values, probe.affinity_.values)


def test_json_round_trip(fitted, tmp_path):
    aff = fitted[0].affinity_
    back = Affinity.load(aff.save(tmp_path / "transfer.json"))
    np.testing.assert_array_equal(back.values, aff.values)
    np.testing.assert_array_equal(back.std, aff.std)
    assert back.cost == aff.cost and back.meta["mode"] == "frozen"


# ----------------------------------------------------------------- direction
@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_direction_helper_helps_needy(helper_store, mode):
    aff = TransferProbe(mode=mode, **HELPER_SETTINGS).fit(helper_suite(), helper_store).affinity_
    col = aff.to_frame()["needy"].drop("needy")
    assert aff.value("helper", "needy") > 0
    assert col.idxmax() == "helper"


def test_gain_sign_follows_the_metric_direction():
    X = np.random.default_rng(0).normal(size=(40, 2)).astype("float32")
    suite = Suite(
        "signs", X, [Task("acc", "binary"), Task("err", "regression")],
        {"acc": (X[:, 0] > 0).astype(float), "err": X[:, 1]},
        [lambda: nn.Linear(2, 2)],
    )
    probe = TransferProbe(score="metric")
    assert probe._gain(suite, "acc", scratch=0.7, moved=0.8) == pytest.approx(0.1)  # accuracy
    assert probe._gain(suite, "err", scratch=0.7, moved=0.8) == pytest.approx(-0.1)  # mse
    assert TransferProbe(gain="relative", score="metric")._gain(suite, "err", 0.5, 0.4) == pytest.approx(0.2)
    # by default the scores are losses: lower is better whatever the metric's direction
    assert TransferProbe()._gain(suite, "acc", scratch=0.7, moved=0.8) == pytest.approx(-0.1)


def test_gain_is_in_loss_units_and_not_quantised(tmp_path):
    """A binary task: accuracy gains are multiples of 1/n_val and tie; loss gains do not."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 6)).astype("float32")
    base = X[:, :3].sum(1)
    targets = {"a": (base > 0).astype(float), "b": (base + 0.5 * X[:, 3] > 0).astype(float), "c": (X[:, 5] > 0).astype(float)}
    suite = Suite("quantised", X, [Task(t, "binary") for t in targets], targets, [lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU())])
    store = RunStore(tmp_path)
    loss = TransferProbe(**HELPER_SETTINGS).fit(suite, store)
    metric = TransferProbe(score="metric", **HELPER_SETTINGS).fit(suite, store)
    assert metric.trained_ == 0  # the same runs, read another way
    for _, row in loss.table_.iterrows():
        assert row["gain"] == pytest.approx(row["scratch"] - row["transfer"])
    singles = [r for r in loss.records_ if r.spec["warm_start"] is None]
    scratch_losses = {round(r.loss(t, "val"), 12) for r in singles for t in r.metrics["val"]}
    assert set(loss.table_["scratch"].round(12)) <= scratch_losses
    n_val = len(suite.split["val"])
    steps = metric.table_["gain"].to_numpy() * n_val
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)  # the metric moves in steps of 1/n_val
    assert loss.table_["gain"].nunique() == len(loss.table_)  # loss gains are all distinct
    assert loss.affinity_.meta["score"] == "loss" and metric.affinity_.meta["score"] == "metric"


def test_bad_input_is_refused(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(TaskrelError, match="mode must be one of"):
        TransferProbe(mode="linear").fit(helper_suite(), store)
    with pytest.raises(TaskrelError, match="score must be one of .* got 'accuracy'"):
        TransferProbe(score="accuracy").fit(helper_suite(), store)
    with pytest.raises(TaskrelError, match="at least 2 tasks"):
        TransferProbe(["needy"]).fit(helper_suite(), store)
    assert len(store) == 0


# ----------------------------------------------------------------- command line
def test_cli_writes_the_affinity_and_resumes(tmp_path, capsys):
    out = tmp_path / "aff.json"
    argv = ["probe", "transfer", "planted", "-o", "n_examples=300", "--tasks", "c0t0,c0t1,conflict",
            "--epochs", "2", "--seeds", "2", "--store", str(tmp_path / "runs"), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "transfer-frozen" in printed and "cost: 18 runs" in printed and str(out) in printed
    aff = Affinity.load(out)
    assert aff.tasks == ["c0t0", "c0t1", "conflict"] and aff.n_seeds == 2
    assert json.loads(out.read_text())["meta"]["mode"] == "frozen"
    n_runs = len(RunStore(tmp_path / "runs"))
    pair_argv = argv[:1] + ["pairwise"] + argv[2:] + ["--cheap"]
    assert main(pair_argv) == 0
    assert "pairwise-cheap" in capsys.readouterr().out
    assert len(RunStore(tmp_path / "runs")) == n_runs + 2 * (3 + 3)  # cheap: own singles, pairs
    assert main(["probe", "nope", "planted"]) == 2
    assert "unknown probe kind" in capsys.readouterr().err
