"""What a study found, as plain JSON data: the report is rendered from this alone."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.files import read_json
from taskrel.layout import SharingLayout

RESULT_FILE = "study_result.json"
RESULT_SCHEMA = 1
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


_jsonable = jsonable  # the former name


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

    def decision(self):
        """What to do, from the validation runs: :func:`taskrel.study.decision.decide`."""
        from taskrel.study.decision import decide

        return decide(self)

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
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResult:
        if not isinstance(d, dict) or "study" not in d or "tasks" not in d:
            raise TaskrelError("study result: not a taskrel study result (fields 'study' and 'tasks' missing)")
        if d.get("schema", RESULT_SCHEMA) != RESULT_SCHEMA:
            raise TaskrelError(f"study result: schema {d.get('schema')!r} is not supported (this taskrel reads {RESULT_SCHEMA})")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, directory: str | Path) -> Path:
        from taskrel.store import atomic_write_text

        path = Path(directory) / RESULT_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> StudyResult:
        """Load from a result file, an output directory, or a store holding one study."""
        data = read_json(find_result(path), "study result")
        if not isinstance(data, dict):
            raise TaskrelError(f"study result: {str(path)!r} does not hold a study result (a JSON object)")
        return cls.from_dict(data)


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
