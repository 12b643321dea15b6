"""CalibratedProbe: a probe without a calibrated zero, mapped onto a few measured pairs."""

from __future__ import annotations

import numpy as np
import pytest

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.probes import CalibratedProbe, GradientProbe, PairwiseProbe
from taskrel.probes.calibrated import extreme_pairs
from taskrel.runner import Runner
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

TASKS = ["c0t0", "c0t1", "c1t0", "conflict"]
CFG = TrainConfig(epochs=4)


@pytest.fixture(scope="module")
def suite():
    return get_suite("planted", n_examples=300)


def test_extreme_pairs_alternate_top_and_bottom():
    rng = np.random.default_rng(0)
    tasks = list("abcde")
    v = rng.normal(size=(5, 5))
    np.fill_diagonal(v, 0)
    a = Affinity(tasks, v)
    sym = (v + v.T) / 2
    ranked = sorted(((sym[i, j], (tasks[i], tasks[j])) for i in range(5) for j in range(i + 1, 5)), reverse=True)
    got = extreme_pairs(a, 4)
    assert got == [ranked[0][1], ranked[-1][1], ranked[1][1], ranked[-2][1]]
    assert len(set(extreme_pairs(a, 10))) == 10  # every pair once when all are asked for


def test_calibrated_gradient_is_a_line_through_measured_pairs(suite, tmp_path):
    runner = Runner(tmp_path / "store", progress=False)
    probe = CalibratedProbe(TASKS, base="gradient", base_params={"every": 2}, pairs=3, cheap={"epochs_fraction": 0.5},
                            config=CFG, seeds=[0]).fit(suite, runner)
    cal, raw = probe.affinity_, probe.base_.affinity_
    assert raw.calibration == "uncalibrated" and cal.calibration == "relative-gain"
    line = cal.meta["calibrated"]
    off = ~np.eye(len(TASKS), dtype=bool)
    assert np.allclose(cal.values[off], line["intercept"] + line["slope"] * raw.values[off])
    assert line["pairs"] == len(probe.measured_) == 6 and line["pairs_trained"] == [list(p) for p in probe.pairs_]
    # the measured gains are the pairwise probe's, on the same cheap config and seed: it reads the
    # same runs from the store and trains only the pairs the calibration did not
    pw = PairwiseProbe(TASKS, cheap={"epochs_fraction": 0.5}, config=CFG, seeds=[0]).fit(suite, runner)
    assert pw.trained_ == 6 - 3
    for (s, t), g in probe.measured_.items():
        assert g == pytest.approx(pw.affinity_.value(s, t))
    # the compute is the gradient run's plus the calibration runs' (3 pairs + the singles of their tasks)
    n_single = len({t for p in probe.pairs_ for t in p})
    assert cal.cost.runs == raw.cost.runs + 3 + n_single == len(probe.records_)
    assert cal.cost.examples > raw.cost.examples
    # a probe object as the base gives the same affinity, from the same runs
    again = CalibratedProbe(TASKS, base=GradientProbe(TASKS, config=CFG, seeds=[0], every=2), pairs=3,
                            cheap={"epochs_fraction": 0.5}, config=CFG, seeds=[0]).fit(suite, runner)
    assert again.trained_ == 0
    np.testing.assert_allclose(again.affinity_.values, cal.values)


def test_calibrated_probe_refuses_bad_input(suite, tmp_path):
    with pytest.raises(TaskrelError, match="pairs must be an integer >= 2"):
        CalibratedProbe(TASKS, pairs=1).fit(suite, tmp_path / "s")
    with pytest.raises(TaskrelError, match="only 6 pairs"):
        CalibratedProbe(TASKS, pairs=7).fit(suite, tmp_path / "s")
    with pytest.raises(TaskrelError, match="base must be a probe kind"):
        CalibratedProbe(TASKS, base="nope").fit(suite, tmp_path / "s")
    with pytest.raises(TaskrelError, match="base must be a probe kind"):
        CalibratedProbe(TASKS, base="calibrated").fit(suite, tmp_path / "s")
    with pytest.raises(TaskrelError, match=r"base_params \['evry'\]"):
        CalibratedProbe(TASKS, base_params={"evry": 2}).fit(suite, tmp_path / "s")
    # an affinity that already has a calibrated zero needs no line
    with pytest.raises(TaskrelError, match="only an uncalibrated one"):
        CalibratedProbe(TASKS[:3], base="pairwise", pairs=2, config=TrainConfig(epochs=1)).fit(suite, tmp_path / "s")


def test_a_study_file_names_a_calibrated_probe():
    from taskrel.study import parse_study, study_from_spec

    text = ('name = "x"\n[suite]\nname = "planted"\n[probes.gradient-calibrated]\nkind = "calibrated"\n'
            'base = "lookahead"\nbase_params = {every = 2}\npairs = 2\nseeds = [0, 1]\n')
    probe = study_from_spec(parse_study(text)).named_probes()["gradient-calibrated"]
    assert isinstance(probe, CalibratedProbe)
    assert (probe.base, probe.base_params, probe.pairs, list(probe.seeds)) == ("lookahead", {"every": 2}, 2, [0, 1])
    built = probe.base_probe()
    assert type(built).__name__ == "LookaheadProbe" and built.every == 2 and list(built.seeds) == [0, 1]
    with pytest.raises(TaskrelError, match="pair"):
        study_from_spec(parse_study(text.replace("pairs = 2", "pairz = 2")))


def test_calibrate_keeps_missing_entries_missing():
    a = Affinity(["a", "b", "c"], [[0, .9, np.nan], [.8, 0, np.nan], [.1, .2, 0]], missing=True)
    cal = a.calibrate({("a", "b"): .2, ("b", "a"): .1, ("c", "a"): -.1})
    assert cal.calibration == "relative-gain" and np.array_equal(cal.missing, a.missing)
    assert np.isnan(cal.values[a.missing]).all() and np.isfinite(cal.values[~a.missing]).all()
    with pytest.raises(TaskrelError, match=r"\('a', 'c'\) has no affinity value"):
        a.calibrate({("a", "b"): .2, ("b", "a"): .1, ("a", "c"): -.1})


def test_plan_lists_the_base_runs_only_and_fit_trains_the_pairs_as_a_follow_up(suite, tmp_path):
    """Before fitting, the plan is the base probe's (one gradient run per seed), so a study's
    one queue does not train every pair; fit trains the few calibration runs itself."""
    runner = Runner(tmp_path / "store", progress=False)
    probe = CalibratedProbe(TASKS, base="gradient", base_params={"every": 2}, pairs=2, config=TrainConfig(epochs=2))
    base_plan = GradientProbe(TASKS, every=2, config=TrainConfig(epochs=2)).plan(suite)
    plan = probe.plan(suite)
    assert [runner.key(suite, s) for s in plan.specs] == [runner.key(suite, s) for s in base_plan.specs]
    assert len(plan.specs) == 1  # not the 6 pairs and 4 single-task runs of a pre-fit "every pair"
    runner.run(suite, plan.specs)  # what a study's queue trains before fitting
    probe.fit(suite, runner)
    pair_tasks = {t for p in probe.pairs_ for t in p}
    assert probe.trained_ == len(probe.pairs_) + len(pair_tasks)  # the follow-up stage only
    assert probe.base_.trained_ == 0 and len(probe.records_) == 1 + len(probe.pairs_) + len(pair_tasks)
