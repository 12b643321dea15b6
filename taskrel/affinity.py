"""The task-affinity matrix: values with error bars, names, direction and the compute it cost.

Convention (every probe follows it): ``values[i, j]`` is the effect of *source* task ``i`` on
*target* task ``j``; larger is better for ``j``. A per-stage affinity (representation similarity
at each encoder stage) has shape ``(stages, n, n)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from taskrel.errors import TaskrelError

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
        )

    def _replace(self, values: np.ndarray, std: np.ndarray | None, per_seed=None, suffix="") -> Affinity:
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
            return self._replace(np.stack(out), None, suffix=f"+{method}")
        n = self.n_tasks
        v = self.values
        res = np.zeros_like(v)
        for j in range(n):
            src = [i for i in range(n) if i != j]
            if not src:
                continue
            col = v[src, j]
            if method == "zscore":
                sd = col.std()
                res[src, j] = (col - col.mean()) / sd if sd > 0 else 0.0
            elif method == "rank":
                r = stats.rankdata(col) - 1.0
                res[src, j] = r / max(len(src) - 1, 1)
            elif method == "ahp":
                res[src, j] = self._ahp_column(j, src)
            else:
                raise TaskrelError(
                    f"affinity: unknown normalisation {method!r}; use zscore, rank or ahp"
                )
        return self._replace(res, None, suffix=f"+{method}")

    def _ahp_column(self, j: int, src: list[int]) -> np.ndarray:
        m = len(src)
        win = np.full((m, m), 0.5)
        for a in range(m):
            for b in range(m):
                if a == b:
                    continue
                ia, ib = src[a], src[b]
                if self.per_seed is not None and self.per_seed.shape[0] > 1:
                    da = self.per_seed[:, ia, j][:, None]
                    db = self.per_seed[:, ib, j][None, :]
                    win[a, b] = float(np.mean((da > db) + 0.5 * (da == db)))
                else:
                    diff = self.values[ia, j] - self.values[ib, j]
                    s = math.hypot(self.std[ia, j], self.std[ib, j])
                    if s > 0:
                        win[a, b] = float(stats.norm.cdf(diff / s))
                    else:
                        win[a, b] = 1.0 if diff > 0 else (0.0 if diff < 0 else 0.5)
        win = np.clip(win, 1e-3, 1 - 1e-3)
        ratio = win / win.T
        eigval, eigvec = np.linalg.eig(ratio)
        vec = np.abs(np.real(eigvec[:, int(np.argmax(np.real(eigval)))]))
        return vec / vec.sum()

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
        )

    def save(self, path: str | Path) -> Path:
        """Write JSON (atomically: a temporary file renamed into place)."""
        from taskrel.store import atomic_write_text

        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Affinity:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise TaskrelError(f"affinity: file {str(path)!r} does not exist") from None
        except json.JSONDecodeError as e:
            raise TaskrelError(f"affinity: {str(path)!r} is not valid JSON ({e})") from None
        return cls.from_dict(d)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.values.shape)
        return (
            f"Affinity(measure={self.measure!r}, tasks={self.n_tasks}, shape={shape}, "
            f"seeds={self.n_seeds})"
        )
