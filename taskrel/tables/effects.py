"""Group effects, fitted: the design matrix of a task's group effects, the weighted ridge
solve and its covariance, cross-validation of the form, identifiability and input checks. The
model that uses them is :class:`~taskrel.tables.surrogate.SubsetSurrogate`.

>>> import numpy as np
>>> members = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1]], dtype=bool)
>>> design(members, 0, pairwise=False).shape
(4, 3)
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import linalg

from taskrel.errors import TaskrelError
from taskrel.tables.candidates import CandidateTable


class IdentifiabilityWarning(UserWarning):
    """The measured groups cannot tell some effects apart (the ridge penalty splits them)."""


class ExtrapolationWarning(UserWarning):
    """A prediction for a group larger than any measured group holding that task."""


# ---------------------------------------------------------------------- input checks
def check_alpha(alpha) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise TaskrelError(f"surrogate: alpha must be a number >= 0, got {alpha!r}") from None
    if not np.isfinite(a) or a < 0:
        raise TaskrelError(f"surrogate: alpha must be a number >= 0, got {alpha!r}")
    return a


def stack_tables(measured, higher_is_better) -> tuple[list[str], np.ndarray, np.ndarray, bool]:
    tables = [measured] if isinstance(measured, CandidateTable) else measured
    if not isinstance(tables, Sequence) or not tables or not all(isinstance(t, CandidateTable) for t in tables):
        raise TaskrelError(f"surrogate: measured must be a CandidateTable or a list of them, got {type(measured).__name__}")
    first = tables[0]
    for k, tab in enumerate(tables):
        if tab.tasks != first.tasks:
            raise TaskrelError(f"surrogate: table {k} has tasks {tab.tasks}, table 0 has {first.tasks}")
        if tab.higher_is_better != first.higher_is_better:
            raise TaskrelError(f"surrogate: mixed directions: table {k} has higher_is_better={tab.higher_is_better}, "
                               f"table 0 has {first.higher_is_better}")
        widths = sorted(set(np.asarray(getattr(tab, "width", [1.0])).tolist()))
        if len(widths) > 1:
            raise TaskrelError(f"surrogate: table {k} mixes network widths {widths}; fit one surrogate per width "
                               "(table.take(rows) of one width)")
    if higher_is_better is not None and bool(higher_is_better) != first.higher_is_better:
        raise TaskrelError(f"surrogate: mixed directions: higher_is_better={higher_is_better} but the measured "
                           f"table holds {'scores' if first.higher_is_better else 'losses'} "
                           f"(higher_is_better={first.higher_is_better})")
    members = np.concatenate([t.members for t in tables])
    values = np.concatenate([t.values for t in tables])
    bad = members & ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise TaskrelError(f"surrogate: value of {first.tasks[c]!r} in measured network "
                           f"{'+'.join(t for t, m in zip(first.tasks, members[r]) if m)} is {values[r, c]}")
    return list(first.tasks), members, values, first.higher_is_better


def table_sem(measured) -> np.ndarray | None:
    """The stacked standard errors the tables carry (None unless every table has them)."""
    tables = [measured] if isinstance(measured, CandidateTable) else list(measured)
    sems = [getattr(t, "sem", None) for t in tables]
    if any(s is None for s in sems):
        return None
    return np.concatenate(sems)


def check_std(std, members: np.ndarray, tasks: list[str], n_seeds: int) -> np.ndarray | None:
    if std is None:
        return None
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise TaskrelError(f"surrogate: n_seeds must be a positive integer, got {n_seeds!r}")
    if isinstance(std, pd.DataFrame):
        missing = [t for t in tasks if t not in std.columns]
        if missing:
            raise TaskrelError(f"surrogate: std has no column for task(s) {missing}")
        std = std[tasks].to_numpy(dtype=np.float64)
    s = np.asarray(std, dtype=np.float64)
    if s.shape != members.shape:
        raise TaskrelError(f"surrogate: std has shape {s.shape}; the measured networks need {members.shape}")
    bad = members & (~np.isfinite(s) | (s < 0))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise TaskrelError(f"surrogate: std of {tasks[c]!r} in measured row {r} is {s[r, c]} (must be finite, >= 0)")
    return s / np.sqrt(n_seeds)


def check_identifiable(Z: np.ndarray, tasks: list[str], j: int, pairwise: bool, allow_few: bool,
                       shrink_unseen: bool = False) -> None:
    """Errors for effects no row informs and too few rows; a warning for confounded effects.

    With ``shrink_unseen`` an effect no row informs is a warning (the ridge penalty sets it to
    zero) instead of an error.
    """
    t, n = tasks[j], len(tasks)
    others = [k for k in range(n) if k != j]
    never = [tasks[k] for c, k in enumerate(others) if not Z[:, 1 + c].any()]
    if never and shrink_unseen:
        warnings.warn(f"surrogate: target {t!r} never appears together with {never} in a measured network; "
                      "their effects on it are set to zero", IdentifiabilityWarning, stacklevel=3)
        return
    if never:
        raise TaskrelError(f"surrogate: target {t!r} never appears together with {never} in a measured network; "
                           f"their effect on {t!r} is not identifiable (measure a group holding both)")
    if pairwise:
        unseen = [f"{tasks[a]}+{tasks[b]}" for c, (a, b) in enumerate(combinations(others, 2)) if not Z[:, n + c].any()]
        if unseen:
            raise TaskrelError(f"surrogate: pairwise terms: target {t!r} never appears with {len(unseen)} pair(s) of "
                               f"other tasks (e.g. {unseen[:3]}); measure larger groups or use pairwise=False")
    m, p = Z.shape
    if m < p:
        msg = (f"surrogate: target {t!r} has {m} measured rows for {p} parameters; "
               "measure more groups holding it" + (" or use pairwise=False" if pairwise else ""))
        if not allow_few:
            raise TaskrelError(msg + " (or pass underdetermined='warn')")
        warnings.warn(msg + "; its effects are not identifiable and the ridge penalty chooses them",
                      IdentifiabilityWarning, stacklevel=3)
        return
    _, r, piv = linalg.qr(Z, mode="economic", pivoting=True)
    tol = max(Z.shape) * np.finfo(float).eps * (abs(r[0, 0]) if r.size else 0.0)
    rank = int((np.abs(np.diag(r)) > tol).sum())
    if rank < p:
        names = ["intercept"] + [tasks[k] for k in others]
        names += [f"{tasks[a]}*{tasks[b]}" for a, b in combinations(others, 2)] if pairwise else []
        loose = [names[c] for c in piv[rank:]]
        warnings.warn(f"surrogate: target {t!r}: the measured groups cannot tell apart the effects of {loose} "
                      f"(design rank {rank} < {p} parameters); the ridge penalty splits them evenly",
                      IdentifiabilityWarning, stacklevel=3)


# ---------------------------------------------------------------------- maths
def design(members: np.ndarray, j: int, pairwise: bool, effects: str = "sum") -> np.ndarray:
    """Rows: groups holding target j; columns: intercept, other tasks, (pairs of other tasks).

    With ``effects="mean"`` each column is divided by the number of the target's group mates
    (pairs of mates, for the pairwise columns); ``effects="both"`` holds the summed columns and
    then the averaged ones, so it nests both forms (its pairwise columns are summed).
    """
    X = np.delete(members, j, axis=1).astype(np.float64)
    mates = X.sum(1, keepdims=True)
    averaged = X / np.maximum(mates, 1)
    cols = [np.ones((len(X), 1)), {"mean": averaged, "sum": X, "both": X}[effects]]
    if effects == "both":
        cols.append(averaged)
    if pairwise and X.shape[1] > 1:
        a, b = np.triu_indices(X.shape[1], k=1)
        both = X[:, a] * X[:, b]
        cols.append(both / np.maximum(mates * (mates - 1) / 2, 1) if effects == "mean" else both)
    return np.hstack(cols)


def candidate_grid(effects, alpha, tasks: list[str], maps, alphas) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
    """Per task, the forms and penalties the fit chooses among.

    ``effects``: ``"auto"`` (every form in ``maps``), one form, or a mapping task -> form;
    ``alpha``: ``"auto"`` (every penalty in ``alphas``), a number, or a mapping task -> number.
    A mapping must name every task. Bad values are TaskrelErrors naming the task and value.
    """
    def one(value, name, t):
        if name == "effects":
            if value == "auto":
                return tuple(maps)
            if value not in maps:
                raise TaskrelError(f"surrogate: effects{f' of task {t!r}' if t else ''} must be 'auto', "
                                   f"{', '.join(repr(m) for m in maps)}, got {value!r}")
            return (value,)
        return tuple(float(a) for a in alphas) if isinstance(value, str) and value == "auto" else (check_alpha(value),)

    out = {}
    for name, value in (("effects", effects), ("alpha", alpha)):
        if isinstance(value, Mapping):
            missing = [t for t in tasks if t not in value]
            if missing:
                raise TaskrelError(f"surrogate: {name} is given per task but names no value for {missing}")
            out[name] = [one(value[t], name, t) for t in tasks]
        else:
            out[name] = [one(value, name, None)] * len(tasks)
    return list(zip(out["effects"], out["alpha"]))


def choose_forms(cv: dict, tasks: list[str], grid, how: str = "task") -> list[tuple[str, float]]:
    """(form, alpha) per task from the leave-one-group-out errors ``cv[task][(form, alpha)]``;
    a task without errors (one candidate in ``grid``, its forms and penalties) takes its only one.

    ``"task"``: each task's least error. ``"pooled"``: the one form (among those every chosen
    task may take) whose per-task best errors, each relative to that task's least error, sum
    lowest; then each task's best alpha for it.
    """
    fixed = [(forms[0], float(alphas[0])) for forms, alphas in grid]
    open_ = [t for t in tasks if t in cv]
    forms = [f for f in grid[tasks.index(open_[0])][0] if all(any(g == f for g, _ in cv[t]) for t in open_)] if open_ else []
    if how == "task" or not forms:  # pooled needs a form every choosing task may take
        return [min(cv[t], key=cv[t].get) if t in cv else f for t, f in zip(tasks, fixed)]
    total = {f: sum(min(v for (g, _), v in cv[t].items() if g == f) / max(min(cv[t].values()), 1e-300) for t in open_)
             for f in forms}
    form = min(total, key=total.get)
    return [min(((f, a) for (f, a) in cv[t] if f == form), key=cv[t].get) if t in cv else fx for t, fx in zip(tasks, fixed)]


def pair_contrast(n: int, j: int, pairwise: bool, effects: str) -> np.ndarray:
    """Rows (the other tasks ``s``): design of the pair {s, j} minus that of j alone."""
    pairs = np.zeros((n, n), dtype=bool)
    pairs[:, j] = True
    pairs[np.arange(n), np.arange(n)] = True
    Z = design(np.delete(pairs, j, axis=0), j, pairwise, effects)
    return Z - design(pairs[j : j + 1], j, pairwise, effects)


def split_effects(intercept: np.ndarray, betas: list[np.ndarray], effects: list[str]):
    """``(base, summed, averaged)`` effect matrices (source, target) from each target's
    coefficients (intercept, main effects in task order without the target, then for
    ``"both"`` the averaged ones; pairwise terms are left out)."""
    n = len(intercept)
    summed, averaged = np.zeros((n, n)), np.zeros((n, n))
    for j, (beta, form) in enumerate(zip(betas, effects)):
        others = [k for k in range(n) if k != j]
        (averaged if form == "mean" else summed)[others, j] = beta[1:n]
        if form == "both":
            averaged[others, j] = beta[n : 2 * n - 1]
    return np.array(intercept, dtype=float), summed, averaged


def cross_validate(members: np.ndarray, j: int, y: np.ndarray, sem: np.ndarray | None, maps, alphas,
                   pairwise: bool) -> dict[tuple[str, float], float]:
    """Leave-one-group-out error of each (feature map, alpha) for target ``j``.

    The fit left is the one :func:`ridge` makes: repeated rows of one group (seeds) are
    collapsed into their weighted mean with their summed weights, so a group leaves with all its
    seeds and the penalty keeps the scale it has in the final fit. The error is the weighted
    mean squared leave-one-out residual over the groups where ``j`` has mates, in the value's
    units squared. ``j`` alone is never left out: it is measured, never predicted, and it is the
    anchor of every form (:func:`ridge`).
    """
    keys, inverse = np.unique(members, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    w = row_weights(sem, len(y))
    wg = np.bincount(inverse, weights=w, minlength=len(keys))
    yg = np.bincount(inverse, weights=w * y, minlength=len(keys)) / wg
    alone = keys.sum(1) == 1
    out = {}
    for effects in maps:
        Z, r, ww, free, _ = _system(design(keys, j, pairwise, effects), yg, wg, alone)
        scored = np.where(~alone, ww, 0.0) if len(ww) == len(keys) else ww  # a free intercept: groups with mates
        scored = scored if scored.any() else ww
        ZW = Z * ww[:, None]
        G = Z.T @ ZW
        for alpha in alphas:
            Ainv = linalg.pinvh(G + np.diag(np.where(free, 0.0, float(alpha))))
            resid = r - Z @ (Ainv @ (ZW.T @ r))
            lev = np.einsum("ip,pq,iq->i", Z, Ainv, ZW)
            loo = resid / np.maximum(1.0 - lev, 1e-6)
            out[(effects, float(alpha))] = float(np.sum(scored * loo**2) / np.sum(scored))
    return out


def _system(Z: np.ndarray, y: np.ndarray, w: np.ndarray, alone: np.ndarray):
    """The regression the effects solve. With the target's single measured (``alone`` rows) and
    some group: the intercept is the single's weighted mean ``b``, and the effects fit the
    groups' departures from it, so the penalty shrinks them towards "as good as alone".
    Otherwise the intercept is a free, unpenalised column.
    Returns (columns, response, weights, unpenalised-column mask, b or None)."""
    if alone.any() and not alone.all():
        b = float(np.sum(w[alone] * y[alone]) / np.sum(w[alone]))
        return Z[~alone, 1:], y[~alone] - b, w[~alone], np.zeros(Z.shape[1] - 1, dtype=bool), b
    free = np.zeros(Z.shape[1], dtype=bool)
    free[0] = True
    return Z, y, w, free, None


def row_weights(sem: np.ndarray | None, m: int) -> np.ndarray:
    """Each measured row's weight in the ridge fit: 1 without standard errors, else the mean
    variance over the row's variance (variances floored at 1e-3 of their mean)."""
    if sem is None:
        return np.ones(m)
    var = np.maximum(sem**2, 1e-3 * max(float(np.mean(sem**2)), 1e-300))
    return float(np.mean(var)) / var


def ridge(Z: np.ndarray, y: np.ndarray, sem: np.ndarray | None, alpha: float, task: str):
    """Weighted ridge of a target's values on its design: coefficients, their covariance,
    sigma, dof. The intercept is unpenalised: the target's measured single value when its
    single is among the rows (the effects then fit departures from it, :func:`_system`), else
    a free column."""
    m, p = Z.shape
    w = row_weights(sem, m)
    known = None if sem is None else float(np.mean(np.maximum(sem**2, 1e-3 * max(float(np.mean(sem**2)), 1e-300))))
    alone = ~Z[:, 1:].any(1)
    Zs, r, ws, free, b = _system(Z, y, w, alone)
    ZW = Zs * ws[:, None]
    Ainv = linalg.pinvh(Zs.T @ ZW + np.diag(np.where(free, 0.0, float(alpha))))
    coef = Ainv @ (ZW.T @ r)
    beta = coef if b is None else np.r_[b, coef]
    resid = y - Z @ beta
    dof = float(m - (b is not None) - np.trace(Zs @ Ainv @ ZW.T))
    sigma2 = float(np.sum(w * resid**2) / dof) if dof >= 1 - 1e-9 else np.nan
    if known is not None:
        sigma2 = known if not np.isfinite(sigma2) else max(sigma2, known)
    if not np.isfinite(sigma2):
        warnings.warn(f"surrogate: target {task!r}: {m} rows for {p} parameters leave no residual degrees of "
                      "freedom; its standard errors are unknown (NaN). Measure more groups or repeat seeds",
                      IdentifiabilityWarning, stacklevel=4)
    cov = sigma2 * (Ainv @ (Zs.T @ ZW) @ Ainv)
    if b is not None:  # the anchor's own noise: b enters every effect through the departures
        var_b, k = sigma2 / float(np.sum(w[alone])), Ainv @ (ws @ Zs)
        cov = np.block([[np.array([[var_b]]), -var_b * k[None, :]], [-var_b * k[:, None], cov + var_b * np.outer(k, k)]])
    return beta, cov, float(np.sqrt(sigma2)) if np.isfinite(sigma2) else np.nan, dof

__all__ = ["ExtrapolationWarning", "IdentifiabilityWarning", "check_alpha", "check_identifiable", "check_std",
           "candidate_grid", "choose_forms", "cross_validate", "design", "pair_contrast", "split_effects", "ridge", "row_weights", "stack_tables", "table_sem"]
