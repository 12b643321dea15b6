"""Every committed study (studies/results/*/) re-decides, with this version's decision rule,
to the decision, reason and confidence it committed, from its committed numbers alone.

Runs and study_result.json are not committed, so the per-seed losses are not either: what is
committed is each study's paired comparisons (mean difference, 95% interval, seeds) in
summary.json and its recommended layout in layout.json. From those this test rebuilds the
result the decision reads and asks :func:`taskrel.study.decision.choose` and
:func:`~taskrel.study.decision.confidence` again. Nothing trains.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskrel.layout import SharingLayout
from taskrel.study.decision import Comparison, choose, confidence
from taskrel.study.result import StudyResult

RESULTS = Path(__file__).resolve().parents[2] / "studies" / "results"
COMMITTED = sorted(p.parent for p in RESULTS.glob("*/summary.json"))


def committed_result(folder: Path) -> tuple[StudyResult, list[Comparison], dict]:
    summary = json.loads((folder / "summary.json").read_text())
    rec = SharingLayout.from_dict(json.loads((folder / "layout.json").read_text()))
    tasks, n_stages = summary["tasks"], len(rec.partitions)
    layouts = {"recommended": rec.to_dict(), "all-shared": SharingLayout.shared(tasks, n_stages).to_dict(),
               "all-separate": SharingLayout.separate(tasks, n_stages).to_dict()}
    rows = [{"layout": v["layout"], "seed": 0, "task": tasks[0], "test_loss": v["test_loss_mean"], "test_metric": None,
             "val_loss": None, "n_parameters": v.get("n_parameters"), "status": "ok"} for v in summary["validation"]]
    for v in summary["validation"]:
        layouts.setdefault(v["layout"], {"tasks": tasks, "partitions": [[[v["layout"]]]]})  # some other layout
    comps = [Comparison(c["layout"], c["mean_diff"], tuple(float("inf") if x is None else x for x in c["ci95"]),
                        c["n_seeds"], c["sd_diff"], c["recommended_loss"], c["layout_loss"], c.get("same_as", []))
             for c in summary["answer"]["comparisons"]]
    result = StudyResult(study={"name": summary["study"]}, suite={"name": summary["suite"]}, tasks=tasks,
                         layouts=layouts, validation=rows)
    return result, comps, summary["answer"]


def test_there_are_committed_studies():
    assert len(COMMITTED) >= 5, COMMITTED


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_a_committed_study_re_decides_to_its_committed_decision(folder):
    result, comps, answer = committed_result(folder)
    decision, reason, tell, _ = choose(result, comps)
    assert (decision, reason, tell) == (answer["decision"], answer["reason"], answer["what_would_tell"])
    assert confidence(answer["stability_ari"], answer["probe_agreement"]) == (answer["confidence"], answer["confidence_why"])


def test_a_changed_number_changes_the_decision():
    """The check can fail: moving a winning baseline's interval across zero changes the answer."""
    folder = next(f for f in COMMITTED if json.loads((f / "summary.json").read_text())["answer"]["decision"] == "keep these tasks separate")
    result, comps, answer = committed_result(folder)
    sep = next(c for c in comps if c.layout == "all-separate")
    sep.ci95 = (-abs(sep.ci95[1]), abs(sep.ci95[1]))
    assert choose(result, comps)[0] != answer["decision"]
