"""One contract, checked over every registered probe (in the manner of scikit-learn's estimator
checks): parameters round-trip, results carry task names, a refit on the same store trains
nothing, permuting the tasks permutes the matrix, and the direction convention holds."""

from __future__ import annotations

import numpy as np
import pytest

from taskrel.base import clone
from taskrel.errors import TaskrelError
from taskrel.plans import Plan
from taskrel.probes import PROBES, probe_class
from taskrel.runner import Runner
from taskrel.store import RunSpec
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

TASKS = ["c0t0", "c0t1", "conflict"]
CONFIG = TrainConfig(epochs=2, batch_size=32, lr=3e-3, patience=2)
# the few parameters that keep each kind tiny (a kind not listed runs with its defaults)
PARAMS = {"gradient": {"every": 2}, "lookahead": {"every": 2}, "similarity": {"kinds": ["linear"], "n_probe": 40},
          "surrogate": {"n_subsets": 4}, "calibrated": {"base_params": {"every": 2}}}
KINDS = sorted(PROBES)
TRAINS_NOTHING = {"prediction"}  # fits ridge regressions, no network: no runs, only seconds


def make(kind: str, tasks=TASKS):
    return probe_class(kind)(tasks=list(tasks), config=CONFIG, seeds=[0], **PARAMS.get(kind, {}))


@pytest.fixture(scope="module")
def suite():
    return get_suite("planted", n_clusters=1, n_examples=200)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return Runner(tmp_path_factory.mktemp("contracts"), n_jobs=1, progress=False)


@pytest.fixture(scope="module")
def fitted(suite, runner):
    cache = {}

    def get(kind: str):
        if kind not in cache:
            cache[kind] = make(kind).fit(suite, runner)
        return cache[kind]

    return get


@pytest.mark.parametrize("kind", KINDS)
def test_params_round_trip(kind):
    probe = make(kind)
    again = clone(probe)
    assert again.get_params() == probe.get_params() and repr(again) == repr(probe)
    assert type(probe).__name__ in repr(probe) and "c0t1" in repr(probe)
    assert probe.set_params(seeds=[3]) is probe and probe.get_params()["seeds"] == [3]
    with pytest.raises(TaskrelError, match="no_such_parameter"):
        probe.set_params(no_such_parameter=1)
    assert not hasattr(probe, "affinity_")  # constructing learns nothing


@pytest.mark.parametrize("kind", KINDS)
def test_fit_returns_self_with_named_results(kind, suite, fitted):
    probe = fitted(kind)
    aff = probe.affinity_
    assert aff.tasks == TASKS and aff.values.shape[-2:] == (3, 3)
    assert aff.measure and aff.cost.runs == len(probe.records_)
    assert len(probe.records_) > 0 or (kind in TRAINS_NOTHING and aff.cost.seconds > 0)
    assert probe.failed_ == [] and np.isfinite(aff.values).all()
    assert aff is next(iter(probe.affinities_.values()))


@pytest.mark.parametrize("kind", KINDS)
def test_plan_runs_once_per_fit_and_is_what_the_first_stage_trains(kind, suite, runner, fitted, monkeypatch):
    """fit plans once; measure is handed that plan (nothing re-derives it), and the plan's specs
    are exactly the runs fitting without a follow-up stage uses."""
    fitted(kind)  # the store holds every run
    probe = make(kind)
    calls = []
    original = type(probe).plan
    monkeypatch.setattr(type(probe), "plan", lambda self, s: calls.append(1) or original(self, s))
    probe.fit(suite, runner)
    assert len(calls) == 1
    plan = original(make(kind), suite)
    assert isinstance(plan, Plan) and all(isinstance(s, RunSpec) for s in plan.specs)
    keys = {runner.key(suite, s) for s in plan.specs}
    used = {r.key for r in probe.records_}
    assert keys <= used and (kind == "calibrated" or keys == used)


@pytest.mark.parametrize("kind", KINDS)
def test_candidates_is_declared(kind, fitted):
    """Every probe answers candidates(): a table of group values, or None (no table)."""
    table = fitted(kind).candidates(max_size=2)
    assert table is None or (set(table.tasks) == set(TASKS) and len(table) == 6)


@pytest.mark.parametrize("kind", KINDS)
def test_refit_on_the_same_store_trains_nothing(kind, suite, runner, fitted):
    first = fitted(kind)
    again = make(kind).fit(suite, runner)
    assert again.trained_ == 0
    np.testing.assert_allclose(again.affinity_.values, first.affinity_.values)


@pytest.mark.parametrize("kind", KINDS)
def test_permuting_tasks_permutes_the_matrix(kind, suite, runner, fitted):
    perm = [2, 0, 1]
    moved = make(kind, [TASKS[i] for i in perm]).fit(suite, runner)
    assert moved.trained_ == 0  # the same runs, whatever the order of the tasks
    assert moved.affinity_.tasks == [TASKS[i] for i in perm]
    values = fitted(kind).affinity_.values
    np.testing.assert_allclose(moved.affinity_.values, values[..., perm, :][..., :, perm], atol=1e-9)


def test_direction_pairwise_row_is_the_source(fitted):
    """values[source, target] is the relative drop of the *target's* loss next to the source."""
    probe = fitted("pairwise")
    alone = probe.single_loss_[0]["val"]
    for (a, b), with_ in probe.pair_loss_[0]["val"].items():
        expected = (alone[b] - with_[b]) / alone[b]
        assert probe.affinity_.value(a, b) == pytest.approx(expected)


def test_direction_transfer_row_is_the_source(suite, fitted):
    probe = fitted("transfer")
    for row in probe.table_.itertuples():
        sign = 1 if suite.task(row.target).higher_is_better else -1
        assert probe.affinity_.value(row.source, row.target) == pytest.approx(sign * (row.transfer - row.scratch))


@pytest.mark.parametrize("kind", ["gradient", "similarity"])
def test_symmetric_measures_are_symmetric(kind, fitted):
    v = fitted(kind).affinity_.values
    np.testing.assert_allclose(v, np.swapaxes(v, -1, -2), atol=1e-9)


def test_a_failed_seed_is_left_out_of_the_mean(suite, runner, fitted):
    """A run that failed leaves NaN in its seed only: the entry is the mean of the others."""
    from taskrel.probes.base import affinity_from_seeds

    good = fitted("pairwise").affinity_.values
    per_seed = np.stack([good, np.full_like(good, np.nan)])
    aff = affinity_from_seeds(TASKS, per_seed, "demo")
    np.testing.assert_allclose(aff.values, good)
    assert aff.n_seeds == 2 and len(aff.meta["missing"]) == 9


@pytest.mark.parametrize("kind", KINDS)
def test_fit_without_a_runner_says_what_to_pass(kind, suite):
    with pytest.raises(TaskrelError, match="needs a runner: a taskrel.Runner, a RunStore or a store directory"):
        make(kind).fit(suite)
    with pytest.raises(TaskrelError, match="fit needs a Runner or a RunStore, got int"):
        make(kind).fit(suite, 3)
