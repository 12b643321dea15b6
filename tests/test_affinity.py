"""Affinity calibration: each kind states what its zero means; JSON stays backward compatible."""

from __future__ import annotations

import json

import numpy as np
import pytest

from taskrel import Affinity, TaskrelError
from taskrel.calibration import infer_calibration


@pytest.mark.parametrize("measure, meta, kind", [
    ("pairwise", {}, "relative-gain"),
    ("pairwise-cheap", {}, "relative-gain"),
    ("surrogate", {}, "relative-gain"),
    ("gradfeature", {}, "relative-gain"),
    ("transfer-finetune", {"gain": "relative"}, "relative-gain"),
    ("transfer-finetune", {"gain": "absolute"}, "gain"),
    ("transfer-frozen", {"gain": "relative"}, "uncalibrated"),
    ("gradient-cosine", {}, "uncalibrated"),
    ("lookahead", {}, "uncalibrated"),
    ("similarity-linear", {}, "uncalibrated"),
    ("similarity-rsa", {}, "uncalibrated"),
    ("gradient-conflict-frequency", {}, "descriptive"),
    ("my own measure", {}, "gain"),
])
def test_each_probe_measure_states_its_calibration(measure, meta, kind):
    assert infer_calibration(measure, meta) == kind
    assert Affinity(["a", "b"], np.zeros((2, 2)), measure=measure, meta=meta).calibration == kind


def test_calibration_survives_transforms_and_json(tmp_path):
    aff = Affinity(["a", "b", "c"], np.arange(9.0).reshape(3, 3), measure="lookahead",
                   calibration="relative-gain")
    for other in (aff.subset(["c", "a"]), aff.symmetrize(), Affinity.load(aff.save(tmp_path / "a.json"))):
        assert other.calibration == "relative-gain"
    assert aff.normalize("rank").calibration == "uncalibrated"
    staged = Affinity(["a", "b"], np.ones((2, 2, 2)), measure="similarity-linear")
    assert staged.stage(1).calibration == "uncalibrated"


def test_json_without_calibration_is_read_as_before(tmp_path):
    """A file written before calibration existed: no key; the kind is inferred on load."""
    d = Affinity(["a", "b"], [[0, 0.1], [0.2, 0]], measure="pairwise").to_dict()
    del d["calibration"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    old = Affinity.load(path)
    assert old.calibration == "relative-gain" and old.value("b", "a") == 0.2
    assert Affinity.from_dict(old.to_dict()).to_dict() == old.to_dict()


def test_calibrate_recovers_a_planted_line():
    rng = np.random.default_rng(1)
    tasks = list("abcde")
    gain = rng.normal(0, 0.05, (5, 5))
    np.fill_diagonal(gain, 0)
    score = 0.3 + 4.0 * gain  # an uncalibrated score, linear in the true gain
    aff = Affinity(tasks, score, std=np.full((5, 5), 0.2), measure="gradient-cosine")
    measured = {(tasks[i], tasks[j]): gain[i, j] for i, j in [(0, 1), (2, 3), (4, 0), (1, 2)]}
    cal = aff.calibrate(measured)
    off = ~np.eye(5, dtype=bool)
    assert cal.calibration == "relative-gain" and cal.measure == "gradient-cosine+calibrated"
    assert np.allclose(cal.values[off], gain[off]) and np.allclose(cal.std, 0.05)
    fit = cal.meta["calibrated"]
    assert fit["pairs"] == 4 and fit["slope"] == pytest.approx(0.25) and fit["r"] == pytest.approx(1.0)


def test_bad_calibration_input_raises():
    aff = Affinity(["a", "b", "c"], [[0, 1, 2], [1, 0, 3], [2, 3, 0]], measure="similarity-linear")
    with pytest.raises(TaskrelError, match="at least three"):
        aff.calibrate({("a", "b"): 0.1})
    flat = Affinity(["a", "b", "c"], np.ones((3, 3)), measure="similarity-linear")
    with pytest.raises(TaskrelError, match="same affinity value"):
        flat.calibrate({("a", "b"): 0.1, ("b", "a"): 0.2, ("a", "c"): 0.0})
    with pytest.raises(TaskrelError, match="two tasks"):
        aff.calibrate({("a", "b"): 0.1, ("b", "a"): 0.2, ("c", "c"): 0.0})
    with pytest.raises(TaskrelError, match="unknown task 'z'"):
        aff.calibrate({("a", "z"): 0.1, ("b", "a"): 0.2, ("a", "c"): 0.0})
    with pytest.raises(TaskrelError, match="calibration must be one of"):
        Affinity(["a", "b"], np.zeros((2, 2)), calibration="sure")
