"""The runner: records aligned with the specs, nothing trains twice, one queue with warm-start
dependencies, retries, no pool for a single run; and run identity: a subset shares keys,
a changed ``forward`` or initialisation does not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.runner import Runner, available_cores
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

CFG = TrainConfig(epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def suite():
    return get_suite("planted", n_clusters=1, n_examples=200)


def single(t: str, seed: int = 0, keep: bool = False) -> RunSpec:
    return RunSpec(SharingLayout.separate([t], 3), CFG, seed, keep_weights=keep, label=f"single {t}")


def test_records_are_aligned_with_the_specs_and_nothing_trains_twice(suite, tmp_path):
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    specs = [single("c0t0"), single("c0t1"), single("c0t0"), RunSpec(SharingLayout.shared(["c0t1", "c0t0"], 3), CFG)]
    records = runner.run(suite, specs)
    assert [r.tasks for r in records] == [["c0t0"], ["c0t1"], ["c0t0"], ["c0t0", "c0t1"]]
    assert records[0] is records[2] and records.trained == 3 and records.reused == 0
    assert records.keys == [runner.key(suite, s) for s in specs]
    again = runner.run(suite, list(reversed(specs)))
    assert again.trained == 0 and again.reused == 3
    assert [r.key for r in again] == list(reversed(records.keys))


def test_runs_of_several_suites_train_in_one_call_each_on_its_suite(suite, tmp_path):
    """run_all: one queue over a suite and the same suite at half width; each job's records are
    aligned with its specs and trained on its own suite; a run two jobs share trains once."""
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    half = suite.at_width(0.5)
    a, b = single("c0t0"), single("c0t1")
    full, narrow, again = runner.run_all([(suite, [a, b]), (half, [b, a]), (suite, [b])])
    assert (full.trained, narrow.trained, again.trained) == (2, 2, 1)  # again's run: full's, trained once
    assert len(runner.store) == 4 and again[0] is full[1]
    assert full.keys == [runner.key(suite, a), runner.key(suite, b)]
    assert narrow.keys == [runner.key(half, b), runner.key(half, a)] and not set(full.keys) & set(narrow.keys)
    assert all(n.n_parameters < f.n_parameters for n, f in zip(narrow, reversed(full)))  # built at width 0.5
    bad = RunSpec(SharingLayout.separate(["nope"], 3), CFG)
    with pytest.raises(TaskrelError, match="nope"):  # every job is checked before anything trains
        runner.run_all([(suite, [single("c0t0", seed=5)]), (half, [bad])])
    assert len(runner.store) == 4
    assert runner.run_all([]) == []


def test_a_single_pending_run_starts_no_pool(suite, tmp_path):
    runner = Runner(tmp_path, n_jobs=2, progress=False)
    assert runner.workers == 2 and Runner(tmp_path).workers == available_cores()
    runner.run(suite, [single("c0t0")])
    assert runner._pool is None


def test_warm_start_waits_for_its_source_in_one_queue(suite, tmp_path):
    src = single("c0t0", keep=True)
    moved = RunSpec(SharingLayout.separate(["c0t1"], 3), CFG.with_(freeze_encoder=True), warm_start=(src, "c0t0"))
    with Runner(tmp_path, n_jobs=2, progress=False) as runner:
        records = runner.run(suite, [moved, src, single("c0t1")])
    assert all(r.ok for r in records) and records.trained == 3
    assert records[0].spec["warm_start"] == [records[1].key, "c0t0"]


def test_missing_warm_start_source_is_refused_before_training(suite, tmp_path):
    moved = RunSpec(SharingLayout.separate(["c0t1"], 3), CFG, warm_start=("ab" * 12, "c0t0"))
    runner = Runner(tmp_path, progress=False)
    with pytest.raises(TaskrelError, match="neither stored nor in the plan"):
        runner.run(suite, [moved])
    assert len(runner.store) == 0


def test_a_stored_failure_is_reused_unless_retries_are_asked_for(suite, tmp_path):
    spec = single("c0t0")
    store = RunStore(tmp_path)
    store.put(RunRecord(spec.key(suite), spec.identity(suite), "failed", error="planted failure"))
    assert Runner(store, progress=False).run(suite, [spec]).trained == 0
    records = Runner(store, retries=1, progress=False).run(suite, [spec])
    assert records.trained == 1 and records[0].ok


@pytest.mark.parametrize("kwargs, field", [({"n_jobs": 0}, "n_jobs"), ({"n_jobs": -2}, "n_jobs"), ({"backend": "mpi"}, "backend"),
                                           ({"scheduler": "tcp://127.0.0.1:1"}, "scheduler"), ({"retries": -1}, "retries")])
def test_bad_settings_are_refused(tmp_path, kwargs, field):
    with pytest.raises(TaskrelError, match=field):
        Runner(tmp_path, **kwargs)


def test_unknown_callback_is_refused_before_training(suite, tmp_path):
    spec = RunSpec(SharingLayout.shared(["c0t0", "c0t1"], 3), CFG, probes=(("no-such-callback", ()),))
    with pytest.raises(TaskrelError, match="no-such-callback"):
        Runner(tmp_path, progress=False).run(suite, [spec])


# ---------------------------------------------------------------------- run identity
def test_a_subset_shares_the_runs_of_its_tasks(suite):
    sub = suite.subset(["c0t1", "c0t0"])
    for spec in (single("c0t0"), RunSpec(SharingLayout.shared(["c0t0", "c0t1"], 3), CFG)):
        assert spec.key(sub) == spec.key(suite)
    assert single("c0t0").key(suite) != single("c0t1").key(suite)
    assert sub.fingerprint() != suite.fingerprint()


class Doubler(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return torch.relu(self.fc(x))


class Tripler(Doubler):
    def forward(self, x):
        return torch.tanh(self.fc(x))


def _suite(base: Suite, last_stage) -> Suite:
    return Suite(base.name, base.inputs, base.tasks, base.targets, [*base.stages[:-1], last_stage],
                 split=base.split, stage_names=base.stage_names)


def test_a_changed_forward_or_initialisation_gives_new_keys(suite):
    width = suite.feature_shapes()[-2][0]
    a = _suite(suite, lambda: Doubler(width))
    b = _suite(suite, lambda: Tripler(width))
    again = _suite(suite, lambda: Doubler(width))
    spec = single("c0t0")
    assert spec.key(a) == spec.key(again)
    assert spec.key(a) != spec.key(b)

    def zeros():
        m = Doubler(width)
        nn.init.zeros_(m.fc.weight)
        return m

    assert spec.key(_suite(suite, zeros)) != spec.key(a)


def test_a_key_needs_the_suite_not_a_string():
    with pytest.raises(TaskrelError, match="needs the Suite"):
        single("c0t0").key("0123abcd")


def test_runs_of_an_older_store_are_never_misread_and_are_named(suite, tmp_path, capsys):
    """A record keyed by the older identity (no ``identity`` field) is left alone: the run
    trains again under its new key, with one line saying why."""
    spec = single("c0t0")
    store = RunStore(tmp_path)
    old = dict(spec.identity(suite))
    del old["identity"]
    store.put(RunRecord("ab" * 12, old, "ok", metrics={"val": {"c0t0": {"loss": -1.0, "metric": 0.0}}}))
    records = Runner(store, progress=False).run(suite, [spec])
    assert records.trained == 1 and records[0].key != "ab" * 12 and records[0].loss("c0t0") > 0
    assert "older taskrel" in capsys.readouterr().err
