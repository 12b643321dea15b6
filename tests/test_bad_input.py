"""Malformed input, across the Python API and the CLI: each answered by a clear error that names
the problem, before any training starts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from torch import nn

from taskrel.affinity import Affinity
from taskrel.cli import main
from taskrel.errors import TaskrelError

X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
STAGE = [lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU())]


def _suite(**changes):
    from taskrel.suite import Suite, Task

    args = dict(name="s", inputs=X, tasks=[Task("a", "binary")], targets={"a": (X[:, 0] > 0).astype(float)}, stages=STAGE)
    args.update(changes)
    return Suite(**args)


def _table(rows):
    from taskrel.analysis import CandidateTable

    return CandidateTable(rows)


def _group(budget):
    from taskrel.analysis import GroupingSearch

    table = _table([{"tasks": "a", "cost": 1, "a": 1.0}, {"tasks": "b", "cost": 1, "b": 1.0}])
    return GroupingSearch(budget=budget).fit(table)


def _train_unknown(store):
    from taskrel.execute import execute
    from taskrel.layout import SharingLayout
    from taskrel.store import RunSpec
    from taskrel.suites import get_suite

    suite = get_suite("planted", n_examples=100)
    return execute(suite, [RunSpec(SharingLayout.separate(["c0t0"], 3)), RunSpec(SharingLayout.separate(["nope"], 3))], store, progress=False)


def _study(tmp_path, text):
    from taskrel.study import load_study, validate_study

    p = tmp_path / "s.toml"
    p.write_text(text)
    return validate_study(load_study(p))


def _nan_rows():
    from taskrel.suite import Task

    y = (X[:, 0] > 0).astype(float)
    y[:] = np.nan
    return _suite(tasks=[Task("a", "binary")], targets={"a": y})


API_CASES = {
    "affinity NaN": (lambda tmp: Affinity(["a", "b"], [[0, np.nan], [1, 0]]), "NaN or inf"),
    "affinity inf": (lambda tmp: Affinity(["a", "b"], [[0, np.inf], [1, 0]]), "source 'a' -> target 'b'"),
    "affinity not square": (lambda tmp: Affinity(["a", "b"], [[0, 1, 2], [1, 0, 2]]), "must have shape (2, 2)"),
    "affinity mislabelled": (lambda tmp: Affinity(["a", "b", "c"], np.zeros((2, 2))), "must have shape (3, 3)"),
    "affinity duplicate names": (lambda tmp: Affinity(["a", "a"], np.zeros((2, 2))), "duplicate task name 'a'"),
    "affinity file not JSON": (lambda tmp: (tmp / "x.json").write_text("{") and Affinity.load(tmp / "x.json"), "not valid JSON"),
    "affinity unknown task": (lambda tmp: Affinity(["a", "b"], np.zeros((2, 2))).value("a", "z"), "unknown task 'z'"),
    "suite empty": (lambda tmp: _suite(tasks=[], targets={}), "no tasks"),
    "suite lengths": (lambda tmp: _suite(targets={"a": np.ones(39)}), "targets have 39 rows, inputs have 40"),
    "suite NaN inputs": (lambda tmp: _suite(inputs=np.where(X > 1, np.nan, X)), "inputs contain NaN or inf"),
    "suite task without labels": (lambda tmp: _nan_rows(), "task 'a': no labels in the train split"),
    "task unknown kind": (lambda tmp: _suite(tasks=[__import__("taskrel.suite", fromlist=["Task"]).Task("a", "ordinal")]), "unknown kind 'ordinal'"),
    "layout not refining": (lambda tmp: __import__("taskrel.layout", fromlist=["SharingLayout"]).SharingLayout(["a", "b"], [[["a"], ["b"]], [["a", "b"]]]), "only get finer"),
    "layout JSON wrong kind": (lambda tmp: __import__("taskrel.layout", fromlist=["SharingLayout"]).SharingLayout.from_json('{"kind": "x"}'), "not a taskrel layout"),
    "plan with unknown task": (lambda tmp: _train_unknown(__import__("taskrel.store", fromlist=["RunStore"]).RunStore(tmp / "store")), "unknown task 'nope'"),
    "budget below cheapest cover": (lambda tmp: _group(1), "below"),
    "zero cost": (lambda tmp: _table([{"tasks": "a", "cost": 0, "a": 1.0}]), "cost"),
    "negative cost": (lambda tmp: _table([{"tasks": "a", "cost": -2, "a": 1.0}]), "cost"),
    "value missing for a member": (lambda tmp: _table([{"tasks": "a+b", "cost": 1, "a": 1.0}]), "'b'"),
    "duplicate network": (lambda tmp: _table([{"tasks": "a", "cost": 1, "a": 1.0}, {"tasks": "a", "cost": 1, "a": 2.0}]), "listed more than once"),
    "malformed CSV": (lambda tmp: (tmp / "t.csv").write_text("tasks,cost\na+b,abc\n") and __import__("taskrel.analysis", fromlist=["CandidateTable"]).CandidateTable.from_csv(tmp / "t.csv"), "cost"),
    "negative learning rate": (lambda tmp: __import__("taskrel.train", fromlist=["TrainConfig"]).TrainConfig(lr=-0.1), "lr must be a positive number"),
    "unknown clustering method": (lambda tmp: __import__("taskrel.analysis", fromlist=["TaskClustering"]).TaskClustering(method="kmeans").fit(Affinity(["a", "b", "c"], np.zeros((3, 3)))), "unknown method 'kmeans'"),
    "unknown primary": (lambda tmp: __import__("taskrel.analysis", fromlist=["rank_auxiliaries"]).rank_auxiliaries(Affinity(["a", "b"], np.zeros((2, 2))), "q"), "'q'"),
    "empty seed list": (lambda tmp: __import__("taskrel.probes.base", fromlist=["ProbeSettings"]).ProbeSettings(seeds=[]), "seeds must be a non-empty list"),
    "unknown suite": (lambda tmp: __import__("taskrel.suites", fromlist=["get_suite"]).get_suite("cifar"), "unknown suite 'cifar'"),
    "study malformed TOML": (lambda tmp: _study(tmp, "name = [unclosed"), "TOML"),
    "study unknown key": (lambda tmp: _study(tmp, 'name = "x"\ncolour = "red"\n[suite]\nname = "planted"\n'), "colour"),
    "study unknown task": (lambda tmp: _study(tmp, 'name = "x"\n[suite]\nname = "planted"\ntasks = ["c0t0", "zzz"]\n[probes.pairwise]\nseeds = [0]\n'), "zzz"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_rejects_bad_input(case, tmp_path):
    make, message = API_CASES[case]
    with pytest.raises(TaskrelError) as e:
        make(tmp_path)
    assert message.lower() in str(e.value).lower(), str(e.value)
    store = tmp_path / "store" / "runs"
    assert not store.exists() or not any(store.iterdir()), "nothing may train before the error"


CLI_CASES = {
    "group: missing file": (["group", "{tmp}/nope.csv", "--budget", "1"], "does not exist"),
    "cluster: malformed JSON": (["cluster", "{tmp}/bad.json"], "not valid JSON"),
    "cluster: NaN in affinity": (["cluster", "{tmp}/nan.json"], "NaN"),
    "train: unknown layout": (["train", "planted", "--layout", "diagonal"], "--layout 'diagonal'"),
    "train: unknown task": (["train", "planted", "--tasks", "c0t0,zzz"], "unknown task 'zzz'"),
    "probe: unknown kind": (["probe", "oracle", "planted"], "oracle"),
    "probe: zero seeds": (["probe", "pairwise", "planted", "--seeds", "0", "--store", "{tmp}/store"], "--seeds"),
    "study: malformed TOML": (["study", "{tmp}/bad.toml", "--store", "{tmp}/store"], "TOML"),
    "group: budget words": (["group", "{tmp}/t.csv", "--budgets", "one,two"], "--budgets must be numbers"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_rejects_bad_input(case, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{oops")
    d = Affinity(["a", "b"], np.zeros((2, 2))).to_dict()
    d["values"][0][1] = float("nan")
    (tmp_path / "nan.json").write_text(json.dumps(d))
    (tmp_path / "bad.toml").write_text("name = [")
    (tmp_path / "t.csv").write_text("tasks,cost,a\na,1,0.5\n")
    argv, message = CLI_CASES[case]
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert "taskrel: error:" in err and message in err, err
    store = tmp_path / "store" / "runs"
    assert not store.exists() or not any(store.iterdir()), "nothing may train before the error"
