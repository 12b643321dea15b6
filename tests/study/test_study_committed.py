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
from taskrel.study.result import StudyResult, jsonable
from taskrel.study.validated import StudyLayout, ValidationRow

RESULTS = Path(__file__).resolve().parents[2] / "studies" / "results"
COMMITTED = sorted(p.parent for p in RESULTS.glob("*/summary.json"))


def committed_result(folder: Path) -> tuple[StudyResult, list[Comparison], dict]:
    summary = json.loads((folder / "summary.json").read_text())
    rec = SharingLayout.from_dict(json.loads((folder / "layout.json").read_text()))
    tasks, n_stages = summary["tasks"], len(rec.partitions)
    layouts = {"recommended": rec, "all-shared": SharingLayout.shared(tasks, n_stages),
               "all-separate": SharingLayout.separate(tasks, n_stages)}
    rows = [ValidationRow(v["layout"], 0, tasks[0], v["test_loss_mean"], None, None, v.get("n_parameters"), "ok")
            for v in summary["validation"]]
    for k, row in enumerate((summary["answer"].get("capacity") or {}).get("rows", [])):  # width-matched: width, counts
        layouts[row["layout"]] = StudyLayout(rec.with_widths({t: 1.5 + k / 8 for t in tasks}), width=row["width"],
                                             n_parameters=row["n_parameters"], target_parameters=row["target_parameters"])
    for i, v in enumerate(summary["validation"]):  # some other layout (its own widths make it unlike the others)
        layouts.setdefault(v["layout"], rec.with_widths({t: 2.0 + i for t in tasks}))
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


# ---------------------------------------------------------------------- results written before schema 3
# tests/data/results/<name>/ holds a study_result.json of schema 2 and the summary.json and report.md that taskrel
# 5b0db8c (the last version before the typed StudyResult) rendered from it into /tmp/h1golden/<name>: a real default
# study on digits (its numbers are the committed studies/results/digits-default's), the small hostile study of
# tests/study/test_study.py (every probe, clusters, stability, auxiliary ranking, front, random groupings, a failed
# run, a branched layout) and a width study (width-matched baselines, capacity, an aggregator control).
OLD = Path(__file__).resolve().parents[1] / "data" / "results"
OLD_RESULTS = sorted(p.parent for p in OLD.glob("*/study_result.json"))


def _rendered(folder: Path, out: Path) -> tuple[dict, str]:
    """summary.json and report.md of a report folder, the folder it was written to named OUT."""
    def norm(text: str) -> str:
        return text.replace(str(out), "OUT")

    return json.loads(norm((folder / "summary.json").read_text())), norm((folder / "report.md").read_text())


def _schema_1(body: dict) -> dict:
    """A schema-2 body as schema 1 wrote it: no checksum, no stored decision."""
    old = {k: v for k, v in body.items() if k not in ("checksum", "decided")}
    return old | {"schema": 1}


def test_there_are_results_of_older_schemas():
    assert len(OLD_RESULTS) >= 3, OLD_RESULTS
    assert {json.loads((f / "study_result.json").read_text())["schema"] for f in OLD_RESULTS} == {2}


@pytest.mark.parametrize("folder", OLD_RESULTS, ids=lambda p: p.name)
def test_an_older_result_loads_decides_and_renders_as_before(folder, tmp_path):
    import taskrel.report  # noqa: F401  (the report writer)

    want_summary, want_md = _rendered(folder, Path("/tmp/h1golden") / folder.name)
    result = StudyResult.load(folder / "study_result.json")
    answer = want_summary["answer"]
    d = result.decision
    assert (d.decision, d.reason, d.what_would_tell, d.confidence, d.confidence_why) == \
        (answer["decision"], answer["reason"], answer["what_would_tell"], answer["confidence"], answer["confidence_why"])
    assert jsonable([c.to_dict() for c in d.comparisons]) == answer["comparisons"]  # the same numbers, to the last digit
    assert jsonable(result.validation_summary().to_dict(orient="records")) == want_summary["validation"]
    out = tmp_path / folder.name
    out.mkdir()
    (out / "study_result.json").write_bytes((folder / "study_result.json").read_bytes())
    result.write_report(out)
    got_summary, got_md = _rendered(out, out)
    # one deliberate change since: the "train it" command carries the study's batch size,
    # patience and rows too (before, it trained with TrainConfig's defaults for them)
    train = got_summary["train"]
    assert all(f"--{k.replace('_', '-')} {v}" in train for k, v in result.train_settings.items()
               if k in ("batch_size", "patience", "rows")), train
    got_summary = json.loads(_without_new_train_flags(json.dumps(got_summary)))
    assert got_summary == want_summary
    assert _without_new_train_flags(got_md) == want_md


def _without_new_train_flags(text: str) -> str:
    import re

    return re.sub(r" --(batch-size|patience|rows) [^ ]+(?= --)", "", text)


@pytest.mark.parametrize("folder", OLD_RESULTS, ids=lambda p: p.name)
def test_an_older_result_saved_as_schema_3_and_as_schema_1_reads_the_same(folder, tmp_path):
    old = StudyResult.load(folder / "study_result.json")
    path = old.save(tmp_path)
    body = json.loads(path.read_text())
    assert body["schema"] == 3 and isinstance(body["validation"], dict)  # schema 3: the validation as columns
    new = StudyResult.load(path)
    assert new.to_dict() == old.to_dict()
    assert new.decision.to_dict() == old.decision.to_dict()
    assert new.validation == old.validation and new.layouts == old.layouts and new.grouping == old.grouping
    one = tmp_path / "one"
    one.mkdir()
    (one / "study_result.json").write_text(json.dumps(_schema_1(json.loads((folder / "study_result.json").read_text()))))
    assert StudyResult.load(one).to_dict() == old.to_dict()


def test_the_committed_default_study_loads_from_its_schema_2_file_with_its_committed_numbers():
    """tests/data/results/digits-default/study_result.json is the committed default study's result
    (studies/results/digits-default, rerun from its store): read by this version it gives the
    committed decision, comparisons and validation summary, number for number."""
    committed = json.loads((RESULTS / "digits-default" / "summary.json").read_text())
    result = StudyResult.load(OLD / "digits-default" / "study_result.json")
    d, answer = result.decision, committed["answer"]
    assert (d.decision, d.reason, d.confidence, d.confidence_why) == \
        (answer["decision"], answer["reason"], answer["confidence"], answer["confidence_why"])
    assert jsonable([c.to_dict() for c in d.comparisons]) == answer["comparisons"]
    assert jsonable(result.validation_summary().to_dict(orient="records")) == committed["validation"]
    assert result.recommended == SharingLayout.from_dict(json.loads((RESULTS / "digits-default" / "layout.json").read_text()))


def test_the_older_result_check_can_fail(tmp_path):
    """One validation loss changed in an older file (loaded as schema 1, no checksum to refuse it):
    its validation summary and paired comparisons no longer match what was rendered from it."""
    folder = OLD / "digits-default"
    body = _schema_1(json.loads((folder / "study_result.json").read_text()))
    row = next(r for r in body["validation"] if r["layout"] == "recommended" and r["status"] == "ok")
    row["test_loss"] += 0.01
    (tmp_path / "study_result.json").write_text(json.dumps(body))
    want = json.loads((folder / "summary.json").read_text())
    changed = StudyResult.load(tmp_path)
    assert jsonable(changed.validation_summary().to_dict(orient="records")) != want["validation"]
    assert jsonable([c.to_dict() for c in changed.decision.comparisons]) != want["answer"]["comparisons"]
