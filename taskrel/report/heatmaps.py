"""The data behind the affinity heatmaps: values in display order, their unit, the number
format their scale needs, whether the measure is symmetric, and flags for degenerate matrices.

Nothing here draws (see :mod:`taskrel.report.draw`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from taskrel.affinity import Affinity

# measure (or its prefix) -> (colourbar label, symmetric by construction)
UNITS: dict[str, tuple[str, bool]] = {
    "pairwise": ("relative loss reduction of the target, trained with the source (val)", False),
    "transfer": ("gain of the target's val metric over training from scratch", False),
    "gradient-cosine": ("cosine of the two tasks' gradients (−1 … 1)", True),
    "gradient-conflict": ("share of steps with conflicting gradients", True),
    "gradient-magnitude": ("gradient norm ratio ‖g_source‖ / ‖g_target‖", False),
    "lookahead": ("relative loss change of the target after a step on the source", False),
    "similarity": ("CKA between the tasks' representations (0 … 1)", True),
    "surrogate": ("predicted relative loss reduction of the target", False),
}


def measure_info(measure: str) -> tuple[str, bool]:
    """The colourbar label and whether the measure is symmetric by construction.

    >>> measure_info("similarity-linear")[1], measure_info("gradient-cosine")[1], measure_info("pairwise")[1]
    (True, True, False)
    >>> measure_info("mystery")
    ('affinity (larger is better for the target)', False)
    """
    best = max((k for k in UNITS if measure == k or measure.startswith(k)), key=len, default=None)
    return UNITS[best] if best else ("affinity (larger is better for the target)", False)


def decimals_for(values: np.ndarray) -> int:
    """Decimals that show the largest magnitude with two significant digits (0 to 6).

    >>> decimals_for(np.array([0.0075, -0.001])), decimals_for(np.array([4.1, 0.3])), decimals_for(np.array([0.0]))
    (4, 1, 2)
    """
    finite = np.abs(values[np.isfinite(values)])
    scale = float(finite.max()) if finite.size else 0.0
    if scale == 0.0:
        return 2
    return int(min(6, max(0, 1 - math.floor(math.log10(scale)))))


def fmt(v: float, decimals: int) -> str:
    """``v`` with ``decimals`` decimals; "" for NaN; no negative zero.

    >>> fmt(-0.00001, 2), fmt(float("nan"), 2), fmt(0.00752, 4)
    ('0.00', '', '0.0075')
    """
    if not np.isfinite(v):
        return ""
    s = f"{v:.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s) == 0.0 else s


@dataclass
class HeatmapData:
    """A task x task matrix to draw: rows are sources, columns targets, in ``tasks`` order
    (for a symmetric measure: the lower triangle of one matrix, both axes "task")."""

    title: str
    tasks: list[str]
    values: np.ndarray  # (n, n); NaN on the diagonal when masked, and above it when symmetric
    std: np.ndarray
    annot: list[list[str]]
    diverging: bool = True  # centred at 0 (else a sequential scale from vmin to vmax)
    vmin: float = -1.0
    vmax: float = 1.0
    xlabel: str = "target task"
    ylabel: str = "source task"
    clipped: bool = False  # a few extreme entries lie beyond the colour scale (annotated)
    unit: str = "affinity"  # the colourbar's label
    symmetric: bool = False
    decimals: int = 2
    flags: list[str] = field(default_factory=list)  # degenerate patterns, with their likely reason


def degenerate_flags(values: np.ndarray, tasks: list[str], measure: str = "") -> list[str]:
    """Sentences naming degenerate patterns of a matrix's off-diagonal entries: all zero,
    constant, the same down a column (source does not matter) or along a row (target does not
    matter), each with its likely reason. Constant means a spread under 1e-6 of the largest
    magnitude.

    >>> degenerate_flags(np.zeros((3, 3)), list("abc"))[0].split(":")[0]
    'every entry is 0'
    >>> v = np.array([[0, 2, 5], [1, 0, 5], [1, 2, 0.0]])
    >>> degenerate_flags(v, list("abc"))[0].split(" (")[0]
    'every column is constant'
    >>> degenerate_flags(np.array([[0, 1, np.nan], [2, 0, np.nan], [np.nan, np.nan, 0]]), list("abc"))
    []
    """
    n = len(tasks)
    if n < 3:
        return []
    off = ~np.eye(n, dtype=bool)
    vals = np.where(off, values, np.nan)
    finite = vals[np.isfinite(vals)]
    if not finite.size:
        return []
    scale = float(np.abs(finite).max())
    tol = 1e-6 * max(scale, 1e-12)
    if scale == 0.0:
        return ["every entry is 0: the probe measured no effect at all (a too-short run, a metric that does not "
                "move, or a probe that could not run)"]
    if float(np.ptp(finite)) <= tol:
        return [f"every entry is {finite[0]:.3g}: the measure does not tell tasks apart"]
    out = []
    def flat(v: np.ndarray) -> bool:  # constant over its measured entries (fewer than two: not flagged)
        v = v[np.isfinite(v)]
        return v.size > 1 and float(np.ptp(v)) <= tol

    cols = [t for j, t in enumerate(tasks) if flat(vals[:, j])]
    rows = [t for i, t in enumerate(tasks) if flat(vals[i])]
    if measure.startswith("transfer"):
        why = ("likely a frozen readout that predicts the same for any source (e.g. the majority class) "
               "or a metric that saturates")
    else:
        why = "likely a metric that saturates or a target that learns nothing from any source"
    if len(cols) == n:
        out.append(f"every column is constant (each target gets the same value from every source): the source "
                   f"does not matter, so the matrix says nothing about which tasks to pair; {why}")
    elif len(cols) >= max(2, n // 2):
        out.append(f"constant down the columns of {', '.join(cols)}: for these targets the source does not matter ({why})")
    if len(rows) == n:
        out.append("every row is constant (each source has the same effect on every target): the target does not "
                   "matter; likely a per-source scale (e.g. the size of its gradients) rather than a relation")
    elif len(rows) >= max(2, n // 2):
        out.append(f"constant along the rows of {', '.join(rows)}: these sources affect every target alike")
    return out


def heatmap_data(aff: Affinity, order: list[str] | None = None, title: str = "", mask_diagonal: bool = True,
                 diverging: bool = True) -> HeatmapData:
    """A plain affinity reordered to ``order``, with unit, precision and flags; a diverging
    colour scale is symmetric around 0. A symmetric measure keeps the lower triangle only.

    >>> a = Affinity(["a", "b"], [[0, 0.5], [-0.25, 0]])
    >>> d = heatmap_data(a, ["b", "a"])
    >>> d.tasks, float(d.values[0, 1]), d.vmax, d.annot[1][0], d.symmetric
    (['b', 'a'], -0.25, 0.5, '0.50', False)
    """
    order = [t for t in (order or aff.tasks) if t in aff.tasks]
    sub = aff.subset(order)
    vals = np.array(sub.values, dtype=float)
    std = np.array(sub.std, dtype=float)
    unit, known_symmetric = measure_info(aff.measure)
    symmetric = known_symmetric or (len(order) > 2 and np.allclose(vals, vals.T, rtol=1e-9, atol=1e-12))
    flags = degenerate_flags(vals, order, aff.measure)
    if mask_diagonal:
        np.fill_diagonal(vals, np.nan)
    if symmetric:
        vals[np.triu_indices(len(order), 1)] = np.nan
    finite = vals[np.isfinite(vals)]
    clipped = False
    if diverging:
        mags = np.abs(finite)
        lim = float(mags.max()) if finite.size else 1.0
        robust = 2.0 * float(np.percentile(mags, 90)) if finite.size else 0.0
        if 0 < robust < lim:  # a few outliers would wash out every other cell
            lim, clipped = robust, True
        lim = lim if lim > 0 else 1.0
        vmin, vmax = -lim, lim
    else:
        vmin = float(finite.min()) if finite.size else 0.0
        vmax = float(finite.max()) if finite.size else 1.0
        vmin, vmax = min(vmin, 0.0), max(vmax, vmin + 1e-9)
    dec = decimals_for(vals)
    annot = [[fmt(v, dec) for v in row] for row in vals]
    labels = ("task", "task") if symmetric else ("target task", "source task")
    return HeatmapData(title or aff.measure, order, vals, std, annot, diverging, vmin, vmax, labels[0], labels[1],
                       clipped, unit, bool(symmetric), dec, flags)


def stage_heatmaps(aff: Affinity, order: list[str] | None = None) -> list[HeatmapData]:
    """One heatmap per encoder stage of a per-stage affinity (CKA), on one shared scale and
    one number format."""
    names = aff.stages or [f"stage {k}" for k in range(aff.values.shape[0])]
    maps = [heatmap_data(aff.stage(k), order, title=str(names[k]), diverging=False) for k in range(len(names))]
    lo = min(m.vmin for m in maps)
    hi = max(m.vmax for m in maps)
    dec = max(m.decimals for m in maps)
    for m in maps:
        m.vmin, m.vmax, m.decimals = lo, hi, dec
        m.annot = [[fmt(v, dec) for v in row] for row in m.values]
    return maps


def heatmap_caption(hm: HeatmapData, n_seeds: int) -> str:
    """The caption under a heatmap: what a cell means, its unit, and any flags."""
    if hm.symmetric:
        what = (f"Symmetric measure: cell (a, b) = cell (b, a), so only the lower triangle is drawn. "
                f"Colour and numbers: {hm.unit}.")
    else:
        what = (f"values[source, target]: effect of the source task (row) on the target task (column); larger is "
                f"better for the target. Colour and numbers: {hm.unit}.")
    text = f"{what} {n_seeds} seed(s). Tasks in clustering order."
    if hm.clipped:
        text += f" Colour clipped at ±{hm.vmax:.2g} so that a few extreme entries do not wash out the rest; the numbers are exact."
    if hm.flags:
        text += " Degenerate: " + "; ".join(hm.flags) + "."
    return text
