"""The study report: figures first, tables second, in one self-contained HTML page.

:func:`write_report` renders a :class:`~taskrel.study.StudyResult` into a folder:
``report.html`` (figures inline as base64 PNG), ``report.md`` (figures in ``figures/``),
``summary.json`` (the decision in plain fields) and ``layout.json`` (the recommended layout,
ready for ``taskrel train --layout``). Nothing is trained; ``taskrel report`` calls it on a
saved result. Markup lives in the Jinja2 templates under ``templates/``.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from taskrel.errors import TaskrelError

__all__ = ["build_figures", "inside", "summary_text", "write_report"]


def summary_text(result) -> str:
    """The decision and the paired comparisons as aligned text (the end of ``taskrel study``)."""
    from taskrel.report.answer import summary_text as text

    return text(result)


def inside(root: Path, name: str) -> Path:
    """``root / name``, refusing any name that would leave ``root``.

    >>> inside(Path("/tmp/out"), "report.html").name
    'report.html'
    >>> inside(Path("/tmp/out"), "../x")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: report: refusing to write '../x' outside /tmp/out
    """
    root_r = root.resolve()
    p = (root / name).resolve()
    if p != root_r and root_r not in p.parents:
        raise TaskrelError(f"report: refusing to write {name!r} outside {root}")
    return p


def _safe(fn, errors: list[str], what: str):
    try:
        return fn()
    except Exception as e:  # a figure that cannot be drawn must not lose the report
        errors.append(f"{what}: {traceback.format_exception_only(type(e), e)[-1].strip()}")
        return None


def build_figures(result) -> tuple[list[Any], list[str]]:
    """Every figure of the report, in order, and the figures that could not be drawn."""
    from taskrel.report import draw
    from taskrel.report import figures as F
    from taskrel.report.capacity import chose_widths, group_labels
    from taskrel.study.result import safe_name

    figs: list[Any] = []
    errors: list[str] = []
    cl = result.clustering
    order = F.task_order(result.tasks, None if cl is None else cl.order)
    affs = {k: v.subset([t for t in order if t in v.tasks]) for k, v in result.affinities.items()}
    stage_names = result.stage_names
    n = len(result.tasks)
    remaining = [t for t in order if t not in result.left_out]  # the tasks the analyses cover
    side = draw.heatmap_side(n)

    def add(key, title, caption, size, fn):
        r = _safe(lambda: draw.render(key, title, caption, size, fn), errors, title)
        if r is not None:
            figs.append(r)

    tree_caption = ("Each row is an encoder stage; a box is one copy of the stage (blue: shared by the tasks below it; "
                    "grey: one task's own copy). Task heads at the bottom.")
    rec = result.recommended
    if rec is not None:
        tree = F.layout_tree(rec, stage_names, order)
        widths = ""
        if chose_widths(result):
            widths = (" Widths of the encoder (multiplier of the suite's own; the search chose them): "
                      + ", ".join(group_labels(rec, True) or []) + ".")
        add("layout", "Recommended layout", tree_caption + widths, draw.tree_size(n, rec.n_stages),
            lambda fig: draw.draw_layout_tree(tree, fig.add_subplot()))
    if "branched" in result.layouts:
        tree_b = F.layout_tree(result.layout("branched"), stage_names, order)
        add("layout-branched", "Branched layout (from per-stage similarity)", "Where the tasks split, stage by stage. " + tree_caption,
            draw.tree_size(n, len(stage_names)), lambda fig: draw.draw_layout_tree(tree_b, fig.add_subplot(), "branched layout"))
    if result.grouping:
        bdata = F.budget_data(result.grouping, result.validation_summary(), len(remaining))
        add("pareto", "Grouping under a budget", _budget_caption(result, bdata), (7.6, 3.8 if bdata.same_scale else 5.2),
            lambda fig: draw.draw_budget(bdata, fig))
    for name, aff in affs.items():
        if aff.is_staged:
            continue
        hm = F.heatmap_data(aff, order, title=name if aff.measure in ("", name) else f"{name} ({aff.measure})")
        add(f"heatmap-{safe_name(name)}", f"Affinity: {name}", F.heatmap_caption(hm, aff.n_seeds) + F.missing_caption(aff, result.left_out),
            (side + 1.6, side), lambda fig, hm=hm: draw.draw_heatmap(hm, fig.add_subplot()))
    if cl is not None and cl.dendrogram is not None:
        groups = [list(b) for b in rec.blocks(0)] if rec is not None else None
        note = F.cluster_note(cl.clusters, groups, None if result.grouping is None else result.grouping.budget)
        add("dendrogram", "Task clusters", f"Hierarchical clustering of the {cl.probe} affinity; {cl.n_clusters} clusters. {note}",
            (5.5, max(2.6, 0.32 * n + 0.8)), lambda fig: draw.draw_dendrogram(cl.dendrogram, cl.clusters, fig.add_subplot()))
    for name, aff in affs.items():
        if aff.is_staged:
            maps = F.stage_heatmaps(aff, order)
            per_row = 1 if n > 12 else len(maps)  # one map a row when the maps are large
            add(f"stages-{safe_name(name)}", f"Representation similarity per stage: {name}",
                f"{aff.measure} between the single-task networks, at each encoder stage (early stages are usually more alike). "
                f"Symmetric: only the lower triangle is drawn. Colour and numbers: {maps[0].unit}.",
                (min(side * per_row * 0.85 + 1.6, draw.MAX_FIGURE_INCHES), side * 0.9 * (len(maps) // per_row)),
                lambda fig, maps=maps, k=per_row: draw.draw_stage_heatmaps(maps, fig, per_row=k))
    for name, traj in result.trajectories.items():
        if traj.cosine:
            curves = F.gradient_curves(traj)
            add(f"gradient-{safe_name(name)}", f"Gradient alignment over training: {name}", "Cosine between per-task gradients on the shared encoder, mean over seeds (band: ± std). Coloured: the most aligned and most conflicting pairs.",
                (8.0, 3.6), lambda fig, c=curves: draw.draw_gradient(c, fig.add_subplot()))
    ref = result.analysis_probe if len(affs) > 3 else None
    panels = _with_recorded_seconds(result, F.agreement_data(affs, remaining, reference=ref))
    if panels:
        rows, cols = draw.grid_shape(len(panels))
        add("agreement", "Probe agreement", "Do the probes agree? Each point is one source→target pair; legend: Spearman's rank correlation and each probe's compute time.",
            (3.6 * cols, 3.3 * rows), lambda fig: draw.draw_agreement_grid(panels, fig))
    for primary in dict.fromkeys(e.primary for e in result.auxiliary):
        df = F.auxiliary_data(result.auxiliary, primary)
        add(f"auxiliary-{safe_name(primary)}", f"Auxiliary tasks for {primary}", "Which tasks help the primary task most (error bars: std over seeds).",
            (min(3.2 * df["probe"].nunique() + 1.2, 10.5), max(2.5, 0.34 * df["source"].nunique() + 1.2)),
            lambda fig, df=df, p=primary: draw.draw_auxiliary(df, p, fig))
    return figs, errors


def _with_recorded_seconds(result, panels: list[Any]) -> list[Any]:
    """Each panel's probes at what they cost as their runs' records state it, not at their
    affinity's own clock (near zero for runs read back from the store)."""
    for p in panels:
        p.x_seconds = _recorded(result, p.x_probe, p.x_seconds)
        p.y_seconds = _recorded(result, p.y_probe, p.y_seconds)
    return panels


def _recorded(result, label: str, fallback: float) -> float:
    """A probe's compute seconds from its runs' records (``label`` may carry a stage suffix)."""
    seconds = result.probe_compute_seconds(label.split(" [", 1)[0])
    return fallback if seconds is None else seconds


def _budget_caption(result, d) -> str:
    budget = None if result.grouping is None else result.grouping.budget
    scale = ("Predicted (blue: the search's estimate of the loss per task, validation split) and measured (red: the "
             "grouping chosen at each budget, trained and scored on the test split) share one axis, so their gap is "
             "the search's error." if d.same_scale else
             "The search's prediction is a score, not a loss: it has its own panel below the measured losses.")
    base = " Dotted lines: all-shared (one network) and all-separate (one per task) measured." if d.baselines else ""
    if any(k.endswith("matched") for k in d.baselines):
        base += " Narrow markers: the same two at the recommendation's parameter count (width-matched)."
    chosen = f" Dashed: the recommended budget ({budget:g}, from the study file)." if budget is not None else ""
    return scale + base + chosen


def write_report(result, out: str | Path, quiet: bool = True) -> dict[str, Path]:
    """Write report.html, report.md, summary.json, layout.json (and figures/) into ``out``.

    Every file is written atomically (a temporary file in the same folder, then renamed). A
    study given as an object (no study file) also gets ``study.toml``, so the page's
    Reproduce commands work.
    """
    from taskrel.files import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
    from taskrel.report.answer import decided_file, decided_width, needs_study_file, summary
    from taskrel.report.html import html_report, markdown_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, recursive=True)  # what killed writes left (figures/ too)
    figs, fig_errors = build_figures(result)
    paths: dict[str, Path] = {}
    fig_dir = inside(out, "figures")
    fig_dir.mkdir(exist_ok=True)
    fig_files = {}
    for f in figs:
        p = inside(fig_dir, f"{f.key}.png")
        atomic_write_bytes(p, f.png)
        fig_files[f.key] = f"figures/{p.name}"
    paths["html"] = inside(out, "report.html")
    atomic_write_text(paths["html"], html_report(result, figs, fig_errors, out))
    paths["markdown"] = inside(out, "report.md")
    atomic_write_text(paths["markdown"], markdown_report(result, figs, fig_files, fig_errors, out))
    paths["summary"] = inside(out, "summary.json")
    atomic_write_text(paths["summary"], json.dumps(summary(result, out), indent=1, allow_nan=False))
    if result.recommended is not None:
        paths["layout"] = inside(out, "layout.json")
        atomic_write_text(paths["layout"], json.dumps(result.recommended.to_dict(), indent=1))
    d = result.decision
    if decided_width(result, d) is not None:  # a width-matched baseline won: its layout, for the train command
        paths["decided"] = inside(out, decided_file(d))
        atomic_write_text(paths["decided"], json.dumps(result.layout(d.decided_by).to_dict(), indent=1))
    if needs_study_file(result):
        paths["study"] = inside(out, "study.toml")
        atomic_write_text(paths["study"], result.source)
    if fig_errors and not quiet:
        for e in fig_errors:
            print(f"taskrel report: figure not drawn: {e}", file=sys.stderr)
    return paths


def _register() -> None:
    from taskrel.study.result import register_report_writer

    register_report_writer(write_report)  # StudyResult.write_report reaches the report through this


_register()
