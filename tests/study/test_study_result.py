"""StudyResult: the decision as a property decided once, the layout to train follows it, a
short repr, one serialisation with a checksum that refuses damaged files, folders unique per
study name, and a read-only store used read-only (no training: results are built by hand,
except the read-only test, which runs one tiny study)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import taskrel.report  # noqa: F401  (registers the report writer)
from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.study.decision import SEPARATE, SHARE, SHARED
from taskrel.study.findings import Trajectory
from taskrel.study.result import RESULT_FILE, StudyResult, study_folder

TASKS = ["a", "b", "c", "d"]


def result_with(totals: dict[str, list[float]]) -> StudyResult:
    """A result whose layout ``name`` has total test loss ``totals[name][seed]``."""
    layouts = {"recommended": SharingLayout.groups([["a", "b"], ["c", "d"]], 3).to_dict(),
               "all-shared": SharingLayout.shared(TASKS, 3).to_dict(),
               "all-separate": SharingLayout.separate(TASKS, 3).to_dict()}
    rows = [{"layout": name, "seed": seed, "task": t, "test_loss": total / 4, "test_metric": 0.5, "val_loss": 0.1,
             "n_parameters": 10, "status": "ok"}
            for name, per_seed in totals.items() for seed, total in enumerate(per_seed) for t in TASKS]
    aff = Affinity(TASKS, np.full((4, 4), 0.1))
    return StudyResult(study={"name": "s"}, suite={"name": "planted"}, tasks=list(TASKS), layouts=layouts,
                       validation=rows, affinities={"pairwise": aff.to_dict()})


REC_WINS = {"recommended": [1.0, 1.1, 0.9, 1.0], "all-shared": [2.0, 2.1, 2.0, 1.9], "all-separate": [1.5, 1.6, 1.5, 1.4]}
SEP_WINS = {"recommended": [2.0, 2.1, 2.0, 1.9], "all-shared": [3.0, 3.1, 2.9, 3.0], "all-separate": [1.0, 1.1, 0.9, 1.0]}
SHARED_WINS = {"recommended": [2.0, 2.1, 2.0, 1.9], "all-shared": [1.0, 1.1, 0.9, 1.0], "all-separate": [3.0, 3.1, 2.9, 3.0]}


@pytest.mark.parametrize("totals, decision, layout", [(REC_WINS, SHARE, "recommended"), (SEP_WINS, SEPARATE, "all-separate"),
                                                      (SHARED_WINS, SHARED, "all-shared")])
def test_layout_to_train_follows_the_decision(totals, decision, layout):
    r = result_with(totals).settle()
    assert r.decision.decision == decision
    assert r.layout_to_train == r.layout(layout)


def test_decision_is_a_property_decided_once():
    r = result_with(REC_WINS).settle()
    assert r.decision is r.decision  # stored, not recomputed
    with pytest.warns(DeprecationWarning):
        assert r.decision() is r.decision  # the old call still answers, with a warning


def test_repr_is_short_and_summary_leads_with_the_decision():
    r = result_with(SEP_WINS)
    r.trajectories["gradient"] = Trajectory(cosine=[0.5] * 160_000)  # a long record: never in the repr
    text = repr(r)
    assert len(text) < 300 and "keep these tasks separate" in text
    assert "decision: keep these tasks separate" in r.summary()


def test_save_load_round_trip_keeps_the_decision(tmp_path):
    r = result_with(SEP_WINS).settle()
    path = r.save(tmp_path)
    back = StudyResult.load(tmp_path)
    assert back.to_dict() == r.to_dict()
    assert back.decision.to_dict() == json.loads(path.read_text())["decided"]


def test_a_damaged_result_is_refused(tmp_path):
    """Change one digit anywhere in the numbers: the file no longer loads."""
    path = result_with(REC_WINS).settle().save(tmp_path)
    text = path.read_text()
    digits = [i for i, c in enumerate(text) if c.isdigit() and text[i - 1] in ".0123456789"]
    rng = random.Random(0)
    for i in rng.sample(digits, 20):
        flipped = text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]
        path.write_text(flipped)
        with pytest.raises(TaskrelError, match="damaged or was edited"):
            StudyResult.load(path)
    path.write_text(text)
    assert StudyResult.load(path).decision.decision == SHARE


def test_a_schema_1_result_still_loads(tmp_path):
    """Files written before checksums (schema 1, no stored decision) load and are decided."""
    body = result_with(SEP_WINS).to_dict()
    body["schema"] = 1
    body.pop("decided")
    columns = body["validation"]  # schema 1 and 2 stored a list of rows, schema 3 stores columns
    body["validation"] = [dict(zip(columns, values)) for values in zip(*columns.values())]
    (tmp_path / RESULT_FILE).write_text(json.dumps(body))
    assert StudyResult.load(tmp_path).decision.decision == SEPARATE
    body["schema"] = 2  # a schema-2 file without its checksum was tampered with
    (tmp_path / RESULT_FILE).write_text(json.dumps(body))
    with pytest.raises(TaskrelError, match="no checksum"):
        StudyResult.load(tmp_path)


def test_study_folders_are_unique_per_name_and_readable():
    names = ["研究一", "研究二", "digits default", "digits_default", "digits-default", "a/b", "a_b", "../x", "x", "", " ",
             "Étude", "Étude", "école"]
    folders = {study_folder(n) for n in names}
    assert len(folders) == len(set(names))
    assert study_folder("研究一") == "研究一" and study_folder("planted") == "planted"
    assert all("/" not in f and f not in ("", ".", "..") for f in folders)


def test_write_report_from_python(tmp_path):
    paths = result_with(REC_WINS).settle().write_report(tmp_path / "out")
    assert paths["html"].is_file() and json.loads(paths["summary"].read_text())["answer"]["decision"] == SHARE


def _dead_writers_temporary(folder, name: str):
    """A temporary file as a writer that has since died (a finished child process) leaves it."""
    import subprocess
    import sys

    prefix = subprocess.run([sys.executable, "-c", f"from taskrel.files import temp_prefix; print(temp_prefix({name!r}))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (prefix + "killed.tmp")
    path.write_text("half a file")
    return path


def test_killed_writes_leave_nothing_in_study_and_report_folders(tmp_path):
    """Temporaries of killed writers are removed when the result is saved and the report written;
    a temporary of this (live) process is a write in progress and stays."""
    out = tmp_path / "out"
    dead = [_dead_writers_temporary(out, "study_result.json"), _dead_writers_temporary(out / "figures", "heatmap.png")]
    from taskrel.files import temp_prefix

    live = out / (temp_prefix("report.html") + "writing.tmp")
    live.write_text("")
    r = result_with(REC_WINS).settle()
    r.save(out)
    r.write_report(out)
    assert not any(p.exists() for p in dead) and live.exists()

def tiny_study(name: str):
    from taskrel.analysis import GroupingSearch
    from taskrel.probes import PairwiseProbe
    from taskrel.study import Study
    from taskrel.train import TrainConfig

    return Study(probes=[PairwiseProbe()], grouping=GroupingSearch(budget=2), validation=None,
                 tasks=["c0t0", "c0t1", "c1t0"], config=TrainConfig(epochs=1), verbose=False, name=name)


def test_two_non_ascii_names_and_a_read_only_store(tmp_path, monkeypatch):
    """研究一 and 研究二 save to two folders; a rerun on a store that cannot be written reads
    its runs, trains nothing and writes the result to --out only."""
    import taskrel.files
    from taskrel.store import RunStore
    from taskrel.study import run_study
    from taskrel.suites import get_suite

    suite = get_suite("planted", n_examples=200)
    store = tmp_path / "store"
    one = run_study(tiny_study("研究一"), store, None, n_jobs=1, quiet=True, suite=suite)
    two = run_study(tiny_study("研究二"), store, None, n_jobs=1, quiet=True, suite=suite)
    saved = sorted(p.parent.name for p in (store / "studies").glob(f"*/{RESULT_FILE}"))
    assert saved == ["研究一", "研究二"]
    assert StudyResult.load(store / "studies" / "研究一").name == one.name != two.name
    n_records = len(list(RunStore(store).records()))

    real = taskrel.files.atomic_write_text

    def read_only(path, text):
        if store in type(store)(path).resolve().parents:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, text)

    monkeypatch.setattr(taskrel.files, "atomic_write_text", read_only)
    again = run_study(tiny_study("研究一"), store, tmp_path / "out", n_jobs=1, quiet=True, suite=suite)
    assert StudyResult.load(tmp_path / "out").to_dict()["affinities"] == again.to_dict()["affinities"]
    assert len(list(RunStore(store).records())) == n_records  # nothing trained
    with pytest.raises(TaskrelError, match="--out"):
        run_study(tiny_study("研究一"), store, None, n_jobs=1, quiet=True, suite=suite)


def test_parts_are_typed_whatever_form_they_are_given_in():
    """A field set to its plain form (as schema-2 files and older code hold it) is read into its
    typed part, and the part's plain form round-trips."""
    from taskrel.study.findings import FrontRow, GroupingFront
    from taskrel.study.validated import StudyLayout, ValidationRow

    r = result_with(REC_WINS)
    assert all(isinstance(row, ValidationRow) for row in r.validation) and isinstance(r.affinities["pairwise"], Affinity)
    assert all(isinstance(e, StudyLayout) for e in r.layouts.values())
    r.grouping = {"source": "pairwise", "table": "hoa", "budget": 2.0,
                  "front": [{"budget": 2.0, "cost": 2.0, "blocks": [["a", "b"], ["c", "d"]],
                             "layout": r.layout("recommended").to_dict()}]}
    assert isinstance(r.grouping, GroupingFront) and isinstance(r.grouping.front[0], FrontRow)
    assert r.grouping.front[0].layout == r.layout("recommended")
    assert GroupingFront.from_dict(r.grouping.to_dict()) == r.grouping
    assert r.validation[0]["status"] == r.validation[0].status == "ok"  # key access still answers, for older code


def test_a_part_missing_a_field_is_refused_with_its_name():
    body = result_with(REC_WINS).to_dict()
    body["validation"] = [{"layout": "recommended", "seed": 0}]
    with pytest.raises(TaskrelError, match=r"ValidationRow needs field\(s\) task, test_loss"):
        StudyResult.from_dict(body)
