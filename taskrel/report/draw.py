"""Thin drawing functions: each draws the data of :mod:`taskrel.report.figures` on an axis.

matplotlib (Agg backend) and seaborn are imported here, lazily, never at ``import taskrel``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskrel.report.figures import AgreementPanel, BudgetData, GradientCurves, HeatmapData, TreeData
from taskrel.study.findings import Dendrogram

# Text in the figures: points at SAVEFIG_DPI. A label of LABEL_PT is LABEL_PT * SAVEFIG_DPI / 72
# pixels in the PNG (about 15 px), so it stays >= 11 px on the page unless the browser shrinks
# the image below ~0.7 of its size (the report shows the layout figures at full width).
SAVEFIG_DPI = 110
LABEL_PT = 10
SMALL_PT = 9
MAX_FIGURE_INCHES = 9.3  # about the page's content width: no figure is thousands of px wide
PALETTE = ["#3b6ea8", "#d1495b", "#edae49", "#66a182", "#8d6cab", "#00798c", "#a26769", "#52489c"]


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": SAVEFIG_DPI, "font.size": SMALL_PT, "axes.titlesize": 10,
        "axes.spines.top": False, "axes.spines.right": False, "axes.titleweight": "bold",
    })
    return plt


@dataclass
class Rendered:
    key: str
    title: str
    caption: str
    png: bytes


def render(key: str, title: str, caption: str, size: tuple[float, float], draw: Callable[[Any], None]) -> Rendered:
    """Make a figure of ``size`` inches, let ``draw(fig)`` fill it, return PNG bytes."""
    plt = _mpl()
    fig = plt.figure(figsize=size, layout="constrained")
    try:
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)
    return Rendered(key, title, caption, buf.getvalue())


# ---------------------------------------------------------------------- heatmaps
def draw_heatmap(d: HeatmapData, ax, cbar: bool = True, annotate: bool = True) -> None:
    import warnings

    import seaborn as sns

    n = len(d.tasks)
    cmap = "RdBu_r" if d.diverging else "viridis"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # inside seaborn
        _sns_heatmap(sns, d, ax, cmap, n, cbar, annotate)
    ax.set_xlabel(d.xlabel)
    ax.set_ylabel(d.ylabel)
    ax.set_title(d.title + (" (symmetric)" if d.symmetric else "") + (" · colour clipped" if d.clipped else ""))
    ax.tick_params(axis="x", rotation=45 if n <= 12 else 90)
    ax.tick_params(axis="y", rotation=0)
    for lab in ax.get_xticklabels():
        lab.set_horizontalalignment("right")


def _sns_heatmap(sns, d: HeatmapData, ax, cmap: str, n: int, cbar: bool, annotate: bool) -> None:
    sns.heatmap(
        d.values, ax=ax, cmap=cmap, center=0.0 if d.diverging else None, vmin=d.vmin, vmax=d.vmax,
        annot=np.array(d.annot) if annotate and n <= 14 else False, fmt="",
        annot_kws={"fontsize": SMALL_PT - 1 if n > 8 else SMALL_PT}, square=True, linewidths=0.5 if n <= 25 else 0,
        linecolor="white", cbar=cbar,
        cbar_kws={"shrink": 0.75, "extend": "both" if d.clipped else "neither", "label": _wrap(d.unit)},
        xticklabels=tick_step(n), yticklabels=tick_step(n),
    )
    if tick_step(n) != 1 or n > 25:
        step = tick_step(n)
        ax.set_xticks(np.arange(0, n, step) + 0.5, d.tasks[::step])
        ax.set_yticks(np.arange(0, n, step) + 0.5, d.tasks[::step])


def tick_step(n: int, rows_inches: float = MAX_FIGURE_INCHES * 0.72) -> int:
    """Label every k-th task of an n-task heatmap so that labels do not overlap: a row must be
    at least as tall as a label (SMALL_PT at SAVEFIG_DPI, plus a little).

    >>> tick_step(8), tick_step(48), tick_step(100)
    (1, 1, 2)
    """
    row_px = rows_inches * SAVEFIG_DPI / max(n, 1)
    return max(1, int(np.ceil(SMALL_PT * SAVEFIG_DPI / 72 / row_px - 1e-9)))


def draw_stage_heatmaps(maps: list[HeatmapData], fig, per_row: int | None = None) -> None:
    """Every stage's map on one colour scale: side by side, or ``per_row`` a row (1 when large)."""
    import matplotlib as mpl

    per_row = per_row or len(maps)
    rows = -(-len(maps) // per_row)
    axes = fig.subplots(rows, per_row + 1, squeeze=False, gridspec_kw={"width_ratios": [1] * per_row + [0.05]})
    for k, d in enumerate(maps):
        ax = axes[k // per_row][k % per_row]
        draw_heatmap(d, ax, cbar=False, annotate=len(d.tasks) <= 8)
        if k % per_row:
            ax.set_ylabel("")
            ax.set_yticklabels([])
    for k in range(len(maps), rows * per_row):
        axes[k // per_row][k % per_row].axis("off")
    norm = mpl.colors.Normalize(maps[0].vmin, maps[0].vmax)
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap="viridis"), cax=axes[0][-1], label=_wrap(maps[0].unit))
    for r in range(1, rows):
        axes[r][-1].axis("off")


def _wrap(text: str, width: int = 34) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def draw_dendrogram(dendro: Dendrogram, clusters: list[list[str]], ax) -> None:
    colour = {t: PALETTE[c % len(PALETTE)] for c, ts in enumerate(clusters) for t in ts}
    for xs, ys in zip(dendro.icoord, dendro.dcoord):
        ax.plot(ys, xs, color="#555555", lw=1.4)
    leaves = dendro.ivl
    ys = [5 + 10 * i for i in range(len(leaves))]
    ax.set_yticks(ys)
    ax.set_yticklabels(leaves)
    ax.set_ylim(0, 10 * len(leaves))
    ax.invert_xaxis()
    ax.yaxis.tick_right()
    for tick, name in zip(ax.yaxis.get_major_ticks(), leaves):
        for lab in (tick.label1, tick.label2):
            lab.set_color(colour.get(name, "black"))
            lab.set_fontweight("bold")
    ax.spines["left"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.set_xlabel("distance (1 - scaled symmetric affinity)")
    ax.set_title("task dendrogram (label colour = cluster)")


# ---------------------------------------------------------------------- curves
def draw_gradient(curves: GradientCurves, ax) -> None:
    df = curves.frame
    for pair, g in df.groupby("pair"):
        if pair not in curves.highlight:
            ax.plot(g["step"], g["cosine"], color="#bbbbbb", lw=0.8, alpha=0.7, zorder=1)
    for i, pair in enumerate(curves.highlight):
        g = df[df["pair"] == pair]
        c = PALETTE[i % len(PALETTE)]
        ax.plot(g["step"], g["cosine"], color=c, lw=2, label=pair, zorder=3)
        ax.fill_between(g["step"], g["cosine"] - g["std"], g["cosine"] + g["std"], color=c, alpha=0.07, lw=0, zorder=2)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("training step")
    ax.set_ylabel("cosine of task gradients (shared encoder)")
    ax.set_title("gradient alignment during training (grey: other pairs)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def draw_agreement(p: AgreementPanel, ax) -> None:
    """Ranks of the entries (what Spearman's rho compares), so no outlier hides the rest."""
    ax.plot([0, 1], [0, 1], color="#cccccc", lw=1, zorder=0)
    ax.scatter(p.x_rank, p.y_rank, s=18, color=PALETTE[0], alpha=0.75, edgecolor="white", linewidth=0.4,
               label=f"Spearman ρ = {p.spearman:.2f}\ncompute: {p.x_probe} {_secs(p.x_seconds)}, {p.y_probe} {_secs(p.y_seconds)}")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.25)
    ax.set_xlabel(f"{p.x_probe}: rank of source→target")
    ax.set_ylabel(f"{p.y_probe}: rank")
    ax.set_title(f"{p.x_probe} vs {p.y_probe}")
    ax.legend(fontsize=7, loc="upper left", frameon=False, handletextpad=0.2)


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of a grid of ``n`` small panels (at most 3 a row, 2x2 for four)."""
    cols = 2 if n == 4 else min(3, n)
    return (n + cols - 1) // cols, cols


def draw_agreement_grid(panels: list[AgreementPanel], fig) -> None:
    rows, cols = grid_shape(len(panels))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for p, ax in zip(panels, axes.flat):
        draw_agreement(p, ax)


def draw_auxiliary(df, primary: str, fig) -> None:
    """One panel per probe (their scales differ), sources in the first probe's order."""
    probes = list(dict.fromkeys(df["probe"]))
    sources = list(dict.fromkeys(df["source"]))
    axes = fig.subplots(1, len(probes), squeeze=False, sharey=True)[0]
    y = np.arange(len(sources))
    for i, (probe, ax) in enumerate(zip(probes, axes)):
        g = df[df["probe"] == probe].set_index("source").reindex(sources)
        colours = [PALETTE[0] if v >= 0 else PALETTE[1] for v in g["affinity"].fillna(0)]
        ax.barh(y, g["affinity"], height=0.65, xerr=g["std"], color=colours, error_kw={"lw": 0.9, "capsize": 2.5})
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(probe, fontsize=9)
        ax.set_xlabel(f"effect on {primary}")
        if i == 0:
            ax.set_yticks(y)
            ax.set_yticklabels(sources)
            ax.invert_yaxis()
    fig.suptitle(f"auxiliary tasks for {primary}, best first (blue helps, red hurts; ± std over seeds)", fontsize=10, fontweight="bold")


def draw_budget(d: BudgetData, fig) -> None:
    """Loss per task against networks trained, on one axis: the search's prediction (val), the
    chosen grouping at each budget measured (test, mean ± std), and the two baselines measured.
    A prediction that is a score, not a loss, gets its own panel below."""
    df = d.frame
    axes = fig.subplots(1 if d.same_scale else 2, 1, squeeze=False, sharex=True)[:, 0]
    ax = axes[0]
    if d.same_scale:
        ax.plot(df["budget"], df["predicted"], "o-", color=PALETTE[0], lw=2, label="predicted by the search (val loss)")
    val = df.dropna(subset=["validated_mean"])
    if not val.empty:
        ax.errorbar(val["budget"], val["validated_mean"], yerr=val["validated_std"], fmt="s--", color=PALETTE[1],
                    lw=1.5, capsize=3, label="measured: chosen grouping (test loss, mean ± std)")
    styles = {"all-shared": (PALETTE[2], "^"), "all-separate": (PALETTE[3], "D"),
              "all-shared matched": (PALETTE[2], "v"), "all-separate matched": (PALETTE[3], "d")}
    for name, (x, mean, std) in d.baselines.items():
        colour, marker = styles[name]
        ax.axhline(mean, color=colour, lw=1, ls=":", zorder=0)
        ax.errorbar([x], [mean], yerr=[std], fmt=marker, color=colour, ms=7, capsize=3, label=f"measured: {name}")
    if d.chosen is not None:
        for a in axes:
            a.axvline(d.chosen, color="#888888", ls="--", lw=1)
        ax.annotate("recommended", (d.chosen, 1.0), xycoords=("data", "axes fraction"), fontsize=7, color="#555555",
                    ha="left", va="top", xytext=(3, -3), textcoords="offset points")
    ax.set_ylabel("loss per task (mean over tasks)")
    ax.set_title("grouping under a budget: predicted and measured on one scale")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if not d.same_scale:
        axes[1].plot(df["budget"], df["predicted"], "o-", color=PALETTE[0], lw=2)
        axes[1].set_ylabel("predicted score\nper task (higher better)")
    axes[-1].set_xlabel(f"budget: {d.unit}")
    xs = sorted(set(df["budget"]) | {x for x, _, _ in d.baselines.values()})
    axes[-1].set_xticks(xs)


def draw_layout_tree(tree: TreeData, ax, title: str = "") -> None:
    from matplotlib.patches import FancyBboxPatch

    n = len(tree.leaves)
    depth = len(tree.stages)
    pad = 0.08
    centre = {}
    for i, b in enumerate(tree.boxes):
        y = depth - b.stage
        shared = len(b.tasks) > 1
        colour = PALETTE[0] if shared else "#c9d3df"
        ax.add_patch(FancyBboxPatch((b.x0 + pad, y - 0.32), b.x1 - b.x0 - 2 * pad, 0.64,
                                    boxstyle="round,pad=0.02,rounding_size=0.12", fc=colour, ec="white", lw=1.5))
        label = f"shared by {len(b.tasks)}" if shared else ""
        if label and b.x1 - b.x0 >= 1:
            ax.text((b.x0 + b.x1) / 2, y, label, ha="center", va="center", color="white", fontsize=LABEL_PT, fontweight="bold")
        centre[i] = ((b.x0 + b.x1) / 2, y)
        if b.parent is not None:
            px, py = centre[b.parent]
            ax.plot([px, centre[i][0]], [py - 0.32, y + 0.32], color="#777777", lw=1.2, zorder=0)
    for b_i, b in enumerate(tree.boxes):
        if b.stage == depth - 1:
            bx, by = centre[b_i]
            for t in b.tasks:
                x = tree.leaves.index(t) + 0.5
                ax.plot([bx, x], [by - 0.32, 0.45], color="#777777", lw=1, zorder=0)
    every = leaf_step(n)
    for i, t in enumerate(tree.leaves):
        if i % every == 0:
            ax.text(i + 0.5, 0.3, t, ha="center", va="top", fontsize=LABEL_PT, rotation=0 if n <= 6 else (30 if n <= 12 else 90))
    for k, s in enumerate(tree.stages):
        ax.text(-0.15, depth - k, s, ha="right", va="center", fontsize=LABEL_PT, color="#444444")
    ax.text(-0.15, 0.3, "heads", ha="right", va="top", fontsize=LABEL_PT, color="#444444")
    ax.set_xlim(-1.0, n + 0.1)
    ax.set_ylim(-0.35 if n <= 6 else (-0.6 if n <= 12 else -1.4), depth + 0.45)
    ax.axis("off")
    ax.set_title(title or "recommended layout")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(fc=PALETTE[0], label="shared stage: one copy, used by every task below it"),
               Patch(fc="#c9d3df", label="a task's own copy of the stage"),
               Line2D([], [], color="#777777", lw=1.2, label="feeds the stage or head below")]
    lo = ax.get_ylim()[0]
    ax.set_ylim(lo - 1.25, ax.get_ylim()[1])
    ax.legend(handles=handles, fontsize=SMALL_PT, frameon=False, loc="lower left", bbox_to_anchor=(0.0, 0.0), ncol=1)


def leaf_step(n: int, inches: float = MAX_FIGURE_INCHES) -> int:
    """Name every k-th task under a layout tree of ``n`` tasks drawn ``inches`` wide, so that
    upright labels of LABEL_PT do not overlap (the groups table names every task).

    >>> leaf_step(8), leaf_step(48), leaf_step(200)
    (1, 1, 4)
    """
    slot_px = inches * SAVEFIG_DPI / (n + 1.1)
    return max(1, int(np.ceil(LABEL_PT * SAVEFIG_DPI / 72 / slot_px - 1e-9)))


def tree_size(n_tasks: int, n_stages: int) -> tuple[float, float]:
    """Inches of a layout tree: wider with more tasks, never wider than the page.

    >>> tree_size(6, 3), tree_size(48, 3)[0]
    ((5.5, 3.36), 9.3)
    """
    return (min(max(5.5, 0.62 * n_tasks + 1.2), MAX_FIGURE_INCHES), round(0.62 * n_stages + 1.5 + (0.8 if n_tasks > 12 else 0), 2))


def heatmap_side(n_tasks: int) -> float:
    """Inches of a heatmap's side: grows with the tasks up to the page width.

    >>> heatmap_side(4), heatmap_side(100)
    (3.6, 9.3)
    """
    return min(max(3.6, 0.42 * n_tasks + 1.6), MAX_FIGURE_INCHES)


def _secs(x: float) -> str:
    """Seconds as read: ``67 s``, ``0.4 s``, ``12.5 min``.

    >>> _secs(67.2), _secs(0.42), _secs(750)
    ('67 s', '0.4 s', '12.5 min')
    """
    return f"{x / 60:.1f} min" if x >= 600 else (f"{x:.0f} s" if x >= 10 else f"{x:.1f} s")
