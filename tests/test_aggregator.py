"""Conflict-aware aggregation (TorchJD) as a training option and as a validation control."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchjd", reason="the conflict extra (torchjd) is not installed")

from taskrel.aggregators import aggregated_backward, make_aggregator  # noqa: E402
from taskrel.errors import TaskrelError  # noqa: E402
from taskrel.layout import SharingLayout  # noqa: E402
from taskrel.store import RunSpec  # noqa: E402
from taskrel.suites import get_suite  # noqa: E402
from taskrel.train import TrainConfig, train  # noqa: E402

TASKS = ["c0t0", "c0t1", "c1t0"]


@pytest.fixture(scope="module")
def planted():
    return get_suite("planted", n_examples=200)


def test_upgrad_removes_the_conflict_a_sum_keeps():
    """Two gradients at an obtuse angle: the sum hurts one task, UPGrad's update hurts neither."""
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-2.0, 0.5])
    w = torch.nn.Parameter(torch.zeros(2))
    aggregated_backward([(w * g1).sum(), (w * g2).sum()], [w], make_aggregator("upgrad"))
    assert float((g1 + g2) @ g1) < 0  # plain descent along the sum would raise loss 1
    assert float(w.grad @ g1) >= -1e-6 and float(w.grad @ g2) >= -1e-6


def test_aggregator_changes_training_and_is_deterministic(planted):
    lay = SharingLayout.shared(TASKS, planted.n_stages)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01)
    plain = train(planted, lay, cfg, seed=0)
    up1 = train(planted, lay, cfg.with_(aggregator="upgrad"), seed=0)
    up2 = train(planted, lay, cfg.with_(aggregator="upgrad"), seed=0)
    assert up1.metrics == up2.metrics
    assert up1.metrics != plain.metrics
    assert all(up1.loss(t, "test") < 10 for t in TASKS)  # it trains, it does not blow up


def test_aggregator_is_part_of_the_run_key(planted):
    lay = SharingLayout.shared(TASKS, planted.n_stages)
    cfg = TrainConfig(epochs=2)
    keys = {RunSpec(lay, c, 0).key(planted) for c in (cfg, cfg.with_(aggregator="upgrad"), cfg.with_(aggregator="pcgrad"))}
    assert len(keys) == 3
    assert "aggregator" not in cfg.to_dict()  # keys of plain runs stay as they were


def test_bad_aggregator_is_named():
    with pytest.raises(TaskrelError, match="unknown aggregator 'nash'"):
        TrainConfig(aggregator="nash")


def test_study_validation_trains_the_control(planted, tmp_path):
    from taskrel.analysis import GroupingSearch
    from taskrel.probes import PairwiseProbe
    from taskrel.study import Study, Validation

    study = Study(probes=[PairwiseProbe()], grouping=GroupingSearch(budget=2),
                  validation=Validation(seeds=[0, 1], front=False, aggregator="upgrad"), tasks=TASKS,
                  config=TrainConfig(epochs=2, batch_size=32, lr=0.01), verbose=False)
    result = study.fit(planted, tmp_path / "store").result_
    rows = {(r["layout"], r["seed"], r["task"]): r for r in result.validation}
    control = [r for k, r in rows.items() if k[0] == "all-shared + upgrad"]
    assert len(control) == 2 * len(TASKS) and all(r["status"] == "ok" for r in control)
    shared = [rows[("all-shared", r["seed"], r["task"])]["test_loss"] for r in control]
    assert [r["test_loss"] for r in control] != shared  # trained differently, not a copy
    from taskrel.study.decision import comparisons

    compared = {c.layout: c for c in comparisons(result)}
    assert "all-shared + upgrad" in compared  # compared with the recommendation, not an alias of all-shared
    assert compared["all-shared + upgrad"].n_seeds == 2
    from taskrel.report import write_report

    md = write_report(result, tmp_path / "report")["markdown"].read_text()
    assert "all-shared + upgrad" in md  # the report shows whether the recommendation beats it


def test_study_file_names_the_aggregator():
    from taskrel.study import parse_study

    text = 'name = "s"\n[suite]\nname = "planted"\n[probes.pairwise]\n[validation]\naggregator = "{}"\n'
    assert parse_study(text.format("upgrad")).validation.aggregator == "upgrad"
    with pytest.raises(TaskrelError, match="validation.aggregator"):
        parse_study(text.format("nope"))
