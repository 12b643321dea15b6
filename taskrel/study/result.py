"""What a study found: the report is rendered from this alone.

One place serialises it (:meth:`StudyResult.save`, :meth:`StudyResult.load`): the file carries
its schema and a SHA-256 checksum of its content, and a damaged file is refused. Files of
schema 1 (written before checksums) are still read, so older studies still render.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.files import read_json
from taskrel.layout import SharingLayout

RESULT_FILE = "study_result.json"
RESULT_SCHEMA = 2
READABLE_SCHEMAS = (1, 2)  # 1: before checksums and the stored decision
BASELINES = ("all-shared", "all-separate")


def safe_name(name: str, default: str = "study") -> str:
    """A file-name-safe version of ``name`` (letters, digits, ``-``, ``_``, ``.``; no path).

    >>> safe_name("../../etc/passwd"), safe_name("<script>"), safe_name("digits default")
    ('etc_passwd', 'script', 'digits_default')
    """
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._-")
    s = re.sub(r"_+", "_", s)
    return s[:80] or default


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON data: numpy arrays and numbers to lists and floats, NaN to None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if np.isfinite(v) else None
    return x


def study_folder(name: str) -> str:
    """The folder name of a study called ``name``: readable, and unique per name.

    Letters and digits of any script are kept; anything else becomes ``_``. When that changed
    the name (or the name is empty), a short hash of the exact name is appended, so two
    different names never share a folder.

    >>> study_folder("planted"), study_folder("研究一"), study_folder("研究二")
    ('planted', '研究一', '研究二')
    >>> study_folder("digits default") != study_folder("digits_default")
    True
    >>> study_folder("../../etc/passwd").startswith("etc_passwd-")
    True
    """
    text = unicodedata.normalize("NFC", str(name))
    s = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    s = re.sub(r"_+", "_", s).strip("._-")[:80]
    if s == text and s:
        return s
    return f"{s or 'study'}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"


def content_checksum(body: dict[str, Any]) -> str:
    """SHA-256 of a JSON body in canonical form (sorted keys, no spaces)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# the report writer, registered by taskrel.report when it is imported (study never imports report)
_REPORT_WRITERS: list[Callable[..., Any]] = []


def register_report_writer(writer: Callable[..., Any]) -> None:
    """Make ``writer(result, out, quiet=...)`` the one :meth:`StudyResult.write_report` calls."""
    _REPORT_WRITERS[:] = [writer]


@dataclass
class StudyResult:
    """Everything a study measured and decided (see the field comments).

    ``validation`` rows: one per (layout, seed, task): ``layout``, ``seed``, ``task``,
    ``test_loss``, ``test_metric``, ``val_loss``, ``n_parameters``, ``status``.

    ``left_out`` maps each task the analyses left out to why (no probe could measure it: for
    example every run holding it diverged). The clusters, rankings, grouping, layouts,
    validation and decision cover :attr:`remaining_tasks` only; a left-out task is in no
    recommended layout.
    """

    study: dict[str, Any]  # the parsed study (Study.to_dict)
    suite: dict[str, Any]  # name, description, tasks (name, kind, metric), stages
    tasks: list[str]
    affinities: dict[str, dict[str, Any]] = field(default_factory=dict)  # probe -> Affinity dict
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind, seeds, seconds, error
    trajectories: dict[str, dict[str, list]] = field(default_factory=dict)  # gradient cosines
    analysis_probe: str | None = None
    clustering: dict[str, Any] | None = None
    stability: dict[str, Any] | None = None
    auxiliary: list[dict[str, Any]] = field(default_factory=list)
    grouping: dict[str, Any] | None = None
    layouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> layout dict
    validation: list[dict[str, Any]] = field(default_factory=list)
    failed_runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)  # {"part", "error"}
    left_out: dict[str, str] = field(default_factory=dict)  # task -> why the analyses left it out
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of the invocation that wrote this
    invocation: dict[str, Any] = field(default_factory=dict)  # cwd, study_file, store, out (see invocation_of)
    validation_cost: dict[str, Any] = field(default_factory=dict)  # steps, examples, seconds, runs of its records
    created: str = ""
    schema: int = RESULT_SCHEMA
    decided: Any = field(default=None, repr=False)  # the Decision, stored once the result is complete

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
        return Affinity.from_dict(self.affinities[name])

    def affinity_objects(self) -> dict[str, Affinity]:
        return {k: self.affinity(k) for k in self.affinities}

    def layout(self, name: str) -> SharingLayout:
        if name not in self.layouts:
            raise TaskrelError(f"study result: no layout {name!r}; have {sorted(self.layouts)}")
        return SharingLayout.from_dict(self.layouts[name])

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
        probes = sum(float((p.get("cost") or {}).get("seconds") or 0.0) for p in self.probes.values())
        return probes + float(self.validation_cost.get("seconds") or 0.0)

    def validation_frame(self):
        import pandas as pd

        cols = ["layout", "seed", "task", "test_loss", "test_metric", "val_loss", "n_parameters", "status"]
        return pd.DataFrame(self.validation, columns=cols)

    def validation_summary(self):
        """Per layout: mean over tasks of test loss (and metric), then mean / std over seeds."""
        import pandas as pd

        df = self.validation_frame()
        df = df[df["status"] == "ok"]
        cols = ["layout", "test_loss_mean", "test_loss_std", "test_metric_mean", "test_metric_std", "n_seeds", "n_parameters"]
        if df.empty:
            return pd.DataFrame(columns=cols)
        per_seed = df.groupby(["layout", "seed"], sort=False).agg(
            test_loss=("test_loss", "mean"), test_metric=("test_metric", "mean"), n_parameters=("n_parameters", "first")
        ).reset_index()
        out = per_seed.groupby("layout", sort=False).agg(
            test_loss_mean=("test_loss", "mean"),
            test_loss_std=("test_loss", lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0),
            test_metric_mean=("test_metric", "mean"),
            test_metric_std=("test_metric", lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0),
            n_seeds=("seed", "nunique"),
            n_parameters=("n_parameters", "first"),
        ).reset_index()
        return out[cols]

    # ---------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON data (the decision included, once decided)."""
        out = jsonable(asdict(self))
        out["schema"] = RESULT_SCHEMA
        out["decided"] = None if self.decided is None else jsonable(self.decided.to_dict())
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResult:
        """The result of :meth:`to_dict` (schema 1 or 2); decided once here."""
        if not isinstance(d, dict) or "study" not in d or "tasks" not in d:
            raise TaskrelError("study result: not a taskrel study result (fields 'study' and 'tasks' missing)")
        schema = d.get("schema", RESULT_SCHEMA)
        if schema not in READABLE_SCHEMAS:
            raise TaskrelError(f"study result: schema {schema!r} is not supported (this taskrel reads "
                               f"{', '.join(map(str, READABLE_SCHEMAS))}); rerun the study with this version")
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


def failed_runs(store: Any, suite: Any, tasks: Sequence[str]) -> list[dict[str, Any]]:
    """Failed records of this suite's data whose tasks are among the study's."""
    keep = set(tasks)
    out = []
    for rec in store.records():
        if rec.ok or not set(rec.tasks) <= keep or rec.spec.get("suite") != suite.fingerprint(rec.tasks):
            continue
        out.append({"key": rec.key, "label": rec.label, "tasks": rec.tasks, "seed": rec.spec.get("seed"),
                    "error": rec.error, "step": rec.failed_step})
    return out


def invocation_of(study_file: str | Path | None, store: str | Path, out: str | Path) -> dict[str, Any]:
    """Where a study ran and the paths as they were given, so that the report can show
    commands that work when pasted where the study ran.

    >>> inv = invocation_of("studies/planted.toml", "runs", "out/planted")
    >>> inv["study_file"], inv["store"], inv["out"], Path(inv["cwd"]).is_absolute()
    ('studies/planted.toml', 'runs', 'out/planted', True)
    """
    import os

    return {"cwd": os.getcwd(), "study_file": None if study_file is None else str(study_file),
            "store": str(store), "out": str(out)}


def find_result(path: str | Path) -> Path:
    """The result file behind ``path``: the file, an output folder or a run store."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise TaskrelError(f"report: {str(p)!r} does not exist")
    if (p / RESULT_FILE).is_file():
        return p / RESULT_FILE
    found = sorted((p / "studies").glob(f"*/{RESULT_FILE}")) if (p / "studies").is_dir() else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(f.parent.name for f in found)
        raise TaskrelError(f"report: the store {str(p)!r} holds several studies ({names}); pass {str(p)}/studies/NAME")
    raise TaskrelError(f"report: no study result in {str(p)!r} (looked for {RESULT_FILE} and studies/*/{RESULT_FILE})")
