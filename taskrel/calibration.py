"""What an affinity's values mean: the calibration of each kind of measure, per-target
normalisation, and a line fitted to a handful of measured pairs.

See :class:`taskrel.Affinity` (``calibration``, ``normalize``, ``calibrate``) and
:mod:`taskrel.tables.group_estimates` for the rule each calibration gets when an affinity is
turned into group scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from taskrel.errors import TaskrelError

CALIBRATIONS = ("relative-gain", "gain", "uncalibrated", "descriptive")
_BY_PREFIX = (  # measure name prefix -> calibration (first match wins)
    ("pairwise", "relative-gain"), ("surrogate", "relative-gain"),
    ("gradfeature", "relative-gain"), ("transfer-frozen", "uncalibrated"),
    ("gradient-cosine", "uncalibrated"), ("gradient-conflict", "descriptive"),
    ("gradient-magnitude", "descriptive"), ("lookahead", "uncalibrated"),
    ("similarity", "uncalibrated"), ("cka", "uncalibrated"), ("rsa", "uncalibrated"),
)


def infer_calibration(measure: str, meta: dict[str, Any] | None = None) -> str:
    """What an affinity's zero means, from its measure name (and ``meta["gain"]``).

    A fine-tune transfer is a relative gain when measured relative (``meta["gain"]``), else a
    gain; a measure taskrel does not know is taken to be a gain with a calibrated zero.

    >>> infer_calibration("similarity-linear"), infer_calibration("pairwise-cheap")
    ('uncalibrated', 'relative-gain')
    >>> infer_calibration("transfer-finetune", {"gain": "relative"})
    'relative-gain'
    """
    name = (measure or "").lower()
    if name.startswith("transfer-finetune"):
        return "relative-gain" if (meta or {}).get("gain") == "relative" else "gain"
    for prefix, kind in _BY_PREFIX:
        if name.startswith(prefix):
            return kind
    return "gain"


def normalize_columns(values: np.ndarray, std: np.ndarray, per_seed: np.ndarray | None,
                      method: str) -> np.ndarray:
    """Each target's column (off-diagonal) normalised; see ``Affinity.normalize``.

    >>> normalize_columns(np.array([[0, 1, 3], [2, 0, 1], [1, 2, 0]]), np.zeros((3, 3)), None,
    ...                   "rank")[:, 2].tolist()
    [1.0, 0.0, 0.0]
    """
    n = values.shape[0]
    res = np.zeros_like(values, dtype=np.float64)
    for j in range(n):
        src = [i for i in range(n) if i != j]
        if not src:
            continue
        col = values[src, j]
        if method == "zscore":
            sd = col.std()
            res[src, j] = (col - col.mean()) / sd if sd > 0 else 0.0
        elif method == "rank":
            r = stats.rankdata(col) - 1.0
            res[src, j] = r / max(len(src) - 1, 1)
        elif method == "ahp":
            res[src, j] = _ahp_column(values, std, per_seed, j, src)
        else:
            raise TaskrelError(
                f"affinity: unknown normalisation {method!r}; use zscore, rank or ahp"
            )
    return res


def _ahp_column(values, std, per_seed, j: int, src: list[int]) -> np.ndarray:
    m = len(src)
    win = np.full((m, m), 0.5)
    for a in range(m):
        for b in range(m):
            if a == b:
                continue
            ia, ib = src[a], src[b]
            if per_seed is not None and per_seed.shape[0] > 1:
                da = per_seed[:, ia, j][:, None]
                db = per_seed[:, ib, j][None, :]
                win[a, b] = float(np.mean((da > db) + 0.5 * (da == db)))
            else:
                diff = values[ia, j] - values[ib, j]
                s = math.hypot(std[ia, j], std[ib, j])
                if s > 0:
                    win[a, b] = float(stats.norm.cdf(diff / s))
                else:
                    win[a, b] = 1.0 if diff > 0 else (0.0 if diff < 0 else 0.5)
    win = np.clip(win, 1e-3, 1 - 1e-3)
    ratio = win / win.T
    eigval, eigvec = np.linalg.eig(ratio)
    vec = np.abs(np.real(eigvec[:, int(np.argmax(np.real(eigval)))]))
    return vec / vec.sum()


def fit_line(measured: dict[tuple[str, str], float],
             value_of: Callable[[str, str], float]) -> dict[str, float]:
    """Least-squares ``gain = intercept + slope * value`` over measured (source, target) pairs.

    >>> fit = fit_line({("a", "b"): 1.0, ("b", "a"): 2.0, ("a", "c"): 3.0},
    ...                lambda s, t: {"ab": 0.0, "ba": 1.0, "ac": 2.0}[s + t])
    >>> fit["pairs"], round(fit["intercept"], 9), round(fit["slope"], 9), round(fit["r"], 9)
    (3, 1.0, 1.0, 1.0)
    """
    if not isinstance(measured, dict) or len(measured) < 3:
        raise TaskrelError("affinity: calibrate needs a dict of at least three measured "
                           "(source, target) -> relative gain entries")
    x, y = [], []
    for key, gain in measured.items():
        if not isinstance(key, tuple) or len(key) != 2 or key[0] == key[1]:
            raise TaskrelError(f"affinity: calibrate: key must be (source, target) of two "
                               f"tasks, got {key!r}")
        g = float(gain)
        if not math.isfinite(g):
            raise TaskrelError(f"affinity: calibrate: gain of {key!r} is {gain!r}")
        v = value_of(*key)
        if not math.isfinite(v):  # a missing entry: nothing to fit the line to
            raise TaskrelError(f"affinity: calibrate: {key!r} has no affinity value (missing)")
        x.append(v)
        y.append(g)
    x_arr, y_arr = np.array(x), np.array(y)
    if np.ptp(x_arr) == 0:
        raise TaskrelError("affinity: calibrate: the measured pairs all have the same "
                           "affinity value; nothing to fit a line to")
    slope, intercept = np.polyfit(x_arr, y_arr, 1)
    r = float(np.corrcoef(x_arr, y_arr)[0, 1]) if np.ptp(y_arr) > 0 else 0.0
    return {"pairs": len(x), "intercept": float(intercept), "slope": float(slope), "r": r}


__all__ = ["CALIBRATIONS", "fit_line", "infer_calibration", "normalize_columns"]
