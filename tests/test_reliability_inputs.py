"""Odd inputs get a clear TaskrelError naming what is wrong, before any training: sizes checked
before allocating, lazy stages, factories that change, own losses that train nothing, nan
options, float32 overflow, one class in a train split, a row listed twice."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites import get_suite

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4)).astype(np.float32)
Y = {"a": RNG.normal(size=60), "b": (RNG.normal(size=60) > 0).astype(float)}
TASKS = [Task("a", "regression"), Task("b", "binary")]


def _suite(**kw):
    args = {"name": "s", "inputs": X, "tasks": TASKS, "targets": Y, "stages": [lambda: nn.Linear(4, 8)]} | kw
    return Suite(**args)


def test_a_huge_n_examples_is_refused_before_allocating():
    start = time.monotonic()
    with pytest.raises(TaskrelError, match=r"planted: n_examples=10,000,000,000,000 .* would need .* GiB.*ask for fewer"):
        get_suite("planted", n_examples=10_000_000_000_000)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("option, value", [("noise", float("nan")), ("spread", float("inf")), ("n_examples", 1e3),
                                           ("seed", -1), ("label_fraction", 0)])
def test_a_bad_planted_option_is_named(option, value):
    with pytest.raises(TaskrelError, match=f"planted: option {option} must be"):
        get_suite("planted", **{option: value})


def test_a_lazy_stage_is_refused_by_name():
    with pytest.raises(TaskrelError, match=r"stage 0 \(stage0\): uses LazyLinear, a lazy module.*nn.Linear\(in_features, out\)"):
        _suite(stages=[lambda: nn.LazyLinear(8)])


def test_a_factory_that_grows_at_every_call_is_refused_naming_the_stage():
    calls = []

    def wider():
        calls.append(1)
        return nn.Linear(8, 8 + len(calls))

    with pytest.raises(TaskrelError, match=r"stage 1 \(stage1\): its factory gives modules of different shapes at each call \(weight"):
        _suite(stages=[lambda: nn.Linear(4, 8), wider])


@pytest.mark.parametrize("loss", [lambda o, y: torch.tensor(0.5), lambda o, y: ((o - y) ** 2).mean().detach(),
                                  lambda o, y: torch.tensor(float(((o - y) ** 2).mean()))],
                         ids=["constant", "detached", "rebuilt from a float"])
def test_an_own_loss_that_trains_nothing_is_refused_naming_the_task(loss):
    tasks = [Task("a", "regression", loss=loss), Task("b", "binary")]
    with pytest.raises(TaskrelError, match=r"suite 's', task 'a': its loss returns a tensor that does not depend on the model's output"):
        _suite(tasks=tasks)


def test_an_own_loss_that_trains_is_accepted():
    tasks = [Task("a", "regression", loss=lambda o, y: ((o - y) ** 2).mean()), Task("b", "binary")]
    assert _suite(tasks=tasks).task_names == ["a", "b"]


def test_inputs_past_float32_are_said_to_overflow():
    big = X.astype(np.float64)
    big[3, 1] = 1e39
    with pytest.raises(TaskrelError, match=r"inputs overflow float32: 1 value\(s\).*first 1e\+39 in row 3"):
        _suite(inputs=big)


def test_a_binary_task_with_one_class_in_its_train_split_is_refused():
    split = {"train": np.arange(0, 30), "val": np.arange(30, 45), "test": np.arange(45, 60)}
    y = Y["b"].copy()
    y[split["train"]] = 1.0
    y[[30, 45]] = 0.0
    with pytest.raises(TaskrelError, match=r"task 'b': its train split has one class only \(every label is 1\)"):
        _suite(targets={"a": Y["a"], "b": y}, split=split)


def test_a_row_listed_twice_in_a_split_is_refused():
    split = {"train": np.r_[np.arange(0, 30), 7], "val": np.arange(30, 45), "test": np.arange(45, 60)}
    with pytest.raises(TaskrelError, match=r"split: 'train' lists 1 row\(s\) more than once \(first: row 7\)"):
        _suite(split=split)


@pytest.mark.parametrize("name, options, match", [
    ("mnist", {"n_examples": 10**13}, r"mnist: option n_examples must be an integer in \[1, 5000\] or None"),
    ("multimnist", {"n_examples": -5}, "multimnist: option n_examples must be"),
    ("mnist-dense", {"n_examples": float("nan")}, "mnist-dense: option n_examples must be"),
    ("mnist", {"split_seed": -1}, "mnist: option split_seed must be an integer >= 0"),
    ("multimnist", {"seed": -1}, "multimnist: option seed must be an integer >= 0"),  # was numpy's ValueError
    ("mnist-dense", {"split_seed": 1.5}, "mnist-dense: option split_seed must be an integer >= 0"),
])
def test_a_built_in_suite_names_its_bad_option(name, options, match):
    with pytest.raises(TaskrelError, match=match):
        get_suite(name, **options)


def test_a_dataset_suites_own_loss_is_checked_too():
    from taskrel.datasets import DatasetSuite

    class Items(torch.utils.data.Dataset):
        def __init__(self):
            self.x = torch.from_numpy(X)
            self.y = torch.from_numpy(Y["a"]).float()

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], {"a": self.y[i]}

    bad = [Task("a", "regression", loss=lambda o, y: torch.tensor(0.5))]
    with pytest.raises(TaskrelError, match=r"task 'a': its loss returns a tensor that does not depend on the model's output"):
        DatasetSuite("d", Items(), bad, stages=[lambda: nn.Linear(4, 8)])
    good = [Task("a", "regression", loss=lambda o, y: ((o - y) ** 2).mean())]
    assert DatasetSuite("d", Items(), good, stages=[lambda: nn.Linear(4, 8)]).task_names == ["a"]
