"""Writers: one self-contained HTML page and its Markdown twin, rendered from the Jinja2
templates in ``taskrel/report/templates/``.

Escaping is on by default: the HTML environment autoescapes every value, and the Markdown
environment escapes every value for Markdown (HTML characters and Markdown markup) unless it
is marked safe. Python code here builds plain data (strings, rows); markup lives in the
templates.
"""

from __future__ import annotations

import base64
import html
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from taskrel.report.answer import answer_view
from taskrel.report.capacity import block_label, chose_widths, front_groups, is_width_study
from taskrel.study.result import BASELINES


def md(x: Any) -> str:
    """Escape text for Markdown (HTML characters and Markdown markup).

    >>> md("a_b <i>|")
    'a\\\\_b &lt;i&gt;\\\\|'
    """
    if isinstance(x, Markup):
        return str(x)
    s = html.escape(str(x), quote=False)
    for ch in "\\`*_[]|#":
        s = s.replace(ch, "\\" + ch)
    return s


def _md_finalize(x: Any) -> str:
    return "" if x is None else md(x)


@lru_cache(maxsize=2)
def environment(kind: str):
    """The Jinja2 environment for ``"html"`` (autoescaped) or ``"md"`` (Markdown-escaped)."""
    import jinja2

    loader = jinja2.PackageLoader("taskrel.report", "templates")
    if kind == "html":
        return jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                  undefined=jinja2.StrictUndefined)
    return jinja2.Environment(loader=loader, autoescape=False, finalize=_md_finalize, trim_blocks=True,
                              lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def _num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


# ---------------------------------------------------------------------- tables
def layout_text(lay, stage_names: list[str] | None = None, widths: bool = False) -> str:
    """A short description: flat groups as ``a+b | c``; a tree stage by stage, equal stages
    merged. Groups carry their width (``a+b@0.5``) where it is not 1, or always with ``widths``.

    >>> from taskrel.layout import SharingLayout
    >>> layout_text(SharingLayout.branched(["a", "b", "c"], {1: [["a", "b"], ["c"]]}, 3), ["s1", "s2", "s3"])
    's1: all | s2–s3: a+b · c'
    >>> layout_text(SharingLayout.separate(["a", "b"], 2).with_widths(0.5)), layout_text(SharingLayout.shared(["a", "b"], 2), widths=True)
    ('every task alone @0.5', 'one network for all @1')
    """
    n = len(lay.tasks)
    flat = all(p == lay.partitions[0] for p in lay.partitions)
    ws = {lay.width_of(t) for t in lay.tasks}
    if flat and len(ws) == 1 and len(lay.partitions[0]) in (1, n):
        w = ws.pop()
        return ("one network for all" if len(lay.partitions[0]) == 1 else "every task alone") + \
            (f" @{w:g}" if widths or w != 1.0 else "")
    if flat:
        return " | ".join(block_label(lay, b, widths) for b in lay.blocks(0))
    names = stage_names if stage_names and len(stage_names) == lay.n_stages else [f"stage{k}" for k in range(lay.n_stages)]
    runs: list[list[int]] = []
    for k in range(lay.n_stages):
        if runs and lay.partitions[k] == lay.partitions[runs[-1][0]]:
            runs[-1].append(k)
        else:
            runs.append([k])
    parts = []
    for r in runs:
        where = names[r[0]] if len(r) == 1 else f"{names[r[0]]}–{names[r[-1]]}"
        p = lay.partitions[r[0]]
        parts.append(f"{where}: " + ("all" if len(p) == 1 else " · ".join("+".join(b) for b in p)))
    return " | ".join(parts)


def _count(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{int(x):,}"


def validation_table(result) -> tuple[list[str], list[list[Any]]]:
    """The validation table: one row per trained layout, named ones first; each layout's
    parameter count beside its loss, and in a width study each group's width."""
    metric = ", ".join(result.metrics) or "metric"
    head = ["layout", "groups", "parameters", "test loss per task (mean ± std)", f"test {metric}", "seeds"]
    order = ["recommended", "branched", *BASELINES, "all-shared matched", "all-separate matched"]
    summ = list(result.validation_summary().itertuples(index=False))
    summ.sort(key=lambda r: (order.index(r.layout) if r.layout in order else len(order), r.layout))
    named = {n: result.layout(n) for n in order if n in result.layouts}
    widths = is_width_study(result)
    rows = []
    for r in summ:
        label = r.layout
        if label not in named and label in result.layouts:
            same = [n for n, lay in named.items() if lay == result.layout(label)]
            label += f" (= {same[0]})" if same else ""
        text = layout_text(result.layout(r.layout), result.stage_names, widths) if r.layout in result.layouts else ""
        rows.append([label, text, _count(r.n_parameters), f"{_num(float(r.test_loss_mean))} ± {_num(float(r.test_loss_std))}",
                     f"{_num(float(r.test_metric_mean), 3)} ± {_num(float(r.test_metric_std), 3)}", int(r.n_seeds)])
    return head, rows


PROBE_HEAD = ["probe", "kind", "seeds", "runs", "compute (s, from its runs' records)", "wall this invocation (s)", "status"]


def probe_rows(result) -> list[list[Any]]:
    rows = []
    for name, p in result.probes.items():
        cost = p.cost
        rows.append([name, p.kind, ", ".join(map(str, p.seeds)), "–" if cost is None else cost.runs,
                     "–" if cost is None else _num(float(cost.seconds), 1), _num(float(p.seconds), 1),
                     f"failed: {p.error}" if p.error else
                     f"partial: {p.missing} entries with no successful run" if p.missing else "ok"])
    return rows


def _g(x: Any) -> str:
    return "–" if x is None else f"{float(x):.4g}"


def front_table(result) -> tuple[list[str], list[list[str]]]:
    """The budget front: budget, cost, predicted loss per task and the groups (each with its
    width in a width study); budget and cost in the table's unit (networks, or parameters
    relative to the width-1 all-shared network)."""
    g = result.grouping
    n = len(result.remaining_tasks)
    unit = "parameters / width-1 all-shared" if g is not None and g.params_cost else "networks"
    head = [f"budget ({unit})", f"cost ({unit})", "predicted loss per task (val)", "groups"]
    widths = chose_widths(result)
    rows = [[_g(r.budget), _g(r.cost), _num(None if r.objective is None else r.objective / n),
             front_groups(r, widths)] for r in ([] if g is None else g.front)]
    return head, rows


SECTIONS = (("layout", "", ""), ("pareto", "How much to share: the budget", ""),
            ("heatmap", "How the tasks relate", ""), ("dendrogram", "", ""),
            ("stages", "Representations, stage by stage", ""), ("gradient", "Gradients during training", ""),
            ("agreement", "Agreement between probes", ""), ("auxiliary", "Auxiliary tasks", ""))


def _sections(figs: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {k: [] for k, _, _ in SECTIONS}
    out["more"] = []
    for f in figs:
        prefix = next((k for k, _, _ in SECTIONS if f.key == k or f.key.startswith(k + "-")), "more")
        out[prefix].append(f)
    return out


def context(result, figs: list[Any], fig_errors: list[str], out: str | Path | None = None) -> dict[str, Any]:
    """Everything the templates show, as plain data."""
    view = answer_view(result, out)
    vh, vr = validation_table(result)
    compute = view.compute_seconds
    runs = result.compute_runs()
    return {
        "r": result, "name": result.name, "suite_name": result.suite.get("name"), "tasks": result.tasks, "view": view,
        "d": view.decision, "created": result.created, "description": result.description,
        "compute_line": f"{compute / 60:.1f} min of training in {runs} runs (from their records, whenever they were trained)"
        if compute else "",
        "wall_line": f"{view.wall_seconds:.0f} s wall time for the invocation that wrote this result"
        if view.wall_seconds is not None else "",
        "validation_head": vh, "validation_rows": vr,
        "rec_index": next((i for i, r in enumerate(vr) if r[0] == "recommended"), None),
        "front_head": front_table(result)[0], "front_rows": front_table(result)[1], "stability": result.stability,
        "capacity": view.capacity,
        "sections": _sections(figs), "section_titles": {k: t for k, t, _ in SECTIONS},
        "probe_head": PROBE_HEAD, "probe_rows": probe_rows(result),
        "left_out": list(result.left_out.items()), "remaining": result.remaining_tasks,
        "problems": [f"{e.part}: {e.error}" for e in result.problems] + [f"figure not drawn: {e}" for e in fig_errors],
        "failed_rows": [[r.label or r.key, r.seed, f"{r.error}" + (f" (step {r.step})" if r.step is not None else "")]
                        for r in result.failed_runs],
        "source": result.source, "cwd": result.invocation.cwd or "",
        "times": ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()),
    }


def _data_uri(f) -> str:
    return "data:image/png;base64," + base64.b64encode(f.png).decode("ascii")


def html_report(result, figs: list[Any], fig_errors: list[str], out: str | Path | None = None) -> str:
    """The self-contained page (figures inline as base64 PNG)."""
    env = environment("html")
    return env.get_template("report.html.j2").render(**context(result, figs, fig_errors, out), data_uri=_data_uri)


def markdown_report(result, figs: list[Any], fig_files: dict[str, str], fig_errors: list[str], out: str | Path | None = None) -> str:
    """The Markdown twin (figures as files under ``figures/``)."""
    env = environment("md")
    return env.get_template("report.md.j2").render(**context(result, figs, fig_errors, out), fig_files=fig_files,
                                                   raw=Markup)
