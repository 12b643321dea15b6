"""The report: figure data (testable without a figure), writers, escaping, and the page as a
browser shows it (headless Chromium)."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study"))
from test_decision import make_result, noise  # noqa: E402
from test_study import TASKS, XSS, small_study  # noqa: E402

from taskrel.affinity import Affinity  # noqa: E402
from taskrel.errors import TaskrelError  # noqa: E402
from taskrel.layout import SharingLayout  # noqa: E402
from taskrel.report import build_figures, inside, write_report  # noqa: E402
from taskrel.report import figures as F  # noqa: E402


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    # the same folder as test_study's: when both files run, the runs are reused, not retrained
    result, store, out = small_study(tmp_path_factory.getbasetemp() / "small-study")
    write_report(result, out)
    return result, store, out


# ---------------------------------------------------------------------- figure data
def test_heatmap_follows_the_clustering_order(study_run):
    result, _, _ = study_run
    order = F.task_order(result.tasks, result.clustering.order)
    assert order == result.clustering.order and sorted(order) == sorted(TASKS)
    aff = result.affinity("pairwise")
    hm = F.heatmap_data(aff, order)
    assert hm.tasks == order and (hm.xlabel, hm.ylabel) == ("target task", "source task")
    for i, s in enumerate(order):
        for j, t in enumerate(order):
            if i != j:
                assert hm.values[i, j] == pytest.approx(aff.value(s, t))
    assert np.isnan(np.diag(hm.values)).all()
    assert hm.vmin == -hm.vmax and np.nanmax(np.abs(hm.values)) == pytest.approx(hm.vmax)


def test_stage_heatmaps_share_one_scale():
    vals = np.stack([np.eye(3) * 0.5 + 0.5, np.eye(3) * 0.9 + 0.1])
    maps = F.stage_heatmaps(Affinity(["a", "b", "c"], vals, stages=["s0", "s1"]), ["c", "a", "b"])
    assert [m.title for m in maps] == ["s0", "s1"] and maps[0].tasks == ["c", "a", "b"]
    assert maps[0].vmin == maps[1].vmin and maps[0].vmax == maps[1].vmax and not maps[0].diverging


def test_pareto_data_is_monotone_and_matches_validation(study_run):
    result, _, _ = study_run
    df = F.pareto_data(result.grouping, result.validation_summary(), len(result.tasks))
    assert list(df["budget"]) == sorted(df["budget"])
    pred = df["predicted"].dropna().to_numpy()
    assert (np.diff(pred) <= 1e-12).all()  # more budget never predicts worse
    assert (df["cost"].dropna() <= df["budget"][df["cost"].notna()] + 1e-9).all()
    summ = result.validation_summary().set_index("layout")
    row = df[df["budget"] == result.grouping.budget].iloc[0]
    assert row["validated_mean"] == pytest.approx(summ.loc["recommended", "test_loss_mean"])


def test_layout_tree_blocks_are_contiguous_and_nested():
    lay = SharingLayout.branched(list("abcde"), {1: [["a", "d"], ["b", "c", "e"]], 2: [["a"], ["d"], ["b", "e"], ["c"]]}, 3)
    tree = F.layout_tree(lay, ["x", "y", "z"], order=list("edcba"))
    assert sorted(tree.leaves) == list("abcde") and tree.stages == ["x", "y", "z"]
    for b in tree.boxes:
        assert sorted(tree.leaves[int(b.x0):int(b.x1)]) == sorted(b.tasks)  # contiguous span
        if b.parent is not None:
            p = tree.boxes[b.parent]
            assert p.stage == b.stage - 1 and p.x0 <= b.x0 and b.x1 <= p.x1
    assert [len([b for b in tree.boxes if b.stage == k]) for k in range(3)] == [1, 2, 4]


def test_gradient_curves_and_agreement(study_run):
    result, _, _ = study_run
    curves = F.gradient_curves(result.trajectories["gradient"])
    assert set(curves.highlight) <= set(curves.frame["pair"])
    assert curves.frame["cosine"].between(-1, 1).all()
    affs = result.affinities
    panels = F.agreement_data(affs, TASKS)
    names = {(p.x_probe, p.y_probe) for p in panels}
    assert ("pairwise", "gradient") in names and any("similarity [" in y for _, y in names)
    p = next(p for p in panels if (p.x_probe, p.y_probe) == ("pairwise", "gradient"))
    assert p.spearman == pytest.approx(affs["pairwise"].agreement(affs["gradient"])["spearman"])
    assert len(p.x) == len(TASKS) * (len(TASKS) - 1) and p.x_seconds > 0


def test_auxiliary_data_orders_by_the_first_probe(study_run):
    result, _, _ = study_run
    df = F.auxiliary_data(result.auxiliary, "c0t0")
    first = df[df["probe"] == df["probe"].iloc[0]]
    assert list(first["affinity"]) == sorted(first["affinity"], reverse=True)
    assert "c0t0" not in set(df["source"])


def test_headline_gain_is_the_relative_loss_reduction(study_run):
    result, _, _ = study_run
    head = F.headline(result)
    m = head["measured"]
    for base in ("all-shared", "all-separate"):
        want = 100 * (m[base]["test_loss"] - m["recommended"]["test_loss"]) / m[base]["test_loss"]
        assert head["gain_vs"][base] == pytest.approx(want)
    assert head["groups"] == [list(b) for b in result.recommended.blocks(0)]


# ---------------------------------------------------------------------- writers
def test_outputs_escape_names_and_stay_in_the_folder(study_run, tmp_path):
    result, _, _ = study_run
    out = tmp_path / "nested" / "out"
    paths = write_report(result, out)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(w.startswith("nested/out/") for w in written)
    assert {"nested/out/report.html", "nested/out/report.md", "nested/out/summary.json", "nested/out/layout.json"} <= written
    page = paths["html"].read_text()
    assert "<script" not in page.lower()  # a self-contained page with no script at all
    assert "x&lt;script&gt;PWNED=1&lt;/script&gt;" in page
    assert "small &lt;b&gt;study&lt;/b&gt;" in page and "<b>study</b>" not in page
    assert page.count("data:image/png;base64,") >= 8
    assert "training loss became nan" in page
    for e in result.errors:
        assert html.escape(e.error) in page
    assert XSS not in paths["markdown"].read_text()
    summary = json.loads(paths["summary"].read_text())
    assert summary["tasks"] == TASKS and summary["answer"]["groups"]
    assert SharingLayout.from_json(paths["layout"].read_text()) == result.recommended
    with pytest.raises(TaskrelError, match="outside"):
        inside(out, "../escape.html")


def test_every_figure_is_drawn(study_run):
    result, _, _ = study_run
    figs, errors = build_figures(result)
    assert errors == []
    keys = {f.key for f in figs}
    for k in ("layout", "pareto", "heatmap-pairwise", "heatmap-gradient", "dendrogram", "stages-similarity",
              "gradient-gradient", "agreement", "auxiliary-c0t0"):
        assert k in keys, k
    assert all(f.png[:8] == b"\x89PNG\r\n\x1a\n" for f in figs)


def test_cli_report_rerenders_without_training(study_run, tmp_path, monkeypatch):
    from taskrel.cli import main

    _, store_path, out = study_run
    from taskrel.runner import Runner

    monkeypatch.setattr(Runner, "run", lambda *a, **k: pytest.fail("report must not train"))
    assert main(["report", str(store_path), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.html").is_file()
    assert main(["report", str(out)]) == 0
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_validation_summary_frame(study_run):
    result, _, _ = study_run
    s = result.validation_summary()
    assert isinstance(s, pd.DataFrame) and {"recommended", "all-shared", "all-separate"} <= set(s["layout"])
    assert (s.set_index("layout").loc["all-separate", "n_seeds"]) == 1  # seed 1 failed


# ---------------------------------------------------------------------- in a browser
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  var d = document.createElement('pre');
  d.id = 'taskrel-check';
  d.textContent = 'images=' + imgs.length + ' broken=' + bad + ' pwned=' + (window.PWNED ? 1 : 0);
  document.body.appendChild(d);
});
</script>"""


def _browser(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    exe = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tempfile.mkdtemp(dir=tmp)}", "--hide-scrollbars"]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=90,
                          env={**os.environ, "HOME": str(tmp)})


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (apt-get install chromium); CI installs it")
def test_report_in_headless_chromium(study_run, tmp_path):
    _, _, out = study_run
    page = (out / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", CHECK + "</body>"))
    dom = _browser(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path)
    assert "taskrel-check" in dom.stdout, dom.stderr[-2000:]
    line = dom.stdout.split('id="taskrel-check">', 1)[1].split("<", 1)[0]
    n_images = page.count("<img ")
    assert line == f"images={n_images} broken=0 pwned=0"
    assert "x&lt;script&gt;PWNED=1&lt;/script&gt;" in dom.stdout  # shown as text
    shot = tmp_path / "shot.png"
    _browser(["--window-size=1200,2400", f"--screenshot={shot}", (out / "report.html").as_uri()], tmp_path)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (2400, 1200) and img.std() > 10  # not blank


# ---------------------------------------------------------------------- heatmap captions and flags
def test_precision_adapts_to_the_scale():
    vals = np.array([[0, 0.0075, -0.0012], [0.003, 0, -0.0075], [0.0001, 0.002, 0]])
    hm = F.heatmap_data(Affinity(["a", "b", "c"], vals, measure="lookahead"))
    cells = [c for row in hm.annot for c in row if c]
    assert hm.decimals == 4 and "0.0075" in cells and "-0.0012" in cells
    assert sum(c in ("0.00", "-0.00") for c in cells) == 0
    big = F.heatmap_data(Affinity(["a", "b", "c"], vals * 1000, measure="pairwise"))
    assert big.decimals == 1 and "7.5" in [c for row in big.annot for c in row]


def test_symmetric_measures_are_drawn_and_labelled_as_symmetric():
    rng = np.random.default_rng(0)
    m = rng.uniform(0, 1, (4, 4))
    sym = Affinity(list("abcd"), (m + m.T) / 2, measure="gradient-cosine")
    hm = F.heatmap_data(sym)
    assert hm.symmetric and (hm.xlabel, hm.ylabel) == ("task", "task")
    assert np.isnan(hm.values[np.triu_indices(4)]).all() and np.isfinite(hm.values[np.tril_indices(4, -1)]).all()
    cap = F.heatmap_caption(hm, 3)
    assert "Symmetric" in cap and "source" not in cap and "cosine" in cap
    directed = F.heatmap_data(Affinity(list("abcd"), m, measure="pairwise"))
    assert not directed.symmetric and (directed.xlabel, directed.ylabel) == ("target task", "source task")
    assert "source task (row)" in F.heatmap_caption(directed, 3)
    cka = F.stage_heatmaps(Affinity(list("abc"), np.stack([np.eye(3) * 0.5 + 0.5] * 2), measure="similarity-linear", stages=["s0", "s1"]))
    assert all(h.symmetric and "CKA" in h.unit for h in cka)


def test_every_heatmap_has_a_unit():
    for measure in ("pairwise", "pairwise-cheap", "transfer-frozen", "gradient-cosine", "lookahead", "similarity-linear"):
        hm = F.heatmap_data(Affinity(list("abc"), np.arange(9.0).reshape(3, 3), measure=measure))
        assert hm.unit and hm.unit != "affinity" and hm.unit in F.heatmap_caption(hm, 1)


def test_degenerate_affinities_are_flagged_with_a_reason():
    cols = np.array([[0, 0.1, 0.2, 0.3], [0.5, 0, 0.2, 0.3], [0.5, 0.1, 0, 0.3], [0.5, 0.1, 0.2, 0]])
    hm = F.heatmap_data(Affinity(list("abcd"), cols, measure="transfer-frozen"))
    cap = F.heatmap_caption(hm, 2)
    assert len(hm.flags) == 1 and "every column is constant" in hm.flags[0] and "majority class" in hm.flags[0]
    assert "Degenerate:" in cap and hm.flags[0] in cap
    rows = F.heatmap_data(Affinity(list("abcd"), cols.T, measure="gradient-magnitude-ratio"))
    assert any("every row is constant" in f for f in rows.flags)
    zeros = F.heatmap_data(Affinity(list("abcd"), np.zeros((4, 4)), measure="pairwise"))
    assert zeros.flags and zeros.flags[0].startswith("every entry is 0")
    rng = np.random.default_rng(1)
    assert F.heatmap_data(Affinity(list("abcd"), rng.normal(size=(4, 4)), measure="pairwise")).flags == []
    # a permutation of the tasks flags the same pattern
    perm = F.heatmap_data(Affinity(list("abcd"), cols, measure="transfer-frozen"), order=list("dbca"))
    assert perm.flags == hm.flags


def test_budget_data_puts_baselines_on_the_same_axis(study_run):
    result, _, _ = study_run
    d = F.budget_data(result.grouping, result.validation_summary(), len(result.tasks))
    summ = result.validation_summary().set_index("layout")
    assert d.same_scale == (not result.grouping.higher_is_better) and d.chosen == result.grouping.budget
    x, mean, _ = d.baselines["all-shared"]
    assert x == 1 and mean == pytest.approx(summ.loc["all-shared", "test_loss_mean"])
    assert d.baselines["all-separate"][0] == len(result.tasks)


def test_cluster_note_reconciles_clusters_and_groups(study_run):
    result, _, _ = study_run
    groups = [list(b) for b in result.recommended.blocks(0)]
    note = F.cluster_note(result.clustering.clusters, groups, result.grouping.budget)
    same = {frozenset(c) for c in result.clustering.clusters} == {frozenset(g) for g in groups}
    assert note == "The recommended groups are these clusters." if same else "differ from these" in note
    figs, _ = build_figures(result)
    assert note in next(f for f in figs if f.key == "dendrogram").caption


# ---------------------------------------------------------------------- the answer
def baseline_wins(tmp_path: Path):
    """A study result (no training) where all-separate clearly beats the recommendation."""
    r = make_result({"recommended": list(1.2 + noise(5, 0.01)), "all-shared": list(1.6 + noise(5, 0.01, 1)),
                     "all-separate": list(1.0 + noise(5, 0.01, 2))})
    r.study.update({"source": 'name = "synthetic"\n', "train": {"epochs": 3}})
    r.invocation = {"cwd": str(tmp_path), "study_file": str(tmp_path / "s.toml"), "store": str(tmp_path / "runs"),
                    "out": "out"}
    (tmp_path / "s.toml").write_text('name = "synthetic"\n')
    return r


def test_summary_json_carries_the_decision(tmp_path):
    r = baseline_wins(tmp_path)
    paths = write_report(r, tmp_path / "out")
    ans = json.loads(paths["summary"].read_text())["answer"]
    assert ans["decision"] == "keep these tasks separate" and ans["best_measured"] == "all-separate"
    assert ans["confidence"] in ("high", "medium", "low")
    comps = {c["layout"]: c for c in ans["comparisons"]}
    assert set(comps) == {"all-shared", "all-separate"}
    totals = {k: np.array(v) for k, v in {"recommended": 1.2 + noise(5, 0.01), "all-separate": 1.0 + noise(5, 0.01, 2)}.items()}
    diff = totals["recommended"] - totals["all-separate"]
    c = comps["all-separate"]
    assert c["n_seeds"] == 5 and c["mean_diff"] == pytest.approx(diff.mean())
    assert c["ci95"][0] < c["mean_diff"] < c["ci95"][1] and c["ci95"][0] > 0


def test_commands_work_where_the_study_ran(tmp_path):
    import shlex

    from taskrel.cli.main import build_parser

    r = baseline_wins(tmp_path)
    write_report(r, tmp_path / "out")
    from taskrel.report.answer import reproduce_commands, train_command

    train = shlex.split(train_command(r, tmp_path / "out"))
    layout = train[train.index("--layout") + 1]
    assert layout == "out/layout.json" and (tmp_path / layout).is_file()  # relative to where the study ran
    study, report = (shlex.split(c) for c in reproduce_commands(r, tmp_path / "out"))
    assert study[:3] == ["taskrel", "study", "s.toml"] and (tmp_path / study[2]).is_file()
    assert report == ["taskrel", "report", "out"]
    parser = build_parser()
    for argv in (train, study, report):
        parser.parse_args(argv[1:])  # every command is one the CLI accepts
    page = (tmp_path / "out" / "report.html").read_text()
    assert "STORE" not in page and "STUDY.toml" not in page and "taskrel study s.toml --store runs --out out" in page


def test_a_resumed_study_keeps_its_cost(study_run, tmp_path_factory):
    first, _, _ = study_run
    again, _, _ = small_study(tmp_path_factory.getbasetemp() / "small-study")  # every run from the store

    def training(cost):  # the runs' seconds as their records state them
        return cost.seconds - cost.measure_seconds

    for name, p in first.probes.items():
        if p.cost is not None:
            # the same runs and their seconds as the records state them (a fresh record and the
            # stored one differ by about 10 ms a run), not this invocation's near-zero wall time;
            # the probe's own measuring time is this invocation's and is reported apart
            runs = p.cost.runs
            assert again.probes[name].cost.runs == runs
            assert training(again.probes[name].cost) == pytest.approx(training(p.cost), rel=0.01, abs=0.03 * runs)
            assert again.probes[name].cost.measure_seconds > 0
    def trained(result):  # compute seconds less this invocation's measuring time
        return result.compute_seconds() - sum(p.cost.measure_seconds for p in result.probes.values() if p.cost is not None)

    slack = 0.03 * sum(p.cost.runs for p in first.probes.values() if p.cost is not None)
    assert trained(again) == pytest.approx(trained(first), rel=0.01, abs=slack)
    assert trained(first) > slack  # so a near-zero resumed cost would still fail
    assert again.wall_seconds < first.compute_seconds()
    assert again.validation_cost.runs == first.validation_cost.runs > 0


def test_terminal_summary_is_aligned(study_run):
    from taskrel.report import summary_text

    result, _, _ = study_run
    text = summary_text(result)
    d = result.decision
    assert text.startswith(f"decision: {d.decision}")
    table = [line for line in text.splitlines() if line.startswith("    ")]
    assert len(table) == len(d.comparisons) + 1
    col = table[0].index("95% interval")
    for line in table[1:]:
        assert line[col] in "[–"  # every interval starts in the header's column
    assert len({line.index(" seeds") if i == 0 else None for i, line in enumerate(table)} - {None}) == 1


def test_figures_are_written_atomically(study_run, tmp_path, monkeypatch):
    import taskrel.files

    result, _, _ = study_run
    out = tmp_path / "out"
    write_report(result, out)
    before = {p.name: p.read_bytes() for p in (out / "figures").iterdir()}
    assert before and all(b[:8] == b"\x89PNG\r\n\x1a\n" for b in before.values())

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(taskrel.files.os, "replace", fail)
    with pytest.raises(OSError):
        write_report(result, out)
    after = {p.name: p.read_bytes() for p in (out / "figures").iterdir()}
    assert after == before  # the old figures are whole, and no temporary file is left


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (apt-get install chromium); CI installs it")
def test_answer_box_warns_when_a_baseline_wins(tmp_path):
    r = baseline_wins(tmp_path)
    paths = write_report(r, tmp_path / "out")
    check = """<script>
window.addEventListener('load', function () {
  var box = document.getElementById('answer');
  var d = document.createElement('pre');
  d.id = 'taskrel-answer';
  d.textContent = [box.getAttribute('data-decision'), document.getElementById('decision').textContent,
                   getComputedStyle(box).borderLeftColor, getComputedStyle(document.getElementById('decision')).color,
                   document.getElementById('baseline-warning') ? 'warned' : 'silent',
                   document.getElementById('best-measured').textContent].join('|');
  document.body.appendChild(d);
});
</script>"""
    probe = tmp_path / "probe.html"
    probe.write_text(paths["html"].read_text().replace("</body>", check + "</body>"))
    dom = _browser(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path)
    assert "taskrel-answer" in dom.stdout, dom.stderr[-2000:]
    decision, title, border, colour, warned, best = dom.stdout.split('id="taskrel-answer">', 1)[1].split("<", 1)[0].split("|")
    assert decision == "keep these tasks separate" and title.startswith("Keep these tasks separate")
    assert border == "rgb(183, 121, 31)" and colour == "rgb(151, 90, 22)"  # the warning amber, not the green of a win
    assert warned == "warned" and "all-separate" in best
    for stability in (None, {"mean_ari": 1.0}):
        win = make_result({"recommended": list(1.0 + noise(5, 0.01)), "all-shared": list(1.6 + noise(5, 0.01, 1)),
                           "all-separate": list(1.3 + noise(5, 0.01, 2))}, stability=stability)
        win.study.update(r.study)
        win.invocation = r.invocation
        page = write_report(win, tmp_path / "win")["html"].read_text()
        d = win.decision
        assert d.decision == "share as recommended" and "baseline-warning" not in page
        # green only where the confidence is medium or high
        assert f'class="answer {"none" if d.confidence == "low" else "good"}"' in page


# ---------------------------------------------------------------------- a suite built in Python
def python_built(tmp_path: Path, win: bool = True):
    """A study result for a suite that is not in the registry, from a study built in Python."""
    rec = 1.0 if win else 1.2
    r = make_result({"recommended": list(rec + noise(5, 0.01)), "all-shared": list(1.6 + noise(5, 0.01, 1)),
                     "all-separate": list(1.3 + noise(5, 0.01, 2))}, stability={"mean_ari": 1.0})
    r.study.update({"suite": "multilabel7", "source": "", "train": {"epochs": 2, "lr": 0.01}})
    r.suite = {"name": "multilabel7"}
    r.invocation = {"cwd": str(tmp_path), "store": str(tmp_path / "runs"), "out": "out"}
    return r


def tiny_suite(tasks):
    from torch import nn

    from taskrel.suite import Suite, Task

    X = np.random.default_rng(0).normal(size=(60, 4)).astype("float32")
    return Suite("multilabel7", X, [Task(t, "regression") for t in tasks], {t: X[:, 0] * (i + 1) for i, t in enumerate(tasks)},
                 stages=[lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU()),
                         lambda: nn.Sequential(nn.Linear(6, 5), nn.ReLU()), lambda: nn.Sequential(nn.Linear(5, 4), nn.ReLU())])


@pytest.mark.parametrize("win", [True, False])
def test_python_built_suite_gets_python_not_commands_that_cannot_work(tmp_path, monkeypatch, win):
    import re

    r = python_built(tmp_path, win)
    paths = write_report(r, tmp_path / "out")
    page, md = paths["html"].read_text(), paths["markdown"].read_text()
    for text in (page, md):
        assert not re.search(r"taskrel (train|study) [-\w]", text)  # no command can rebuild this suite
        assert "taskrel.build_model(layout, suite)" in text
    assert 'id="python-snippet"' in page and 'id="train-command"' not in page
    assert "study.toml" not in page and not (tmp_path / "out" / "study.toml").exists()
    # every file the page names exists, relative to where the study ran
    named = set(re.findall(r"&#34;([^&]+?\.json)&#34;|\"([^\"]+?\.json)\"", page))
    for path in {a or b for a, b in named}:
        assert (tmp_path / path).is_file(), path
    snippet = html.unescape(page.split('id="python-snippet">', 1)[1].split("</pre>", 1)[0])
    monkeypatch.chdir(tmp_path)
    scope = {"suite": tiny_suite(r.tasks)}
    exec(compile(snippet, "report-snippet", "exec"), scope)  # the snippet runs as shown
    decided = r.decision.decision
    assert set(scope["layout"].tasks) == set(r.tasks)
    n_nets = len(scope["layout"].blocks(0))
    assert n_nets == (len(r.tasks) if decided == "keep these tasks separate" else 2)
    assert sorted(scope["model"](torch_zeros(4))) == sorted(r.tasks)


def torch_zeros(n: int):
    import torch

    return torch.zeros(n, 4)


def test_top_box_speaks_one_unit_and_one_ari(study_run):
    from taskrel.report.answer import answer_view

    result, _, _ = study_run
    view = answer_view(result)
    n = len(result.remaining_tasks)
    assert f"total test loss, {n} tasks" in view.comparison_head[1]
    assert view.measured_line.startswith(f"Mean total test loss over the {n} tasks") and "per task" not in view.measured_line
    page = (study_run[2] / "report.html").read_text()
    box = page.split('id="answer"', 1)[1].split("</section>", 1)[0]
    assert len(__import__("re").findall(r"ARI \d", box)) <= 1  # one ARI in the answer, explained in words
    if "ARI" in box:
        assert "adjusted Rand index" in box


@pytest.mark.parametrize("decision, confidence, style", [
    ("share as recommended", "low", "none"), ("share as recommended", "medium", "good"),
    ("share as recommended", "high", "good"), ("cannot tell", "high", "none"),
    ("keep these tasks separate", "high", "warn"), ("share everything", "low", "warn")])
def test_headline_colour_follows_the_confidence(decision, confidence, style):
    from types import SimpleNamespace

    from taskrel.report.answer import answer_style

    assert answer_style(SimpleNamespace(decision=decision, confidence=confidence, baseline_as_good=False)) == style


def test_agreement_legend_uses_the_runs_recorded_seconds(study_run, monkeypatch):
    result, _, _ = study_run
    seen = []
    real = F.agreement_data
    monkeypatch.setattr(F, "agreement_data", lambda *a, **k: seen.extend(real(*a, **k)) or seen)
    build_figures(result)
    if not seen:
        pytest.skip("this study has fewer than two plain affinities to compare")
    for p in seen:  # a probe's compute as its runs' records state it, not its affinity's own clock
        assert p.x_seconds == pytest.approx(result.probe_compute_seconds(p.x_probe.split(" [")[0]))
        assert p.y_seconds == pytest.approx(result.probe_compute_seconds(p.y_probe.split(" [")[0]))


def test_many_tasks_stay_readable():
    from taskrel.report import draw

    for n in (8, 48, 120):
        w, _ = draw.tree_size(n, 3)
        assert w * draw.SAVEFIG_DPI <= 1030  # the layout strip is never wider than the page
        slot = w * draw.SAVEFIG_DPI / (n + 1.1) * draw.leaf_step(n)
        assert slot >= draw.LABEL_PT * draw.SAVEFIG_DPI / 72  # named leaves do not overlap
        side = draw.heatmap_side(n)
        assert side <= draw.MAX_FIGURE_INCHES
        assert side * 0.72 * draw.SAVEFIG_DPI / n * draw.tick_step(n) >= draw.SMALL_PT * draw.SAVEFIG_DPI / 72 - 1e-6
    tasks = [f"t{i}" for i in range(30)]
    vals = np.random.default_rng(0).normal(size=(30, 30))
    hm = F.heatmap_data(Affinity(tasks, vals, measure="pairwise"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw.draw_heatmap(hm, ax)
    assert not [t for t in ax.texts if t.get_text()]  # no per-cell numbers past 25 tasks
    plt.close(fig)


BOX_CHECK = """<script>
window.addEventListener('load', function () {
  var box = document.getElementById('answer');
  var img = document.querySelector('#fig-layout img');
  var out = [box.className, box.getAttribute('data-decision'), '',
             document.getElementById('train-command') ? 'train' : 'no-train',
             document.getElementById('python-snippet') ? 'python' : 'no-python',
             img ? (img.getBoundingClientRect().width / img.naturalWidth).toFixed(3) : 'none',
             (box.textContent.match(/ARI \\d/g) || []).length,
             getComputedStyle(document.getElementById('decision')).fontSize];
  var d = document.createElement('pre');
  d.id = 'taskrel-box';
  d.textContent = out.join('|');
  document.body.appendChild(d);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (apt-get install chromium); CI installs it")
@pytest.mark.parametrize("kind", ["built-in", "python"])
def test_top_box_in_a_browser(kind, study_run, tmp_path):
    from taskrel.report import draw

    if kind == "built-in":
        result, _, out = study_run
        page = (out / "report.html").read_text()
    else:
        result = python_built(tmp_path)
        page = write_report(result, tmp_path / "out")["html"].read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", BOX_CHECK + "</body>"))
    dom = _browser(["--window-size=1200,2000", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path)
    assert "taskrel-box" in dom.stdout, dom.stderr[-2000:]
    cls, decision, _, train, python, scale, n_ari, _size = dom.stdout.split('id="taskrel-box">', 1)[1].split("<", 1)[0].split("|")
    d = result.decision
    assert decision == d.decision
    style = cls.split()[-1]
    assert not (style == "good" and d.confidence == "low")  # no green beside "confidence low"
    assert style != "good" or d.decision == "share as recommended"
    assert int(n_ari) <= 1
    if kind == "built-in":
        assert (train, python) == ("train", "no-python")
    else:
        assert (train, python) == ("no-train", "python")
    if scale != "none":  # the layout diagram's labels as shown: points at the PNG's dpi, times the page's scaling
        assert draw.LABEL_PT * draw.SAVEFIG_DPI / 72 * float(scale) >= 11


def test_clusters_as_the_recommendation_are_not_called_the_search_choice(tmp_path):
    """With recommend = "clusters" the answer says the groups are the clusters (not what the
    search chose within a budget); with width-matched baselines but no width search the
    recommendation's groups carry no "@w" label."""
    from taskrel.analysis import GroupingSearch, TaskClustering
    from taskrel.probes import GradientProbe
    from taskrel.report.answer import answer_view, summary
    from taskrel.study import Grouping, Study, Validation
    from taskrel.suites import get_suite
    from taskrel.train import TrainConfig

    suite = get_suite("planted", n_clusters=2, n_examples=200)
    study = Study(probes=[GradientProbe(seeds=[0, 1])], clustering=TaskClustering(n_clusters=2),
                  grouping=Grouping(GroupingSearch(budget=2), budgets=[1, 2], recommend="clusters"),
                  validation=Validation(seeds=[0], front=False, matched=True), tasks=["c0t0", "c0t1", "c1t0", "c1t1"],
                  config=TrainConfig(epochs=2), branched=False, verbose=False)
    result = study.fit(suite, tmp_path / "store").result_
    assert result.grouping.recommend == "clusters" and "all-shared matched" in result.layouts
    note = answer_view(result, tmp_path).budget_note
    assert "clusters of the gradient affinity" in note and "what the search chose within it" not in note
    labels = summary(result, tmp_path)["answer"]["group_labels"]
    assert labels and not any("@" in g for g in labels), labels
