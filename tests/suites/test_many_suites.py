"""Suites with many tasks: planted-many, moleculeace and bayesnet (tiny builds, no training)."""

from __future__ import annotations

import numpy as np
import pytest

from taskrel.errors import TaskrelError
from taskrel.suites import get_suite, list_suites
from taskrel.suites.bayesnet import bayesnet_available, parse_bif, sample
from taskrel.suites.moleculeace import moleculeace_available
from taskrel.suites.planted_many import planted_many_suite

TINY = {"n_train": 120, "n_val": 40, "n_test": 40, "n_labelled": 20}


def test_registered():
    names = list_suites()
    assert {"planted-many", "moleculeace", "bayesnet"} <= set(names)


# ---------------------------------------------------------------------------------- planted-many
@pytest.mark.parametrize("n_tasks", [10, 12, 37])
def test_planted_many_composition_follows_the_knobs(n_tasks):
    s = planted_many_suite(n_tasks=n_tasks, cluster_size=(3, 5), **TINY)
    t = s.truth
    assert len(s.task_names) == n_tasks and len(set(s.task_names)) == n_tasks
    assert all(3 <= len(c) <= 5 for c in t["clusters"]) or len(t["clusters"]) == 1
    # the planted grouping is a partition of the tasks
    flat = [x for g in t["groups"] for x in g]
    assert sorted(flat) == sorted(s.task_names)
    for k, c in enumerate(t["clusters"]):
        assert all(t["cluster"][x] == k for x in c)
    # every harmful task opposes a real cluster and hurts exactly its tasks, both ways
    for h, k in t["harmful"].items():
        assert t["cluster"][h] == -1 and 0 <= k < len(t["clusters"])
        hurt = {b for a, b in t["hurts"] if a == h}
        assert hurt == set(t["clusters"][k])
        assert all([x, h] in t["hurts"] for x in hurt)
    assert all(t["cluster"][a] == t["cluster"][b] >= 0 for a, b in t["helps"])


def test_planted_many_labels_are_scarce_and_eval_is_full():
    s = planted_many_suite(n_tasks=12, **TINY)
    tr, va, te = s.split["train"], s.split["val"], s.split["test"]
    for name in s.task_names:
        y = s.targets[name]
        assert int((~np.isnan(y[tr])).sum()) == TINY["n_labelled"]
        assert not np.isnan(y[va]).any() and not np.isnan(y[te]).any()
        assert s.truth["labelled_rows"][name] == np.flatnonzero(~np.isnan(y[tr])).tolist()
    same = planted_many_suite(n_tasks=12, label_overlap=1.0, **TINY)
    masks = {tuple(np.isnan(same.targets[x][tr])) for x in same.task_names}
    assert len(masks) == 1  # full overlap: every task labelled on the same rows


def test_planted_many_truth_is_in_the_data():
    """Tasks of one cluster read one latent: their targets correlate far more than across clusters."""
    s = planted_many_suite(n_tasks=16, n_train=100, n_val=2000, n_test=10, n_labelled=10, relatedness=0.9)
    va = s.split["val"]
    Y = np.array([s.targets[x][va] for x in s.task_names])
    C = np.corrcoef(Y)
    cl = s.truth["cluster"]
    idx = {x: i for i, x in enumerate(s.task_names)}
    within = [abs(C[idx[a], idx[b]]) for a, b in s.truth["helps"]]
    across = [abs(C[idx[a], idx[b]]) for a in s.task_names for b in s.task_names
              if a != b and cl[a] >= 0 and cl[b] >= 0 and cl[a] != cl[b]]
    assert np.mean(within) > 0.6 > 0.2 > np.mean(across)
    # a harmful task is a non-monotone function of its cluster's signal: little linear correlation
    for h, k in s.truth["harmful"].items():
        assert max(abs(C[idx[h], idx[x]]) for x in s.truth["clusters"][k]) < 0.5
        assert np.std(s.targets[h][va]) > 3  # larger scale than the others (harm_scale 4)


def test_planted_many_is_deterministic_by_seed():
    a, b = planted_many_suite(n_tasks=12, seed=3, **TINY), planted_many_suite(n_tasks=12, seed=3, **TINY)
    c = planted_many_suite(n_tasks=12, seed=4, **TINY)
    assert np.array_equal(a.inputs, b.inputs) and a.truth == b.truth
    assert all(np.array_equal(a.targets[x], b.targets[x], equal_nan=True) for x in a.task_names)
    assert not np.array_equal(a.inputs, c.inputs)


def test_planted_many_reaches_many_tasks_via_the_registry():
    s = get_suite("planted-many", n_tasks=120, **TINY)
    assert len(s.task_names) == 120 and len(s.truth["harmful"]) == 5 and len(s.truth["unrelated"]) == 5


@pytest.mark.parametrize("options, field", [
    ({"n_train": 10**9}, "n_train"),  # refused before anything is allocated
    ({"n_tasks": 2000}, "n_tasks"),
    ({"n_tasks": 8, "n_unrelated": 4, "n_harmful": 4}, "n_tasks=8"),
    ({"cluster_size": (5, 3)}, "cluster_size[1]"),
    ({"relatedness": 1.5}, "relatedness"),
    ({"n_labelled": 10_000}, "n_labelled"),
    ({"width": 2.5}, "width"),
    ({"n_train": 900_000, "n_features": 10_000}, "values"),
    ({"colour": "red"}, "colour"),
])
def test_planted_many_refuses_bad_options_by_name(options, field):
    with pytest.raises(TaskrelError, match="planted-many") as e:
        get_suite("planted-many", **options)
    assert field in str(e.value)


# ---------------------------------------------------------------------------------- moleculeace
needs_mace = pytest.mark.skipif(not moleculeace_available(), reason="needs pip install --no-deps MoleculeACE==3.0.0 and rdkit")
SMALL = ["CHEMBL2835_Ki", "CHEMBL2047_EC50", "CHEMBL1871_Ki"]


@needs_mace
def test_moleculeace_has_sparse_missing_labels_and_a_clean_split():
    s = get_suite("moleculeace", tasks=SMALL, fp_bits=32)
    Y = np.array([s.targets[t] for t in SMALL]).T
    labelled = ~np.isnan(Y)
    assert labelled.any(axis=1).all()  # every molecule is labelled for at least one task
    assert (~labelled).any()  # and sparse: not every molecule for every task
    tr = s.split["train"]
    for j in range(len(SMALL)):
        own = Y[tr, j][labelled[tr, j]]
        assert abs(own.mean()) < 1e-9 and abs(own.std() - 1) < 1e-9  # z-scored on its training labels
    rows = np.concatenate([s.split[k] for k in ("train", "val", "test")])
    assert len(rows) == len(set(rows.tolist())) == len(Y)


@needs_mace
def test_moleculeace_refuses_unknown_tasks_by_name():
    with pytest.raises(TaskrelError, match="CHEMBL0_Ki"):
        get_suite("moleculeace", tasks=["CHEMBL0_Ki"])


@needs_mace
def test_moleculeace_single_task_run_steps_through_its_own_labelled_rows_only():
    """rows='labelled' on the real sparse suite: a run sees exactly its task's labelled training
    molecules each epoch; rows='all' sees every training molecule (labelled for it or not)."""
    from taskrel.layout import SharingLayout
    from taskrel.train import TrainConfig, train

    s = get_suite("moleculeace", tasks=SMALL, fp_bits=32)
    task = SMALL[0]
    own = int((~np.isnan(s.targets[task][s.split["train"]])).sum())
    assert own < 0.8 * len(s.split["train"])
    cfg = TrainConfig(epochs=2, batch_size=256, patience=5)
    lay = SharingLayout.shared([task], s.n_stages)
    labelled = train(s, lay, cfg.with_(rows="labelled"), seed=0)
    every = train(s, lay, cfg, seed=0)
    assert labelled.examples == 2 * own and every.examples == 2 * len(s.split["train"])
    assert np.isfinite(labelled.loss(task, "test"))


def test_moleculeace_refuses_bad_options_before_loading():
    with pytest.raises(TaskrelError, match="fp_bits"):
        get_suite("moleculeace", fp_bits=4)


# ---------------------------------------------------------------------------------- bayesnet
TWO = """variable A { type discrete [ 2 ] { y, n }; }
variable B { type discrete [ 3 ] { lo, mid, hi }; }
probability ( A ) { table 0.3, 0.7; }
probability ( B | A ) { (y) 0.8, 0.1, 0.1; (n) 0.1, 0.2, 0.7; }"""


def test_ancestral_sampling_matches_the_tables():
    states, parents, cpt = parse_bif(TWO)
    d = sample(states, parents, cpt, 40_000, np.random.default_rng(0))
    assert abs((d["A"] == 0).mean() - 0.3) < 0.01
    for a in (0, 1):
        freq = np.bincount(d["B"][d["A"] == a], minlength=3) / (d["A"] == a).sum()
        assert np.abs(freq - cpt["B"][a]).max() < 0.02


def test_parse_bif_refuses_an_incomplete_table():
    with pytest.raises(TaskrelError, match="'B'"):
        parse_bif(TWO.replace("(n) 0.1, 0.2, 0.7;", ""))


needs_pgmpy = pytest.mark.skipif(not bayesnet_available("alarm"), reason="needs pgmpy<1.3 (extra 'studies')")


@needs_pgmpy
def test_bayesnet_truth_follows_the_graph():
    s = get_suite("bayesnet", network="alarm", n_tasks=None, n_train=200, n_val=50, n_test=50, n_labelled=30)
    t = s.truth
    assert not set(s.task_names) & set(t["observed"])
    for a in s.task_names:
        assert t["distance"][a][a] == 0
        for p in t["parents"][a]:
            if p in s.task_names:
                assert t["distance"][a][p] == 1 and p in t["markov_blanket"][a]
    assert all(1 <= t["distance"][a][b] <= 2 for a, b in t["near"])
    tr = s.split["train"]
    assert all(int((~np.isnan(s.targets[x][tr])).sum()) == 30 for x in s.task_names)
    again = get_suite("bayesnet", network="alarm", n_tasks=None, n_train=200, n_val=50, n_test=50, n_labelled=30)
    assert np.array_equal(s.inputs, again.inputs) and s.task_names == again.task_names


def test_bayesnet_refuses_bad_options_by_name():
    with pytest.raises(TaskrelError, match="input_fraction"):
        get_suite("bayesnet", input_fraction=1.0)
    with pytest.raises(TaskrelError, match="pgmpy"):
        get_suite("bayesnet", network="no_such_network")


def test_planted_many_trains_through_taskrel_with_its_missing_labels():
    from taskrel.layout import SharingLayout
    from taskrel.train import TrainConfig, train

    s = planted_many_suite(n_tasks=10, **TINY)
    groups = s.truth["groups"]
    lay = SharingLayout.from_groups(groups, s.n_stages)  # the planted grouping, one network per group
    r = train(s, lay, TrainConfig(epochs=2, batch_size=32), seed=0)
    assert sorted(r.metrics["test"]) == sorted(s.task_names)
    assert all(np.isfinite(v["loss"]) for v in r.metrics["test"].values())
