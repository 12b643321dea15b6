"""The typed parts of a study result: what the probes and analyses found.

:class:`~taskrel.study.StudyResult` holds these, not dicts: a probe's summary
(:class:`ProbeSummary`), the clustering and its stability (:class:`Clustering`,
:class:`Stability`), auxiliary rankings (:class:`AuxiliaryRanking`), the grouping front
(:class:`GroupingFront` of :class:`FrontRow`), failed runs, problems and where the study ran.
The validation's parts (named layouts, one row per run and task) are in
:mod:`taskrel.study.validated`.

Each part is built from its plain form by ``from_dict`` (the form results of schemas 1 and 2
stored, and the one the study's steps hand over) and written back by ``to_dict``; only
:mod:`taskrel.study.schema` and :mod:`taskrel.study.result` call them, to read and write
result files.

Code written against the dict form may still read a part by key (``row["status"]``,
``"error" in summary``): :class:`Keyed` maps a key to the field's plain value. taskrel itself
reads fields.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout


def _plain(x: Any) -> Any:
    if hasattr(x, "to_dict"):
        return x.to_dict()
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


class Keyed:
    """Key access to a part's plain form, for code written when results were dicts.

    >>> row = FrontRow(2.0, cost=1.5)
    >>> row["cost"], row.get("objective"), "budget" in row, row.get("nothing", 0)
    (1.5, None, True, 0)
    """

    def to_dict(self) -> dict[str, Any]:
        """The plain form: every field, optional ones left out while unset."""
        optional = getattr(self, "OPTIONAL", ())
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)  # type: ignore[arg-type]
                if not (f.name in optional and getattr(self, f.name) is None)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """The part of a plain form (a part given as itself is returned as it is)."""
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise TaskrelError(f"study result: a {cls.__name__} must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        need = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING and f.name not in d]  # type: ignore[arg-type]
        if need:
            raise TaskrelError(f"study result: a {cls.__name__} needs field(s) {', '.join(need)}; the file was damaged or "
                               "written by another program")
        return cls(**{k: v for k, v in d.items() if k in known})

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            raise KeyError(key)
        setattr(self, key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()


# ---------------------------------------------------------------------- probes
@dataclass
class ProbeCost(Keyed):
    """What a probe's runs cost as their records state it, and its own measuring time."""

    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    runs: int = 0
    measure_seconds: float = 0.0


@dataclass
class ProbeSummary(Keyed):
    """One probe in a study: its kind, seeds and parameters, its wall ``seconds`` in this
    invocation, and either its ``error`` or its cost, measure and failed runs (``missing``:
    entries no seed measured; ``branched_layout``: the layout its per-stage affinity gave;
    ``widths``: a width study's grouping source, its runs at each other width)."""

    OPTIONAL = ("error", "cost", "measure", "failed", "missing", "branched_layout", "widths")
    kind: str
    seeds: list[int] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    cost: ProbeCost | None = None
    measure: str | None = None
    failed: int | None = None
    missing: int | None = None
    branched_layout: str | None = None
    widths: dict[str, dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cost, dict):
            self.cost = ProbeCost.from_dict(self.cost)


@dataclass
class Trajectory(Keyed):
    """Gradient cosines over training: one entry per (seed, step, pair), source before target."""

    seed: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    target: list[str] = field(default_factory=list)
    cosine: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------- clusters
@dataclass
class Dendrogram(Keyed):
    """SciPy's dendrogram of the clustering: segment coordinates and the leaves in order."""

    icoord: list[list[float]]
    dcoord: list[list[float]]
    ivl: list[str]
    leaves: list[int] = field(default_factory=list)
    color_list: list[str] = field(default_factory=list)


@dataclass
class Clustering(Keyed):
    """The task clusters of the analysis probe's affinity (``order``: the dendrogram's leaves)."""

    probe: str
    method: str
    tasks: list[str]
    labels: list[int]
    clusters: list[list[str]]
    n_clusters: int
    order: list[str] = field(default_factory=list)
    dendrogram: Dendrogram | None = None
    linkage: list[list[float]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)  # one row per k tried (a table)

    def __post_init__(self) -> None:
        if isinstance(self.dendrogram, dict):
            self.dendrogram = Dendrogram.from_dict(self.dendrogram)


@dataclass
class Stability(Keyed):
    """How well the clusters agree across seeds (adjusted Rand index) and how often each pair
    of tasks falls in one cluster (``coassignment``, over ``tasks``)."""

    mean_ari: float | None
    mean_ari_vs_mean: float | None = None
    n_clusters: int = 0
    coassignment: list[list[float | None]] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    seeds_used: list[int] = field(default_factory=list)
    skipped: dict[str, Any] = field(default_factory=dict)  # seeds with gaps (failed runs)


@dataclass
class AuxiliaryRow(Keyed):
    """One source task's affinity to the primary task (mean and std over seeds)."""

    source: str
    affinity: float
    std: float | None = None


@dataclass
class AuxiliaryRanking(Keyed):
    """Every source ranked for ``primary`` by one probe, best first."""

    primary: str
    probe: str
    measure: str
    rows: list[AuxiliaryRow]

    def __post_init__(self) -> None:
        self.rows = [AuxiliaryRow.from_dict(r) for r in self.rows]


# ---------------------------------------------------------------------- grouping
@dataclass
class Capacity(Keyed):
    """A width study's groups offered at several widths: the widths, what a network costs
    (``"params"``: its parameters over the width-1 all-shared network's, ``reference_parameters``;
    or ``"networks"``) and the runs per width (``trained``: those trained for it)."""

    OPTIONAL = ("trained",)
    widths: list[float]
    cost: str
    reference_parameters: int | None = None
    runs: dict[str, int] = field(default_factory=dict)
    trained: dict[str, int] | None = None


@dataclass
class FrontRow(Keyed):
    """The grouping chosen at one budget: its cost and objective (the search's predicted total),
    the networks and blocks, the layout; None throughout when nothing fits the budget. A search
    stopped by its time limit says so (``status``, ``gap``); one that asked an affinity for groups
    gives its ``rule`` and the ``columns`` it priced."""

    OPTIONAL = ("rule", "columns")
    budget: float
    cost: float | None = None
    objective: float | None = None
    networks: list[str] | None = None
    groups: list[str] | None = None
    blocks: list[list[str]] | None = None
    layout: SharingLayout | None = None
    status: str | None = None
    gap: float | None = None
    rule: str | None = None
    columns: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.layout, dict):
            self.layout = SharingLayout.from_dict(self.layout)

    @property
    def feasible(self) -> bool:
        return bool(self.blocks)


@dataclass
class GroupingFront(Keyed):
    """The grouping search over the study's budgets: where its group values came from
    (``source`` probe, ``table`` kind, calibration ``rule``), the front (one row per budget),
    the recommendation's ``budget`` and how it was chosen (``recommend``: ``"search"`` or
    ``"clusters"``)."""

    OPTIONAL = ("capacity",)
    source: str | None = None
    table: str = ""
    rule: str | None = None
    higher_is_better: bool = True
    n_candidates: int = 0
    partition: bool = True
    budget: float | None = None
    front: list[FrontRow] = field(default_factory=list)
    recommend: str = "search"
    capacity: Capacity | None = None

    def __post_init__(self) -> None:
        self.front = [FrontRow.from_dict(r) for r in self.front]
        if isinstance(self.capacity, dict):
            self.capacity = Capacity.from_dict(self.capacity)

    @property
    def params_cost(self) -> bool:
        """Whether budgets count parameters (a width study at a cost in parameters)."""
        return self.capacity is not None and self.capacity.cost == "params"


@dataclass
class FailedRun(Keyed):
    """A failed run of the study's data (``step``: the training step where it failed)."""

    key: str
    label: str | None
    tasks: list[str]
    seed: int | None
    error: str | None
    step: int | None = None


@dataclass
class Invocation(Keyed):
    """Where a study ran and the paths as they were given (so the report can show commands
    that work when pasted there): the working folder, the study file, the store, the output."""

    cwd: str | None = None
    study_file: str | None = None
    store: str | None = None
    out: str | None = None


@dataclass
class Problem(Keyed):
    """A part of the study that failed (the study went on) and why."""

    part: str
    error: str


__all__ = ["AuxiliaryRanking", "AuxiliaryRow", "Capacity", "Clustering", "Dendrogram", "FailedRun", "FrontRow",
           "GroupingFront", "Invocation", "Keyed", "Problem", "ProbeCost", "ProbeSummary", "Stability", "Trajectory"]
