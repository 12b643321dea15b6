"""The planted suite's truth is real: measured by training, not assumed; its knobs do what they say."""

from functools import cache

import numpy as np
import pytest

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.suites import get_suite
from taskrel.train import TrainConfig, train

CFG = TrainConfig(epochs=40, patience=8, lr=3e-3, batch_size=32)
SEEDS = (0, 1, 2)


@cache
def _test_losses(tasks: tuple[str, ...]) -> dict[str, float]:
    """Mean test loss of each task of the all-shared network on ``tasks`` (default suite)."""
    suite = get_suite("planted")
    lay = SharingLayout.shared(list(tasks), suite.n_stages)
    runs = [train(suite, lay, CFG, seed=s).metrics["test"] for s in SEEDS]
    return {t: float(np.mean([r[t]["loss"] for r in runs])) for t in tasks}


def test_same_cluster_helps_and_conflict_hurts():
    for a, b in [("c0t0", "c0t1"), ("c1t0", "c1t1")]:
        together = _test_losses((a, b))
        assert together[a] < _test_losses((a,))[a]
        assert together[b] < _test_losses((b,))[b]
    for t in ("c0t0", "c0t1"):
        assert _test_losses((t, "conflict"))[t] > _test_losses((t,))[t]


def test_the_conflict_hurts_its_cluster_more_than_an_unrelated_partner():
    """A real conflict, not only a second task competing for the encoder: measured (3 seeds),
    c0t0 alone 0.200, with unrelated 0.303, with conflict 0.552; c0t1 0.127, 0.185, 0.413."""
    for t in ("c0t0", "c0t1"):
        alone = _test_losses((t,))[t]
        hurt_conflict = _test_losses((t, "conflict"))[t] - alone
        hurt_unrelated = _test_losses((t, "unrelated"))[t] - alone
        assert hurt_conflict > 1.5 * max(hurt_unrelated, 0.0) and hurt_conflict > 0.1


# ------------------------------------------------------------------ knobs (no training)
def _corr(a, b):
    m = ~np.isnan(a) & ~np.isnan(b)
    return float(np.corrcoef(a[m], b[m])[0, 1])


def test_relatedness_sets_how_alike_the_cluster_tasks_are():
    corr = []
    for rho in (0.0, 0.6, 1.0):  # many latent directions: two unrelated read-outs barely correlate
        suites = [get_suite("planted", relatedness=rho, latent_dim=24, label_fraction=1.0, noise=0.0, seed=k) for k in range(4)]
        corr.append(np.mean([_corr(s.targets["c0t0"], s.targets["c0t1"]) for s in suites]))
    assert abs(corr[0]) < 0.25 and 0.4 < corr[1] < 0.8 and corr[2] > 0.999, corr


def test_label_overlap_sets_the_shared_labelled_rows():
    def labelled(s):
        return {t: ~np.isnan(y) for t, y in s.targets.items()}

    same = labelled(get_suite("planted", label_overlap=1.0))
    assert all((m == same["c0t0"]).all() for m in same.values())
    apart = labelled(get_suite("planted", label_overlap=0.0, label_fraction=0.1))
    masks = list(apart.values())
    assert all(not (a & b).any() for i, a in enumerate(masks) for b in masks[i + 1:])
    half = labelled(get_suite("planted", label_overlap=0.5, label_fraction=0.1))
    common = np.logical_and.reduce(list(half.values())).sum()
    assert common == 50 and all(m.sum() == 100 for m in half.values())


def test_width_and_conflict_kind():
    narrow = get_suite("planted", width=8)
    assert narrow.feature_shapes()[-1] == (2,)
    assert get_suite("planted").feature_shapes()[-1] == (8,)
    sign = get_suite("planted", conflict="sign", label_fraction=1.0, noise=0.0)
    feat = get_suite("planted", label_fraction=1.0, noise=0.0)
    # the old conflict is nearly a linear function of cluster 0's signal; the new one is not
    assert abs(_corr(sign.targets["conflict"], sign.targets["c0t0"])) > 0.5
    assert abs(_corr(feat.targets["conflict"], feat.targets["c0t0"])) < 0.2
    assert feat.truth["conflict"]["kind"] == "feature"


@pytest.mark.parametrize(
    "options, field",
    [({"relatedness": 1.5}, "relatedness"), ({"label_overlap": -0.1}, "label_overlap"), ({"width": 2}, "width"),
     ({"conflict": "flip"}, "conflict")],
)
def test_bad_knobs_name_the_field(options, field):
    with pytest.raises(TaskrelError, match=rf"planted: (option )?{field}\b"):
        get_suite("planted", **options)
