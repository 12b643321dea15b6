"""Partial results instead of none: one task whose training always diverges (targets ~1e30)
leaves NaN exactly at its entries, the failures are listed with their stored reason, and the
study goes on with the healthy tasks, says which task it left out and why, and exits 0 only
when it could recommend something."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from taskrel.affinity import Affinity
from taskrel.affinity_missing import complete_over, complete_tasks
from taskrel.errors import TaskrelError
from taskrel.study import StudyResult
from taskrel.suite import Suite, Task
from taskrel.train import TrainConfig

HEALTHY = ["c0t0", "c0t1", "c1t0"]


# ---------------------------------------------------------------------- Affinity: NaN only when marked
def _with_hole(missing=True):
    v = np.array([[0, 1, np.nan], [2, 0, np.nan], [np.nan, np.nan, 0]])
    return Affinity(["a", "b", "c"], v, std=np.where(np.isnan(v), np.nan, 0.1), missing=missing, measure="pairwise",
                    meta={"failed": [{"run": "single c", "tasks": ["c"], "failed_task": "c", "step": 3,
                                      "error": "training loss of task 'c' became inf (at step 3)"}]})


def test_an_accidental_nan_is_still_refused():
    with pytest.raises(TaskrelError, match=r"source 'a' -> target 'c' is nan .*missing="):
        _with_hole(missing=None)
    with pytest.raises(TaskrelError, match="is inf"):  # inf is never a missing entry
        Affinity(["a", "b"], [[0, np.inf], [1, 0]], missing=True)
    mask = np.zeros((2, 2), dtype=bool)
    mask[1, 0] = True  # NaN at (0, 1) but the mask marks (1, 0)
    with pytest.raises(TaskrelError, match="source 'a' -> target 'b'"):
        Affinity(["a", "b"], [[0, np.nan], [1, 0]], missing=mask)
    with pytest.raises(TaskrelError, match="boolean mask of shape"):
        Affinity(["a", "b"], [[0, np.nan], [1, 0]], missing=[[0, 1], [0, 0]])
    with pytest.raises(TaskrelError, match="std must be finite"):  # a NaN std outside the marked entries
        Affinity(["a", "b"], [[0, 1], [1, 0]], std=[[0, np.nan], [0, 0]])


def test_a_mask_marks_entries_as_nan_and_nothing_missing_is_none():
    mask = np.array([[False, True], [False, False]])
    a = Affinity(["a", "b"], [[0, 5.0], [1, 0]], missing=mask)
    assert np.isnan(a.values[0, 1]) and np.isnan(a.std[0, 1]) and a.values[1, 0] == 1
    assert Affinity(["a", "b"], [[0, 1], [1, 0]], missing=np.zeros((2, 2), dtype=bool)).missing is None


def test_missing_entries_round_trip_through_dict_json_and_file(tmp_path):
    a = _with_hole()
    text = json.dumps(a.to_dict(), allow_nan=False)  # plain JSON: a missing entry is null
    b = Affinity.from_dict(json.loads(text))
    np.testing.assert_array_equal(b.missing, a.missing)
    np.testing.assert_array_equal(np.isnan(b.values), np.isnan(a.values))
    np.testing.assert_allclose(b.values[~a.missing], a.values[~a.missing])
    assert b.meta["failed"] == a.meta["failed"]
    c = Affinity.load(a.save(tmp_path / "a.json"))
    np.testing.assert_array_equal(c.missing, a.missing)
    staged = Affinity(["a", "b"], [[[1, np.nan], [0.5, 1]], [[1, 0.2], [0.5, 1]]], stages=["s0", "s1"], missing=True)
    again = Affinity.from_dict(json.loads(json.dumps(staged.to_dict(), allow_nan=False)))
    assert again.missing.tolist() == staged.missing.tolist() and again.to_dict()["missing"] == [[0, "a", "b"]]
    assert again.stage(1).missing is None and again.stage(0).missing.sum() == 1


def test_complete_drops_the_task_with_most_missing_entries_and_says_why():
    sub, left = _with_hole().complete()
    assert sub.tasks == ["a", "b"] and sub.missing is None and np.isfinite(sub.values).all()
    np.testing.assert_allclose(sub.values, [[0, 1], [2, 0]])
    assert left == {"c": "diverged: training loss of task 'c' became inf (at step 3); "
                         "no successful run for 4 of its 4 affinity entries"}


def test_complete_is_greedy_and_breaks_ties_by_the_task_listed_last():
    tasks = ["a", "b", "c", "d"]
    mask = np.zeros((4, 4), dtype=bool)
    for i, j in [(0, 2), (2, 0), (1, 2), (2, 3)]:  # c misses 4 entries, a 2, b 1, d 1
        mask[i, j] = True
    assert complete_tasks(tasks, mask)[0] == ["a", "b", "d"]
    tie = np.zeros((4, 4), dtype=bool)
    tie[0, 1] = tie[1, 0] = True  # a and b miss each other: the one listed last goes
    keep, left = complete_tasks(tasks, tie)
    assert keep == ["a", "c", "d"] and list(left) == ["b"]
    assert complete_tasks(["b", "a", "c", "d"], tie[[1, 0, 2, 3]][:, [1, 0, 2, 3]])[0] == ["b", "c", "d"]
    # whatever the pattern, what remains is complete, and in the original order
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = rng.random((5, 5)) < 0.15
        keep, left = complete_tasks(list("pqrst"), m)
        idx = ["pqrst".index(t) for t in keep]
        assert not m[np.ix_(idx, idx)].any() and keep == sorted(keep) and set(keep) | set(left) == set("pqrst")


def test_transforms_carry_the_mask_and_refuse_what_needs_every_entry():
    a = _with_hole()
    sym = a.symmetrize()
    assert sym.missing.tolist() == (a.missing | a.missing.T).tolist()
    assert a.subset(["b", "a"]).missing is None and a.subset(["c", "a"]).missing.sum() == 2
    with pytest.raises(TaskrelError, match=r"take \.complete\(\) first"):
        a.normalize("rank")
    # calibration keeps the hole a hole, and refuses a measured pair that falls on it
    with pytest.raises(TaskrelError, match=r"\('a', 'c'\) has no affinity value"):
        a.calibrate({("a", "b"): .1, ("b", "a"): .1, ("a", "c"): .2})
    full = Affinity(["a", "b", "c"], [[0, 1, 3], [2, 0, 5], [4, 6, 0]])
    assert a.agreement(full) == {"spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0), "n": 2}  # missing left out


def test_complete_over_several_probes_names_them():
    a = _with_hole()
    other = Affinity(["a", "b", "c"], [[0, np.nan, 1], [np.nan, 0, 1], [1, 1, 0]], missing=True, measure="gradient")
    keep, left = complete_over({"pairwise": a, "gradient": other}, ["a", "b", "c"])
    assert len(keep) == 1 and set(left) == {"b", "c"}  # c first (4 missing), then a tie: b goes
    assert left["c"].endswith("(probe pairwise)") and left["b"].endswith("4 of its 4 affinity entries (probe pairwise, gradient)")
    assert complete_over({"pairwise": a}, ["a", "b"]) == (["a", "b"], {})


def test_a_study_result_with_missing_entries_round_trips(tmp_path):
    r = StudyResult(study={"name": "x"}, suite={}, tasks=["a", "b", "c"], affinities={"pairwise": _with_hole().to_dict()},
                    left_out={"c": "diverged"})
    back = StudyResult.load(r.save(tmp_path))
    assert back.left_out == {"c": "diverged"} and back.remaining_tasks == ["a", "b"]
    assert back.affinity("pairwise").missing.tolist() == _with_hole().missing.tolist()


def test_a_study_with_fewer_than_two_complete_tasks_analyses_nothing():
    from taskrel.study.steps import Log, leave_out

    v = np.full((3, 3), np.nan)
    np.fill_diagonal(v, 0.0)
    v[0, 1] = 0.5  # one entry measured: a and b cannot both stay
    log = Log(verbose=False)
    tasks = ["a", "b", "c"]
    keep, left = leave_out({"p": Affinity(["a", "b", "c"], v, missing=True)}, tasks, log)
    assert keep == ["a"] and list(left) == ["c", "b"] and tasks == ["a", "b", "c"]  # returned, not mutated
    assert "only 1 task(s) remain after leaving out c, b" in log.errors[0]["error"]
    v[1, 0] = 0.2  # a and b measured both ways; c, not studied, measured with neither
    ok = Log(verbose=False)
    keep, left = leave_out({"p": Affinity(["a", "b", "c"], v, missing=True)}, ["a", "b"], ok)
    assert keep == ["a", "b"] and left == {} and ok.errors == []


# ---------------------------------------------------------------------- the pairwise probe
def diverging_suite() -> Suite:
    """The planted suite (3 healthy tasks) and one task whose targets are ~1e30: its loss
    overflows to inf at the first step, in every run that holds it."""
    from taskrel.suites import get_suite

    s = get_suite("planted", n_clusters=2, n_examples=160, label_fraction=0.6)
    targets = {**{t: s.targets[t] for t in HEALTHY}, "bad": (s.inputs[:, 0] * 1e30).astype(np.float32)}
    tasks = [s.task(t) for t in HEALTHY[:1]] + [Task("bad", "regression")] + [s.task(t) for t in HEALTHY[1:]]
    return Suite("planted", s.inputs, tasks, targets, s.stages, split=s.split, stage_names=s.stage_names)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    from taskrel.probes import PairwiseProbe
    from taskrel.runner import Runner

    runner = Runner(tmp_path_factory.mktemp("pairwise-store"), n_jobs=1, progress=False)
    return PairwiseProbe(config=TrainConfig(epochs=1, batch_size=64), seeds=[0]).fit(diverging_suite(), runner)


def test_the_probe_gives_nan_exactly_at_the_diverging_tasks_entries(probe):
    aff = probe.affinity_
    tasks = aff.tasks
    assert tasks == ["c0t0", "bad", "c0t1", "c1t0"]
    b = tasks.index("bad")
    expected = np.zeros((4, 4), dtype=bool)
    expected[b, :] = expected[:, b] = True
    expected[b, b] = False  # the diagonal is no pair
    np.testing.assert_array_equal(np.isnan(aff.values), expected)
    np.testing.assert_array_equal(aff.missing, expected)
    # every failed run is listed, naming its tasks, the task that diverged and the stored reason
    failed = aff.meta["failed"]
    assert len(failed) == 4 == len(probe.failed_)  # bad alone and its three pairs
    assert all(f["failed_task"] == "bad" and "bad" in f["tasks"] and "loss of task 'bad' became inf" in f["error"]
               for f in failed)
    sub, left = aff.complete()
    assert sub.tasks == HEALTHY and np.isfinite(sub.values).all()
    assert left["bad"].startswith("diverged: training loss of task 'bad' became inf")


def test_the_hoa_table_is_built_on_the_remaining_tasks(probe):
    with pytest.raises(TaskrelError, match="every seed's run failed for bad"):
        probe.candidates()
    table = probe.candidates(tasks=HEALTHY)
    assert table.tasks == HEALTHY and len(table) == 7


def test_a_probe_whose_every_run_failed_is_an_error(tmp_path):
    from taskrel.probes import PairwiseProbe

    cfg = TrainConfig(epochs=1, batch_size=64, lr=1e30, optimizer="sgd", momentum=0)
    with pytest.raises(TaskrelError, match="every run failed; first reason: .*became"):
        PairwiseProbe(HEALTHY[:2], config=cfg).fit(diverging_suite(), tmp_path)


# ---------------------------------------------------------------------- the study and the CLI
STUDY = """
name = "partial"
[suite]
name = "planted"
options = {{ n_clusters = 2, n_examples = 160, label_fraction = 0.6, conflict_scale = {scale} }}
tasks = ["c0t0", "conflict", "c0t1", "c1t0"]
[train]
epochs = 1
batch_size = 64
{train}
[probes.pairwise]
[analysis.grouping]
budgets = [1, 2]
budget = 2
[validation]
seeds = [0]
front = false
"""


def _cli(tmp_path: Path, scale: float, train: str = "") -> tuple[int, str, Path]:
    import contextlib
    import io

    from taskrel.cli import main

    f = tmp_path / "study.toml"
    f.write_text(STUDY.format(scale=scale, train=train))
    out, err = tmp_path / "out", io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["study", str(f), "--store", str(tmp_path / "runs"), "--out", str(out), "--quiet", "--n-jobs", "1"])
    return code, err.getvalue(), out


@pytest.fixture(scope="module")
def partial_study(tmp_path_factory):
    """The planted conflict task scaled to ~1e30: every run holding it diverges."""
    return _cli(tmp_path_factory.mktemp("partial-study"), 1e30)


def test_the_study_recommends_for_the_healthy_tasks_and_exits_0(partial_study):
    code, err, out = partial_study
    result = StudyResult.load(out)
    assert code == 0, err
    assert list(result.left_out) == ["conflict"]
    why = result.left_out["conflict"]
    assert why.startswith("diverged: training loss of task 'conflict' became inf") and "probe pairwise" in why
    assert result.remaining_tasks == HEALTHY
    assert result.recommended is not None and sorted(result.recommended.tasks) == sorted(HEALTHY)
    assert all(set(lay["tasks"]) == set(HEALTHY) for lay in result.layouts.values())  # no layout holds it
    rows = result.validation
    assert rows and {r["task"] for r in rows} == set(HEALTHY) and all(r["status"] == "ok" for r in rows)
    d = result.decision
    assert {c.layout for c in d.comparisons} >= {"all-shared", "all-separate"}  # paired on the remaining tasks
    assert result.errors == [] and "pairwise" in result.affinities and "error" not in result.probes["pairwise"]
    aff = result.affinity("pairwise")
    assert aff.missing is not None and aff.missing[aff.tasks.index("conflict")].sum() == 3
    assert "left out: task 'conflict'" in err


def test_the_report_says_which_task_was_left_out_and_why(partial_study):
    _, _, out = partial_study
    page = (out / "report.html").read_text()
    assert 'id="left-out"' in page and "<b>conflict</b>: diverged: training loss of task &#39;conflict&#39; became inf" in page
    md = (out / "report.md").read_text()
    assert "**Left out:**" in md and "- **conflict**: diverged: training loss of task 'conflict' became inf" in md
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["left_out"]) == ["conflict"] and "--tasks c0t0,c0t1,c1t0 " in summary["train"]
    assert sorted(json.loads((out / "layout.json").read_text())["tasks"]) == sorted(HEALTHY)
    assert "Blank cells: 6 entries with no successful run (left out of the analyses: conflict)" in page
    assert "partial: 6 entries with no successful run" in page  # the probe's status row


def test_the_cli_exits_1_when_the_requested_probe_produced_nothing(tmp_path):
    code, err, out = _cli(tmp_path, 2.0, 'lr = 1e30\noptimizer = "sgd"\nmomentum = 0')
    assert code == 1
    assert "probe(s) pairwise produced nothing" in err and "every run failed" in err
    assert "no recommendation" in err and (out / "report.html").is_file()
    assert StudyResult.load(out).recommended is None
