"""Malformed input, across the Python API, study files and the CLI: each answered by a clear
error that names the field and the value, before any training starts, leaving nothing behind."""

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
    from taskrel.layout import SharingLayout
    from taskrel.runner import Runner
    from taskrel.store import RunSpec
    from taskrel.suites import get_suite

    suite = get_suite("planted", n_examples=100)
    return Runner(store, n_jobs=1, progress=False).run(suite, [RunSpec(SharingLayout.separate(["c0t0"], 3)), RunSpec(SharingLayout.separate(["nope"], 3))])


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
    "negative learning rate": (lambda tmp: __import__("taskrel.train", fromlist=["TrainConfig"]).TrainConfig(lr=-0.1), "lr must be a finite number > 0, got -0.1"),
    "unknown clustering method": (lambda tmp: __import__("taskrel.analysis", fromlist=["TaskClustering"]).TaskClustering(method="kmeans").fit(Affinity(["a", "b", "c"], np.zeros((3, 3)))), "unknown method 'kmeans'"),
    "unknown primary": (lambda tmp: __import__("taskrel.analysis", fromlist=["rank_auxiliaries"]).rank_auxiliaries(Affinity(["a", "b"], np.zeros((2, 2))), "q"), "'q'"),
    "empty seed list": (lambda tmp: __import__("taskrel.probes", fromlist=["PairwiseProbe"]).PairwiseProbe(seeds=[]).seed_list(), "seeds must be a non-empty list"),
    "unknown suite": (lambda tmp: __import__("taskrel.suites", fromlist=["get_suite"]).get_suite("cifar"), "unknown suite 'cifar'"),
    "study malformed TOML": (lambda tmp: _study(tmp, "name = [unclosed"), "TOML"),
    "study unknown key": (lambda tmp: _study(tmp, 'name = "x"\ncolour = "red"\n[suite]\nname = "planted"\n'), "colour"),
    "study unknown task": (lambda tmp: _study(tmp, 'name = "x"\n[suite]\nname = "planted"\ntasks = ["c0t0", "zzz"]\n[probes.pairwise]\nseeds = [0]\n'), "zzz"),
}



def _cfg(**kw):
    from taskrel.train import TrainConfig

    return TrainConfig(**kw)


# TrainConfig: every field's type and range, named with its value
CONFIG_CASES = {
    "epochs 2.5": (dict(epochs=2.5), "epochs must be an integer >= 1, got 2.5"),
    "epochs 'ten'": (dict(epochs="ten"), "epochs must be an integer >= 1, got 'ten'"),
    "epochs 0": (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
    "epochs True": (dict(epochs=True), "epochs must be an integer >= 1, got True"),
    "batch_size 0": (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    "batch_size 8.0": (dict(batch_size=8.0), "batch_size must be an integer >= 1, got 8.0"),
    "patience 0": (dict(patience=0), "patience must be an integer >= 1, got 0"),
    "patience None": (dict(patience=None), "patience must be an integer >= 1, got None"),
    "lr '0.01'": (dict(lr="0.01"), "lr must be a number > 0, got '0.01' (str)"),
    "lr 0": (dict(lr=0), "lr must be a finite number > 0, got 0"),
    "lr inf": (dict(lr=float("inf")), "lr must be a finite number > 0, got inf"),
    "weight_decay -1": (dict(weight_decay=-1), "weight_decay must be a finite number >= 0, got -1"),
    "momentum 1.5": (dict(momentum=1.5), "momentum must be a finite number >= 0 and <= 1, got 1.5"),
    "min_delta nan": (dict(min_delta=float("nan")), "min_delta must be a finite number >= 0, got nan"),
    "data_fraction 0": (dict(data_fraction=0), "data_fraction must be a finite number > 0 and <= 1, got 0"),
    "data_fraction 2": (dict(data_fraction=2), "data_fraction must be a finite number > 0 and <= 1, got 2"),
    "grad_clip -1": (dict(grad_clip=-1), "grad_clip must be a finite number > 0 (or None: no clipping), got -1"),
    "grad_clip 'big'": (dict(grad_clip="big"), "grad_clip must be a finite number > 0"),
    "optimizer lbfgs": (dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'"),
    "schedule step": (dict(schedule="step"), "unknown schedule 'step'"),
    "freeze_encoder 'no'": (dict(freeze_encoder="no"), "freeze_encoder must be true or false, got 'no'"),
    "threads -1": (dict(threads=-1), "threads must be an integer >= 0"),
    "loss weight -1": (dict(loss_weights={"a": -1}), "loss weight of task 'a' must be a finite number >= 0, got -1"),
    "loss weight nan": (dict(loss_weights={"a": float("nan")}), "loss weight of task 'a' must be a finite number >= 0, got nan"),
    "loss weight '2'": (dict(loss_weights={"a": "2"}), "loss weight of task 'a' must be a finite number >= 0, got '2'"),
    "loss weights twice": (dict(loss_weights=[("a", 1.0), ("a", 2.0)]), "loss weight of task 'a' is given twice"),
    "loss weights not pairs": (dict(loss_weights=[("a",)]), "loss_weights must map task names to weights"),
    "device banana": (dict(device="banana"), "device 'banana' is not a torch device"),
    "device cuda:3": (dict(device="cuda:3"), "device 'cuda:3' is not available"),
    "device 0": (dict(device=0), "device must be a string"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_train_config_rejects_bad_values(case):
    import torch

    kw, message = CONFIG_CASES[case]
    if case == "device cuda:3" and torch.cuda.device_count() > 3:
        pytest.skip("this machine has a cuda:3")
    with pytest.raises(TaskrelError) as e:
        _cfg(**kw)
    assert str(e.value).startswith("train config: ") and message in str(e.value), str(e.value)


def _task(*a, **k):
    from taskrel.suite import Task

    return Task(*a, **k)


def _wrong_head(task, n):
    return nn.Linear(n, 3)


def _split(train, val, test):
    return {"train": np.arange(*train), "val": np.arange(*val), "test": np.arange(*test)}


# Suite: names, blocks, shapes, splits and targets, checked at construction
SUITE_CASES = {
    "task name with +": (lambda: _task("a+b", "binary"), "task name 'a+b' may not contain '+'"),
    "task name with ,": (lambda: _task("a,b", "binary"), "task name 'a,b' may not contain ','"),
    "task name padded": (lambda: _task(" a", "binary"), "task name ' a' may not begin or end with white space"),
    "task name newline": (lambda: _task("a\nb", "binary"), "may not contain control characters"),
    "task name not text": (lambda: _task(3, "binary"), "task name must be a non-empty string, got 3"),
    "stage is a module": (lambda: _suite(stages=[nn.Linear(3, 4)]), "stage 0 is a module (Linear), not a factory"),
    "stages is a module": (lambda: _suite(stages=nn.Sequential(nn.Linear(3, 4))), "stages must be a list of stage factories"),
    "stage not callable": (lambda: _suite(stages=[3]), "stage 0 is not a factory"),
    "stage factory needs arguments": (lambda: _suite(stages=[nn.Linear]), "stage 0 (stage0): its factory failed"),
    "stage returns no module": (lambda: _suite(stages=[lambda: 3]), "its factory returned int, not an nn.Module"),
    "stages do not chain": (lambda: _suite(stages=STAGE + [lambda: nn.Linear(5, 2)]), "stage 1 (stage1) fails on the output of the previous stage, shape (2, 4)"),
    "head is a module": (lambda: _suite(head=nn.Linear(4, 1)), "head is a module (Linear), not a factory"),
    "head of the wrong size": (lambda: _suite(head=_wrong_head), "task 'a': the head gives outputs of shape (2, 3); a binary task with 1 output(s) needs shape (2, 1)"),
    "binary target with one class": (lambda: _suite(targets={"a": np.ones(40)}), "task 'a': the binary target has one class only"),
    "multiclass target with one class": (lambda: _suite(tasks=[_task("a", "multiclass")], targets={"a": np.full(40, 2.0)}), "the multiclass target has one class only"),
    "constant regression target": (lambda: _suite(tasks=[_task("a", "regression")], targets={"a": np.zeros(40)}), "the regression target is constant"),
    "identical splits": (lambda: _suite(split=_split((0, 40), (0, 40), (0, 40))), "split: 'train' and 'val' are identical"),
    "overlapping splits": (lambda: _suite(split=_split((0, 30), (25, 35), (35, 40))), "split: 'train' and 'val' share 5 examples"),
    "split fractions": (lambda: _suite(split=(0.5, 0.5, 0.5)), "split fractions must be three positive numbers summing to 1"),
    "target not numeric": (lambda: _suite(targets={"a": ["x"] * 40}), "targets are not numeric"),
    "targets as one 2-D array": (lambda: _suite(targets=np.zeros((40, 1))),
                                 "targets must be a dict {task name: array}, got ndarray of shape (40, 1); "
                                 "for one column per task pass {t: Y[:, i] for i, t in enumerate(['a'])}"),
}


@pytest.mark.parametrize("case", list(SUITE_CASES))
def test_suite_rejects_bad_input(case):
    make, message = SUITE_CASES[case]
    with pytest.raises(TaskrelError) as e:
        make()
    assert message in str(e.value), str(e.value)


STUDY = 'name = "x"\n[suite]\nname = "planted"\noptions = { n_examples = 100 }\ntasks = ["c0t0", "c0t1", "c1t0"]\n'
PAIRWISE = "[probes.pairwise]\nseeds = [0]\n"

# study files: each value checked (with the field's name) before a suite trains anything
STUDY_CASES = {
    "train epochs 2.5": (STUDY + "[train]\nepochs = 2.5\n" + PAIRWISE, "field 'train': train config: epochs must be an integer >= 1, got 2.5"),
    "train epochs 'ten'": (STUDY + '[train]\nepochs = "ten"\n' + PAIRWISE, "epochs must be an integer >= 1, got 'ten'"),
    "train lr '0.01'": (STUDY + '[train]\nlr = "0.01"\n' + PAIRWISE, "lr must be a number > 0, got '0.01' (str)"),
    "train weight_decay -1": (STUDY + "[train]\nweight_decay = -1\n" + PAIRWISE, "weight_decay must be a finite number >= 0, got -1"),
    "train grad_clip -1": (STUDY + "[train]\ngrad_clip = -1\n" + PAIRWISE, "grad_clip must be a finite number > 0"),
    "train min_delta nan": (STUDY + "[train]\nmin_delta = nan\n" + PAIRWISE, "min_delta must be a finite number >= 0, got nan"),
    "train unknown key": (STUDY + "[train]\nepoch = 3\n" + PAIRWISE, "unknown fields ['epoch']"),
    "train device banana": (STUDY + '[train]\ndevice = "banana"\n' + PAIRWISE, "device 'banana' is not a torch device"),
    "loss weight for an unknown task": (STUDY + "[train]\nloss_weights = { zzz = 2.0 }\n" + PAIRWISE,
                                        "field 'train.loss_weights': train config: loss weight for unknown task 'zzz'"),
    "budget 1e300": (STUDY + PAIRWISE + "[analysis.grouping]\nbudgets = [1, 2, 1e300]\n",
                     "field 'analysis.grouping.budgets': 1e+300 networks for 3 tasks"),
    "probe every 0": (STUDY + "[probes.gradient]\nseeds = [0]\nevery = 0\n", "every must be an integer >= 1, got 0"),
    "probe every 1.5": (STUDY + "[probes.lookahead]\nseeds = [0]\nevery = 1.5\n", "every must be an integer >= 1, got 1.5"),
    "probe unknown parameter": (STUDY + PAIRWISE + "colour = 1\n", "field 'probes.pairwise.colour'"),
    "probe enabled 'no'": (STUDY + PAIRWISE + '[probes.gradient]\nenabled = "no"\n', "field 'probes.gradient.enabled': must be true or false, got 'no'"),
    "probe train override": (STUDY + PAIRWISE + "train = { epochs = 0 }\n", "field 'probes.pairwise.train'"),
    "probe negative seed": (STUDY + "[probes.pairwise]\nseeds = [-1]\n", "seeds must be >= 0, got -1"),
    "probe repeated seeds": (STUDY + "[probes.pairwise]\nseeds = [0, 0]\n", "seeds are repeated"),
    "probe zero seeds": (STUDY + "[probes.pairwise]\nseeds = 0\n", "a number of seeds must be >= 1, got 0"),
    "probe unknown kind": (STUDY + "[probes.oracle]\nseeds = [0]\n", "unknown probe 'oracle'"),
    "similarity kind": (STUDY + '[probes.similarity]\nseeds = [0]\nkinds = ["cosine"]\n', "kinds must be distinct names"),
    "transfer mode": (STUDY + '[probes.transfer]\nseeds = [0]\nmode = "melted"\n', "mode must be one of ('finetune', 'frozen'), got 'melted'"),
    "cheap fraction": (STUDY + "[probes.pairwise]\nseeds = [0]\ncheap = { epochs_fraction = 1.5 }\n", "epochs_fraction must be in (0, 1], got 1.5"),
    "clustering kmeans": (STUDY + PAIRWISE + '[analysis.clustering]\nmethod = "kmeans"\n', "field 'analysis.clustering.method': unknown method 'kmeans'"),
    "clustering linkage": (STUDY + PAIRWISE + '[analysis.clustering]\nlinkage = "ward2"\n', "unknown linkage 'ward2'"),
    "clustering n_clusters 0": (STUDY + PAIRWISE + "[analysis.clustering]\nn_clusters = 0\n", "n_clusters': must be an integer between 1 and 3, got 0"),
    "tasks empty": ('name = "x"\n[suite]\nname = "planted"\ntasks = []\n' + PAIRWISE, "field 'suite.tasks': a study needs at least two tasks, got []"),
    "tasks repeated": ('name = "x"\n[suite]\nname = "planted"\ntasks = ["c0t0", "c0t0"]\n' + PAIRWISE, "tasks listed twice"),
    "suite option": ('name = "x"\n[suite]\nname = "planted"\noptions = { n_examples = -5 }\n' + PAIRWISE, "option n_examples must be an integer >= 40, got -5"),
    "unknown suite": ('name = "x"\n[suite]\nname = "cifar"\n' + PAIRWISE, "unknown suite 'cifar'"),
    "no name": ('[suite]\nname = "planted"\n' + PAIRWISE, "field 'name': a study needs a non-empty name"),
    "description not text": ('description = 5\n' + STUDY + PAIRWISE, "field 'description': must be text, got 5"),
    "no probes": (STUDY, "a study needs at least one probe"),
    "affinity of a missing probe": (STUDY + PAIRWISE + '[analysis]\naffinity = "gradient"\n', "no probe named 'gradient'"),
    "budget 0": (STUDY + PAIRWISE + "[analysis.grouping]\nbudget = 0\n", "field 'analysis.grouping.budget'"),
    "solver": (STUDY + PAIRWISE + '[analysis.grouping]\nsolver = "magic"\n', "unknown solver 'magic'"),
    "branched 'no'": (STUDY + PAIRWISE + '[analysis.layout]\nbranched = "no"\n', "field 'analysis.layout.branched': must be true or false, got 'no'"),
    "validation enabled 'no'": (STUDY + PAIRWISE + '[validation]\nenabled = "no"\n', "field 'validation.enabled': must be true or false, got 'no'"),
    "validation front 'yes'": (STUDY + PAIRWISE + '[validation]\nfront = "yes"\n', "field 'validation.front': must be true or false, got 'yes'"),
    "validation random 50": (STUDY + PAIRWISE + "[validation]\nrandom = 50\n", "from 0 to 20, got 50"),
    "truncated file": (STUDY[:30], "not valid TOML"),
    "not UTF-8": (STUDY.encode().replace(b'"x"', b'"\xe9"'), "is not UTF-8 text (byte 0xe9 at position 8)"),
    "binary": (bytes(range(256)), "is not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(STUDY_CASES))
def test_study_file_rejects_bad_values(case, tmp_path):
    from taskrel.study import load_study, validate_study

    text, message = STUDY_CASES[case]
    p = tmp_path / "s.toml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(TaskrelError) as e:
        validate_study(load_study(p))
    assert message in str(e.value), str(e.value)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.toml"], "nothing left behind"


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
    "group: empty CSV": (["group", "{tmp}/empty.csv", "--budget", "1"], "is empty"),
    "group: binary CSV": (["group", "{tmp}/binary.csv", "--budget", "1"], "is not UTF-8 text"),
    "group: NUL bytes in CSV": (["group", "{tmp}/nul.csv", "--budget", "1"], "is binary, not a CSV table"),
    "cluster: binary JSON": (["cluster", "{tmp}/binary.csv"], "is not UTF-8 text"),
    "cluster: JSON list": (["cluster", "{tmp}/list.json"], "does not hold an affinity"),
    "report: damaged result": (["report", "{tmp}/res"], "is not UTF-8 text"),
    "report: result not an object": (["report", "{tmp}/res2"], "does not hold a study result"),
    "study: --out is a file": (["study", "{tmp}/good.toml", "--store", "{tmp}/store", "--out", "{tmp}/t.csv"], "--out: '{tmp}/t.csv' exists and is not a folder"),
    "study: --out under a file": (["study", "{tmp}/good.toml", "--store", "{tmp}/store", "--out", "{tmp}/t.csv/rep"], "is not a folder"),
    "study: not UTF-8": (["study", "{tmp}/latin1.toml", "--store", "{tmp}/store"], "is not UTF-8 text"),
    "study: --device banana": (["study", "{tmp}/good.toml", "--store", "{tmp}/store", "--device", "banana"], "device 'banana' is not a torch device"),
    "study: --n-jobs 0": (["study", "{tmp}/good.toml", "--store", "{tmp}/store", "--n-jobs", "0"], "n_jobs must be >= 1 or -1"),
    "train: --epochs 0": (["train", "planted", "--epochs", "0", "--store", "{tmp}/store"], "epochs must be an integer >= 1, got 0"),
    "train: --lr -1": (["train", "planted", "--lr", "-1", "--store", "{tmp}/store"], "lr must be a finite number > 0"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_rejects_bad_input(case, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{oops")
    d = Affinity(["a", "b"], np.zeros((2, 2))).to_dict()
    d["values"][0][1] = float("nan")
    (tmp_path / "nan.json").write_text(json.dumps(d))
    (tmp_path / "bad.toml").write_text("name = [")
    (tmp_path / "t.csv").write_text("tasks,cost,a\na,1,0.5\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(b"\x00\xff\xfe" * 50)
    (tmp_path / "nul.csv").write_bytes(b"tasks,cost\x00\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "study_result.json").write_bytes(b"\xff{broken")
    (tmp_path / "res2").mkdir()
    (tmp_path / "res2" / "study_result.json").write_text("[]")
    good = STUDY + PAIRWISE + "[train]\nepochs = 1\n[validation]\nenabled = false\n"
    (tmp_path / "good.toml").write_text(good)
    (tmp_path / "latin1.toml").write_bytes(good.encode().replace(b'"x"', b'"\xe9"'))
    argv, message = CLI_CASES[case]
    message = message.replace("{tmp}", str(tmp_path))
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert "taskrel: error:" in err and message in err, err
    assert not (tmp_path / "store").exists(), "nothing may train, or be left behind, before the error"
