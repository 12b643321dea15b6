"""The report: figure data (testable without a figure), writers, escaping, and the page as a
browser shows it (headless Chromium)."""

from __future__ import annotations

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

sys.path.insert(0, str(Path(__file__).parent))
from test_study import TASKS, XSS, small_study  # noqa: E402

from taskrel.affinity import Affinity  # noqa: E402
from taskrel.errors import TaskrelError  # noqa: E402
from taskrel.layout import SharingLayout  # noqa: E402
from taskrel.report import build_figures, inside, write_report  # noqa: E402
from taskrel.report import figures as F  # noqa: E402


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    # the same folder as test_study's: when both files run, the runs are reused, not retrained
    return small_study(tmp_path_factory.getbasetemp() / "small-study")


# ---------------------------------------------------------------------- figure data
def test_heatmap_follows_the_clustering_order(study_run):
    result, _, _ = study_run
    order = F.task_order(result.tasks, result.clustering)
    assert order == result.clustering["order"] and sorted(order) == sorted(TASKS)
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
    row = df[df["budget"] == result.grouping["budget"]].iloc[0]
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
    affs = result.affinity_objects()
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
    assert "training loss became nan" in page and "no-such-kind" in page
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
    import taskrel.execute as ex

    monkeypatch.setattr(ex, "execute", lambda *a, **k: pytest.fail("report must not train"))
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


def test_verdict_calls_differences_within_the_seed_spread_ties():
    from taskrel.report.html import verdict

    def head(rec, std, shared, separate):
        m = {"recommended": {"test_loss": rec, "std": std, "parameters": 10},
             "all-shared": {"test_loss": shared, "std": std, "parameters": 5},
             "all-separate": {"test_loss": separate, "std": std, "parameters": 40}}
        gains = {k: 100 * (m[k]["test_loss"] - rec) / m[k]["test_loss"] for k in ("all-shared", "all-separate")}
        return {"measured": m, "gain_vs": gains}

    text, ok = verdict(head(1.0, 0.01, 2.0, 1.5))
    assert ok and text.startswith("The recommended layout beats every baseline") and "75% fewer parameters" in text
    text, ok = verdict(head(1.0, 0.1, 2.0, 0.95))
    assert ok and "beats all-shared; no clear difference from all-separate" in text and "higher test loss than all-separate (within" in text
    text, ok = verdict(head(1.0, 0.01, 2.0, 0.5))
    assert ok is False and "does worse than all-separate" in text
    assert verdict({"measured": {}, "gain_vs": {}})[1] is None
