"""The decision: paired per-seed comparisons, the four answers, confidence (no training:
study results are built from planted per-seed losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from taskrel.affinity import Affinity
from taskrel.layout import SharingLayout
from taskrel.study.decision import (
    CANNOT_TELL,
    SEPARATE,
    SHARE,
    SHARED,
    confidence,
    decide,
    paired,
    per_seed_totals,
    seeds_needed,
)
from taskrel.study.result import StudyResult

TASKS = ["a", "b", "c", "d"]
GROUPS = [["a", "b"], ["c", "d"]]


def make_result(totals: dict[str, list[float]], groups=GROUPS, extra_layouts=None, stability=None, affinities=None,
                failed: set[tuple[str, int]] = frozenset()) -> StudyResult:
    """A study result whose layout ``name`` has total test loss ``totals[name][seed]`` (split
    evenly over the tasks)."""
    layouts = {"recommended": SharingLayout.groups(groups, 3).to_dict(),
               "all-shared": SharingLayout.shared(TASKS, 3).to_dict(),
               "all-separate": SharingLayout.separate(TASKS, 3).to_dict(), **(extra_layouts or {})}
    rows = []
    for name, per_seed in totals.items():
        for seed, total in enumerate(per_seed):
            for t in TASKS:
                bad = (name, seed) in failed
                rows.append({"layout": name, "seed": seed, "task": t, "test_loss": None if bad else total / len(TASKS),
                             "test_metric": 0.5, "val_loss": 0.1, "n_parameters": 10, "status": "failed" if bad else "ok"})
    return StudyResult(study={"name": "synthetic", "suite": "planted"}, suite={"name": "planted"}, tasks=list(TASKS),
                       layouts=layouts, validation=rows, stability=stability, affinities=affinities or {})


def noise(n: int, scale: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, n)


def test_per_seed_totals_sum_the_tasks_and_skip_failed_seeds():
    r = make_result({"recommended": [4.0, 8.0], "all-shared": [2.0, 2.0]}, failed={("all-shared", 1)})
    totals = per_seed_totals(r.validation, TASKS)
    assert totals["recommended"] == {0: pytest.approx(4.0), 1: pytest.approx(8.0)}
    assert totals["all-shared"] == {0: pytest.approx(2.0)}  # seed 1 failed: left out


def test_paired_interval_is_the_t_interval_of_the_differences():
    a = {0: 1.0, 1: 1.4, 2: 0.9, 3: 1.2, 9: 5.0}
    b = {0: 1.1, 1: 1.3, 2: 1.2, 3: 1.5}
    mean, (lo, hi), n, sd = paired(a, b)
    d = np.array([a[s] - b[s] for s in range(4)])  # seed 9 has no partner: left out
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2.0
    assert n == 4 and mean == pytest.approx(d.mean()) and sd == pytest.approx(d.std(ddof=1))
    assert (lo, hi) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    assert paired({0: 1.0}, {0: 2.0})[1] == (-math.inf, math.inf)


def test_pairing_cancels_noise_shared_by_a_seed():
    """Adding the same per-seed offset to both layouts changes nothing: the comparison is paired."""
    base = {"recommended": list(1.0 + noise(5, 0.01, 1)), "all-shared": list(1.3 + noise(5, 0.01, 2)),
            "all-separate": list(1.2 + noise(5, 0.01, 3))}
    shift = noise(5, 1.0, 4)  # seed noise far larger than the differences
    shifted = {k: list(np.array(v) + shift) for k, v in base.items()}
    c0 = {c.layout: c for c in decide(make_result(base)).comparisons}
    c1 = {c.layout: c for c in decide(make_result(shifted)).comparisons}
    for name in ("all-shared", "all-separate"):
        assert c1[name].mean_diff == pytest.approx(c0[name].mean_diff)
        assert c1[name].ci95 == (pytest.approx(c0[name].ci95[0]), pytest.approx(c0[name].ci95[1]))
    assert decide(make_result(shifted)).decision == SHARE


def test_recommendation_better_than_both_baselines_says_share():
    r = make_result({"recommended": list(1.0 + noise(5, 0.01)), "all-shared": list(1.5 + noise(5, 0.01, 1)),
                     "all-separate": list(1.2 + noise(5, 0.01, 2))})
    d = decide(r)
    assert d.decision == SHARE and d.best_measured == "recommended" and not d.baseline_as_good
    for c in d.comparisons:
        assert c.mean_diff < 0 and c.ci95[1] < 0 and c.n_seeds == 5 and c.outcome == "recommended better"


@pytest.mark.parametrize("winner, want", [("all-separate", SEPARATE), ("all-shared", SHARED)])
def test_a_baseline_that_wins_is_the_decision(winner, want):
    totals = {"recommended": list(1.2 + noise(5, 0.01)), "all-shared": list(1.4 + noise(5, 0.01, 1)),
              "all-separate": list(1.4 + noise(5, 0.01, 2))}
    totals[winner] = list(1.0 + noise(5, 0.01, 3))
    d = decide(make_result(totals))
    assert d.decision == want and d.best_measured == winner and d.baseline_as_good
    c = next(c for c in d.comparisons if c.layout == winner)
    assert c.ci95[0] > 0 and winner in d.reason


def test_a_difference_within_the_noise_cannot_tell_and_says_how_many_seeds_would():
    totals = {"recommended": list(1.05 + noise(5, 0.05)), "all-shared": list(1.5 + noise(5, 0.01, 1)),
              "all-separate": list(1.0 + noise(5, 0.05, 2))}
    d = decide(make_result(totals))
    c = next(c for c in d.comparisons if c.layout == "all-separate")
    assert c.ci95[0] < 0 < c.ci95[1]
    assert d.decision == CANNOT_TELL and "all-separate" in d.reason and d.baseline_as_good
    n = seeds_needed(c.sd_diff, c.mean_diff, c.n_seeds)
    assert n is not None and n > c.n_seeds and f"about {n} paired validation seeds" in d.what_would_tell
    # with that many seeds and the same spread, the interval would exclude zero; one fewer would not
    half = lambda k: stats.t.ppf(0.975, k - 1) * c.sd_diff / math.sqrt(k)  # noqa: E731
    assert half(n) < abs(c.mean_diff) <= half(n - 1)


def test_a_clear_win_and_a_better_mean_share_as_recommended():
    """Like the planted study: clearly better than all-separate; all-shared is noisy, worse on
    average, but its interval reaches 0."""
    totals = {"recommended": list(1.0 + noise(3, 0.01)), "all-separate": list(1.2 + noise(3, 0.01, 1)),
              "all-shared": [1.3, 3.0, 2.2]}
    d = decide(make_result(totals))
    c = next(c for c in d.comparisons if c.layout == "all-shared")
    assert c.mean_diff < 0 < c.ci95[1]
    assert d.decision == SHARE and "within the seed noise" in d.reason and not d.baseline_as_good


def test_one_seed_cannot_tell():
    d = decide(make_result({"recommended": [1.0], "all-shared": [2.0], "all-separate": [3.0]}))
    assert d.decision == CANNOT_TELL and "seeds" in d.what_would_tell


def test_identical_layouts_are_compared_once():
    shared = SharingLayout.shared(TASKS, 3).to_dict()
    rec = SharingLayout.groups(GROUPS, 3).to_dict()
    totals = {"recommended": list(1.0 + noise(4, 0.01)), "all-shared": list(1.5 + noise(4, 0.01, 1)),
              "all-separate": list(1.2 + noise(4, 0.01, 2)), "budget 1": list(1.5 + noise(4, 0.01, 1)),
              "budget 2": list(1.0 + noise(4, 0.01))}
    d = decide(make_result(totals, extra_layouts={"budget 1": shared, "budget 2": rec}))
    names = [c.layout for c in d.comparisons]
    assert names.count("all-shared") == 1 and "budget 1" not in names and "budget 2" not in names
    assert next(c for c in d.comparisons if c.layout == "all-shared").same_as == ["budget 1"]


def test_another_layout_that_measured_better_is_named():
    other = SharingLayout.groups([["a", "c"], ["b", "d"]], 3).to_dict()
    totals = {"recommended": list(1.1 + noise(5, 0.01)), "all-shared": list(1.5 + noise(5, 0.01, 1)),
              "all-separate": list(1.3 + noise(5, 0.01, 2)), "budget 2x": list(0.9 + noise(5, 0.01, 3))}
    d = decide(make_result(totals, extra_layouts={"budget 2x": other}))
    assert d.decision == CANNOT_TELL and "budget 2x" in d.reason and d.best_measured == "budget 2x"
    assert not d.baseline_as_good


def test_no_validation_cannot_tell():
    r = make_result({})
    d = decide(r)
    assert d.decision == CANNOT_TELL and d.comparisons == [] and d.best_measured is None


def test_confidence_follows_stability_and_probe_agreement():
    assert confidence(0.95, 0.9)[0] == "high"
    assert confidence(0.5, 0.9)[0] == "medium"
    level, why = confidence(0.05, 0.9)
    assert level == "low" and "ARI 0.05" in why
    vals = np.array([[0, 1, 2, 3], [4, 0, 5, 6], [7, 8, 0, 9], [10, 11, 12, 0.0]])
    affs = {"p": Affinity(TASKS, vals, measure="pairwise").to_dict(),
            "q": Affinity(TASKS, vals * 2 + 1, measure="gradient-cosine").to_dict(),
            "r": Affinity(TASKS, -vals, measure="lookahead").to_dict()}
    r = make_result({"recommended": [1.0, 1.0], "all-shared": [2.0, 2.1], "all-separate": [1.5, 1.6]},
                    stability={"mean_ari": 1.0}, affinities=affs)
    r.analysis_probe = "p"
    d = decide(r)
    assert d.probe_agreement == pytest.approx(0.0)  # median of +1 (q) and -1 (r)
    assert d.confidence == "low" and "disagree" in d.confidence_why
    r.affinities = {k: affs[k] for k in ("p", "q")}
    d = decide(r)
    assert d.probe_agreement == pytest.approx(1.0) and d.confidence == "high"


def test_confidence_names_what_the_stability_compared():
    """A probe whose per-seed matrices are resamples (the prediction probe's bootstrap samples) is
    not described as varying over training seeds."""
    from taskrel.study.findings import Clustering

    vals = np.eye(4)
    totals = {"recommended": [1.0, 1.0], "all-shared": [2.0, 2.1], "all-separate": [1.5, 1.6]}
    halves = {"p": Affinity(TASKS, vals, measure="prediction-correlation", meta={"per_seed": "bootstrap samples of the labels"})}
    r = make_result(totals, stability={"mean_ari": 0.5}, affinities=halves)
    r.clustering = Clustering("p", "hierarchical", list(TASKS), [0, 0, 1, 1], GROUPS, 2)
    assert "across bootstrap samples of the labels (ARI 0.50)" in decide(r).confidence_why
    r.affinities = {"p": Affinity(TASKS, vals, measure="gradient-cosine")}
    assert "across seeds (ARI 0.50)" in decide(r).confidence_why


def test_decision_to_dict_is_plain_json():
    import json

    d = decide(make_result({"recommended": [1.0, 1.1, 0.9], "all-shared": [2.0, 2.1, 1.8], "all-separate": [1.5, 1.6, 1.4]}))
    back = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert back["decision"] == SHARE
    assert {"layout", "mean_diff", "ci95", "n_seeds"} <= set(back["comparisons"][0])
