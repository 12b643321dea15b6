"""What a gradient-probe run stored, read back: per-step arrays, windows, tables and cost.

The ``"gradient"`` training callback (:mod:`taskrel.probes.gradient`) stores its trajectory in
the run's record; the gradient and lookahead probes read it with these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from taskrel.affinity import Cost
from taskrel.errors import TaskrelError
from taskrel.store import RunRecord

CALLBACK = "gradient"


def _array(rows: list, n_shape: tuple[int, ...]) -> np.ndarray:
    a = np.array([[np.nan if v is None else v for v in _flat(r)] for r in rows], dtype=np.float64)
    return a.reshape((len(rows), *n_shape)) if rows else np.zeros((0, *n_shape))


def _flat(r: Any) -> list:
    return [v for row in r for v in row] if r and isinstance(r[0], list) else list(r)


def trajectory_arrays(rec: RunRecord, tasks: Sequence[str]) -> dict[str, np.ndarray]:
    """Per probe step arrays of one stored run, reordered to ``tasks``; a task the run did not
    train (a run replaced without the task that diverged) is NaN at every entry of it."""
    ex = rec.extras.get(CALLBACK)
    if not ex or not ex.get("steps"):
        raise TaskrelError(f"gradient probe: run {rec.key} has no gradient trajectory (no probe step ran)")
    n = len(ex["tasks"])
    idx = [ex["tasks"].index(t) if t in ex["tasks"] else n for t in tasks]  # n: a NaN row and column
    sl = np.ix_(idx, idx)

    def square(rows: list) -> np.ndarray:
        a = np.pad(_array(rows, (n, n)), ((0, 0), (0, 1), (0, 1)), constant_values=np.nan)
        return a[:, sl[0], sl[1]]

    out = {
        "steps": np.asarray(ex["steps"], dtype=np.int64),
        "cosine": square(ex["cosine"]),
        "norms": np.pad(_array(ex["norms"], (n,)), ((0, 0), (0, 1)), constant_values=np.nan)[:, idx],
    }
    if ex.get("lookahead") is not None:
        out["lookahead"] = square(ex["lookahead"])
    return out


def absent(a: np.ndarray, tr: dict[str, np.ndarray]) -> np.ndarray:
    """``a`` (n, n) with NaN at every entry of a task the run did not train (``tr["absent"]``,
    set by :meth:`~taskrel.probes.gradient.TrajectoryProbe.trajectories`; :func:`nanmean0`
    reads such entries as 0)."""
    a = np.array(a, dtype=np.float64)
    gone = tr.get("absent")
    if gone is not None and gone.any():
        a[gone, :] = np.nan
        a[:, gone] = np.nan
    return a


def in_window(tr: dict[str, np.ndarray], window: tuple[int, int] | None) -> dict[str, np.ndarray]:
    """The probe steps of a trajectory with ``start <= step < stop`` (all when window is None)."""
    if window is None:
        return tr
    start, stop = (int(v) for v in window)
    keep = (tr["steps"] >= start) & (tr["steps"] < stop)
    if not keep.any():
        raise TaskrelError(f"gradient probe: no probe step in window {window}; probe steps run {tr['steps'].min()}..{tr['steps'].max()}")
    return {k: v[keep] for k, v in tr.items()}


def long_table(seed: int, steps: np.ndarray, names: Sequence[str], values: np.ndarray, column: str):
    """A long DataFrame (seed, step, source, target, column) of per-step (n, n) values."""
    import pandas as pd

    n, m = len(names), len(steps)
    return pd.DataFrame({
        "seed": np.full(m * n * n, seed),
        "step": np.repeat(steps, n * n),
        "source": np.tile(np.repeat(np.asarray(names, dtype=object), n), m),
        "target": np.tile(np.asarray(names, dtype=object), m * n),
        column: values.reshape(-1),
    })


def nanmean0(a: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; 0 where every value is NaN."""
    count = np.sum(np.isfinite(a), axis=0)
    total = np.nansum(a, axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def run_cost(rec: RunRecord, parts: Sequence[str]) -> Cost:
    """Cost of one probe run counting the training and the named callback parts only."""
    ex = rec.extras[CALLBACK]
    probe_s = sum(ex["seconds"].values())
    seconds = rec.seconds - probe_s + sum(ex["seconds"][p] for p in parts)
    examples = rec.examples + sum(ex["examples"][p] for p in parts)
    return Cost(rec.steps, examples, seconds, 1)


def cost_meta(recs: Sequence[RunRecord]) -> dict[str, Any]:
    ex = [r.extras[CALLBACK] for r in recs]
    return {
        "probe_steps": int(sum(len(e["steps"]) for e in ex)),
        "train_seconds": float(sum(r.seconds - sum(e["seconds"].values()) for r, e in zip(recs, ex))),
        "gradient_seconds": float(sum(e["seconds"]["gradient"] for e in ex)),
        "lookahead_seconds": float(sum(e["seconds"]["lookahead"] for e in ex)),
        "run_keys": [r.key for r in recs],
    }


__all__ = ["CALLBACK", "absent", "cost_meta", "in_window", "long_table", "nanmean0", "run_cost", "trajectory_arrays"]
