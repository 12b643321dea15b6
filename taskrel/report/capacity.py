"""What a width study adds to the report: each group's width, and the capacity paragraph.

A study that chose widths (``[analysis.grouping] widths = [0.5, 1.0]``) recommends groups that
each carry a width multiplier of the encoder, and validates all-shared and all-separate at the
recommendation's parameter count (``"all-shared matched"``, ``"all-separate matched"``). The
report then shows every group with its width (``c0t0+c0t1@0.5``; ``@1`` too, so a width the
search chose is never mistaken for a default) and says, in :func:`capacity_view`, whether the
grouping beats the two baselines *at the same parameter count*, from the decision's paired
per-seed differences and their 95% intervals.

Everything here is a function of the study result and its decision; nothing trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from taskrel.layout import SharingLayout
from taskrel.study.decision import MATCHED_DECISION, Comparison, Decision, seeds_needed
from taskrel.study.findings import FrontRow

MATCHED_WORDS = {"all-shared matched": "all-shared widened", "all-separate matched": "all-separate narrowed"}


def is_width_study(result) -> bool:
    """Whether the study chose widths or validated width-matched baselines or layouts with widths.

    >>> from taskrel.study.result import StudyResult
    >>> grouping = {"source": "p", "table": "hoa", "capacity": {"widths": [0.5, 1.0], "cost": "params"}}
    >>> is_width_study(StudyResult(study={}, suite={}, tasks=["a"], grouping=grouping))
    True
    >>> is_width_study(StudyResult(study={}, suite={}, tasks=["a"]))
    False
    """
    if result.grouping is not None and result.grouping.capacity is not None:
        return True
    return any(name in MATCHED_DECISION or entry.layout.widths for name, entry in result.layouts.items())


def chose_widths(result) -> bool:
    """Whether the grouping chose the widths of its groups (a width study's search), so that the
    recommendation's groups are labelled with them; width-matched baselines alone do not make
    the recommendation's widths a choice.

    >>> from taskrel.study.result import StudyResult
    >>> chose_widths(StudyResult(study={}, suite={}, tasks=["a"]))
    False
    """
    if result.grouping is not None and result.grouping.capacity is not None:
        return True
    rec = result.recommended
    return bool(rec is not None and rec.widths)


def block_label(layout: SharingLayout, block, widths: bool = False, sep: str = "+") -> str:
    """A group as ``a+b``, with ``@width`` when not 1 or when ``widths`` (then always).

    >>> lay = SharingLayout.groups([["a", "b"], ["c"]], 2).with_widths({"a": 0.5, "b": 0.5})
    >>> [block_label(lay, b, widths=True) for b in lay.blocks(0)], block_label(lay, ["c"])
    (['a+b@0.5', 'c@1'], 'c')
    """
    w = layout.width_of(block[0])
    return sep.join(block) + (f"@{w:g}" if widths or w != 1.0 else "")


def group_labels(layout: SharingLayout | None, widths: bool = False, sep: str = "+") -> list[str] | None:
    """Every top-stage group of ``layout`` as :func:`block_label` (None without a layout).

    >>> group_labels(SharingLayout.groups([["a", "b"], ["c"]], 2), widths=True, sep=" + ")
    ['a + b@1', 'c@1']
    """
    if layout is None:
        return None
    return [block_label(layout, b, widths, sep) for b in layout.blocks(0)]


def front_groups(row: FrontRow, widths: bool = False) -> str:
    """A budget-front row's groups, each with its width (from the row's layout), or
    ``"infeasible"`` when nothing fits the budget.

    >>> lay = SharingLayout.groups([["a", "b"], ["c"]], 2).with_widths({"a": 0.5, "b": 0.5})
    >>> front_groups(FrontRow(2.0, blocks=[["a", "b"], ["c"]], layout=lay), widths=True)
    'a+b@0.5 | c@1'
    >>> front_groups(FrontRow(0.5))
    'infeasible'
    """
    if not row.feasible:
        return "infeasible"
    if row.layout is not None:
        return " | ".join(block_label(row.layout, b, widths) for b in row.layout.blocks(0))
    return " | ".join("+".join(b) for b in row.blocks)


# ---------------------------------------------------------------------- the paragraph
@dataclass
class CapacityRow:
    """The recommendation against one width-matched baseline, paired over seeds."""

    layout: str  # "all-shared matched" or "all-separate matched"
    width: float | None
    n_parameters: int | None
    target_parameters: int | None  # the recommendation's
    gain: float | None  # baseline minus recommendation, total test loss: > 0 the grouping is better
    ci95: tuple[float, float] | None  # of ``gain``
    n_seeds: int
    verdict: str  # "grouping better", "baseline better", "cannot tell", "not measured", "the recommendation itself"


@dataclass
class CapacityView:
    """The capacity paragraph: its rows and its sentences."""

    rows: list[CapacityRow]
    text: str
    parameters: int | None = None
    widths: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _comparison_of(d: Decision, name: str) -> Comparison | None:
    return next((c for c in d.comparisons if name in (c.layout, *c.same_as)), None)


def _row(result, d: Decision, name: str) -> CapacityRow | None:
    info = result.layouts.get(name)
    if info is None:
        return None
    width, n, target = info.width, info.n_parameters, info.target_parameters
    c = _comparison_of(d, name)
    if c is None:  # the same layout as the recommendation, or no paired seeds
        same = result.recommended is not None and info.layout == result.recommended
        return CapacityRow(name, width, n, target, 0.0 if same else None, None, 0,
                           "the recommendation itself" if same else "not measured")
    gain = -c.mean_diff
    lo, hi = -c.ci95[1], -c.ci95[0]
    verdict = "grouping better" if lo > 0 else "baseline better" if hi < 0 else "cannot tell"
    return CapacityRow(name, width, n, target, gain, (lo, hi), c.n_seeds, verdict)


def _g(v: float) -> str:
    return f"{v:.3g}"


def _sentence(r: CapacityRow, d: Decision) -> str:
    words = MATCHED_WORDS.get(r.layout, r.layout)
    who = f"{words} to width {r.width:g} ({r.n_parameters} parameters)" if r.width is not None else words
    if r.verdict == "not measured":
        return f"{who} was not measured (no seed pairs it with the recommendation)"
    if r.verdict == "the recommendation itself":
        return f"{who} is the recommendation itself"
    lo, hi = r.ci95
    ci = (f"95% interval {_g(lo)} to {_g(hi)}, {r.n_seeds} paired seeds" if math.isfinite(lo) and math.isfinite(hi)
          else "one seed, no interval")
    if r.verdict == "grouping better":
        return f"the grouping beats {who} by {_g(r.gain)} total test loss ({ci})"
    if r.verdict == "baseline better":
        return f"{who} beats the grouping by {_g(-r.gain)} total test loss ({ci})"
    lean = "lower" if r.gain > 0 else "higher"
    c = _comparison_of(d, r.layout)
    n = seeds_needed(c.sd_diff, c.mean_diff, c.n_seeds) if c is not None else None
    more = f"; about {n} paired seeds would tell if the difference is as large as measured" if n else ""
    return (f"against {who} the measurements cannot tell (the grouping's loss is {_g(abs(r.gain))} {lean} on average, "
            f"{ci}{more})")


def _conclusion(rows: list[CapacityRow]) -> str:
    verdicts = {r.layout: r.verdict for r in rows}
    if verdicts.get("all-shared matched") == "baseline better":
        return ("At this parameter count one wider shared network does better than the grouping: spend the parameters "
                "on it instead.")
    if verdicts.get("all-separate matched") == "baseline better":
        return ("At this parameter count narrower separate networks do better than the grouping: spend the parameters "
                "on them instead.")
    if rows and all(v in ("grouping better", "the recommendation itself") for v in verdicts.values()):
        return "The gain comes from which tasks share, not from the parameter count."
    unsure = [MATCHED_WORDS.get(r.layout, r.layout) for r in rows if r.verdict in ("cannot tell", "not measured")]
    return (f"Against {' and '.join(unsure)}, the grouping is not shown to be better at the same parameter count: "
            "what it gains over the width-1 baselines may come from its parameters rather than from who shares.") \
        if unsure else ""


def capacity_view(result, d: Decision | None = None) -> CapacityView | None:
    """The capacity paragraph of a width study (None for other studies or without the
    width-matched baselines): the recommendation against all-shared widened and all-separate
    narrowed to its parameter count, each paired over seeds with its 95% interval."""
    if not any(n in result.layouts for n in MATCHED_DECISION):
        return None
    d = d or result.decision
    rows = [r for r in (_row(result, d, n) for n in ("all-shared matched", "all-separate matched")) if r is not None]
    target = next((r.target_parameters for r in rows if r.target_parameters), None)
    parts = [_sentence(r, d) for r in rows]
    head = f"The recommendation has {target} parameters. " if target else ""
    body = "At the same parameter count, " + "; ".join(parts) + "." if parts else ""
    cap = None if result.grouping is None else result.grouping.capacity
    widths = [] if cap is None else [float(w) for w in cap.widths]
    return CapacityView(rows, (head + body + " " + _conclusion(rows)).strip(), target, widths)


__all__ = ["CapacityRow", "CapacityView", "block_label", "chose_widths", "capacity_view", "front_groups", "group_labels", "is_width_study"]
