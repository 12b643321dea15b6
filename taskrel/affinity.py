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

Missing entries: an entry no run measured (every seed's run failed) is NaN, accepted only
where ``missing`` marks it (:mod:`taskrel.affinity_missing`); :meth:`Affinity.complete` gives
the affinity on the tasks that remain complete and says why the others were left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from taskrel import affinity_formats
from taskrel.affinity_formats import SCHEMA_VERSION
from taskrel.affinity_missing import check_missing, complete_tasks
from taskrel.calibration import CALIBRATIONS, fit_line, infer_calibration, normalize_columns
from taskrel.errors import TaskrelError
from taskrel.files import read_json


@dataclass
class Cost:
    """Compute a measurement cost: training steps, examples seen, wall seconds, models trained."""

    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    runs: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.steps + other.steps, self.examples + other.examples, self.seconds + other.seconds,
                    self.runs + other.runs)


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
    missing : entries no run measured, NaN in ``values`` and ``std``: a boolean mask of the
        values' shape, or True (every NaN is missing); None (default): NaN is an error.

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
    missing: Any = None

    def __post_init__(self) -> None:
        self.tasks = _check_names(self.tasks)
        n = len(self.tasks)
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim not in (2, 3) or values.shape[-2:] != (n, n):
            raise TaskrelError(f"affinity {self.measure or ''}: values must have shape ({n}, {n}) or "
                               f"(stages, {n}, {n}) for tasks {self.tasks}, got {values.shape}")
        self.values, self.missing = check_missing(values, self.missing, self.tasks, self.measure)
        known = np.ones(values.shape, dtype=bool) if self.missing is None else ~self.missing
        std = np.zeros_like(values) if self.std is None else np.asarray(self.std, dtype=np.float64)
        if std.shape != values.shape:
            raise TaskrelError(f"affinity: std has shape {std.shape}, values have {values.shape}")
        if (~np.isfinite(std[known])).any() or (std[known] < 0).any():
            raise TaskrelError("affinity: std must be finite and non-negative")
        self.std = np.where(known, std, np.nan)
        if self.per_seed is not None:
            ps = np.asarray(self.per_seed, dtype=np.float64)
            if ps.shape[1:] != values.shape:
                raise TaskrelError(f"affinity: per_seed has shape {ps.shape}, expected (seeds, *{values.shape})")
            self.per_seed = ps
        if self.stages is not None:
            if values.ndim != 3 or len(self.stages) != values.shape[0]:
                raise TaskrelError(f"affinity: {len(self.stages)} stage names for values of shape {values.shape}")
            self.stages = [str(s) for s in self.stages]
        if isinstance(self.cost, dict):
            self.cost = Cost(**self.cost)
        if int(self.n_seeds) < 1:
            raise TaskrelError(f"affinity: n_seeds must be >= 1, got {self.n_seeds}")
        if self.calibration is None:
            self.calibration = infer_calibration(self.measure, self.meta)
        if self.calibration not in CALIBRATIONS:
            raise TaskrelError(f"affinity {self.measure!r}: calibration must be one of {CALIBRATIONS}, "
                               f"got {self.calibration!r}")

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
            missing=None if self.missing is None else self.missing[k],
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
            missing=None if self.missing is None else take(self.missing),
        )

    def complete(self) -> tuple[Affinity, dict[str, str]]:
        """The affinity on the tasks whose entries remain complete, and ``{task: why}`` for the
        tasks left out (greedy: the task with the most missing entries first; ties: the task
        listed last). A reason quotes the stored failure (``meta["failed"]``) naming the task.

        >>> a = Affinity(["a", "b", "c"], [[0, 1, np.nan], [2, 0, np.nan], [np.nan, np.nan, 0]], missing=True)
        >>> sub, left = a.complete()
        >>> sub.tasks, sub.missing, left
        (['a', 'b'], None, {'c': 'no successful run for 4 of its 4 affinity entries'})
        """
        keep, left = complete_tasks(self.tasks, self.missing, self.meta.get("failed") or [])
        if not keep:
            raise TaskrelError(f"affinity {self.measure!r}: no task has complete entries: {left}")
        return self.subset(keep), left

    def _replace(self, values: np.ndarray, std: np.ndarray | None, per_seed=None, suffix="",
                 calibration: str | None = None, missing: Any = None) -> Affinity:
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
            missing=missing,
        )

    # ----------------------------------------------------------------- transforms
    def symmetrize(self) -> Affinity:
        """Mean of the matrix and its transpose (a -> b and b -> a averaged)."""
        sym = 0.5 * (self.values + np.swapaxes(self.values, -1, -2))
        std = 0.5 * np.sqrt(self.std**2 + np.swapaxes(self.std, -1, -2) ** 2)
        ps = None
        if self.per_seed is not None:
            ps = 0.5 * (self.per_seed + np.swapaxes(self.per_seed, -1, -2))
        mask = None if self.missing is None else self.missing | np.swapaxes(self.missing, -1, -2)
        return self._replace(sym, std, ps, suffix="+sym", missing=mask)

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
        self._need_complete("normalize")
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
        correlation. At least three entries with two distinct values are needed. Entries
        marked missing stay missing (NaN); a measured pair must not be one of them.

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
                            calibration="relative-gain", missing=self.missing)
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
        both = np.isfinite(x) & np.isfinite(y)  # entries missing in either are left out
        x, y = x[both], y[both]
        rho = stats.spearmanr(x, y).statistic
        tau = stats.kendalltau(x, y).statistic
        return {"spearman": float(np.nan_to_num(rho)), "kendall": float(np.nan_to_num(tau)), "n": int(x.size)}

    def _need_complete(self, what: str) -> None:
        if self.missing is not None:
            raise TaskrelError(f"affinity {self.measure!r}: {what} needs every entry, and "
                               f"{int(self.missing.sum())} have no successful run; take .complete() first")

    # ----------------------------------------------------------------- tables and files
    def to_frame(self, stage: int | None = None):
        """A pandas DataFrame, sources as rows and targets as columns."""
        return affinity_formats.to_frame(self, stage)

    def to_long(self):
        """A long table: one row per (stage, source, target) with mean and std."""
        return affinity_formats.to_long(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (:mod:`taskrel.affinity_formats`; missing entries as null, by name)."""
        return affinity_formats.to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Affinity:
        """The affinity of :meth:`to_dict`'s data."""
        return affinity_formats.from_dict(cls, d)

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


__all__ = ["SCHEMA_VERSION", "Affinity", "Cost"]
