"""Dataset-backed suites: same training as in memory, missing targets, transforms, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from taskrel.datasets import DatasetSuite
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.suites import get_suite
from taskrel.train import TrainConfig, train

TASKS = ["c0t0", "c0t1", "c1t0"]
CFG = TrainConfig(epochs=2, batch_size=32, lr=0.01)


class Arrays(Dataset):
    """Items (x, {task: y}) read from in-memory arrays (NaN becomes None: a missing label)."""

    def __init__(self, X, targets, drop=None):
        self.X, self.targets, self.drop = X, targets, drop

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        ys = {t: (None if np.isnan(y[i]) else float(y[i])) for t, y in self.targets.items() if t != self.drop}
        return torch.from_numpy(self.X[i]), ys


@pytest.fixture(scope="module")
def planted():
    return get_suite("planted", n_examples=200, label_fraction=0.7).subset(TASKS)


def streamed(s, **kw):
    return DatasetSuite("planted", Arrays(s.inputs, {t: s.targets[t] for t in TASKS}), s.tasks, s.stages,
                        split=s.split, stage_names=s.stage_names, **kw)


def test_training_from_a_dataset_equals_training_in_memory(planted):
    lay = SharingLayout.shared(TASKS, planted.n_stages)
    mem = train(planted, lay, CFG, seed=2)
    ds = train(streamed(planted), lay, CFG, seed=2)
    assert np.isnan(planted.targets["c0t0"]).any()  # missing labels take part
    assert ds.metrics == mem.metrics and ds.history == mem.history


def test_per_split_datasets(planted):
    parts = {s: Arrays(planted.inputs[idx], {t: planted.targets[t][idx] for t in TASKS}) for s, idx in planted.split.items()}
    s = DatasetSuite("planted", parts, planted.tasks, planted.stages)
    assert [len(s.split[k]) for k in ("train", "val", "test")] == [len(planted.split[k]) for k in ("train", "val", "test")]
    X, ys = s.tensors("val", ["c0t1"])
    assert np.array_equal(X.numpy(), planted.inputs[planted.split["val"]])
    assert np.array_equal(ys["c0t1"].numpy(), planted.targets["c0t1"][planted.split["val"]], equal_nan=True)


def test_item_without_a_task_target_is_named(planted):
    with pytest.raises(TaskrelError, match="without a target for task 'c0t1'"):
        DatasetSuite("bad", Arrays(planted.inputs, {t: planted.targets[t] for t in TASKS}, drop="c0t1"),
                     planted.tasks, planted.stages, split=planted.split)


def test_train_transform_reaches_training_only(planted):
    s = streamed(planted, train_transform=Negate())
    x_train, _ = next(iter(s.loader(s.split["train"][:4], TASKS, 4, train=True)))
    x_eval, _ = next(iter(s.loader(s.split["train"][:4], TASKS, 4)))
    assert torch.equal(x_train, -x_eval)
    lay = SharingLayout.shared(TASKS, planted.n_stages)
    assert train(s, lay, CFG, seed=0).metrics != train(streamed(planted), lay, CFG, seed=0).metrics


class Negate:
    def __call__(self, x):
        return -x


def test_fingerprint_rule(planted):
    a, b = streamed(planted), streamed(planted)
    assert a.fingerprint(TASKS) == b.fingerprint(TASKS) and a.fingerprint(["c0t0"]) != a.fingerprint(["c0t1"])
    X = planted.inputs.copy()
    X[0] += 1.0  # item 0 is in the sample (the first, the last and evenly between)
    changed = DatasetSuite("planted", Arrays(X, {t: planted.targets[t] for t in TASKS}), planted.tasks, planted.stages, split=planted.split)
    assert changed.fingerprint(TASKS) != a.fingerprint(TASKS)
    v1, v2 = streamed(planted, data_version="v1"), streamed(planted, data_version="v2")
    assert v1.fingerprint(TASKS) != v2.fingerprint(TASKS) != a.fingerprint(TASKS)
    assert streamed(planted, train_transform=Negate()).fingerprint(TASKS) != a.fingerprint(TASKS)


def test_workers_give_the_same_batches(planted):
    s0, s1 = streamed(planted), streamed(planted, workers=1)
    b0 = list(s0.batches("val", TASKS, "cpu", 16))
    b1 = list(s1.batches("val", TASKS, "cpu", 16))
    assert len(b0) == len(b1) and all(torch.equal(x0, x1) for (x0, _), (x1, _) in zip(b0, b1))


@pytest.mark.slow
def test_probes_and_study_run_on_a_dataset_backed_suite(planted, tmp_path):
    from taskrel.analysis import GroupingSearch
    from taskrel.probes import GradientProbe, PairwiseProbe, SimilarityProbe
    from taskrel.study import Study, Validation

    study = Study(probes=[PairwiseProbe(), GradientProbe(every=2), SimilarityProbe()], grouping=GroupingSearch(budget=2),
                  validation=Validation(seeds=[0], front=False), tasks=TASKS, config=CFG, verbose=False)
    result = study.fit(streamed(planted), tmp_path / "store").result_
    assert sorted(result.affinities) == ["gradient", "pairwise", "similarity"]
    for name in result.affinities:
        assert np.isfinite(result.affinity(name).plain().values).all()
    assert {r["status"] for r in result.validation} == {"ok"}
    assert sorted(t for g in result.recommended.blocks(0) for t in g) == sorted(TASKS)
