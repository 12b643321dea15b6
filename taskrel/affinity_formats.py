"""An affinity as tables and plain data: a DataFrame, a long table, and the JSON dict.

The dict is plain JSON (NaN, which only a missing entry may hold, is written as null) and
carries the missing entries by name, so an affinity with entries no run measured round-trips
through ``to_dict`` / ``from_dict`` and a JSON file unchanged.

>>> from taskrel.affinity import Affinity
>>> a = Affinity(["a", "b"], [[0, float("nan")], [1, 0]], missing=True)
>>> d = to_dict(a)
>>> d["values"], d["missing"], from_dict(Affinity, d).missing.tolist()
([[0.0, None], [1.0, 0.0]], [['a', 'b']], [[False, True], [False, False]])
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from taskrel.affinity_missing import mask_of_entries, missing_entries
from taskrel.errors import TaskrelError

SCHEMA_VERSION = 1


def nan_none(a: np.ndarray) -> list:
    """Nested lists with NaN as None (plain JSON).

    >>> nan_none(np.array([1.0, np.nan]))
    [1.0, None]
    """
    return np.where(np.isnan(a), None, a).tolist()


def to_frame(aff: Any, stage: int | None = None):
    """A pandas DataFrame, sources as rows and targets as columns."""
    import pandas as pd

    v = aff.values if stage is None else aff.values[stage]
    if v.ndim == 3:
        raise TaskrelError("affinity: per-stage values; pass stage=")
    df = pd.DataFrame(v, index=list(aff.tasks), columns=list(aff.tasks))
    df.index.name = "source"
    df.columns.name = "target"
    return df


def to_long(aff: Any):
    """A long table: one row per (stage, source, target) with mean and std."""
    import pandas as pd

    rows = []
    vals = aff.values if aff.is_staged else aff.values[None]
    stds = aff.std if aff.is_staged else aff.std[None]
    for k in range(vals.shape[0]):
        stage = (aff.stages[k] if aff.stages else k) if aff.is_staged else None
        for i, s in enumerate(aff.tasks):
            for j, t in enumerate(aff.tasks):
                rows.append({"stage": stage, "source": s, "target": t, "value": vals[k, i, j], "std": stds[k, i, j]})
    return pd.DataFrame(rows)


def to_dict(aff: Any) -> dict[str, Any]:
    """The affinity as plain JSON data (``missing``: the entries no run measured, by name)."""
    return {
        "schema": SCHEMA_VERSION,
        "kind": "taskrel.Affinity",
        "measure": aff.measure,
        "tasks": list(aff.tasks),
        "values": nan_none(aff.values),
        "std": nan_none(aff.std),
        "n_seeds": int(aff.n_seeds),
        "cost": asdict(aff.cost),
        "per_seed": None if aff.per_seed is None else nan_none(aff.per_seed),
        "stages": aff.stages,
        "meta": aff.meta,
        "calibration": aff.calibration,
        "missing": missing_entries(aff.missing, aff.tasks) or None,
    }


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """An affinity of class ``cls`` from :func:`to_dict`'s data (null values read as NaN)."""
    if not isinstance(d, dict) or d.get("kind") != "taskrel.Affinity":
        raise TaskrelError("affinity: not a taskrel affinity (missing kind 'taskrel.Affinity')")
    if d.get("schema") != SCHEMA_VERSION:
        raise TaskrelError(f"affinity: schema version {d.get('schema')!r} is not supported "
                           f"(this taskrel reads {SCHEMA_VERSION})")
    for key in ("tasks", "values"):
        if key not in d:
            raise TaskrelError(f"affinity: field {key!r} is missing")
    values = np.asarray(d["values"], dtype=np.float64)
    return cls(
        d["tasks"],
        values,
        std=None if d.get("std") is None else np.asarray(d["std"], dtype=np.float64),
        n_seeds=int(d.get("n_seeds", 1)),
        measure=d.get("measure", ""),
        cost=dict(d.get("cost") or {}),
        per_seed=None if d.get("per_seed") is None else np.asarray(d["per_seed"], dtype=np.float64),
        stages=d.get("stages"),
        meta=d.get("meta") or {},
        calibration=d.get("calibration"),
        missing=mask_of_entries(d.get("missing"), [str(t) for t in d["tasks"]], values.shape),
    )


__all__ = ["SCHEMA_VERSION", "from_dict", "nan_none", "to_dict", "to_frame", "to_long"]
