"""Partial results from every probe kind: with one task whose training always diverges (targets
~1e30), each probe gives NaN exactly at that task's entries (marked missing, the failures
listed naming it) and the healthy tasks' values it would give without that task; a probe left
with nothing fails with an error naming it; a study of two probes recommends for the rest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taskrel.affinity import Affinity
from taskrel.analysis import cluster_stability
from taskrel.errors import TaskrelError
from taskrel.probes import PROBES
from taskrel.runner import Runner
from taskrel.suite import Suite, Task
from taskrel.train import TrainConfig

HEALTHY = ["c0t0", "c0t1", "c1t0"]
CONFIG = TrainConfig(epochs=1, batch_size=64)
# small, quick settings per kind; every kind of the registry is tested
OPTIONS = {"gradient": {"every": 2}, "lookahead": {"every": 2}, "gradfeature": {"dim": 8, "n_examples": 48},
           "similarity": {"kinds": "linear", "n_probe": 32}, "calibrated": {"base_params": {"every": 2}}}
JOINT = ("gradient", "lookahead", "gradfeature", "calibrated")  # one run holds every task: replaced without "bad"
TRAINS_NOTHING = ("prediction",)  # fits ridge regressions, no network: nothing can diverge


def diverging_suite() -> Suite:
    """The planted suite's first three tasks and "bad", whose targets are ~1e30: its loss
    overflows to inf at the first step of every run that trains it."""
    from taskrel.suites import get_suite

    s = get_suite("planted", n_clusters=2, n_examples=120, label_fraction=0.6)
    targets = {**{t: s.targets[t] for t in HEALTHY}, "bad": (s.inputs[:, 0] * 1e30).astype(np.float32)}
    tasks = [s.task(HEALTHY[0]), Task("bad", "regression"), *(s.task(t) for t in HEALTHY[1:])]
    return Suite("planted", s.inputs, tasks, targets, s.stages, split=s.split, stage_names=s.stage_names)


@pytest.fixture(scope="module")
def suite() -> Suite:
    return diverging_suite()


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Runner:
    r = Runner(tmp_path_factory.mktemp("partial-probes"), n_jobs=1, progress=False)
    yield r
    r.close()


def probe_of(kind: str, tasks=None):
    return PROBES[kind](tasks, config=CONFIG, seeds=[0], **OPTIONS.get(kind, {}))


@pytest.fixture(scope="module")
def fitted(suite, runner):
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = probe_of(kind).fit(suite, runner)
        return cache[kind]

    return get


def test_a_probe_that_trains_nothing_measures_the_task_others_cannot_train(fitted):
    for kind in TRAINS_NOTHING:
        aff = fitted(kind).affinity_
        assert np.isfinite(aff.values).all() and aff.missing is None and aff.meta["failed"] == []


@pytest.mark.parametrize("kind", sorted(k for k in PROBES if k not in TRAINS_NOTHING))
def test_nan_exactly_at_the_diverging_tasks_entries(kind, fitted):
    probe = fitted(kind)
    for aff in probe.affinities_.values():
        assert aff.tasks == ["c0t0", "bad", "c0t1", "c1t0"]
        b = aff.tasks.index("bad")
        off = np.zeros((4, 4), dtype=bool)
        off[b, :] = off[:, b] = True
        off[b, b] = False  # the diagonal: NaN where the probe measures it (a task with itself), else a constant
        holes = np.isnan(aff.values) if not aff.is_staged else np.isnan(aff.values).any(axis=0)
        missing = aff.missing if not aff.is_staged else aff.missing.any(axis=0)
        assert holes[off].all() and not holes[~off & ~np.eye(4, dtype=bool)].any(), f"{kind}: NaN at {np.argwhere(holes)}"
        healthy = [i for i in range(4) if i != b]
        assert not holes[healthy, healthy].any()  # the healthy tasks' diagonal is measured
        np.testing.assert_array_equal(missing, holes)  # every NaN is marked missing, nothing else
        failed = aff.meta["failed"]
        assert failed and all("bad" in f["tasks"] or f["failed_task"] is None for f in failed)
        assert any(f["failed_task"] == "bad" and "loss of task 'bad' became inf" in f["error"] for f in failed)
        sub, left = aff.complete()
        assert sub.tasks == HEALTHY and list(left) == ["bad"] and left["bad"].startswith("diverged: training loss of task 'bad'")


@pytest.mark.parametrize("kind", sorted(k for k in PROBES if k != "surrogate"))
def test_the_healthy_values_are_those_of_the_probe_on_the_healthy_tasks(kind, fitted, suite, runner):
    """What the probe gives the healthy tasks is what it gives when asked for them alone: the
    same runs (nothing trains again; for the joint probes, the run replaced without "bad")."""
    whole = fitted(kind)
    alone = probe_of(kind, HEALTHY).fit(suite, runner)
    assert alone.trained_ == 0 and not alone.failed_
    np.testing.assert_allclose(whole.affinity_.subset(HEALTHY).values, alone.affinity_.values, rtol=1e-9, atol=1e-12)
    replaced = whole.affinity_.meta.get("replaced", [])
    if kind in JOINT:
        assert [(r["failed_task"], r["tasks"]) for r in replaced] == [("bad", HEALTHY)]
        assert "without 'bad'" in replaced[0]["by"]
    else:
        assert replaced == []


@pytest.mark.parametrize("kind", ["surrogate", "gradfeature", "pairwise"])
def test_candidate_tables_name_the_diverged_task_and_restrict_to_the_others(kind, fitted):
    probe = fitted(kind)
    with pytest.raises(TaskrelError, match="bad"):
        probe.candidates()
    table = probe.candidates(tasks=HEALTHY)
    assert table.tasks == HEALTHY and len(table) == 7 and np.isfinite(table.values[table.members]).all()
    with pytest.raises(TaskrelError, match="unknown task|not in"):
        probe.candidates(tasks=["c0t0", "nope"])


@pytest.mark.parametrize("kind", ["gradient", "gradfeature"])
def test_a_joint_probe_left_with_one_task_fails_naming_the_task(kind, suite, tmp_path):
    with pytest.raises(TaskrelError, match=rf"{kind} probe: every run failed; first reason: training loss of task 'bad' became inf"):
        probe_of(kind, ["c0t0", "bad"]).fit(suite, tmp_path)


# ---------------------------------------------------------------------- cluster stability with gaps
def _blocks(noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.kron(np.eye(2), np.ones((3, 3))) + noise * rng.normal(size=(6, 6))
    return (m + m.T) / 2


def test_stability_uses_the_seeds_and_tasks_it_has():
    tasks = list("abcdef")
    ps = np.stack([_blocks(0.05, s) for s in range(4)])
    full = cluster_stability(Affinity(tasks, ps.mean(0), per_seed=ps), n_clusters=2)
    gappy = ps.copy()
    gappy[1, 0, 4] = gappy[1, 4, 0] = np.nan  # seed 1 lacks the pair a, e: clustered without e
    gappy[3] = np.nan  # seed 3: every run failed
    st = cluster_stability(Affinity(tasks, np.nanmean(gappy, 0), per_seed=gappy), n_clusters=2)
    assert st.seeds_used_ == [0, 1, 2] and set(st.skipped_) == {1, 3}
    assert "without e" in st.skipped_[1] and "seed 3: values for 0 task(s)" in st.skipped_[3]
    assert st.labels_[1, 4] == -1 and (st.labels_[3] == -1).all() and (st.labels_[[0, 2]] >= 0).all()
    assert st.mean_ari_ == pytest.approx(1.0) == full.mean_ari_  # planted blocks: every seed agrees
    co = st.coassignment_
    assert co.loc["a", "b"] == 1.0 and co.loc["a", "d"] == 0.0 and not co.isna().any().any()
    assert isinstance(co, pd.DataFrame) and co.loc["a", "e"] == 0.0  # from seeds 0 and 2 only
    one = gappy.copy()
    one[:2] = np.nan  # seeds 0, 1 and 3 unusable: seed 2 alone
    with pytest.raises(TaskrelError, match=r"only 1 of 4 seeds can be clustered: seed 0: values for 0"):
        cluster_stability(Affinity(tasks, np.nanmean(gappy, 0), per_seed=one), n_clusters=2)


def test_stability_refuses_an_affinity_with_entries_no_seed_measured():
    tasks = list("abcdef")
    ps = np.stack([_blocks(0.05, s) for s in range(2)])
    ps[:, 0, 1] = np.nan
    with pytest.raises(TaskrelError, match=r"entries no seed measured \(tasks \['a', 'b'\]\); take \.complete\(\) first"):
        cluster_stability(Affinity(tasks, ps.mean(0), per_seed=ps, missing=True), n_clusters=2)


# ---------------------------------------------------------------------- a study of two probe kinds
def test_a_study_of_two_probes_recommends_for_the_healthy_tasks(suite, runner):
    from taskrel.analysis import GroupingSearch, TaskClustering
    from taskrel.study import Grouping, Study, Validation

    probes = {"gradfeature": probe_of("gradfeature"), "similarity": probe_of("similarity")}
    study = Study(probes=probes, clustering=TaskClustering(n_clusters=2),
                  grouping=Grouping(GroupingSearch(budget=2), source="gradfeature"),
                  validation=Validation(seeds=[0], front=False), config=CONFIG)
    result = study.fit(suite, runner).result_
    assert list(result.left_out) == ["bad"] and result.left_out["bad"].startswith("diverged: training loss of task 'bad'")
    assert result.errors == [], result.errors
    assert set(result.affinities) == {"gradfeature", "similarity"}
    assert result.grouping["source"] == "gradfeature" and result.remaining_tasks == HEALTHY
    assert result.recommended is not None and sorted(result.recommended.tasks) == sorted(HEALTHY)
    assert {r["task"] for r in result.validation} == set(HEALTHY) and all(r["status"] == "ok" for r in result.validation)


def test_a_transfer_from_a_diverged_task_names_the_task_and_why(fitted):
    failed = fitted("transfer").affinity_.meta["failed"]
    warm = [f["error"] for f in failed if f["error"].startswith("warm start")]
    assert warm and all(e.startswith("warm start from task 'bad': its source run single bad seed0 failed (") for e in warm)
    assert all("loss of task 'bad' became inf" in e for e in warm)
