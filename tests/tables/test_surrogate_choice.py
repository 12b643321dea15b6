"""How SubsetSurrogate chooses its form and penalty: the leave-one-group-out error is that of
the fit itself, the target's own single is never scored, and choices can be given per task."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from taskrel.analysis import CandidateTable
from taskrel.errors import TaskrelError
from taskrel.tables.effects import cross_validate, design, ridge
from taskrel.tables.surrogate import SubsetSurrogate

TASKS = ["a", "b", "c", "d", "e", "f", "g"]
# a probe-like design: every single, seven pairs, then mostly large groups (sample_design's
# shape at 7 tasks and 14 groups): each target is in two pairs only
DESIGN = [(0,), (1,), (2,), (3,), (4,), (5,), (6,), (2, 3), (0, 1), (5, 6), (0, 4), (3, 6), (1, 4), (2, 5),
          (0, 1, 2, 3, 4, 5, 6), (1, 2, 3, 4, 5, 6), (0, 1, 2, 3, 4, 5), (0, 1, 2, 3, 4, 6), (0, 1, 3, 4, 5, 6),
          (0, 5, 6), (0, 1, 4, 5, 6)]


def members_of(groups, n=7):
    m = np.zeros((len(groups), n), dtype=bool)
    for r, g in enumerate(groups):
        m[r, list(g)] = True
    return m


def every_group(n=7):
    return np.array([[(c >> k) & 1 for k in range(n)] for c in range(1, 2**n)], dtype=bool)


def averaged_truth(members, seed=0):
    """Losses whose harm from mates saturates: the mean of the pair effects (HOA), as qm9-scarce
    behaves (a task's loss rises two- to five-fold with any unrelated mate, about as much with five)."""
    rng = np.random.default_rng(seed)
    n = members.shape[1]
    base = rng.uniform(0.2, 1.0, n)
    harm = rng.uniform(1.0, 4.0, (n, n))
    harm[:3, :3] = rng.uniform(-0.7, -0.3, (3, 3))  # three tasks that help each other
    np.fill_diagonal(harm, 0.0)
    m = members.astype(float)
    mates = np.maximum(m.sum(1, keepdims=True) - 1, 1)
    return np.where(members, base[None, :] * (1 + (m @ harm) / mates), np.nan)


def tables_of(members, truth, noise, seeds, rng):
    return [CandidateTable.from_arrays(TASKS[: members.shape[1]], members, np.ones(len(members)),
                                       truth * (1 + rng.normal(0, noise, truth.shape)), higher_is_better=False)
            for _ in range(seeds)]


@pytest.mark.parametrize("form", ["sum", "mean", "both"])
def test_leave_one_group_out_error_is_the_refit_error_of_the_final_fit(form):
    rng = np.random.default_rng(3)
    members = members_of(DESIGN)
    y_all = averaged_truth(members) * (1 + rng.normal(0, 0.05, (3,) + members.shape))  # 3 seeds
    j = 1
    rows = members[:, j]
    stacked, y = np.tile(members[rows], (3, 1)), y_all[:, rows, j].reshape(-1)
    cv = cross_validate(stacked, j, y, None, (form,), (0.01, 1.0), False)
    for alpha in (0.01, 1.0):
        errs, weights = [], []
        for g in np.unique(stacked, axis=0):
            if g.sum() == 1:
                continue  # the target alone: always measured, never predicted, never scored
            out = (stacked == g).all(1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                beta = ridge(design(stacked[~out], j, False, form), y[~out], None, alpha, "b")[0]
            errs.append((y[out].mean() - design(g[None], j, False, form) @ beta)[0] ** 2)
            weights.append(out.sum())
        assert cv[(form, alpha)] == pytest.approx(np.average(errs, weights=weights), rel=1e-6)


@pytest.mark.parametrize("form", ["sum", "mean", "both"])
def test_the_intercept_is_the_measured_single_and_the_penalty_shrinks_towards_it(form):
    """The effects fit the groups' departures from the target's measured single, so a huge
    penalty predicts every group as good as alone; it never moves the intercept to the
    average group (which, for the averaged form, no group can tell from the mean effect)."""
    members = members_of(DESIGN)
    tables = tables_of(members, averaged_truth(members), 0.1, 2, np.random.default_rng(5))
    single = np.array([np.mean([t.value((name,), name) for t in tables]) for name in TASKS])
    held = every_group()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for alpha in (1e-3, 1.0, 1e9):
            s = SubsetSurrogate(effects=form, alpha=alpha).fit(tables)
            assert np.allclose(s.intercept_, single)
        pred, _ = s.predict_members(held)
    assert np.allclose(pred, np.where(held, single[None, :], np.nan), rtol=1e-5, equal_nan=True)


def test_default_predicts_unmeasured_groups_of_a_planted_averaged_truth():
    """Few pairs and mostly large groups per target (a probe's design), harm that averages:
    the default (both forms nested) and the form chosen per task (``effects="auto"``) predict
    the unmeasured groups nearly as well as the true form does and better than the wrong one.
    Ten planted draws, 10% seed noise, two seeds each."""
    members, held = members_of(DESIGN), every_group()
    unmeasured = ~(held[:, None, :] == members[None, :, :]).all(2).any(1)
    err = {"default": [], "auto": [], "mean": [], "sum": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for draw in range(10):
            tables = tables_of(members, averaged_truth(members, draw), 0.1, 2, np.random.default_rng(draw + 1))
            truth = averaged_truth(held, draw)[unmeasured]
            for name, params in (("default", {}), ("auto", {"effects": "auto"}), ("mean", {"effects": "mean"}),
                                 ("sum", {"effects": "sum"})):
                pred, _ = SubsetSurrogate(**params).fit(tables).predict_members(held[unmeasured])
                err[name].append(float(np.sqrt(np.nanmean(((pred - truth) / truth) ** 2))))
    mean = {k: float(np.mean(v)) for k, v in err.items()}
    assert mean["mean"] < mean["sum"]  # the planted truth averages
    for name in ("default", "auto"):
        assert mean[name] < 1.2 * mean["mean"] and mean[name] < mean["sum"], (name, mean)


def test_forms_and_penalties_given_per_task_refit_another_fits_choices():
    members = members_of(DESIGN)
    tables = tables_of(members, averaged_truth(members, seed=4), 0.05, 2, np.random.default_rng(2))
    chosen = SubsetSurrogate(effects="auto").fit(tables)
    again = SubsetSurrogate(effects=dict(zip(chosen.tasks_, chosen.effects_)),
                            alpha=dict(zip(chosen.tasks_, chosen.alpha_.tolist()))).fit(tables)
    assert again.cv_ == {} and again.effects_ == chosen.effects_
    for t in TASKS:
        assert np.allclose(again.coef_[t].to_numpy(), chosen.coef_[t].to_numpy())
    assert "effects='per task'" in again.estimator_name()
    mixed = {t: ("mean", "sum", "auto")[k % 3] for k, t in enumerate(TASKS)}  # no form all may take
    pooled = SubsetSurrogate(effects=mixed, choose="pooled").fit(tables)
    assert all(e == mixed[t] for t, e in zip(TASKS, pooled.effects_) if mixed[t] != "auto")
    with pytest.raises(TaskrelError, match=r"effects is given per task but names no value for \['b'"):
        SubsetSurrogate(effects={"a": "sum"}).fit(tables)
    with pytest.raises(TaskrelError, match="effects of task 'a' must be"):
        SubsetSurrogate(effects={t: "median" for t in TASKS}).fit(tables)
    with pytest.raises(TaskrelError, match="alpha must be a number"):
        SubsetSurrogate(alpha={t: -1.0 for t in TASKS}).fit(tables)
