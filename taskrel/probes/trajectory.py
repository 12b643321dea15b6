"""What a gradient-probe run stored, read back: blocks of probe steps, windows, tables and cost.

The ``"gradient"`` training callback (:mod:`taskrel.probes.gradient`) stores its trajectory in
the run's record, by default as a summary of a few blocks of probe steps
(:class:`taskrel.step.ProbeLog`), with ``trajectory="full"`` every step's n x n matrices; the
gradient and lookahead probes read either with these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from taskrel.affinity import Cost
from taskrel.errors import TaskrelError
from taskrel.step import PHASE, block_sums
from taskrel.store import RunRecord

CALLBACK = "gradient"


def _array(rows: list, n_shape: tuple[int, ...]) -> np.ndarray:
    a = np.array([[np.nan if v is None else v for v in _flat(r)] for r in rows], dtype=np.float64)
    return a.reshape((len(rows), *n_shape)) if rows else np.zeros((0, *n_shape))


def _flat(r: Any) -> list:
    return [v for row in r for v in row] if r and isinstance(r[0], list) else list(r)


def _full_blocks(ex: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    """A trajectory stored in full (every step's matrices) as blocks of one step each."""
    steps = np.asarray(ex["steps"], dtype=np.int64)
    look = _array(ex["lookahead"], (n, n)) if ex.get("lookahead") is not None else None
    return {"first": steps, "last": steps, "count": np.ones(len(steps), dtype=np.int64),
            **block_sums(_array(ex["cosine"], (n, n)), _array(ex["norms"], (n,)), look)}


def _summary_blocks(ex: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    """A trajectory stored as blocks (:class:`taskrel.step.ProbeLog`), symmetric matrices
    unpacked from their upper triangle."""
    upper = np.triu_indices(n)
    blocks = ex["blocks"]
    count = np.array([b["count"] for b in blocks], dtype=np.int64)

    def sym(b: dict[str, Any], key: str, default: Any) -> np.ndarray:
        m = np.zeros((n, n))
        m[upper] = np.nan_to_num(np.asarray(b.get(key, default), dtype=np.float64))
        return m + np.triu(m, 1).T

    def square(b: dict[str, Any], key: str, default: Any) -> np.ndarray:
        return np.nan_to_num(np.asarray(b.get(key, default), dtype=np.float64)).reshape(n, n)

    out = {"first": np.array([b["first"] for b in blocks], dtype=np.int64),
           "last": np.array([b["last"] for b in blocks], dtype=np.int64), "count": count,
           "cosine": np.stack([sym(b, "cosine", 0.0) for b in blocks]),
           "cosine_n": np.stack([sym(b, "cosine_n", np.full(len(upper[0]), b["count"])) for b in blocks]).astype(np.int64),
           "conflict": np.stack([sym(b, "conflict", 0) for b in blocks]).astype(np.int64),
           "log_norm": np.stack([np.nan_to_num(np.asarray(b["log_norm"], dtype=np.float64)) for b in blocks]),
           "log_norm_n": np.stack([np.asarray(b.get("log_norm_n", [b["count"]] * n)) for b in blocks]).astype(np.int64)}
    if blocks and "lookahead" in blocks[0]:
        out["lookahead"] = np.stack([square(b, "lookahead", 0.0) for b in blocks])
        out["lookahead_n"] = np.stack([square(b, "lookahead_n", [b["count"]] * n * n) for b in blocks]).astype(np.int64)
    return out


def trajectory_arrays(rec: RunRecord, tasks: Sequence[str]) -> dict[str, np.ndarray]:
    """The stored trajectory of one run as blocks of probe steps, reordered to ``tasks``.

    Whether the run kept every step (``format="full"``, or a record written before summaries)
    or a summary (:class:`taskrel.step.ProbeLog`), the result is the same shape: per block
    ``first`` and ``last`` probe step and ``count``, and per entry the sums ``cosine``,
    ``conflict`` (negative cosines), ``log_norm``, ``lookahead`` with the number of finite
    values each sum holds (``cosine_n``, ``log_norm_n``, ``lookahead_n``). A stored full
    trajectory gives one block per step. A task the run did not train (a run replaced without
    the task that diverged) has no value at any entry of it.
    """
    ex = rec.extras.get(CALLBACK)
    if not ex or not ex.get("steps"):
        raise TaskrelError(f"gradient probe: run {rec.key} has no gradient trajectory (no probe step ran)")
    n = len(ex["tasks"])
    raw = _summary_blocks(ex, n) if ex.get("format") == "summary" else _full_blocks(ex, n)
    idx = [ex["tasks"].index(t) if t in ex["tasks"] else n for t in tasks]  # n: a row and column with no value
    out = {k: raw[k] for k in ("first", "last", "count")}
    for key, a in raw.items():
        if key in out:
            continue
        if a.ndim == 3:
            a = np.pad(a, ((0, 0), (0, 1), (0, 1)))[:, idx][:, :, idx]
        else:
            a = np.pad(a, ((0, 0), (0, 1)))[:, idx]
        out[key] = a
    out["steps"] = out["first"]
    return out


def block_mean(tr: dict[str, np.ndarray], key: str, per_block: bool = False) -> np.ndarray:
    """Mean of a measure over the blocks' steps (``per_block``: each block's own mean); 0
    where no value was finite.

    >>> tr = {"cosine": np.array([[[2.0]], [[1.0]]]), "cosine_n": np.array([[[2]], [[1]]])}
    >>> block_mean(tr, "cosine").tolist(), block_mean(tr, "cosine", per_block=True).ravel().tolist()
    ([[1.0]], [1.0, 1.0])
    """
    total, n = (tr[key], tr[f"{key}_n"]) if per_block else (tr[key].sum(axis=0), tr[f"{key}_n"].sum(axis=0))
    return np.where(n > 0, total / np.maximum(n, 1), 0.0)


def absent(a: np.ndarray, tr: dict[str, np.ndarray]) -> np.ndarray:
    """``a`` (n, n) with NaN at every entry of a task the run did not train (``tr["absent"]``,
    set by :meth:`~taskrel.probes.gradient.TrajectoryProbe.trajectories`; :func:`block_mean`
    reads such entries as 0)."""
    a = np.array(a, dtype=np.float64)
    gone = tr.get("absent")
    if gone is not None and gone.any():
        a[gone, :] = np.nan
        a[:, gone] = np.nan
    return a


def in_window(tr: dict[str, np.ndarray], window: tuple[int, int] | None) -> dict[str, np.ndarray]:
    """The blocks of a trajectory whose probe steps all lie in ``start <= step < stop`` (all
    when window is None). A window that cuts a stored block is an error naming the block
    boundaries (a summary keeps blocks, not steps: fit with ``trajectory="full"`` for any window)."""
    if window is None:
        return tr
    start, stop = (int(v) for v in window)
    first, last = tr["first"], tr["last"]
    cut = ((first < start) & (last >= start)) | ((first < stop) & (last >= stop))
    if cut.any():
        bounds = [f"{a}..{b}" for a, b in zip(first.tolist(), last.tolist())]
        raise TaskrelError(f"gradient probe: window {tuple(window)} cuts a stored block of probe steps; the blocks are "
                           f"{bounds}: choose a window on their boundaries, or probe with trajectory='full'")
    keep = (first >= start) & (last < stop)
    if not keep.any():
        raise TaskrelError(f"gradient probe: no probe step in window {window}; probe steps run {first.min()}..{last.max()}")
    return {k: v[keep] for k, v in tr.items()}


PHASES = ("all", "early", "late")


def in_phase(tr: dict[str, np.ndarray], phase: str | None) -> dict[str, np.ndarray]:
    """The blocks of a phase: ``"early"`` the first blocks holding at least a quarter of the
    probe steps, ``"late"`` the last ones; ``"all"`` or None every block. (With a summary the
    blocks are eighths of the run, so a phase is its first or last two eighths; with a full
    trajectory every step is a block and a phase is the quarter itself.)

    >>> tr = {"count": np.array([2, 2, 2, 2]), "first": np.array([0, 2, 4, 6])}
    >>> in_phase(tr, "early")["first"].tolist(), in_phase(tr, "late")["first"].tolist()
    ([0], [6])
    """
    if phase in (None, "all"):
        return tr
    if phase not in PHASES:
        raise TaskrelError(f"gradient probe: phase must be one of {PHASES}, got {phase!r}")
    counts = tr["count"]
    want = max(int(np.ceil(PHASE * counts.sum())), 1)
    order = range(len(counts)) if phase == "early" else range(len(counts) - 1, -1, -1)
    keep, got = np.zeros(len(counts), dtype=bool), 0
    for i in order:
        if got >= want:
            break
        keep[i], got = True, got + int(counts[i])
    return {k: (v[keep] if isinstance(v, np.ndarray) and v.shape[:1] == counts.shape else v) for k, v in tr.items()}


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


__all__ = ["CALLBACK", "PHASES", "absent", "block_mean", "cost_meta", "in_phase", "in_window", "long_table", "run_cost",
           "trajectory_arrays"]
