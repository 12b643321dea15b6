"""What a study found: the report is rendered from this alone.

:class:`StudyResult` holds typed parts (:mod:`taskrel.study.findings`): Affinity objects, probe
summaries, the clustering and its stability, the grouping front, the named layouts, one row per
validation run, and the :class:`~taskrel.study.decision.Decision`, computed once and stored.

One place serialises it: :meth:`StudyResult.to_dict` / :meth:`~StudyResult.from_dict` (and
:meth:`~StudyResult.save` / :meth:`~StudyResult.load`, which call them). The file carries its
schema and a SHA-256 checksum of its content, and a damaged file is refused. Schema 3 stores
the validation as columns; files of schema 2 (rows as objects) and schema 1 (written before
checksums) are still read, to the same parts, so older studies still render and decide alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from taskrel.affinity import Affinity, Cost
from taskrel.errors import TaskrelError
from taskrel.files import read_json
from taskrel.layout import SharingLayout
from taskrel.study.findings import (
    AuxiliaryRanking,
    Clustering,
    FailedRun,
    GroupingFront,
    Invocation,
    ProbeSummary,
    Problem,
    Stability,
    Trajectory,
)
from taskrel.study.folders import (  # noqa: F401 (the folder names and file format; here before folders.py)
    RESULT_FILE,
    content_checksum,
    find_result,
    invocation_of,
    jsonable,
    safe_name,
    study_folder,
)
from taskrel.study.schema import READABLE_SCHEMAS, RESULT_SCHEMA, check_schema, read_field
from taskrel.study.validated import (
    VALIDATION_COLUMNS,
    StudyLayout,
    ValidationRow,
    summarise,
    validation_frame,
)

BASELINES = ("all-shared", "all-separate")


# the report writer, registered by taskrel.report when it is imported (study never imports report)
_REPORT_WRITERS: list[Callable[..., Any]] = []


def register_report_writer(writer: Callable[..., Any]) -> None:
    """Make ``writer(result, out, quiet=...)`` the one :meth:`StudyResult.write_report` calls."""
    _REPORT_WRITERS[:] = [writer]


@dataclass
class StudyResult:
    """Everything a study measured and decided (see the field comments).

    The parts are typed (:mod:`taskrel.study.findings`); a field set to its plain form (a dict,
    as results before schema 3 stored it) is read into its part on assignment.

    ``left_out`` maps each task the analyses left out to why (no probe could measure it: for
    example every run holding it diverged). The clusters, rankings, grouping, layouts,
    validation and decision cover :attr:`remaining_tasks` only; a left-out task is in no
    recommended layout.
    """

    study: dict[str, Any]  # the study as its file describes it (Study.to_dict), read through the properties below
    suite: dict[str, Any]  # name, description, tasks (name, kind, metric), stages, fingerprint
    tasks: list[str]
    affinities: dict[str, Affinity] = field(default_factory=dict)  # probe -> its affinity
    probes: dict[str, ProbeSummary] = field(default_factory=dict)
    trajectories: dict[str, Trajectory] = field(default_factory=dict)  # gradient cosines over training, by probe
    analysis_probe: str | None = None
    clustering: Clustering | None = None
    stability: Stability | None = None
    auxiliary: list[AuxiliaryRanking] = field(default_factory=list)
    grouping: GroupingFront | None = None
    layouts: dict[str, StudyLayout] = field(default_factory=dict)  # by name: recommended, baselines, front, random
    validation: list[ValidationRow] = field(default_factory=list)  # one per (layout, seed, task)
    failed_runs: list[FailedRun] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)  # the study's steps append {"part", "error"}: see problems
    left_out: dict[str, str] = field(default_factory=dict)  # task -> why the analyses left it out
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of the invocation that wrote this
    invocation: Invocation = field(default_factory=Invocation)  # where it ran (see invocation_of)
    validation_cost: Cost = field(default_factory=Cost)  # of its runs, from their records
    created: str = ""
    schema: int = RESULT_SCHEMA
    decided: Any = field(default=None, repr=False)  # the Decision, stored once the result is complete

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, read_field(name, value))

    # ---------------------------------------------------------------- access
    @property
    def name(self) -> str:
        return str(self.study.get("name", "study"))

    @property
    def remaining_tasks(self) -> list[str]:
        """The study's tasks that the analyses, validation and decision cover (not left out).

        >>> StudyResult(study={}, suite={}, tasks=["a", "b", "c"], left_out={"b": "diverged"}).remaining_tasks
        ['a', 'c']
        """
        return [t for t in self.tasks if t not in self.left_out]

    def affinity(self, name: str) -> Affinity:
        if name not in self.affinities:
            raise TaskrelError(f"study result: no affinity from probe {name!r}; have {sorted(self.affinities)}")
        return self.affinities[name]

    def layout(self, name: str) -> SharingLayout:
        if name not in self.layouts:
            raise TaskrelError(f"study result: no layout {name!r}; have {sorted(self.layouts)}")
        return self.layouts[name].layout

    # the study and suite as recorded (their owners' plain descriptions), read by name
    @property
    def suite_name(self) -> str:
        """The suite's name as the study recorded it."""
        return str(self.study.get("suite") or self.suite.get("name") or "")

    @property
    def source(self) -> str:
        """The study file's text as the study recorded it ('' for a study built in Python)."""
        return self.study.get("source") or ""

    @property
    def description(self) -> str | None:
        return self.study.get("description")

    @property
    def train_settings(self) -> dict[str, Any]:
        """The study's ``[train]`` table (epochs, lr, batch size, ...)."""
        return dict(self.study.get("train") or {})

    @property
    def suite_options(self) -> dict[str, Any]:
        return dict(self.study.get("suite_options") or {})

    @property
    def stage_names(self) -> list[str]:
        return list(self.suite.get("stages") or [])

    @property
    def metrics(self) -> list[str]:
        """The metrics of the suite's tasks, sorted, each once."""
        return sorted({t.get("metric", "") for t in self.suite.get("tasks", [])})

    @property
    def study_file(self) -> str | None:
        """The study file the invocation read (None for a study given as an object)."""
        return self.invocation.study_file

    @property
    def built_in_python(self) -> bool:
        """Whether the study was built in Python rather than read from a study file: its suite
        may be the user's own, so no CLI command can rebuild it.

        >>> StudyResult(study={"suite": "mine"}, suite={}, tasks=["a"]).built_in_python
        True
        """
        return not self.study_file and not self.source

    @property
    def problems(self) -> list[Problem]:
        """The parts of the study that failed, and why (the steps append to ``errors``)."""
        return [Problem.from_dict(e) for e in self.errors]

    @property
    def wall_seconds(self) -> float | None:
        """Wall time of the invocation that wrote this result (None when not recorded)."""
        return self.seconds.get("total")

    def probe_compute_seconds(self, name: str) -> float | None:
        """Seconds of compute probe ``name`` cost as its runs' records state them (plus its
        measuring time), whenever those runs were trained; None without its cost. This, not
        the affinity's own clock, is what it cost: runs read back from the store take no time."""
        p = self.probes.get(name)
        return None if p is None or p.cost is None else float(p.cost.seconds)

    @property
    def recommended(self) -> SharingLayout | None:
        return self.layout("recommended") if "recommended" in self.layouts else None

    @property
    def decision(self):
        """What to do (a :class:`~taskrel.study.decision.Decision`), from the validation runs.

        Computed once: at the end of ``Study.fit`` or when the result is loaded, then stored.
        A result built by hand is decided on each access (its fields may still change).
        """
        if self.decided is not None:
            return self.decided
        from taskrel.study.decision import decide

        return decide(self)

    def settle(self) -> StudyResult:
        """Decide once and store the decision (the result is complete); returns self."""
        from taskrel.study.decision import decide

        self.errors = self.errors  # the steps appended plain {"part", "error"}: read into Problems
        self.decided = None
        self.decided = decide(self)
        return self

    @property
    def layout_to_train(self) -> SharingLayout | None:
        """The layout the decision says to train: the recommendation when it decides "share as
        recommended", the baseline whose win decided (all-separate, all-shared or a
        width-matched one) otherwise; when the measurements cannot tell, the layout that
        measured best (None before validation).

        >>> r = StudyResult(study={}, suite={}, tasks=["a", "b"])
        >>> r.layout_to_train is None
        True
        """
        from taskrel.study.decision import BASELINE_DECISION, SHARE

        d = self.decision
        if d.decision == SHARE:
            return self.recommended
        if d.decided_by and d.decided_by in self.layouts:
            return self.layout(d.decided_by)
        by_decision = {v: k for k, v in BASELINE_DECISION.items()}.get(d.decision)
        if by_decision in self.layouts:
            return self.layout(by_decision)
        if d.best_measured and d.best_measured in self.layouts:
            return self.layout(d.best_measured)
        return None

    def __repr__(self) -> str:
        rec = self.recommended
        groups = None if rec is None else " | ".join("+".join(b) for b in rec.blocks(0))
        decided = self.decision.decision if self.validation else None
        return (f"StudyResult(name={self.name!r}, suite={self.suite.get('name')!r}, tasks={len(self.tasks)}, "
                f"probes={sorted(self.affinities)}, recommended={groups!r}, decision={decided!r})")

    def summary(self) -> str:
        """A few lines: the study, its recommendation, and the decision with its reason.

        >>> print(StudyResult(study={"name": "s"}, suite={"name": "planted"}, tasks=["a", "b"]).summary())
        study 's' on planted: 2 tasks, probes none
        recommended: none
        decision: cannot tell (confidence low)
          ...
        """
        d = self.decision
        rec = self.recommended
        lines = [f"study {self.name!r} on {self.suite.get('name')}: {len(self.tasks)} tasks, "
                 f"probes {', '.join(self.affinities) or 'none'}",
                 "recommended: " + ("none" if rec is None else " | ".join("+".join(b) for b in rec.blocks(0))),
                 f"decision: {d.decision} (confidence {d.confidence})", f"  {d.reason}"]
        if d.what_would_tell:
            lines.append(f"  what would tell: {d.what_would_tell}")
        if self.left_out:
            lines.append("left out: " + ", ".join(self.left_out))
        return "\n".join(lines)

    def write_report(self, out: str | Path, quiet: bool = True) -> dict[str, Path]:
        """Write the report (HTML, Markdown, summary.json, layout.json) into folder ``out``.

        The writer is :func:`taskrel.report.write_report`, registered when
        :mod:`taskrel.report` is imported (``import taskrel`` does it on first use of the study
        API); the study package itself never imports the report.
        """
        if not _REPORT_WRITERS:
            raise TaskrelError("study result: no report writer is loaded; run `import taskrel.report` first "
                               "(or call taskrel.report.write_report(result, out))")
        return _REPORT_WRITERS[0](self, out, quiet=quiet)

    def compute_seconds(self) -> float:
        """Training seconds of every run behind the result (probes and validation), as their
        records state them, whenever they were trained (a resumed study keeps its cost)."""
        probes = sum(float(p.cost.seconds or 0.0) for p in self.probes.values() if p.cost is not None)
        return probes + float(self.validation_cost.seconds or 0.0)

    def compute_runs(self) -> int:
        """The runs behind the result (probes and validation), as their records state them."""
        return sum(int(p.cost.runs or 0) for p in self.probes.values() if p.cost is not None) + int(self.validation_cost.runs)

    def validation_frame(self):
        """The validation rows as a DataFrame (one column per :class:`ValidationRow` field)."""
        return validation_frame(self.validation)

    def validation_summary(self):
        """Per layout: mean over tasks of test loss (and metric), then mean / std over seeds."""
        return summarise(self.validation)

    # ---------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON data of schema 3 (the decision included, once decided):
        each part in its plain form, the validation as one list per column."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("decided", "schema")}
        out |= {"affinities": {k: a.to_dict() for k, a in self.affinities.items()},
                "probes": {k: p.to_dict() for k, p in self.probes.items()},
                "trajectories": {k: t.to_dict() for k, t in self.trajectories.items()},
                "clustering": None if self.clustering is None else self.clustering.to_dict(),
                "stability": None if self.stability is None else self.stability.to_dict(),
                "auxiliary": [a.to_dict() for a in self.auxiliary],
                "grouping": None if self.grouping is None else self.grouping.to_dict(),
                "layouts": {k: e.to_dict() for k, e in self.layouts.items()},
                "validation": {c: [getattr(r, c) for r in self.validation] for c in VALIDATION_COLUMNS},
                "failed_runs": [r.to_dict() for r in self.failed_runs], "errors": [p.to_dict() for p in self.problems],
                "validation_cost": asdict(self.validation_cost), "invocation": self.invocation.to_dict()}
        out = jsonable(out)
        out["schema"] = RESULT_SCHEMA
        out["decided"] = None if self.decided is None else jsonable(self.decided.to_dict())
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResult:
        """The result of :meth:`to_dict` (schema 3, 2 or 1: each part read from the form its
        schema stored); decided once here."""
        check_schema(d)
        known = {f.name for f in fields(cls)} - {"decided", "schema"}
        return cls(**{k: v for k, v in d.items() if k in known}).settle()

    def save(self, directory: str | Path) -> Path:
        """Write ``study_result.json`` into ``directory`` (atomically, with its checksum)."""
        from taskrel.files import atomic_write_text, remove_stale_temporaries

        body = self.to_dict()
        body["checksum"] = content_checksum(body)
        remove_stale_temporaries(directory)  # what killed writes left here
        path = Path(directory) / RESULT_FILE
        atomic_write_text(path, json.dumps(body, indent=1, allow_nan=False, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> StudyResult:
        """Load from a result file, an output directory, or a store holding one study.

        A file whose checksum does not match its content is refused (it was changed or
        damaged); a schema-1 file, written before checksums, is read as it is.
        """
        where = find_result(path)
        data = read_json(where, "study result")
        if not isinstance(data, dict):
            raise TaskrelError(f"study result: {str(where)!r} does not hold a study result (a JSON object)")
        stored = data.pop("checksum", None)
        if stored is not None and stored != content_checksum(data):
            raise TaskrelError(f"study result: {str(where)!r} is damaged or was edited (its checksum does not match "
                               "its content); rerun the study (its runs are in the store, nothing retrains) to write it again")
        if stored is None and data.get("schema", 1) != 1:
            raise TaskrelError(f"study result: {str(where)!r} has no checksum; it was damaged or edited. "
                               "Rerun the study (nothing retrains) to write it again")
        return cls.from_dict(data)


def failed_runs(store: Any, suite: Any, tasks: Sequence[str]) -> list[FailedRun]:
    """Failed records of this suite's data whose tasks are among the study's."""
    keep = set(tasks)
    out = []
    for rec in store.records():
        if rec.ok or not set(rec.tasks) <= keep or rec.spec.get("suite") != suite.fingerprint(rec.tasks):
            continue
        out.append(FailedRun(rec.key, rec.label, list(rec.tasks), rec.spec.get("seed"), rec.error, rec.failed_step))
    return out


__all__ = ["BASELINES", "READABLE_SCHEMAS", "RESULT_FILE", "RESULT_SCHEMA", "StudyResult", "content_checksum", "failed_runs",
           "find_result", "invocation_of", "jsonable", "register_report_writer", "safe_name", "study_folder"]
