"""Testbed suites (scarce, disjoint labels; a shuffled task) and the held-out fidelity protocol."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from taskrel.errors import TaskrelError
from taskrel.suites import get_suite, list_suites
from taskrel.suites.qm9 import qm9_available
from taskrel.suites.testbeds import SHUFFLED, scarce_rows

ROOT = Path(__file__).resolve().parents[2]
needs_qm9 = pytest.mark.skipif(not qm9_available(), reason="needs the optional extra: pip install 'taskrel[studies]'")


def _labelled(suite, task, split="train"):
    idx = suite.split[split]
    return set(idx[~np.isnan(suite.targets[task][idx])].tolist())


def _check_disjoint_design(suite, n_labelled):
    names = suite.task_names
    rows = {t: _labelled(suite, t) for t in names}
    for t in names:
        assert len(rows[t]) == n_labelled, t
        for s in ("val", "test"):  # the evaluation splits are fully labelled and shared
            assert not np.isnan(suite.targets[t][suite.split[s]]).any(), (t, s)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not rows[a] & rows[b], (a, b)
    assert set().union(*rows.values()) == set(suite.split["train"].tolist())
    for s, other in (("train", "val"), ("val", "test"), ("train", "test")):
        assert not set(suite.split[s].tolist()) & set(suite.split[other].tolist())


def _heldout_r2(suite, task):
    """R^2 on the test split of a ridge fit on the task's own labelled training rows."""
    from sklearn.linear_model import Ridge

    X = suite.inputs.reshape(len(suite.inputs), -1)
    tr = sorted(_labelled(suite, task))
    te = suite.split["test"]
    model = Ridge(alpha=10.0).fit(X[tr], suite.targets[task][tr])
    return model.score(X[te], suite.targets[task][te])


def test_registered():
    names = list_suites()
    assert "qm9-scarce" in names and "mnist-scarce" in names


def test_scarce_rows_layout_and_bad_input():
    split, blocks = scarce_rows(3, 4, 5, 6)
    assert [b.tolist() for b in blocks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert len(split["val"]) == 5 and split["test"][-1] == 3 * 4 + 5 + 6 - 1
    with pytest.raises(TaskrelError, match="n_labelled"):
        scarce_rows(3, 1, 5, 6)


def test_mnist_scarce_masks_are_disjoint_and_shuffled_is_noise():
    s = get_suite("mnist-scarce", tasks=["is3", "ge5", SHUFFLED], n_labelled=400, n_val=300, n_test=800)
    _check_disjoint_design(s, 400)
    assert s.inputs.shape[1:] == (1, 14, 14)
    real, noise = _heldout_r2(s, "ge5"), _heldout_r2(s, SHUFFLED)
    assert real > 0.2  # the same pixels predict the real superclass ...
    assert noise < 0.02  # ... and nothing about the shuffled labels
    # the shuffled task keeps its source's labels, in another order
    src = s.truth["shuffled"]["from"]
    assert src == "ge5"
    digit = np.asarray(s.truth["digit"])
    assert abs(np.nanmean(s.targets[SHUFFLED]) - np.isin(digit, [5, 6, 7, 8, 9]).mean()) < 0.06


def test_mnist_scarce_pair_and_digit_tasks_label_only_their_digits():
    s = get_suite("mnist-scarce", tasks=["3v5", "4v9", "digit", "is3"], n_labelled=120, n_val=400, n_test=400)
    for t in s.task_names:  # each task labelled on its own block of training rows and nowhere else in train
        lo, hi = s.truth["labelled_rows"][t]
        train_known = np.flatnonzero(~np.isnan(s.targets[t][s.split["train"]]))
        assert train_known.tolist() == list(range(lo, hi)), t
    digit = np.asarray(s.truth["digit"])
    tr = s.split["train"]
    for t, (a, b) in (("3v5", (3, 5)), ("4v9", (4, 9))):
        y = s.targets[t]
        known = ~np.isnan(y)
        assert set(digit[known]) <= {a, b}  # labelled exactly where the image is one of its digits
        assert np.array_equal(known, np.isin(digit, [a, b]) & (known | np.isin(np.arange(len(y)), tr, invert=True)))
        assert np.array_equal(y[known] == 1, digit[known] == a)
        lo, hi = s.truth["labelled_rows"][t]
        assert known[lo:hi].all()  # every row of a pair task's own block is one of its digits
    assert s.tasks[2].kind == "multiclass" and s.tasks[2].n_outputs == 10
    known = ~np.isnan(s.targets["digit"])
    assert np.array_equal(s.targets["digit"][known], digit[known])
    # no image is used twice: the pair blocks are drawn apart from the other rows
    flat = s.inputs.reshape(len(s.inputs), -1)
    assert len(np.unique(flat, axis=0)) == len(flat)


def test_mnist_scarce_bad_input():
    with pytest.raises(TaskrelError, match="only 5000 ship"):
        get_suite("mnist-scarce", n_labelled=1000)
    with pytest.raises(TaskrelError, match="is10"):
        get_suite("mnist-scarce", tasks=["is3", "is10"])
    with pytest.raises(TaskrelError, match="3v3"):
        get_suite("mnist-scarce", tasks=["3v3"])
    with pytest.raises(TaskrelError, match="needs 1200 images of its digits"):
        get_suite("mnist-scarce", tasks=["3v5", "is3"], n_labelled=1200, n_val=100, n_test=100)


@needs_qm9
def test_qm9_scarce_masks_are_disjoint_and_shuffled_is_noise():
    s = get_suite("qm9-scarce", tasks=["U0", "gap", SHUFFLED], n_labelled=300, n_val=100, n_test=600, fp_bits=256)
    _check_disjoint_design(s, 300)
    for t in s.task_names:  # z-scored on the task's own labelled rows (the shuffled one at its scale)
        y = s.targets[t][sorted(_labelled(s, t))]
        scale = s.truth["shuffled_scale"] if t == SHUFFLED else 1.0
        assert abs(y.mean()) < 1e-9 and y.std() == pytest.approx(scale)
    assert _heldout_r2(s, "U0") > 0.3
    assert _heldout_r2(s, SHUFFLED) < 0.02


@needs_qm9
def test_qm9_scarce_bad_input():
    with pytest.raises(TaskrelError, match="nope"):
        get_suite("qm9-scarce", tasks=["U0", "nope"])
    with pytest.raises(TaskrelError, match="shuffled_scale"):
        get_suite("qm9-scarce", shuffled_scale=0)
    with pytest.raises(TaskrelError, match="zpv"):
        get_suite("qm9-scarce", shuffled_from=["gap", "zpv"])
    with pytest.raises(TaskrelError, match="shuffled1"):  # the second shuffled task is shuffled2
        get_suite("qm9-scarce", tasks=["U0", "shuffled1"])


def test_shuffled_index_names():
    from taskrel.suites.testbeds import shuffled_index

    assert [shuffled_index(t) for t in ("shuffled", "shuffled2", "shuffled10")] == [0, 1, 9]
    assert [shuffled_index(t) for t in ("gap", "shuffled1", "shuffled02", "shuffledx", "Shuffled")] == [None] * 5


@needs_qm9
def test_qm9_scarce_several_shuffled_tasks_each_permute_their_own_source():
    kw = dict(n_labelled=200, n_val=100, n_test=400, fp_bits=64)
    s = get_suite("qm9-scarce", tasks=["U0", SHUFFLED, "shuffled2"], shuffled_from=["gap", "U0"], **kw)
    _check_disjoint_design(s, 200)
    assert s.truth["shuffled_tasks"] == {SHUFFLED: "gap", "shuffled2": "U0"}
    for t in (SHUFFLED, "shuffled2"):
        rows = sorted(_labelled(s, t))
        y = s.targets[t][rows]
        assert abs(y.mean()) < 1e-9 and y.std() == pytest.approx(s.truth["shuffled_scale"])
        assert _heldout_r2(s, t) < 0.02, t  # noise: the inputs do not predict it
    # two shuffled tasks are two different permutations: their test labels are uncorrelated
    te = s.split["test"]
    assert abs(np.corrcoef(s.targets[SHUFFLED][te], s.targets["shuffled2"][te])[0, 1]) < 0.15
    # each holds its own source's values (in QM9 units after undoing the z-scoring)
    from taskrel.suites.qm9 import TARGETS, load_qm9

    Y = load_qm9()[2]
    for t, src in s.truth["shuffled_tasks"].items():
        z = s.truth["zscore"][t]
        raw = s.targets[t][te] / s.truth["shuffled_scale"] * z["std"] + z["mean"]
        col = Y[:, list(TARGETS).index(src)]
        assert abs(raw.mean() - col.mean()) < 0.2 * col.std() and abs(raw.std() / col.std() - 1) < 0.25, (t, src)


@needs_qm9
def test_qm9_scarce_descriptors_are_appended_scaled_and_make_energies_learnable():
    kw = dict(tasks=["U0", "homo"], n_labelled=200, n_val=100, n_test=400, fp_bits=64)
    plain, counts = get_suite("qm9-scarce", descriptors=False, **kw), get_suite("qm9-scarce", **kw)
    assert plain.inputs.shape[1] == 64 and counts.inputs.shape[1] == 64 + 12
    assert np.array_equal(plain.inputs, counts.inputs[:, :64])  # the same molecules and bits
    tr = counts.split["train"]
    assert np.allclose(counts.inputs[tr, 64:].mean(axis=0), 0, atol=1e-4)
    assert np.allclose(counts.inputs[tr, 64:].std(axis=0), 1, atol=1e-3)
    assert counts.truth["descriptors"] and not plain.truth["descriptors"]
    # the extensive energy is nearly linear in the atom counts: counts make it learnable from 200 labels
    assert _heldout_r2(counts, "U0") > 0.8 > _heldout_r2(plain, "U0")


# ---------------------------------------------------------------------- the protocol
def _fidelity_module():
    spec = importlib.util.spec_from_file_location("fidelity_benchmark", ROOT / "benchmarks" / "fidelity.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def test_normalisation_makes_each_task_alone_score_one():
    _fidelity_module()
    fid = sys.modules["fidelity_protocol"]  # imported by the benchmark from beside it
    tasks = ["a", "b", "c"]
    groups = fid.all_subsets(tasks)
    rng = np.random.default_rng(0)
    loss = rng.uniform(0.5, 2.0, size=(3, len(groups), 3))
    members = np.array([[t in g for t in tasks] for g in groups])
    loss[:, ~members] = np.nan
    runs = fid.OracleRuns(tasks, groups, [0, 1, 2], {"val": loss, "test": loss})
    norm = fid.normalised(loss, runs.singles())
    mean = np.nanmean(norm, axis=0)
    assert np.allclose(mean[runs.singles(), [0, 1, 2]], 1.0)
    # the ratio of any two networks' losses for a task is unchanged by the normalisation
    assert np.allclose(norm[:, 6, 0] / norm[:, 3, 0], loss[:, 6, 0] / loss[:, 3, 0])
    sep = fid.separation(fid.Choice([("a", "b"), ("c",)], {"a": ("a", "b"), "b": ("a", "b"), "c": ("c",)}), norm, runs)
    assert sep["all_separate"] == pytest.approx(3.0)


def test_protocol_on_a_tiny_planted_problem(tmp_path):
    fid = _fidelity_module()
    with pytest.raises(SystemExit, match="disjoint"):
        fid.main(["--suite", "planted", "--quick", "--choose-seeds", "0,1", "--score-seeds", "1,2"])
    out = tmp_path / "fid.json"
    d = fid.main(["--suite", "planted", "--quick", "--tasks", "c0t0,c0t1,conflict", "--choose-seeds", "0",
                  "--score-seeds", "1", "--probes", "pairwise", "--store", str(tmp_path / "store"),
                  "--out", str(out), "--n-jobs", "1", "--quiet"])
    assert json.loads(out.read_text())["suite"] == "planted"
    assert not set(d["protocol"]["choose_seeds"]) & set(d["protocol"]["score_seeds"])
    # scores are normalised by the single-task losses of the scoring seeds: all-separate scores n
    assert d["oracle"]["separation"]["all_separate"] == pytest.approx(3.0)
    pw = d["probes"]["pairwise"]
    # the pairwise probe ran on the choice seeds with the oracle's config, so it reproduces the
    # oracle's choice-seed pair effects exactly: its Spearman against the scoring seeds is the ceiling
    assert pw["spearman"] == pytest.approx(d["oracle"]["split_half_reliability"])
    assert pw["examples_vs_oracle"] < 1
    for mode in ("partition", "overlap"):
        for v in pw[f"regret_{mode}"].values():
            assert v is None or v >= -1e-9  # nothing beats the best on the scoring seeds


def test_screen_is_the_protocol_on_fewer_seeds(tmp_path):
    fid = _fidelity_module()
    spec = importlib.util.spec_from_file_location("testbed_screen", ROOT / "benchmarks" / "testbed_screen.py")
    screen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(screen)
    store_path = tmp_path / "store"
    args = ["--suite", "planted", "--variants", json.dumps({"small": {"n_examples": 300}}), "--tasks", "c0t0,c0t1,conflict",
            "--store", str(store_path), "--n-jobs", "1", "--quiet"]
    one = screen.main([*args, "--seeds", "0"])["variants"]["small"]
    assert one["heldout_is_same_seed"] and one["split_half_reliability"] is None  # one seed: no reliability
    assert one["runs_trained_or_read"] == 7 and one["random_regret_mean"] >= 0
    two = screen.main([*args, "--seeds", "0,1"])["variants"]["small"]
    runs = sorted(p.name for p in (store_path / "runs").iterdir())
    assert two["runs_trained_or_read"] == 14 and not two["heldout_is_same_seed"]
    # the full benchmark on the same seeds reads the screen's runs and gives the same oracle numbers
    d = fid.main(["--suite", "planted", "--quick", "--tasks", "c0t0,c0t1,conflict", "--choose-seeds", "0", "--score-seeds", "1",
                  "--probes", "none", "--store", str(store_path), "--out", str(tmp_path / "f.json"), "--n-jobs", "1", "--quiet"])
    assert sorted(p.name for p in (store_path / "runs").iterdir()) == runs  # nothing trained again
    assert two["random_regret_mean"] == pytest.approx(d["oracle"]["random_regret_mean"])
    assert two["heldout_regret_mean"] == pytest.approx(d["oracle"]["heldout_regret_mean"])
    assert two["split_half_reliability"] == pytest.approx(d["oracle"]["split_half_reliability"])
    assert two["margin_over_all_separate"] == pytest.approx(d["oracle"]["separation"]["margin_over_all_separate"])


def test_benchmark_regime_takes_config_changes_and_refuses_bad_ones():
    fid = _fidelity_module()
    base = fid.CONFIGS["mnist-scarce"]
    assert fid.regime("mnist-scarce") == base
    longer = fid.regime("mnist-scarce", '{"epochs": 60, "batch_size": 32}')
    assert (longer.epochs, longer.batch_size, longer.lr) == (60, 32, base.lr)
    with pytest.raises(TaskrelError, match="epochz"):
        fid.regime("mnist-scarce", '{"epochz": 3}')
    with pytest.raises(SystemExit, match="not JSON"):
        fid.regime("mnist-scarce", "{epochs: 3}")


def test_overlap_validated_serves_each_task_by_its_best_chosen_network():
    _fidelity_module()
    fid = sys.modules["fidelity_protocol"]
    tasks = ["a", "b", "c", "d"]
    groups = fid.all_subsets(tasks)
    rng = np.random.default_rng(3)
    loss = rng.uniform(0.5, 2.0, size=(2, len(groups), len(tasks)))
    members = np.array([[t in g for t in tasks] for g in groups])
    loss[:, ~members] = np.nan
    runs = fid.OracleRuns(tasks, groups, [0, 1], {"val": loss, "test": loss})
    scores = fid.normalised(loss, runs.singles())
    mean = fid.seed_mean(scores)
    table = fid.table_of(mean, runs)
    best = {m: {b: fid.GroupingSearch(budget=b, partition=p).fit(table).total_ for b in (2, 3)}
            for m, p in (("partition", True), ("overlap", False))}
    # an estimate that knows nothing: every network and task the same value
    blind = fid.table_of(np.where(members, 1.0, np.nan), runs)
    curves = fid.regret_curves(blind, scores, best, runs, [2, 3], val_scores=scores)
    assert set(curves) == {"partition", "overlap", "overlap_validated"}
    for b in ("2", "3"):
        # validation equal to the score: each task takes its best chosen network, never worse
        assert curves["overlap_validated"][b] <= curves["overlap"][b] + 1e-9
        assert curves["overlap_validated"][b] >= -1e-9
    c = fid.choose(blind, 3, False)
    v = fid.validated(c, mean, runs)
    assert v.groups == c.groups
    for t in tasks:
        options = [g for g in c.groups if t in g]
        assert v.assignment[t] in options
        assert mean[groups.index(v.assignment[t]), tasks.index(t)] == min(mean[groups.index(g), tasks.index(t)] for g in options)
    # the headline mean leaves the validated curve out unless asked
    assert fid.mean_of(curves, fid.ESTIMATE_ASSIGNED) == pytest.approx(np.mean([*curves["partition"].values(), *curves["overlap"].values()]))
