"""The validation's parts of a study result: the layouts it trained, by name
(:class:`StudyLayout`: a :class:`~taskrel.layout.SharingLayout` and how validation sized or
trained it), one :class:`ValidationRow` per (layout, seed, task), their summary per layout, and
the validation's cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from taskrel.affinity import Cost
from taskrel.layout import SharingLayout
from taskrel.study.findings import Keyed

LAYOUT_EXTRAS = ("aggregator", "width", "n_parameters", "target_parameters", "relative_difference")


@dataclass
class StudyLayout(Keyed):
    """A layout the study holds under a name, and how validation trained or sized it: with a
    conflict-aware ``aggregator`` (a control), or widened/narrowed to ``width`` so that its
    ``n_parameters`` match the recommendation's ``target_parameters`` (a width-matched baseline).

    Its plain form is the layout's own with those fields beside it (as results before schema 3
    stored it).

    >>> e = StudyLayout(SharingLayout.shared(["a", "b"], 2), aggregator="upgrad")
    >>> e["tasks"], e["aggregator"], StudyLayout.from_dict(e.to_dict()) == e
    (['a', 'b'], 'upgrad', True)
    """

    layout: SharingLayout
    aggregator: str | None = None
    width: float | None = None
    n_parameters: int | None = None
    target_parameters: int | None = None
    relative_difference: float | None = None

    def to_dict(self) -> dict[str, Any]:
        extras = {k: getattr(self, k) for k in LAYOUT_EXTRAS if getattr(self, k) is not None}
        return self.layout.to_dict() | extras

    @classmethod
    def from_dict(cls, d: Any) -> StudyLayout:
        """From a layout, its plain form, or the plain form with the extras beside it."""
        if isinstance(d, cls):
            return d
        if isinstance(d, SharingLayout):
            return cls(d)
        return cls(SharingLayout.from_dict({k: v for k, v in d.items() if k not in LAYOUT_EXTRAS}),
                   **{k: d[k] for k in LAYOUT_EXTRAS if d.get(k) is not None})

    def same_as(self, other: StudyLayout) -> bool:
        """The same model trained the same way: equal partitions as listed, widths and aggregator."""
        a, b = self.layout, other.layout
        return (a.tasks, a.partitions, a.widths, self.aggregator) == (b.tasks, b.partitions, b.widths, other.aggregator)


@dataclass
class ValidationRow(Keyed):
    """One task of one layout trained on one seed, scored on the test split (``status``:
    ``"ok"`` or ``"failed"``; the scores are None for a failed run)."""

    layout: str
    seed: int
    task: str
    test_loss: float | None
    test_metric: float | None
    val_loss: float | None
    n_parameters: int | None
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


VALIDATION_COLUMNS = tuple(f.name for f in fields(ValidationRow))


def validation_cost(d: Any) -> Cost:
    """The validation's cost from its plain form (``{"steps", "examples", "seconds", "runs"}``).

    >>> validation_cost({"steps": 4, "runs": 1}), validation_cost({})
    (Cost(steps=4, examples=0, seconds=0.0, runs=1), Cost(steps=0, examples=0, seconds=0.0, runs=0))
    """
    if isinstance(d, Cost):
        return d
    return Cost(**{k: d[k] for k in ("steps", "examples", "seconds", "runs") if d.get(k) is not None})


SUMMARY_COLUMNS = ["layout", "test_loss_mean", "test_loss_std", "test_metric_mean", "test_metric_std", "n_seeds", "n_parameters"]


def validation_frame(rows: list[ValidationRow]):
    """The rows as a DataFrame (one column per :class:`ValidationRow` field)."""
    import pandas as pd

    return pd.DataFrame([asdict(r) for r in rows], columns=list(VALIDATION_COLUMNS))


def summarise(rows: list[ValidationRow]):
    """Per layout: mean over tasks of test loss (and metric), then mean / std over seeds.

    >>> rows = [ValidationRow("x", s, t, v, 0.5, None, 3, "ok") for s, (t, v) in enumerate((("a", 1.0), ("a", 3.0)))]
    >>> summarise(rows)[["layout", "test_loss_mean", "n_seeds"]].values.tolist()
    [['x', 2.0, 2]]
    """
    import pandas as pd

    df = validation_frame(rows)
    df = df[df["status"] == "ok"]
    if df.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    per_seed = df.groupby(["layout", "seed"], sort=False).agg(
        test_loss=("test_loss", "mean"), test_metric=("test_metric", "mean"), n_parameters=("n_parameters", "first")
    ).reset_index()

    def sd(s):
        return float(s.std(ddof=1)) if len(s) > 1 else 0.0

    out = per_seed.groupby("layout", sort=False).agg(
        test_loss_mean=("test_loss", "mean"), test_loss_std=("test_loss", sd), test_metric_mean=("test_metric", "mean"),
        test_metric_std=("test_metric", sd), n_seeds=("seed", "nunique"), n_parameters=("n_parameters", "first"),
    ).reset_index()
    return out[SUMMARY_COLUMNS]


__all__ = ["LAYOUT_EXTRAS", "StudyLayout", "SUMMARY_COLUMNS", "VALIDATION_COLUMNS", "ValidationRow", "summarise", "validation_cost",
           "validation_frame"]
