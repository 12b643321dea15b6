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
    base = GradientProbe(TASKS, config=CFG, seeds=[0], every=2)
    probe = CalibratedProbe(base, pairs=3, cheap={"epochs_fraction": 0.5}).fit(suite, runner)
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
    assert cal.cost.runs == raw.cost.runs + 3 + n_single
    assert cal.cost.examples > raw.cost.examples


def test_calibrated_probe_refuses_bad_input(suite, tmp_path):
    base = GradientProbe(TASKS, config=CFG, seeds=[0], every=2)
    with pytest.raises(TaskrelError, match="pairs must be an integer >= 2"):
        CalibratedProbe(base, pairs=1).fit(suite, tmp_path / "s")
    with pytest.raises(TaskrelError, match="only 6 pairs"):
        CalibratedProbe(base, pairs=7).fit(suite, tmp_path / "s")
    with pytest.raises(TaskrelError, match="base must be"):
        CalibratedProbe("gradient").fit(suite, tmp_path / "s")
    # an affinity that already has a calibrated zero needs no line
    with pytest.raises(TaskrelError, match="only an uncalibrated one"):
        CalibratedProbe(PairwiseProbe(TASKS[:3], config=TrainConfig(epochs=1), seeds=[0]), pairs=2).fit(suite, tmp_path / "s")
