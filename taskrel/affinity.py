"""The task-affinity matrix: values with error bars, names, direction and the compute it cost.

Convention (every probe follows it): ``values[i, j]`` is the effect of *source* task ``i`` on
*target* task ``j``; larger is better for ``j``. A per-stage affinity (representation similarity
at each encoder stage) has shape ``(stages, n, n)``.

Calibration: each affinity states what its zero means (``Affinity.calibration``), so that group
scores are built by the right rule (:mod:`taskrel.tables.group_estimates`):

* ``"relative-gain"``: relative change of the target's loss, zero = as good as alone
  (pairwise, surrogate, gradient-feature, relative fine-tune transfer);
* ``"gain"``: a change in the target's own units with a calibrated zero;
* ``"uncalibrated"``: a score whose zero means nothing in loss terms (CKA, gradient cosine,
  lookahead, frozen transfer);
* ``"descriptive"``: not "larger is better" (gradient conflict frequency, magnitude ratio).

When not given, it is inferred from ``measure`` (:func:`infer_calibration`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from taskrel.calibration import CALIBRATIONS, fit_line, infer_calibration, normalize_columns
from taskrel.errors import TaskrelError
from taskrel.files import read_json

SCHEMA_VERSION = 1


@dataclass
class Cost:
    """Compute a measurement cost: training steps, examples seen, wall seconds, models trained."""

    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    runs: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.steps + other.steps,
            self.examples + other.examples,
            self.seconds + other.seconds,
            self.runs + other.runs,
        )


def _check_names(tasks: Any) -> list[str]:
    names = [str(t) for t in tasks]
    if not names:
        raise TaskrelError("affinity: the task list is empty")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TaskrelError(f"affinity: duplicate task name {name!r}")
        seen.add(name)
    return names


@dataclass(eq=False)
class Affinity:
    """A task-affinity matrix with its task names, spread over seeds and cost.

    Parameters
    ----------
    tasks : names of the n tasks, in matrix order.
    values : array (n, n) or (stages, n, n); ``values[..., i, j]`` = effect of source i on target j.
    std : spread over seeds, same shape as ``values`` (zeros when one seed).
    n_seeds : how many seeds the mean is over.
    measure : what was measured (for example ``"pairwise"`` or ``"cka-linear"``).
    cost : the compute the measurement took.
    per_seed : optional array (seeds, ...) of the per-seed matrices (used for stability analyses).
    stages : optional stage names for a per-stage affinity.
    meta : free-form provenance (probe, seeds, config, ...).
    calibration : what the zero means, one of ``CALIBRATIONS`` (module docstring); default
        inferred from ``measure``.

    Examples
    --------
    >>> aff = Affinity(["a", "b", "c"], [[0, 0.5, -0.2], [0.4, 0, 0.0], [-0.1, 0.1, 0]])
    >>> aff.value("a", "b")   # effect of source a on target b
    0.5
    >>> aff.symmetrize().value("b", "a")
    0.45
    >>> aff.to_frame().loc["a", "c"]
    np.float64(-0.2)
    """

    tasks: list[str]
    values: np.ndarray
    std: np.ndarray | None = None
    n_seeds: int = 1
    measure: str = ""
    cost: Cost = field(default_factory=Cost)
    per_seed: np.ndarray | None = None
    stages: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    calibration: str | None = None

    def __post_init__(self) -> None:
        self.tasks = _check_names(self.tasks)
        n = len(self.tasks)
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim not in (2, 3) or values.shape[-2:] != (n, n):
            raise TaskrelError(
                f"affinity {self.measure or ''}: values must have shape ({n}, {n}) or "
                f"(stages, {n}, {n}) for tasks {self.tasks}, got {values.shape}"
            )
        bad = ~np.isfinite(values)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            src, tgt = self.tasks[idx[-2]], self.tasks[idx[-1]]
            raise TaskrelError(
                f"affinity: value for source {src!r} -> target {tgt!r} is {values[idx]} "
                "(NaN or inf is not allowed)"
            )
        self.values = values
        if self.std is None:
            self.std = np.zeros_like(values)
        else:
            std = np.asarray(self.std, dtype=np.float64)
            if std.shape != values.shape:
                raise TaskrelError(
                    f"affinity: std has shape {std.shape}, values have {values.shape}"
                )
            if (~np.isfinite(std)).any() or (std < 0).any():
                raise TaskrelError("affinity: std must be finite and non-negative")
            self.std = std
        if self.per_seed is not None:
            ps = np.asarray(self.per_seed, dtype=np.float64)
            if ps.shape[1:] != values.shape:
                raise TaskrelError(
                    f"affinity: per_seed has shape {ps.shape}, expected (seeds, *{values.shape})"
                )
            self.per_seed = ps
        if self.stages is not None:
            if values.ndim != 3 or len(self.stages) != values.shape[0]:
                raise TaskrelError(
                    f"affinity: {len(self.stages)} stage names for values of shape {values.shape}"
                )
            self.stages = [str(s) for s in self.stages]
        if isinstance(self.cost, dict):
            self.cost = Cost(**self.cost)
        if int(self.n_seeds) < 1:
            raise TaskrelError(f"affinity: n_seeds must be >= 1, got {self.n_seeds}")
        if self.calibration is None:
            self.calibration = infer_calibration(self.measure, self.meta)
        if self.calibration not in CALIBRATIONS:
            raise TaskrelError(
                f"affinity {self.measure!r}: calibration must be one of {CALIBRATIONS}, "
                f"got {self.calibration!r}"
            )

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_seeds(cls, tasks: list[str], per_seed: Any, **kwargs: Any) -> Affinity:
        """Build the mean and std (ddof=1 when several seeds) from stacked per-seed matrices.

        >>> a = Affinity.from_seeds(["x", "y"], [[[0, 1], [2, 0]], [[0, 3], [2, 0]]])
        >>> a.value("x", "y"), round(float(a.std[0, 1]), 3), a.n_seeds
        (2.0, 1.414, 2)
        """
        ps = np.asarray(per_seed, dtype=np.float64)
        std = ps.std(axis=0, ddof=1) if ps.shape[0] > 1 else np.zeros(ps.shape[1:])
        return cls(tasks, ps.mean(axis=0), std=std, n_seeds=ps.shape[0], per_seed=ps, **kwargs)

    # ----------------------------------------------------------------- access
    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def is_staged(self) -> bool:
        return self.values.ndim == 3

    def index(self, task: str) -> int:
        try:
            return self.tasks.index(task)
        except ValueError:
            raise TaskrelError(f"affinity: unknown task {task!r}; tasks are {self.tasks}") from None

    def value(self, source: str, target: str, stage: int | None = None) -> float:
        """Effect of ``source`` on ``target`` (at ``stage`` for a per-stage affinity)."""
        v = self.values if stage is None else self.values[stage]
        if v.ndim == 3:
            raise TaskrelError("affinity: per-stage values; pass stage=")
        return float(v[self.index(source), self.index(target)])

    def plain(self) -> Affinity:
        """A plain (n, n) affinity: itself, or the last stage of a per-stage one (the stage
        whose representation the heads read).

        >>> Affinity(["a", "b"], [[[1, 0], [0, 1]], [[1, 0.5], [0.5, 1]]], stages=["s0", "s1"]).plain().values[0, 1]
        np.float64(0.5)
        """
        return self.stage(self.values.shape[0] - 1) if self.is_staged else self

    def stage(self, k: int) -> Affinity:
        """One stage of a per-stage affinity, as a plain (n, n) affinity."""
        if not self.is_staged:
            raise TaskrelError("affinity: not a per-stage affinity")
        name = self.stages[k] if self.stages else str(k)
        return Affinity(
            self.tasks,
            self.values[k],
            std=self.std[k],
            n_seeds=self.n_seeds,
            measure=f"{self.measure}[{name}]",
            cost=self.cost,
            per_seed=None if self.per_seed is None else self.per_seed[:, k],
            meta=dict(self.meta),
            calibration=self.calibration,
        )

    def offdiag(self) -> np.ndarray:
        """Off-diagonal entries (source != target) as a flat array, row-major."""
        if self.is_staged:
            raise TaskrelError("affinity: per-stage values; take .stage(k) first")
        mask = ~np.eye(self.n_tasks, dtype=bool)
        return self.values[mask]

    def subset(self, tasks: list[str]) -> Affinity:
        """The affinity restricted to (and reordered as) ``tasks``."""
        idx = [self.index(t) for t in tasks]
        sl = np.ix_(idx, idx)

        def take(a: np.ndarray) -> np.ndarray:
            return a[..., sl[0], sl[1]]

        return Affinity(
            list(tasks),
            take(self.values),
            std=take(self.std),
            n_seeds=self.n_seeds,
            measure=self.measure,
            cost=self.cost,
            per_seed=None if self.per_seed is None else take(self.per_seed),
            stages=self.stages,
            meta=dict(self.meta),
            calibration=self.calibration,
        )

    def _replace(self, values: np.ndarray, std: np.ndarray | None, per_seed=None, suffix="",
                 calibration: str | None = None) -> Affinity:
        return Affinity(
            self.tasks,
            values,
            std=std,
            n_seeds=self.n_seeds,
            measure=self.measure + suffix,
            cost=self.cost,
            per_seed=per_seed,
            stages=self.stages,
            meta=dict(self.meta),
            calibration=calibration or self.calibration,
        )

    # ----------------------------------------------------------------- transforms
    def symmetrize(self) -> Affinity:
        """Mean of the matrix and its transpose (a -> b and b -> a averaged)."""
        sym = 0.5 * (self.values + np.swapaxes(self.values, -1, -2))
        std = 0.5 * np.sqrt(self.std**2 + np.swapaxes(self.std, -1, -2) ** 2)
        ps = None
        if self.per_seed is not None:
            ps = 0.5 * (self.per_seed + np.swapaxes(self.per_seed, -1, -2))
        return self._replace(sym, std, ps, suffix="+sym")

    def normalize(self, method: str = "zscore") -> Affinity:
        """Normalised copy, per target column (off-diagonal entries).

        ``"zscore"``: each target's column centred and scaled over its sources.
        ``"rank"``: each target's sources ranked, scaled to [0, 1] (1 = best source).
        ``"ahp"``: Taskonomy's ordinal normalisation: for each target, pairwise win rates of the
        sources (from per-seed values when present, else a Gaussian with the std) form a
        reciprocal matrix ``W / W.T`` whose principal eigenvector, summing to 1, scores each
        source. The diagonal is set to 0.

        >>> a = Affinity(["a", "b", "c"], [[0, 1, 3], [2, 0, 1], [1, 2, 0]])
        >>> a.normalize("rank").values[:, 2].tolist()
        [1.0, 0.0, 0.0]
        """
        if self.is_staged:
            out = [self.stage(k).normalize(method).values for k in range(self.values.shape[0])]
            return self._replace(np.stack(out), None, suffix=f"+{method}",
                                 calibration="uncalibrated")
        res = normalize_columns(self.values, self.std, self.per_seed, method)
        return self._replace(res, None, suffix=f"+{method}", calibration="uncalibrated")

    def calibrate(self, measured: dict[tuple[str, str], float]) -> Affinity:
        """Map this affinity onto relative gains measured for a handful of pairs.

        ``measured[(source, target)]`` is the relative gain of ``target`` trained with
        ``source`` (as the pairwise probe measures it). A least-squares line
        ``gain = intercept + slope * value`` over those entries turns every off-diagonal value
        into a relative gain; the result is a ``"relative-gain"`` affinity (group scores by
        HOA) whose ``meta["calibrated"]`` holds the line, the number of pairs and the
        correlation. At least three entries with two distinct values are needed.

        >>> cka = Affinity(["a", "b", "c"], [[0, .9, .5], [.9, 0, .4], [.5, .4, 0]],
        ...                measure="similarity-linear")
        >>> cal = cka.calibrate({("a", "b"): .1, ("b", "a"): .1, ("a", "c"): -.1})
        >>> cal.calibration, round(cal.value("b", "c"), 3), cal.meta["calibrated"]["pairs"]
        ('relative-gain', -0.15, 3)
        """
        if self.is_staged:
            raise TaskrelError("affinity: calibrate a plain affinity (take .stage(k) first)")
        fit = fit_line(measured, self.value)
        slope, intercept = fit["slope"], fit["intercept"]
        off = ~np.eye(self.n_tasks, dtype=bool)
        values = np.where(off, intercept + slope * self.values, 0.0)
        ps = None if self.per_seed is None else np.where(off, intercept + slope * self.per_seed, 0.0)
        out = self._replace(values, abs(slope) * self.std, ps, suffix="+calibrated",
                            calibration="relative-gain")
        out.meta["calibrated"] = {**fit, "from": self.calibration}
        return out

    # ----------------------------------------------------------------- comparison
    def agreement(self, other: Affinity, stage: int | None = None) -> dict[str, float]:
        """Rank agreement with ``other`` on the off-diagonal entries of the common tasks.

        Returns ``{"spearman": ..., "kendall": ..., "n": ...}``.

        >>> a = Affinity(["a", "b", "c"], [[0, 1, 2], [3, 0, 4], [5, 6, 0]])
        >>> a.agreement(a)["spearman"]
        1.0
        """
        mine = self.stage(stage) if stage is not None else self
        common = [t for t in mine.tasks if t in other.tasks]
        if len(common) < 2:
            raise TaskrelError("affinity: fewer than two tasks in common; cannot compare")
        x = mine.subset(common).offdiag()
        y = other.subset(common).offdiag()
        rho = stats.spearmanr(x, y).statistic
        tau = stats.kendalltau(x, y).statistic
        return {
            "spearman": float(np.nan_to_num(rho)),
            "kendall": float(np.nan_to_num(tau)),
            "n": int(x.size),
        }

    # ----------------------------------------------------------------- tables and files
    def to_frame(self, stage: int | None = None):
        """A pandas DataFrame, sources as rows and targets as columns."""
        import pandas as pd

        v = self.values if stage is None else self.values[stage]
        if v.ndim == 3:
            raise TaskrelError("affinity: per-stage values; pass stage=")
        df = pd.DataFrame(v, index=list(self.tasks), columns=list(self.tasks))
        df.index.name = "source"
        df.columns.name = "target"
        return df

    def to_long(self):
        """A long table: one row per (stage, source, target) with mean and std."""
        import pandas as pd

        rows = []
        vals = self.values if self.is_staged else self.values[None]
        stds = self.std if self.is_staged else self.std[None]
        for k in range(vals.shape[0]):
            for i, s in enumerate(self.tasks):
                for j, t in enumerate(self.tasks):
                    rows.append(
                        {
                            "stage": (self.stages[k] if self.stages else k) if self.is_staged else None,
                            "source": s,
                            "target": t,
                            "value": vals[k, i, j],
                            "std": stds[k, i, j],
                        }
                    )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "kind": "taskrel.Affinity",
            "measure": self.measure,
            "tasks": list(self.tasks),
            "values": self.values.tolist(),
            "std": self.std.tolist(),
            "n_seeds": int(self.n_seeds),
            "cost": asdict(self.cost),
            "per_seed": None if self.per_seed is None else self.per_seed.tolist(),
            "stages": self.stages,
            "meta": self.meta,
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Affinity:
        if not isinstance(d, dict) or d.get("kind") != "taskrel.Affinity":
            raise TaskrelError("affinity: not a taskrel affinity (missing kind 'taskrel.Affinity')")
        if d.get("schema") != SCHEMA_VERSION:
            raise TaskrelError(
                f"affinity: schema version {d.get('schema')!r} is not supported "
                f"(this taskrel reads {SCHEMA_VERSION})"
            )
        for key in ("tasks", "values"):
            if key not in d:
                raise TaskrelError(f"affinity: field {key!r} is missing")
        return cls(
            d["tasks"],
            np.asarray(d["values"], dtype=np.float64),
            std=None if d.get("std") is None else np.asarray(d["std"], dtype=np.float64),
            n_seeds=int(d.get("n_seeds", 1)),
            measure=d.get("measure", ""),
            cost=Cost(**d.get("cost", {})),
            per_seed=None if d.get("per_seed") is None else np.asarray(d["per_seed"]),
            stages=d.get("stages"),
            meta=d.get("meta") or {},
            calibration=d.get("calibration"),
        )

    def save(self, path: str | Path) -> Path:
        """Write JSON (atomically: a temporary file renamed into place)."""
        from taskrel.store import atomic_write_text

        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Affinity:
        d = read_json(path, "affinity")
        if not isinstance(d, dict):
            raise TaskrelError(f"affinity: {str(path)!r} does not hold an affinity (a JSON object)")
        return cls.from_dict(d)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.values.shape)
        return (
            f"Affinity(measure={self.measure!r}, tasks={self.n_tasks}, shape={shape}, "
            f"seeds={self.n_seeds})"
        )
