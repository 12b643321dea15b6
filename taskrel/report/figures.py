"""The data behind every report figure, as plain dataclasses and DataFrames.

Each function here computes what one figure shows, from a :class:`~taskrel.study.StudyResult`
or its parts, without drawing anything (drawing is :mod:`taskrel.report.draw`), so the numbers
a figure shows can be tested without a figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from taskrel.affinity import Affinity
from taskrel.layout import SharingLayout
from taskrel.report.capacity import front_groups
from taskrel.report.heatmaps import HeatmapData, heatmap_caption, heatmap_data, stage_heatmaps
from taskrel.study.findings import AuxiliaryRanking, GroupingFront, Trajectory

__all__ = ["HeatmapData", "heatmap_caption", "heatmap_data", "stage_heatmaps"]  # re-exported: figure data lives here


def task_order(tasks: list[str], order: list[str] | None = None) -> list[str]:
    """Tasks in the clustering's ``order`` (dendrogram leaves), else as given.

    >>> task_order(["a", "b", "c"], ["c", "a", "b"])
    ['c', 'a', 'b']
    >>> task_order(["a", "b"], ["b", "x"])
    ['b', 'a']
    """
    if not order:
        return list(tasks)
    head = [t for t in order if t in tasks]
    return head + [t for t in tasks if t not in head]


# ---------------------------------------------------------------------- gradient curves
@dataclass
class GradientCurves:
    """Mean (over seeds) gradient cosine of each task pair at each probe step."""

    frame: pd.DataFrame  # columns: step, pair, cosine, std
    highlight: list[str]  # the pairs to name (most aligned and most conflicting on average)


def gradient_curves(traj: Trajectory | dict[str, list], n_highlight: int = 3, smooth: int | None = None) -> GradientCurves:
    """Cosine per pair and step from a stored trajectory, averaged over seeds and smoothed
    (a centred rolling mean over ``smooth`` probe steps; default about a tenth of them).

    >>> t = {"seed": [0, 0, 1, 1], "step": [0, 5, 0, 5], "source": ["a"] * 4,
    ...      "target": ["b"] * 4, "cosine": [0.2, 0.4, 0.4, 0.6]}
    >>> gradient_curves(t, smooth=1).frame["cosine"].round(2).tolist()
    [0.3, 0.5]
    """
    df = pd.DataFrame(traj.to_dict() if isinstance(traj, Trajectory) else traj)
    if df.empty:
        return GradientCurves(pd.DataFrame(columns=["step", "pair", "cosine", "std"]), [])
    df["pair"] = df["source"].astype(str) + " · " + df["target"].astype(str)
    g = df.groupby(["pair", "step"], sort=True)["cosine"]
    out = pd.DataFrame({"cosine": g.mean(), "std": g.std(ddof=0).fillna(0.0)}).reset_index()
    if smooth is None:
        smooth = max(1, out["step"].nunique() // 10)
    if smooth > 1:
        out["cosine"] = out.groupby("pair")["cosine"].transform(lambda s: s.rolling(smooth, min_periods=1, center=True).mean())
    means = out.groupby("pair")["cosine"].mean().sort_values()
    k = min(n_highlight, len(means) // 2) if len(means) > 1 else len(means)
    highlight = list(means.index[-k:][::-1]) + [p for p in means.index[:k] if p not in means.index[-k:]]
    return GradientCurves(out[["step", "pair", "cosine", "std"]], highlight)


# ---------------------------------------------------------------------- probe agreement
@dataclass
class AgreementPanel:
    """Off-diagonal entries of two probes' affinities on their common tasks."""

    x_probe: str
    y_probe: str
    x: np.ndarray
    y: np.ndarray
    x_rank: np.ndarray  # each entry's rank among its probe's entries, scaled to [0, 1]
    y_rank: np.ndarray
    spearman: float
    x_seconds: float
    y_seconds: float
    labels: list[str] = field(default_factory=list)  # "source→target" per point


def agreement_data(affinities: dict[str, Affinity], tasks: list[str] | None = None, reference: str | None = None) -> list[AgreementPanel]:
    """Pairs of probes (per-stage ones by their last stage): entries and Spearman's rho.

    With ``reference``, only the pairs with that probe (one panel per other probe); else
    every pair.

    >>> a = Affinity(["a", "b", "c"], [[0, 1, 2], [3, 0, 4], [5, 6, 0]])
    >>> p = agreement_data({"p": a, "q": a})[0]
    >>> p.spearman, len(p.x)
    (1.0, 6)
    """
    plain = {}
    for name, aff in affinities.items():
        if aff.is_staged:
            last = aff.values.shape[0] - 1
            name = f"{name} [{aff.stages[last] if aff.stages else last}]"
            aff = aff.stage(last)
        plain[name] = aff
    panels = []
    pairs = list(combinations(plain, 2))
    if reference in plain:
        pairs = [(reference, b) for b in plain if b != reference]
    for a, b in pairs:
        A, B = plain[a], plain[b]
        common = [t for t in (tasks or A.tasks) if t in A.tasks and t in B.tasks]
        if len(common) < 3:
            continue
        x, y = A.subset(common).offdiag(), B.subset(common).offdiag()
        labels = [f"{s}→{t}" for s in common for t in common if s != t]
        both = np.isfinite(x) & np.isfinite(y)  # an entry no run measured is no point
        x, y, labels = x[both], y[both], [lab for lab, k in zip(labels, both) if k]
        rho = A.agreement(B)["spearman"]
        panels.append(AgreementPanel(a, b, x, y, _ranks(x), _ranks(y), float(rho), float(A.cost.seconds), float(B.cost.seconds), labels))
    return panels


def missing_caption(aff: Affinity, left_out: dict[str, str] | None = None) -> str:
    """The caption's note on entries no run measured (blank cells), naming the tasks left out.

    >>> a = Affinity(["a", "b", "c"], [[0, 1, np.nan], [1, 0, np.nan], [np.nan, np.nan, 0]], missing=True)
    >>> missing_caption(a, {"c": "diverged"})
    ' Blank cells: 4 entries with no successful run (left out of the analyses: c).'
    """
    if aff.missing is None:
        return ""
    n = int(aff.missing.sum())
    gone = [t for t in aff.tasks if t in (left_out or {})]
    tail = f" (left out of the analyses: {', '.join(gone)})" if gone else ""
    return f" Blank cells: {n} entr{'y' if n == 1 else 'ies'} with no successful run{tail}."


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    r = rankdata(v) - 1.0
    return r / max(len(v) - 1, 1)


# ---------------------------------------------------------------------- auxiliary
def auxiliary_data(entries: list[AuxiliaryRanking], primary: str) -> pd.DataFrame:
    """Rankings of every source for ``primary``, one row per (probe, source), best first.

    The order of sources is the first probe's ranking.
    """
    rows = []
    for e in entries:
        if e.primary != primary:
            continue
        for r in e.rows:
            rows.append({"probe": e.probe, "source": r.source, "affinity": r.affinity, "std": r.std})
    df = pd.DataFrame(rows, columns=["probe", "source", "affinity", "std"])
    if df.empty:
        return df
    first = df["probe"].iloc[0]
    rank = {s: i for i, s in enumerate(df[df["probe"] == first]["source"])}
    probe_rank = {p: i for i, p in enumerate(dict.fromkeys(df["probe"]))}
    df["rank"] = df["source"].map(lambda s: rank.get(s, len(rank)))
    df["prank"] = df["probe"].map(probe_rank)
    return df.sort_values(["prank", "rank"], kind="stable").drop(columns=["rank", "prank"]).reset_index(drop=True)


# ---------------------------------------------------------------------- Pareto front
def pareto_data(grouping: GroupingFront | None, summary: pd.DataFrame | None, n_tasks: int) -> pd.DataFrame:
    """Per budget: the cost used, predicted loss (or score) per task, validated test loss.

    ``predicted`` is the search objective divided by the number of tasks (the mean over tasks
    of each task's predicted value); ``validated_*`` is the measured mean test loss over tasks
    of the grouping chosen at that budget, mean and std over seeds (NaN if not trained).
    """
    cols = ["budget", "cost", "predicted", "validated_mean", "validated_std", "groups"]
    if not grouping:
        return pd.DataFrame(columns=cols)
    from taskrel.study.steps import front_name

    val = {} if summary is None or summary.empty else summary.set_index("layout")
    rows = []
    for r in grouping.front:
        name = front_name(r.budget)
        has = len(val) and name in val.index
        rows.append({
            "budget": float(r.budget),
            "cost": np.nan if r.cost is None else float(r.cost),
            "predicted": np.nan if r.objective is None else float(r.objective) / n_tasks,
            "validated_mean": float(val.loc[name, "test_loss_mean"]) if has else np.nan,
            "validated_std": float(val.loc[name, "test_loss_std"]) if has else np.nan,
            "groups": front_groups(r, grouping.capacity is not None) if r.feasible else "",
        })
    return pd.DataFrame(rows, columns=cols).sort_values("budget").reset_index(drop=True)


@dataclass
class BudgetData:
    """The budget figure on one axis: loss per task against networks trained.

    ``frame`` is :func:`pareto_data`; ``baselines`` maps all-shared and all-separate to
    (networks, measured mean, std); ``same_scale`` says the prediction is a loss per task like
    the measurement (else it is a score, drawn on its own panel)."""

    frame: pd.DataFrame
    baselines: dict[str, tuple[float, float, float]]
    chosen: float | None
    same_scale: bool
    unit: str = "networks trained"  # what the budget counts


def budget_data(grouping: GroupingFront | None, summary: pd.DataFrame | None, n_tasks: int) -> BudgetData:
    """:func:`pareto_data` with the measured baselines: all-shared at one network, all-separate
    at one network per task. A study that chose widths at a cost in parameters puts every
    baseline (the width-matched ones too) at its parameter count over the width-1 all-shared
    network's, the unit its budgets are in."""
    df = pareto_data(grouping, summary, n_tasks)
    cap = None if grouping is None else grouping.capacity
    ref = cap.reference_parameters if grouping is not None and grouping.params_cost else None
    base: dict[str, tuple[float, float, float]] = {}
    s = summary.set_index("layout") if summary is not None and not summary.empty else None
    for name, x in (("all-shared", 1.0), ("all-separate", float(n_tasks)), ("all-shared matched", None),
                    ("all-separate matched", None)):
        if s is None or name not in s.index:
            continue
        if ref:
            x = float(s.loc[name, "n_parameters"]) / float(ref)
        if x is not None:
            base[name] = (x, float(s.loc[name, "test_loss_mean"]), float(s.loc[name, "test_loss_std"]))
    unit = "parameters / the width-1 all-shared network's" if ref else \
        "networks trained (a network at width w counts w)" if cap else "networks trained"
    return BudgetData(df, base, None if grouping is None else grouping.budget,
                      grouping is None or not grouping.higher_is_better, unit)


def cluster_note(clusters: list[list[str]] | None, groups: list[list[str]] | None, budget: float | None) -> str:
    """One sentence reconciling the dendrogram's clusters with the recommended groups.

    >>> cluster_note([["a", "b"], ["c"]], [["a", "b"], ["c"]], 2)
    'The recommended groups are these clusters.'
    >>> cluster_note([["a", "b", "c"]], [["a"], ["b", "c"]], 2)[:60]
    'The recommended groups (2, from the grouping search under a '
    """
    if not clusters or not groups:
        return ""
    same = {frozenset(c) for c in clusters} == {frozenset(g) for g in groups}
    if same:
        return "The recommended groups are these clusters."
    b = f"{budget:g}" if budget is not None else "?"
    return (f"The recommended groups ({len(groups)}, from the grouping search under a budget of {b} networks, which "
            f"predicts each group's loss) differ from these {len(clusters)} clusters (from the affinity "
            "alone): the two answer different questions, and where they disagree the measured validation decides.")


# ---------------------------------------------------------------------- layout tree
@dataclass
class TreeBox:
    stage: int
    x0: float  # left edge, in task slots
    x1: float  # right edge
    tasks: tuple[str, ...]
    parent: int | None  # index of the box at the stage above


@dataclass
class TreeData:
    stages: list[str]
    leaves: list[str]  # task heads, left to right
    boxes: list[TreeBox]


def layout_tree(layout: SharingLayout, stage_names: list[str] | None = None, order: list[str] | None = None) -> TreeData:
    """Boxes (stage, span, tasks) of a layout, tasks arranged so every block is contiguous.

    >>> lay = SharingLayout(["a", "b", "c"], [[["a", "b", "c"]], [["a", "c"], ["b"]]])
    >>> t = layout_tree(lay)
    >>> t.leaves, [(b.stage, b.x0, b.x1, b.parent) for b in t.boxes]
    (['a', 'c', 'b'], [(0, 0, 3, None), (1, 0, 2, 0), (1, 2, 3, 0)])
    """
    pref = {t: i for i, t in enumerate(order or layout.tasks)}
    pref.update({t: len(pref) + i for i, t in enumerate(layout.tasks) if t not in pref})

    def block_key(k: int, t: str) -> int:
        blocks = sorted(layout.blocks(k), key=lambda b: min(pref[x] for x in b))
        return next(i for i, b in enumerate(blocks) if t in b)

    leaves = sorted(layout.tasks, key=lambda t: (*[block_key(k, t) for k in range(layout.n_stages)], pref[t]))
    pos = {t: i for i, t in enumerate(leaves)}
    boxes: list[TreeBox] = []
    index: dict[tuple[int, tuple[str, ...]], int] = {}
    for k in range(layout.n_stages):
        for block in sorted(layout.blocks(k), key=lambda b: min(pos[t] for t in b)):
            xs = [pos[t] for t in block]
            parent = None if k == 0 else index[(k - 1, layout.block_of(block[0], k - 1))]
            index[(k, block)] = len(boxes)
            boxes.append(TreeBox(k, min(xs), max(xs) + 1, tuple(sorted(block, key=pos.__getitem__)), parent))
    names = list(stage_names or [f"stage {k}" for k in range(layout.n_stages)])
    return TreeData(names, leaves, boxes)


# ---------------------------------------------------------------------- the answer
def headline(result) -> dict[str, Any]:
    """The answer in numbers: recommended layout and its measured gain over the baselines.

    ``gain_vs_*`` is the relative reduction of mean test loss, in percent (positive = better).
    """
    rows = {r.layout: r for r in result.validation_summary().itertuples(index=False)}
    out: dict[str, Any] = {"recommended": None, "groups": None, "measured": {}, "gain_vs": {}}
    rec = result.recommended
    if rec is not None:
        out["recommended"] = rec.describe()
        out["groups"] = [list(b) for b in rec.blocks(0)]
    for name in ("recommended", "branched", "all-shared", "all-separate"):
        if name in rows:
            r = rows[name]
            out["measured"][name] = {"test_loss": r.test_loss_mean, "std": r.test_loss_std,
                                     "test_metric": r.test_metric_mean, "metric_std": r.test_metric_std,
                                     "seeds": int(r.n_seeds), "parameters": r.n_parameters}
    pooled = _random_pool(result)
    if pooled is not None:
        out["measured"]["random groupings"] = pooled
    base = out["measured"].get("recommended")
    for name in ("all-shared", "all-separate", "random groupings"):
        other = out["measured"].get(name)
        if base and other and other["test_loss"]:
            out["gain_vs"][name] = 100.0 * (other["test_loss"] - base["test_loss"]) / other["test_loss"]
    return out


def _random_pool(result) -> dict[str, Any] | None:
    """The random equal-budget groupings pooled: mean and std of the per-seed mean test loss
    over every (grouping, seed), so the spread holds both seed noise and the choice of groups."""
    df = result.validation_frame()
    if df.empty:
        return None
    df = df[(df["status"] == "ok") & df["layout"].str.startswith("random ")]
    if df.empty:
        return None
    per = df.groupby(["layout", "seed"]).agg(test_loss=("test_loss", "mean"), test_metric=("test_metric", "mean"),
                                             n_parameters=("n_parameters", "first"))

    def sd(s):
        return float(s.std(ddof=1)) if len(s) > 1 else 0.0

    return {"test_loss": float(per["test_loss"].mean()), "std": sd(per["test_loss"]),
            "test_metric": float(per["test_metric"].mean()), "metric_std": sd(per["test_metric"]),
            "seeds": int(df["seed"].nunique()), "parameters": float(per["n_parameters"].iloc[0]),
            "groupings": int(df["layout"].nunique())}
