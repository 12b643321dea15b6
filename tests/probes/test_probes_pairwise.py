"""Pairwise probe (Standley): planted truth recovered, nothing trains twice, HOA tables, direction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from torch import nn

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.probes.pairwise import PairwiseProbe, cheap_config, measure_groups
from taskrel.store import RunStore
from taskrel.suite import Suite, Task
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

# A config tuned for the planted suite (small MLP, ~200 labels a task): see the probes' report.
PLANTED_CONFIG = TrainConfig(lr=3e-3, batch_size=32, epochs=30, patience=6)
PLANTED_TASKS = ["c0t0", "c0t1", "c1t0", "c1t1", "unrelated", "conflict"]
SEEDS = [0, 1]


def planted_store(tmp_path_factory) -> RunStore:
    """One store for the planted runs of both probe test modules (they share single runs)."""
    return RunStore(tmp_path_factory.getbasetemp() / "probes-planted-store")


def planted_settings() -> dict:
    """The config and seeds of the planted runs (a probe's parameters)."""
    return {"config": PLANTED_CONFIG, "seeds": SEEDS}


def cluster_auc(aff: Affinity, truth: dict) -> float:
    """AUC of same-cluster pairs (positives) against pairs across clusters (negatives).

    Over the off-diagonal entries; ``unrelated`` and ``conflict`` (cluster -1) are in no
    cluster, so every pair with them is a negative.
    """
    cl = truth["cluster"]
    y, x = [], []
    for i, a in enumerate(aff.tasks):
        for j, b in enumerate(aff.tasks):
            if i != j:
                y.append(int(cl[a] >= 0 and cl[a] == cl[b]))
                x.append(aff.values[i, j])
    return float(roc_auc_score(y, x))


def helper_suite(n: int = 600, seed: int = 0) -> Suite:
    """``needy`` (~6% labelled) needs feature f; ``helper`` is f, labelled everywhere;
    ``unrelated`` reads another feature. Only helper should help needy."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype("float32")
    a, b = rng.normal(size=(8, 2)), rng.normal(size=(8, 2))
    f = np.tanh(X @ a) @ np.array([1.0, -1.0])
    g = np.tanh(X @ b) @ np.array([1.0, 1.0])
    targets = {
        "needy": np.where(rng.random(n) < 0.06, f + 0.1 * rng.normal(size=n), np.nan),
        "helper": f + 0.1 * rng.normal(size=n),
        "unrelated": g + 0.1 * rng.normal(size=n),
    }
    stages = [
        lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU()),
        lambda: nn.Sequential(nn.Linear(16, 8), nn.ReLU()),
    ]
    tasks = [Task(t, "regression") for t in targets]
    return Suite("helper", X, tasks, targets, stages, split=(0.5, 0.25, 0.25))


HELPER_SETTINGS = {"config": TrainConfig(lr=3e-3, batch_size=32, epochs=30, patience=6), "seeds": [0]}


@pytest.fixture(scope="module")
def planted_suite():
    return get_suite("planted")


@pytest.fixture(scope="module")
def fitted(planted_suite, tmp_path_factory):
    store = planted_store(tmp_path_factory)
    probe = PairwiseProbe(PLANTED_TASKS, **planted_settings()).fit(planted_suite, store)
    return probe, store


@pytest.fixture(scope="module")
def helper_store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("helper-store"))


# ----------------------------------------------------------------- planted truth
def test_ranks_same_cluster_pairs_first(fitted, planted_suite):
    probe, _ = fitted
    aff = probe.affinity_
    assert aff.measure == "pairwise" and aff.n_seeds == 2 and aff.tasks == PLANTED_TASKS
    assert cluster_auc(aff, planted_suite.truth) >= 0.9
    assert np.all(np.diag(aff.values) == 0)
    assert aff.std.shape == aff.values.shape and (aff.std > 0).any()


def test_conflict_hurts_its_cluster(fitted):
    aff = fitted[0].affinity_
    assert aff.value("conflict", "c0t0") < 0
    assert aff.value("conflict", "c0t1") < 0


def test_values_are_relative_loss_changes(fitted):
    probe = fitted[0]
    seed = SEEDS[0]
    alone = probe.single_loss_[seed]["val"]["c0t0"]
    with_conflict = probe.pair_loss_[seed]["val"][("c0t0", "conflict")]["c0t0"]
    expected = (alone - with_conflict) / alone
    assert probe.affinity_.per_seed[0, PLANTED_TASKS.index("conflict"), 0] == pytest.approx(expected)


def test_cost_counts_every_run(fitted):
    probe = fitted[0]
    n = len(PLANTED_TASKS)
    runs = len(SEEDS) * (n + n * (n - 1) // 2)
    assert probe.affinity_.cost.runs == len(probe.records_) == runs
    assert probe.affinity_.cost.steps == sum(r.steps for r in probe.records_)


def test_asking_again_trains_nothing(fitted, planted_suite):
    _, store = fitted
    before = len(store)
    again = PairwiseProbe(PLANTED_TASKS, **planted_settings()).fit(planted_suite, store)
    assert again.trained_ == 0 and len(store) == before
    np.testing.assert_array_equal(again.affinity_.values, fitted[0].affinity_.values)


def test_json_round_trip(fitted, tmp_path):
    aff = fitted[0].affinity_
    back = Affinity.load(aff.save(tmp_path / "pairwise.json"))
    np.testing.assert_array_equal(back.values, aff.values)
    np.testing.assert_array_equal(back.std, aff.std)
    assert back.cost == aff.cost and back.tasks == aff.tasks and back.meta["probe"] == "pairwise"


# ----------------------------------------------------------------- group estimates
def test_candidates_follow_the_higher_order_approximation(fitted):
    probe = fitted[0]
    table = probe.candidates(max_size=3)
    n = len(PLANTED_TASKS)
    assert len(table) == n + n * (n - 1) // 2 + n * (n - 1) * (n - 2) // 6
    single = probe.mean_single_loss()
    pair = probe.mean_pair_loss()
    assert table.value(("c0t0",), "c0t0") == pytest.approx(single["c0t0"])
    assert table.value(("c0t0", "c0t1"), "c0t1") == pytest.approx(pair[("c0t0", "c0t1")]["c0t1"])
    hoa = (pair[("c0t0", "c0t1")]["c0t0"] + pair[("c0t0", "conflict")]["c0t0"]) / 2
    assert table.value(("c0t0", "c0t1", "conflict"), "c0t0") == pytest.approx(hoa)
    assert (table.cost == 1).all()
    sized = probe.candidates(max_size=2, split="test", cost={1: 1.0, 2: 1.5})
    assert sized.cost.max() == 1.5
    assert sized.value(("c1t0",), "c1t0") == pytest.approx(probe.mean_single_loss("test")["c1t0"])


def test_measure_groups_reuses_pairs_and_singles(fitted, planted_suite):
    probe, store = fitted
    groups = [["c0t0", "c0t1"], ["c1t0"], ["conflict", "unrelated"]]
    measured = measure_groups(groups, planted_suite, store, **planted_settings())
    assert measured.trained == 0  # pairs and singles are the probe's own runs
    assert len(measured.val) == len(measured.test) == 3
    pair = probe.mean_pair_loss("test")[("c0t0", "c0t1")]
    assert measured.test.value(("c0t0", "c0t1"), "c0t0") == pytest.approx(pair["c0t0"])
    assert measured.val.value(("c1t0",), "c1t0") == pytest.approx(probe.mean_single_loss()["c1t0"])
    assert measured.table("test") is measured.test
    by_size = measure_groups(groups, planted_suite, store, **planted_settings(), cost="parameters")
    assert by_size.val.cost[0] > by_size.val.cost[1]  # two heads on one encoder > one head


# ----------------------------------------------------------------- direction
def test_direction_helper_helps_needy(helper_store):
    aff = PairwiseProbe(**HELPER_SETTINGS).fit(helper_suite(), helper_store).affinity_
    col = aff.to_frame()["needy"].drop("needy")
    assert aff.value("helper", "needy") > 0
    assert col.idxmax() == "helper"


def test_cheap_mode_trains_everything_cheap(helper_store):
    suite = helper_suite()
    full = PairwiseProbe(**HELPER_SETTINGS).fit(suite, helper_store)
    cheap = PairwiseProbe(cheap={"epochs_fraction": 0.2, "data_fraction": 0.5}, **HELPER_SETTINGS)
    cheap.fit(suite, helper_store)
    assert cheap.trained_ == 6  # its own single-task runs too: they use the cheap config
    assert cheap.config_.epochs == 6 and cheap.config_.data_fraction == 0.5
    assert all(r.spec["config"]["epochs"] == 6 for r in cheap.records_)
    assert cheap.affinity_.measure == "pairwise-cheap"
    assert cheap.affinity_.cost.examples < full.affinity_.cost.examples


# ----------------------------------------------------------------- bad input
def test_bad_input_is_refused_before_training(tmp_path):
    suite = helper_suite()
    store = RunStore(tmp_path)
    with pytest.raises(TaskrelError, match="unknown cheap option"):
        PairwiseProbe(cheap={"epochs": 0.5}, **HELPER_SETTINGS).fit(suite, store)
    with pytest.raises(TaskrelError, match="data_fraction must be in"):
        cheap_config(TrainConfig(), {"data_fraction": 0})
    with pytest.raises(TaskrelError, match="nope"):
        PairwiseProbe(["needy", "nope"], **HELPER_SETTINGS).fit(suite, store)
    with pytest.raises(TaskrelError, match="fit"):
        PairwiseProbe().candidates()
    assert len(store) == 0
